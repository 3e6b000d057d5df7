// node web/tools/threshold.mjs CASE.json: the unknown threshold the page takes for each accept= value (web/src/
// recognizer.js unknownThreshold), as JSON on stdout. CASE is {"meta": meta.json's fields, "accepts": [values,
// null for none]}; the answer is [{threshold} or {error}] in their order. tests/test_web.py drives it.
import { readFileSync } from "node:fs";
import { unknownThreshold } from "../src/recognizer.js";

const c = JSON.parse(readFileSync(process.argv[2], "utf8"));
process.stdout.write(JSON.stringify(c.accepts.map((a) => {
  try {
    return { threshold: unknownThreshold(c.meta, a) };
  } catch (e) {
    return { error: e.message };
  }
})));
