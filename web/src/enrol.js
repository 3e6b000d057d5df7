// Your own signs in the page: asl_jax/evaluation/class_vectors.py and asl_jax/serving/enroll.py in JavaScript.
//
// The exported model gives a clip's embedding in each test-time view (embed.onnx, V x E) and its last layer
// (head.bin: kernel E x C, bias C). A sign recorded here becomes one more class vector, built from its
// examples' embeddings with the scale and bias the run fitted on val (meta.json "enrol"), exactly as
// asl-enroll builds it; a gloss the model knows is refined (the mean of its trained and built vectors), and a
// sign asl-enroll added to the model is rebuilt from its earlier examples and the page's together.
// Probabilities are the mean over views of softmax((e . kernel + bias) / T), which is model.onnx's output
// for the model's own signs. The examples (landmark frames, not video) stay in this browser (IndexedDB); the
// export file is what `asl-enroll --signs=FILE.json` reads.

import { segment } from "./segmenter.js";

export const SIGNS_FORMAT = "asl_jax signs";  // asl_jax/serving/enroll.py SIGNS_FORMAT
export const SIGNS_VERSION = 1;
export const MAX_EXAMPLES = 10;
export const DIM = 162;
// enroll.GLOSS_RE: 1-64 characters, not starting with a space, a dot or a slash, no slashes or control characters,
// not ending with "?" (the subtitles' mark of an unknown sign or a guess).
const GLOSS_RE = /^[^\s/\\.][^/\\\x00-\x1f]{0,63}(?<!\?)$/u;

// enroll.gloss_key: glosses that differ only in case, Unicode normalisation or surrounding spaces name one sign.
export function glossKey(gloss) {
  return gloss.normalize("NFC").trim().toLowerCase();
}

// enroll.same_gloss: `gloss` as spelled in `known` when one there names the same sign (an exact match first).
export function sameGloss(gloss, known) {
  if (known.includes(gloss)) return gloss;
  const key = glossKey(gloss);
  return known.find((g) => glossKey(g) === key) ?? gloss.normalize("NFC").trim();
}

// A typed or imported name -> {gloss} as the model or the page's signs spell it (`known`), or {error}.
export function checkGloss(raw, known = []) {
  const gloss = (typeof raw === "string" ? raw : "").trim();
  if (!gloss) return { error: "Type the sign's name (its gloss) first." };
  if (!GLOSS_RE.test(gloss)) return { error: `"${gloss}" cannot be a gloss: at most 64 characters, no slashes, not starting with a dot, not ending with "?".` };
  return { gloss: sameGloss(gloss, known) };
}

// A recording (frames: Float32Arrays of 162) -> {example: Float32Array (t x 162), frames: t, span} when the
// segmenter finds exactly one sign in it, as it cuts signs in recognition; else {error: what to do}.
export function cutExample(frames, config, fps) {
  const spans = segment(frames, config, fps);
  if (!spans.length) return { error: "No sign was found in the recording: sign once, with your hands down before and after. Nothing was kept." };
  if (spans.length > 1) return { error: `The recording holds ${spans.length} signs: record one sign at a time. Nothing was kept.` };
  const [a, b] = spans[0];
  const t = b - a + 1;
  const example = new Float32Array(t * DIM);
  for (let i = 0; i < t; i++) example.set(frames[a + i], i * DIM);
  return { example, frames: t, span: [a, b] };
}

