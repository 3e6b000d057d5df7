// node web/tools/browser.mjs OUT_JSON [--video=FILE.y4m | --no-camera | --deny] [--query=a=1&b=2]
//     [--screenshot=FILE.png] [--page_screenshot=FILE.png] [--timeout=SECONDS] [--dist=web/dist] [--media=DIR]
// Serves web/dist on a free localhost port, opens the page in headless Chromium (Debian's /usr/bin/chromium,
// or $CHROMIUM) and writes what the page reports (window.aslLive: the signs, frames, timings, any error
// message, the last 30 console lines, every distinct warning and error logged) to OUT_JSON. --video feeds
// the file to a fake camera; --no-camera runs without any camera; --deny refuses the camera permission;
// --media=DIR serves DIR's files as /media/NAME (for ?video=/media/NAME). --steps=FILE.json then drives the
// page like a user, one step after another: {"fill": SELECTOR, "value": TEXT}, {"click": SELECTOR},
// {"wait": "JS expression"} (until true), {"sleep": SECONDS}, {"reload": true}, {"upload": SELECTOR, "file": PATH},
// {"download": SELECTOR, "to": PATH} (clicks, saves the file the page gives), {"screenshot": PATH} and
// {"snap": NAME} (the page's state then, in the output's "snaps"). --no-storage makes the browser refuse
// IndexedDB, as private modes do. tests/test_web.py drives it.
import { createServer } from "node:http";
import { readFileSync, writeFileSync, statSync } from "node:fs";
import { dirname, extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(process.argv.slice(3).map((a) => {
  const [k, ...v] = a.replace(/^--/, "").split("=");
  return [k, v.length ? v.join("=") : true];
}));
const out = process.argv[2];
const dist = args.dist || join(here, "..", "dist");
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
                ".json": "application/json", ".wasm": "application/wasm", ".png": "image/png" };

