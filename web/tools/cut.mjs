// node web/tools/cut.mjs FRAMES.f32 FPS: what "Add a sign" keeps of a recording of seed162 frames (raw
// little-endian float32, 162 per frame): {"span": [start, end], "frames": t} for exactly one sign, else
// {"error": message}, as JSON on stdout (web/src/enrol.js cutExample). tests/test_web.py drives it.
import { readFileSync } from "node:fs";
import { cutExample } from "../src/enrol.js";

const [file, fps] = process.argv.slice(2);
const buf = readFileSync(file);
const data = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
const frames = [];
for (let t = 0; t < data.length / 162; t++) frames.push(data.subarray(162 * t, 162 * (t + 1)));
const cut = cutExample(frames, {}, Number(fps));
process.stdout.write(JSON.stringify(cut.error ? { error: cut.error } : { span: cut.span, frames: cut.frames }));
