// Continuous recognition in the browser: asl_jax/live/recognizer.py with onnxruntime-web in place of JAX.
// Frames (seed162, 162 numbers) go into a ring buffer and the online segmenter (segmenter.js); each sign the
// segmenter completes is classified by the exported model.onnx (the same preparation inside as predict).

import { Segmenter, frameSignals } from "./segmenter.js";

export const GUESS_BELOW = 0.3;  // recognizer.GUESS_BELOW: a top-1 probability under this is a guess
export const DIM = 162;

export function topK(probs, glosses, k = 5) {
  const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || a - b);  // stable, like numpy
  return order.slice(0, Math.min(k, probs.length)).map((c) => ({ gloss: glosses[c], class: c, prob: probs[c] }));
}

// writers.label: the top gloss, "?" after a guess; a sign the model calls unknown is "?" alone.
// The unknown threshold the page uses: meta.json's own (95 % of known signs accepted), or with accept=F the one
// that accepts F of the run's held-out known clips (meta.unknown_thresholds: asl-predict --unknown_accept=F).
export function unknownThreshold(meta, accept) {
  if (accept == null || accept === "") return meta.unknown_threshold ?? null;
  const shares = meta.unknown_thresholds || {};
  const key = Object.keys(shares).find((k) => Math.abs(Number(k) - Number(accept)) < 1e-9);
  if (key !== undefined) return shares[key];
  throw new Error(Object.keys(shares).length
    ? `accept=${accept}: this model offers ${Object.keys(shares).join(", ")} (the share of known signs to accept).`
    : `accept=${accept}: this model keeps no held-out scores to choose a threshold by: export it again after asl-evaluate --workdir=RUN --calibrate.`);
}

export function label(sign) {
  if (sign.unknown) return "?";
  return sign.top_k[0].gloss + (sign.warning ? "?" : "");
}

export class Recognizer {
  // classify(frames Float32Array (t * 162), t) -> Promise<Float32Array (C)>; fps: the rate of the frames
  // pushed, every frameStep-th frame of the source.
  // unknownThreshold: meta.json's unknown_threshold (a top-1 probability under it is an unknown sign; null: none).
  constructor(classify, glosses, fps, { config = {}, topK: k = 5, frameStep = 1, unknownThreshold = null } = {}) {
    this.classifyFn = classify;
    this.unknownThreshold = unknownThreshold;
    this.glosses = glosses;
    this.fps = fps;
    this.k = k;
    this.frameStep = Math.max(1, Math.floor(frameStep));
    this.segmenter = new Segmenter(config, fps);
    const s = this.segmenter;
    this.capacity = s.maxLen + s.gap + 2 * s.window + 8;
    this._ring = new Float32Array(this.capacity * DIM);
    this.n = 0;
    this._origin = 0;
  }

  // One frame (162 numbers) -> Promise of the signs it completes (usually none).
  async push(frame) {
    if (frame.length !== DIM) throw new Error(`frame ${this.n}: ${frame.length} values, expected ${DIM} (seed162)`);
    const slot = (this.n % this.capacity) * DIM;
    for (let i = 0; i < DIM; i++) this._ring[slot + i] = Number.isFinite(frame[i]) ? frame[i] : 0;
    const signals = frameSignals(this._ring.subarray(slot, slot + DIM));
    this.n += 1;
    return this._results(this.segmenter.push(signals));
  }

  // The sign still open at the end of the stream, if long enough.
  async finish() {
    const out = await this._results(this.segmenter.flush());
    this._origin = this.n;
    return out;
  }

  reset() {
    this.segmenter.reset();
    this._origin = this.n;
  }

  frames(start, end) {
    if (this.n - start > this.capacity) throw new Error(`sign ${start}-${end}: its first frames left the buffer`);
    const out = new Float32Array((end - start + 1) * DIM);
    for (let t = start; t <= end; t++) out.set(this._ring.subarray((t % this.capacity) * DIM, (t % this.capacity + 1) * DIM), (t - start) * DIM);
    return out;
  }

  async _results(spans) {
    const out = [];
    for (const [s, e] of spans) out.push(await this._result(s + this._origin, e + this._origin));
    return out;
  }

  async _result(start, end) {
    const t0 = performance.now();
    const raw = this.frames(start, end);
    const probs = await this.classifyFn(raw, end - start + 1);
    const top = topK(probs, this.glosses, this.k);
    const step = this.frameStep, sourceFps = this.fps * step;
    const first = start * step, last = end * step + step - 1;
    const row = { start_frame: first, end_frame: last, start_s: round3(first / sourceFps),
                  end_s: round3((last + 1) / sourceFps), top_k: top,
                  unknown: this.unknownThreshold != null && top[0].prob < this.unknownThreshold };
    const warning = signalWarning(raw, end - start + 1);
    if (warning) row.warning = warning;
    else if (this.unknownThreshold == null && top[0].prob < GUESS_BELOW) row.warning = `low confidence (${top[0].prob.toFixed(2)} < ${GUESS_BELOW}): the prediction is a guess`;
    row.classify_ms = Math.round((performance.now() - t0) * 10) / 10;
    return row;
  }
}

function round3(x) {
  return Math.round(x * 1000) / 1000;
}

// predict.signal_warning on raw seed162 frames: nothing detected at all, or no hand in any frame.
function signalWarning(raw, t) {
  let any = false, hand = false;
  for (let f = 0; f < t; f++) {
    for (let i = 0; i < DIM; i++) {
      if (raw[f * DIM + i] !== 0) { any = true; if (i < 126) { hand = true; break; } }
    }
    if (hand) break;
  }
  if (!any) return "no landmarks detected in any frame (all zeros): the prediction is a guess";
  if (!hand) return "no hands detected in any frame: the prediction is a guess";
  return null;
}

// seed162 from MediaPipe Holistic's results (holistic.assemble_frame, un-mirrored image): left hand 21,
// right hand 21, pose 11-22, xyz; zeros where a part was not found.
export function assembleFrame(results) {
  const out = new Float32Array(DIM);
  const put = (list, count, from, at) => {
    if (!list || list.length < from + count) return;
    for (let i = 0; i < count; i++) {
      const p = list[from + i];
      out[3 * (at + i)] = p.x; out[3 * (at + i) + 1] = p.y; out[3 * (at + i) + 2] = p.z;
    }
  };
  put(results.leftHandLandmarks, 21, 0, 0);
  put(results.rightHandLandmarks, 21, 0, 21);
  if (results.poseLandmarks && results.poseLandmarks.length === 33) put(results.poseLandmarks, 12, 11, 42);
  return out;
}