const server = createServer((req, res) => {
  const name = decodeURIComponent(new URL(req.url, "http://x").pathname);
  const root = args.media && name.startsWith("/media/") ? args.media : dist;
  const path = normalize(join(root, root === dist ? name : name.slice("/media/".length)));
  const file = path.endsWith("/") ? join(path, "index.html") : path;
  try {
    if (!file.startsWith(normalize(root)) || !statSync(file).isFile()) throw new Error("not found");
    const body = readFileSync(file);
    const type = TYPES[extname(file)] || "application/octet-stream";
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range || "");
    if (range) {  // videos seek through byte ranges; without them Chromium cannot set currentTime
      const start = range[1] ? Number(range[1]) : 0;
      const end = range[2] ? Math.min(Number(range[2]), body.length - 1) : body.length - 1;
      res.writeHead(206, { "Content-Type": type, "Accept-Ranges": "bytes",
                           "Content-Range": `bytes ${start}-${end}/${body.length}`, "Content-Length": end - start + 1 });
      res.end(body.subarray(start, end + 1));
    } else {
      res.writeHead(200, { "Content-Type": type, "Accept-Ranges": "bytes", "Content-Length": body.length });
      res.end(body);
    }
  } catch {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const url = `http://127.0.0.1:${server.address().port}/index.html${args.query ? `?${args.query}` : ""}`;

const flags = ["--no-sandbox", "--autoplay-policy=no-user-gesture-required",
               ...(process.env.CHROMIUM_GL_FLAGS || "--use-angle=swiftshader --enable-unsafe-swiftshader").split(" ").filter(Boolean)];
// --video: a fake camera playing the file, allowed. --deny: a fake camera, and the permission refused.
// --no-camera: the permission given, and no camera at all.
if (args.video) flags.push("--use-fake-device-for-media-stream", `--use-file-for-fake-video-capture=${args.video}`);
else if (args.deny) flags.push("--use-fake-device-for-media-stream");
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: flags, headless: true });
const context = await browser.newContext({ viewport: { width: 1100, height: 900 }, acceptDownloads: true });
if (args["no-storage"]) {
  await context.addInitScript(() => {
    IDBFactory.prototype.open = function open() { throw new DOMException("The user denied permission to access the database.", "SecurityError"); };
  });
}
if (!args.deny) await context.grantPermissions(["camera"]);
const page = await context.newPage();
const logs = [];
page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
const t0 = Date.now();
await page.goto(url);
const timeout = 1000 * Number(args.timeout || 300);
let status;
for (;;) {  // (with --steps, the steps say what to wait for)
  status = await page.evaluate(() => window.aslLive && JSON.parse(JSON.stringify(window.aslLive)));
  if (status && (status.done || status.error || args.steps)) break;
  if (Date.now() - t0 > timeout) { status = { ...(status || {}), timed_out: true }; break; }
  await new Promise((r) => setTimeout(r, 250));
}
const snaps = {};
const snap = async () => ({ t: (Date.now() - t0) / 1000, ...await page.evaluate(() => ({
  enrol: JSON.parse(JSON.stringify(window.aslLive.enrol)),
  enrol_message: document.getElementById("enrol-message").textContent,
  list: Array.from(document.querySelectorAll("#signs li")).map((li) => li.textContent),
  signs: JSON.parse(JSON.stringify(window.aslLive.signs)),
  landmarks: window.aslLive.landmarks ? JSON.parse(JSON.stringify(window.aslLive.landmarks)) : null,
  current: document.getElementById("current").textContent,
  message: (() => { const m = document.getElementById("message"); return m.hidden ? null : m.textContent; })(),
  done: window.aslLive.done, error: window.aslLive.error, processed: window.aslLive.processed,
  record_button: document.getElementById("record").textContent,
  unknown_threshold: window.aslLive.unknownThreshold ?? null, strict: document.getElementById("strict").checked,
})) });
const waitFor = async (expr) => {
  const start = Date.now();
  for (;;) {
    const ok = await page.evaluate((e) => { try { return Boolean(eval(e)); } catch { return false; } }, expr);  // eslint-disable-line no-eval
    if (ok) return;
    if (Date.now() - start > timeout) throw new Error(`timed out waiting for ${expr}`);
    await new Promise((r) => setTimeout(r, 200));
  }
};
if (args.steps && !status.timed_out) {
  for (const st of JSON.parse(readFileSync(args.steps, "utf8"))) {
    // A page busy with MediaPipe (seconds a frame on a loaded CPU) answers input late: the run's own timeout.
    if (st.fill) await page.fill(st.fill, st.value, { timeout });
    else if (st.click) await page.click(st.click, { timeout });
    else if (st.wait) await waitFor(st.wait);
    else if (st.sleep) await new Promise((r) => setTimeout(r, 1000 * st.sleep));
    else if (st.reload) await page.reload();
    else if (st.upload) await page.setInputFiles(st.upload, st.file, { timeout });
    else if (st.download) {
      const [dl] = await Promise.all([page.waitForEvent("download", { timeout }), page.click(st.download, { timeout })]);
      await dl.saveAs(st.to);
    } else if (st.screenshot) await page.screenshot({ path: st.screenshot, fullPage: true });
    else if (st.snap) snaps[st.snap] = await snap();
  }
  status = await page.evaluate(() => JSON.parse(JSON.stringify(window.aslLive)));
}
status.snaps = snaps;
status.message = await page.evaluate(() => { const m = document.getElementById("message"); return m.hidden ? null : m.textContent; });
status.current = await page.evaluate(() => document.getElementById("current").textContent);
status.recent = await page.evaluate(() => Array.from(document.querySelectorAll("#recent li")).map((li) => li.textContent));
status.wall_s = (Date.now() - t0) / 1000;
status.console = logs.slice(-30);
status.warnings = [...new Set(logs.filter((l) => l.startsWith("warning: ") || l.startsWith("error: ")))];  // each once
if (args.page_screenshot) await page.screenshot({ path: args.page_screenshot });
if (args.screenshot) {  // the preview canvas's own pixels, as rendered
  const url = await page.evaluate(() => document.getElementById("preview").toDataURL("image/png"));
  writeFileSync(args.screenshot, Buffer.from(url.split(",")[1], "base64"));
}
writeFileSync(out, JSON.stringify(status));
await browser.close();
server.close();
