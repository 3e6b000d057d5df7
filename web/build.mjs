// node web/build.mjs [MODEL_DIR [OUT_DIR]]: assembles the static page in OUT_DIR (default web/dist) from the
// page's sources, the npm packages (MediaPipe Holistic with its model files, onnxruntime-web's wasm build)
// and an ONNX export (default OUT_DIR/model, where `make web` exports to). Everything the page loads is then in web/dist:
// no CDN, no network.
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = process.argv[3] || join(here, "dist");
const model = process.argv[2] || join(dist, "model");
const mods = join(here, "node_modules");
if (!existsSync(mods)) {
  console.error("error: web/node_modules is missing: run `npm ci` in web/ (`make web` does)");
  process.exit(1);
}
for (const f of ["model.onnx", "meta.json"]) {
  if (!existsSync(join(model, f))) {
    console.error(`error: ${join(model, f)} not found: export a run with scripts/export.py --format=onnx --out_dir=${model}`);
    process.exit(1);
  }
}
for (const d of ["src", "mediapipe", "ort"]) rmSync(join(dist, d), { recursive: true, force: true });
mkdirSync(join(dist, "mediapipe"), { recursive: true });
mkdirSync(join(dist, "ort"), { recursive: true });
for (const f of ["index.html", "style.css"]) cpSync(join(here, f), join(dist, f));
cpSync(join(here, "src"), join(dist, "src"), { recursive: true });
// Holistic: the solution's loader, graph, wasm (with and without SIMD) and the model_complexity=1 pose model.
const holistic = join(mods, "@mediapipe", "holistic");
for (const f of readdirSync(holistic)) {
  if (/^holistic/.test(f) || f === "pose_landmark_full.tflite") cpSync(join(holistic, f), join(dist, "mediapipe", f));
}
const ort = join(mods, "onnxruntime-web", "dist");
for (const f of ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs"]) {
  cpSync(join(ort, f), join(dist, "ort", f));
}
if (model !== join(dist, "model")) {
  mkdirSync(join(dist, "model"), { recursive: true });
  for (const f of ["model.onnx", "meta.json", "embed.onnx", "head.bin"]) {  // the last two: your own signs (enrol.js)
    if (existsSync(join(model, f))) cpSync(join(model, f), join(dist, "model", f));
  }
}
rmSync(join(dist, "model", "model_batched.onnx"), { force: true });
// The shipped model travels with its licence note.
const meta = JSON.parse(readFileSync(join(dist, "model", "meta.json"), "utf8"));
const note = join(here, "..", "asl_jax", "pretrained", "LICENSE-model.md");
if (/asl_jax\/pretrained\//.test(meta.workdir || "") && existsSync(note)) cpSync(note, join(dist, "model", "LICENSE-model.md"));  // for servers; the page runs one clip at a time
// What the site redistributes, with the licences its packages declare (neither ships a licence file).
const notice = ["Third-party files in this site:"];
for (const [pkg, dir] of [["@mediapipe/holistic", "mediapipe/"], ["onnxruntime-web", "ort/"]]) {
  const meta = JSON.parse(readFileSync(join(mods, pkg, "package.json"), "utf8"));
  notice.push(`  ${dir}: ${pkg} ${meta.version}, licence ${meta.license}`);
}
notice.push("  model/: see the model's own licence note (asl_jax/pretrained/LICENSE-model.md for the shipped model)");
writeFileSync(join(dist, "THIRD_PARTY.txt"), notice.join("\n") + "\n");
console.log(`built ${dist}`);