// enroll.example_hash of an example the page keeps: the SHA-256 of its frames' float32 bytes, in hex; null where
// the browser has no Web Crypto (a page served over plain http from another host), and then the example is
// never taken for one the model was enrolled from.
export async function exampleHash(landmarks) {
  const subtle = globalThis.crypto && globalThis.crypto.subtle;
  if (!subtle) return null;
  const digest = await subtle.digest("SHA-256", new Uint8Array(landmarks.buffer, landmarks.byteOffset, landmarks.byteLength));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// ------------------------------------------------------------------------------------------ arithmetic

function unit(v) {
  let n = 0;
  for (const x of v) n += x * x;
  n = Math.max(Math.sqrt(n), 1e-9);
  return Float64Array.from(v, (x) => x / n);
}

// class_vectors.class_vector: embs is a list of (V x E) Float32Arrays, one per example; `earlier` the sign's
// examples enrolled into the model before ({sum, examples}: meta.json "enrolled_signs"), counted as if given here.
export function classVector(embs, views, dim, enrol, earlier = null) {
  const k = embs.length + (earlier ? earlier.examples : 0);
  let i = 0;
  enrol.shots.forEach((s, j) => { if (s <= k) i = j; });
  const a = enrol.scale[i], c = enrol.bias[i];
  const mean = earlier ? Float64Array.from(earlier.sum) : new Float64Array(dim);
  for (const e of embs) {
    for (let v = 0; v < views; v++) {
      const u = unit(e.subarray(v * dim, (v + 1) * dim));
      for (let d = 0; d < dim; d++) mean[d] += u[d];
    }
  }
  const p = unit(mean);
  return { w: Float64Array.from(p, (x) => (a / enrol.embedding_norm) * x), b: c };
}

export class Head {
  // meta: the export's meta.json; raw: head.bin's Float32Array (kernel E x C row-major, then bias C).
  constructor(meta, raw) {
    const { embedding_dim: e, num_classes: c, kind } = meta.head;
    if (raw.length !== e * c + c) throw new Error(`${meta.head.file}: ${raw.length} numbers, expected ${e * c + c}`);
    this.dim = e;
    this.kind = kind;
    this.logScale = meta.head.log_scale;
    this.temperature = meta.temperature;
    this.enrol = meta.enrol;
    this.refineWeight = meta.refine_weight ?? 0.5;
    this.baseGlosses = meta.glosses.slice();
    // The model's signs enrolled by asl-enroll (gloss -> {sum, examples, trained?}): one given again is rebuilt.
    this.earlier = meta.enrolled_signs ?? {};
    // Columns as Float64Arrays; a cosine layer compares directions (class_vectors.grow_head unit-normalises).
    this.base = [];
    for (let j = 0; j < c; j++) {
      const col = new Float64Array(e);
      for (let d = 0; d < e; d++) col[d] = raw[d * c + j];
      this.base.push({ w: kind === "cosine" ? unit(col) : col, b: raw[e * c + j] });
    }
    this.setSigns([]);
  }

  // Whether the model has the sign `gloss` names (then the user's examples refine it).
  knows(gloss) {
    return this.baseGlosses.includes(sameGloss(gloss, this.baseGlosses));
  }

  // What the model's sign `gloss` names was enrolled from by asl-enroll ({sum, examples, hashes, trained?}), or null.
  before(gloss) {
    return this.earlier[sameGloss(gloss, this.baseGlosses)] ?? null;
  }

  // The embeddings of `gloss`'s examples that the model was not enrolled from (each carries its example's
  // `hash`): asl-enroll counts an example given again once, so the page's copy of one is left out.
  fresh(gloss, embs) {
    const seen = this.before(gloss)?.hashes;
    return seen ? embs.filter((e) => !(e.hash && seen.includes(e.hash))) : embs;
  }

  // The sign's {w, b} from its examples' embeddings here and those it was enrolled from before (asl-enroll).
  vector(gloss, embs, views) {
    return classVector(embs, views, this.dim, this.enrol, this.before(gloss));
  }

  // signs: [{gloss, vector: {w, b}}] in the order they were made. Returns the glosses, base first.
  setSigns(signs) {
    Object.assign(this, this.grown(signs));
    return this.glosses;
  }

  // class_vectors.grow_head: {columns, glosses, refined, added} of the model's layer with `signs` in it. A
  // sign enrolled before is replaced by its vector (built from all its examples); a trained one is refined
  // from the trained vector, kept in "enrolled_signs" once the sign has been refined.
  grown(signs) {
    let columns = this.base.map((x) => ({ ...x }));
    const glosses = this.baseGlosses.slice(), refined = [], added = [];
    const r = this.refineWeight;
    for (const s of signs) {
      const at = this.baseGlosses.indexOf(sameGloss(s.gloss, this.baseGlosses));
      if (at >= 0) {
        const before = this.before(s.gloss);
        if (before && !before.trained) {
          columns[at] = { w: Float64Array.from(s.vector.w), b: s.vector.b };
        } else {
          const t = before && before.trained;
          const old = t ? { w: this.kind === "cosine" ? unit(t.kernel) : Float64Array.from(t.kernel), b: t.bias }
            : this.base[at];
          columns[at] = { w: Float64Array.from(old.w, (x, d) => (1 - r) * x + r * s.vector.w[d]),
                          b: (1 - r) * old.b + r * s.vector.b };
        }
        refined.push(s.gloss);
      } else {
        columns.push(s.vector);
        glosses.push(s.gloss);
        added.push(s.gloss);
      }
    }
    // A cosine layer normalises its columns (models.heads.CosineDense): a refined or built one too.
    if (this.kind === "cosine") columns = columns.map(({ w, b }) => ({ w: unit(w), b }));
    return { columns, glosses, refined, added };
  }

  // class_vectors.check_examples for the sign `gloss` of `signs` (as given to setSigns), its examples'
  // embeddings `embs`: each example's top-1 gloss with the sign built from its other examples alone ("leftOut":
  // the others here and those the model was enrolled from, when there is another one), and the gloss the layer
  // gives its examples without it ("closest", mean probability).
  check(signs, gloss, embs, views) {
    const k = embs.length, leftOut = [], earlier = this.before(gloss)?.examples ?? 0;
    const name = sameGloss(gloss, this.baseGlosses);  // a sign kept as BOOK refines the model's book
    for (let i = 0; k + earlier >= 2 && i < k; i++) {
      const others = embs.filter((_, j) => j !== i);
      const { columns, glosses } = this.grown(signs.map((s) => (
        s.gloss === gloss ? { gloss, vector: this.vector(gloss, others, views) } : s)));
      const p = this.probs(embs[i], views, columns);
      leftOut.push(glosses[p.indexOf(Math.max(...p))]);
    }
    const { columns, glosses } = this.grown(signs);
    const own = glosses.indexOf(name), mean = new Float64Array(glosses.length);
    for (const e of embs) this.probs(e, views, columns, own).forEach((x, j) => { mean[j] += x / k; });
    const closest = mean.indexOf(Math.max(...mean));
    return { examples: k, earlier, recognised: leftOut.filter((g) => g === name).length,
             takenFor: leftOut.filter((g) => g !== name), closest: glosses[closest], closestProb: mean[closest] };
  }

  // (V x E) embeddings -> Float64Array of probabilities over this.glosses (or the glosses of `columns`);
  // a class `without` is left out (probability 0).
  probs(emb, views, columns = this.columns, without = -1) {
    const c = columns.length, e = this.dim, out = new Float64Array(c);
    const scale = this.kind === "cosine" ? Math.exp(this.logScale) : 1;
    const logits = new Float64Array(c);
    for (let v = 0; v < views; v++) {
      const x = emb.subarray(v * e, (v + 1) * e);
      let max = -Infinity;
      for (let j = 0; j < c; j++) {
        const { w, b } = columns[j];
        let s = 0;
        for (let d = 0; d < e; d++) s += x[d] * w[d];
        logits[j] = j === without ? -Infinity : (scale * s + b) / this.temperature;
        if (logits[j] > max) max = logits[j];
      }
      let sum = 0;
      for (let j = 0; j < c; j++) { logits[j] = Math.exp(logits[j] - max); sum += logits[j]; }
      for (let j = 0; j < c; j++) out[j] += logits[j] / sum / views;
    }
    return out;
  }
}

// --------------------------------------------------------------------------------------------- storage

// The user's signs in IndexedDB (database asl_jax, store signs, one record a gloss); in memory alone when
// the browser refuses storage (private mode, disabled storage): `persistent` says which.
export class SignStore {
  static async open() {
    const store = new SignStore();
    try {
      if (typeof indexedDB === "undefined" || !indexedDB) throw new Error("no IndexedDB");
      store.db = await new Promise((resolve, reject) => {
        const req = indexedDB.open("asl_jax", 1);
        req.onupgradeneeded = () => req.result.createObjectStore("signs", { keyPath: "gloss" });
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error || new Error("refused"));
        req.onblocked = () => reject(new Error("blocked"));
      });
      const all = await store._tx("readonly", (s) => s.getAll());
      for (const rec of all.sort((a, b) => a.order - b.order)) store.signs.set(rec.gloss, rec);
      store.persistent = true;
    } catch (e) {
      store.db = null;
      store.persistent = false;
      store.refusal = e && e.message ? e.message : String(e);
    }
    return store;
  }

  constructor() {
    this.signs = new Map();  // gloss -> {gloss, order, examples: [{landmarks Float32Array, frames, fps, recorded}]}
    this.db = null;
  }

  _tx(mode, fn) {
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction("signs", mode);
      const req = fn(tx.objectStore("signs"));
      tx.oncomplete = () => resolve(req ? req.result : undefined);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error("storage aborted"));
    });
  }

  async _save(rec) {
    if (this.db) await this._tx("readwrite", (s) => (rec.examples.length ? s.put(rec) : s.delete(rec.gloss)));
  }

  list() {
    return Array.from(this.signs.values()).sort((a, b) => a.order - b.order);
  }

  // Adds an example; returns the sign's record. Refuses an eleventh example.
  async add(gloss, landmarks, frames, fps) {
    let rec = this.signs.get(gloss);
    if (!rec) {
      const order = Math.max(0, ...this.list().map((r) => r.order + 1));
      rec = { gloss, order, examples: [] };
    }
    if (rec.examples.length >= MAX_EXAMPLES) throw new Error(`"${gloss}" has ${MAX_EXAMPLES} examples already (the most a sign keeps): delete one first.`);
    rec.examples.push({ landmarks, frames, fps, recorded: new Date().toISOString() });
    this.signs.set(gloss, rec);
    await this._save(rec);
    return rec;
  }

  async removeExample(gloss, index) {
    const rec = this.signs.get(gloss);
    if (!rec) return;
    rec.examples.splice(index, 1);
    if (!rec.examples.length) this.signs.delete(gloss);
    await this._save(rec);
  }

  async removeSign(gloss) {
    const rec = this.signs.get(gloss);
    if (!rec) return;
    rec.examples = [];
    this.signs.delete(gloss);
    await this._save(rec);
  }

  // The export file (asl-enroll --signs=FILE.json reads it).
  exportText() {
    return JSON.stringify({
      format: SIGNS_FORMAT, version: SIGNS_VERSION, layout: "seed162",
      signs: this.list().map((r) => ({
        gloss: r.gloss,
        examples: r.examples.map((e) => ({
          landmarks: Array.from({ length: e.frames }, (_, t) => Array.from(e.landmarks.subarray(t * DIM, (t + 1) * DIM))),
          fps: e.fps, recorded: e.recorded })),
      })),
    });
  }

  // Adds the signs of an export file (a sign already here gets the file's examples, up to MAX_EXAMPLES).
  // Returns {signs, examples, skipped}; a file that is not an export is one Error.
  // `known`: the model's glosses, so that an imported BOOK refines its book.
  async importText(name, text, known = []) {
    let doc;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new Error(`${name}: not a signs file exported by this page (not JSON).`);
    }
    if (!doc || doc.format !== SIGNS_FORMAT || !Array.isArray(doc.signs)) {
      throw new Error(`${name}: not a signs file exported by this page.`);
    }
    if (doc.version !== SIGNS_VERSION) throw new Error(`${name}: version ${doc.version} of the signs file; this page reads version ${SIGNS_VERSION}.`);
    let signs = 0, examples = 0, skipped = 0;
    for (const sign of doc.signs) {
      const { gloss, error } = checkGloss(sign && sign.gloss, [...known, ...this.signs.keys()]);
      if (error || !Array.isArray(sign.examples)) { skipped += 1; continue; }
      let added = 0;
      for (const ex of sign.examples) {
        const rows = ex && ex.landmarks;
        if (!Array.isArray(rows) || !rows.length || rows.some((r) => !Array.isArray(r) || r.length !== DIM)) { skipped += 1; continue; }
        const flat = new Float32Array(rows.length * DIM);
        rows.forEach((r, t) => flat.set(r.map((x) => (Number.isFinite(x) ? x : 0)), t * DIM));
        try {
          await this.add(gloss, flat, rows.length, Number(ex.fps) || 25);
          added += 1;
        } catch {
          skipped += 1;
        }
      }
      if (added) { signs += 1; examples += added; }
    }
    return { signs, examples, skipped };
  }
}

// enroll.tried: how many of a sign's examples its check tried (Head.check decides): recognised or taken for another.
export function tried(check) {
  return check.recognised + check.takenFor.length;
}

// enroll.unsure: fewer than half of the examples tried recognised from the others.
export function unsure(check) {
  return tried(check) > 0 && 2 * check.recognised < tried(check);
}

// The list's note on a sign (enroll.check_lines, shorter).
export function checkNote(check) {
  if (!tried(check)) return "";
  const { examples: k, recognised: ok } = check;
  const taken = [...new Set(check.takenFor)];
  if (k === 1) return unsure(check) ? ` · not recognised from the others, taken for ${taken[0]}: add examples`
                                    : " · recognised from the others";
  if (!unsure(check)) return ` · ${ok === k ? "each" : `${ok} of ${k}`} recognised from the others`;
  return ` · ${ok} of ${k} recognised from the others, the rest taken for ${taken.join(", ")}: add examples`;
}
