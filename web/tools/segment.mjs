// node web/tools/segment.mjs FRAMES.f32 FPS [CONFIG_JSON]: the signs web/src/segmenter.js finds in a stream
// of seed162 frames (raw little-endian float32, 162 per frame), as JSON [[start, end], ...] on stdout.
// tests/test_web.py compares them with asl_jax/live/segmenter.py on the same stream.
import { readFileSync } from "node:fs";
import { segment } from "../src/segmenter.js";

const [file, fps, config] = process.argv.slice(2);
const buf = readFileSync(file);
const data = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
const frames = [];
for (let t = 0; t < data.length / 162; t++) frames.push(data.subarray(162 * t, 162 * (t + 1)));
process.stdout.write(JSON.stringify(segment(frames, config ? JSON.parse(config) : {}, Number(fps))));
