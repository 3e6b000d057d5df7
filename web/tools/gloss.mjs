// node web/tools/gloss.mjs CASE.json: the page's reading of typed or imported sign names (web/src/enrol.js
// checkGloss, as asl_jax/serving/enroll.py valid_gloss and same_gloss read them), as JSON on stdout. CASE is
// {"known": [glosses], "names": [names]}; the answer is [{gloss} or {error}] in the names' order.
// tests/test_web.py drives it.
import { readFileSync } from "node:fs";
import { checkGloss } from "../src/enrol.js";

const c = JSON.parse(readFileSync(process.argv[2], "utf8"));
process.stdout.write(JSON.stringify(c.names.map((n) => checkGloss(n, c.known))));
