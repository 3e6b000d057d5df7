// node web/tools/check.mjs CASE.json: each sign of CASE checked on its own examples as the page checks it
// (web/src/enrol.js Head.check, class_vectors.check_examples in Python), with the probabilities of its first
// example under the grown layer, as JSON on stdout; with the examples' hashes, and the signs left unchanged
// because the model was enrolled from all their examples. CASE is {"meta": the export's meta.json fields the
// Head reads (with "enrolled_signs"), "raw": head.bin's numbers, "views": V, "signs": [{"gloss", "embs": [[V * E
// numbers] per example], "landmarks": [[[162 numbers] per frame] per example] or "hashes": [hex per example]}]}.
// tests/test_web.py drives it.
import { readFileSync } from "node:fs";
import { Head, exampleHash } from "../src/enrol.js";

const c = JSON.parse(readFileSync(process.argv[2], "utf8"));
const head = new Head(c.meta, Float32Array.from(c.raw));
// An example's hash: the page's own (exampleHash) of its "landmarks" where given, else its "hashes" entry.
const all = new Map();
for (const s of c.signs) {
  all.set(s.gloss, await Promise.all(s.embs.map(async (e, i) => Object.assign(Float32Array.from(e), {
    hash: s.landmarks ? await exampleHash(Float32Array.from(s.landmarks[i].flat())) : (s.hashes ?? [])[i] }))));
}
const embs = new Map([...all].map(([gloss, e]) => [gloss, head.fresh(gloss, e)]));
const signs = c.signs.filter((s) => embs.get(s.gloss).length).map((s) => (
  { gloss: s.gloss, vector: head.vector(s.gloss, embs.get(s.gloss), c.views) }));
head.setSigns(signs);
// Each sign's check, and the probabilities of its first example under the grown layer.
process.stdout.write(JSON.stringify({
  ...Object.fromEntries(signs.map((s) => [s.gloss, { ...head.check(signs, s.gloss, embs.get(s.gloss), c.views),
                                                     probs: Array.from(head.probs(embs.get(s.gloss)[0], c.views)) }])),
  // the signs whose examples the model was all enrolled from: left out, as asl-enroll leaves them unchanged
  unchanged: c.signs.filter((s) => !embs.get(s.gloss).length).map((s) => s.gloss),
  hashes: Object.fromEntries([...all].map(([gloss, e]) => [gloss, e.map((x) => x.hash)])) }));
