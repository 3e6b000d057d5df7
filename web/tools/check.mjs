// node web/tools/check.mjs CASE.json: each sign of CASE checked on its own examples as the page checks it
// (web/src/enrol.js Head.check, class_vectors.check_examples in Python), with the probabilities of its first
// example under the grown layer, as JSON on stdout. CASE is {"meta": the export's meta.json fields the Head
// reads (with "enrolled_signs"), "raw": head.bin's numbers, "views": V, "signs": [{"gloss", "embs": [[V * E
// numbers] per example]}]}. tests/test_web.py drives it.
import { readFileSync } from "node:fs";
import { Head } from "../src/enrol.js";

const c = JSON.parse(readFileSync(process.argv[2], "utf8"));
const head = new Head(c.meta, Float32Array.from(c.raw));
const embs = new Map(c.signs.map((s) => [s.gloss, s.embs.map((e) => Float32Array.from(e))]));
const signs = c.signs.map((s) => ({ gloss: s.gloss, vector: head.vector(s.gloss, embs.get(s.gloss), c.views) }));
head.setSigns(signs);
// Each sign's check, and the probabilities of its first example under the grown layer.
process.stdout.write(JSON.stringify(Object.fromEntries(
    signs.map((s) => [s.gloss, { ...head.check(signs, s.gloss, embs.get(s.gloss), c.views),
                                 probs: Array.from(head.probs(embs.get(s.gloss)[0], c.views)) }]))));
