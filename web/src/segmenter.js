// The online sign segmenter of asl_jax/live/segmenter.py, line for line, for the browser page.
//
// Same settings, same state machine, same float64 operations in the same order, so that on one landmark
// stream both give the same signs (tests/test_web.py feeds one stream to both). Read the Python file for
// what each rule means; the comments here only mark where JavaScript needs care.

export const MAX_LOOKAHEAD_S = 0.5;
export const DEFAULT_SCALE = 0.25;

export const DEFAULTS = Object.freeze({
  gap_s: 0.32, min_len_s: 0.3, max_len_s: 6.0, cut_window_s: 0.16, cut_body: 0.12, cut_scale: 0.1, cut_hand: 1.0,
});

// Python's round(): halves go to the even neighbour (Math.round sends them up).
function roundHalfEven(x) {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

export function framesOf(config, fps) {
  const f = (s) => Math.max(1, roundHalfEven(s * fps));
  return { gap: f(config.gap_s), min_len: f(config.min_len_s), max_len: f(config.max_len_s),
           window: f(config.cut_window_s) };
}

export function validate(config, fps) {
  if (!(fps > 0) || !Number.isFinite(fps)) throw new Error(`fps=${fps}: must be a positive number of frames per second`);
  for (const name of Object.keys(DEFAULTS)) {
    if (!(config[name] > 0)) throw new Error(`${name}=${config[name]}: must be > 0`);
  }
  if (config.cut_window_s > MAX_LOOKAHEAD_S) throw new Error(`cut_window_s=${config.cut_window_s}: the look-ahead is at most ${MAX_LOOKAHEAD_S} s`);
  const fr = framesOf(config, fps);
  if (fr.max_len < 2 * fr.min_len + 1) throw new Error(`max_len_s=${config.max_len_s}: must exceed twice min_len_s=${config.min_len_s}`);
}

const length = (dx, dy) => Math.sqrt(dx * dx + dy * dy);

// One seed162 frame (162 numbers: left hand 21, right hand 21, pose 11-22, xyz) -> its signals, as
// segmenter.frame_signals gives them for one frame. Values are taken as float32 (Math.fround), as the
// Python side reads the landmarks; everything after is float64.
export function frameSignals(raw) {
  const p = (i, c) => Math.fround(raw[3 * i + c]);
  const present = (a, b) => {
    for (let i = a; i < b; i++) for (let c = 0; c < 3; c++) if (p(i, c) !== 0) return true;
    return false;
  };
  const left = present(0, 21), right = present(21, 42), arms = present(42, 48);
  const [lx, ly, rx, ry] = [p(42, 0), p(42, 1), p(43, 0), p(43, 1)];
  const width = length(lx - rx, ly - ry);
  const body = arms && width > 1e-4 ? [(lx + rx) / 2, (ly + ry) / 2, width] : [NaN, NaN, NaN];
  const wrists = [left ? [p(0, 0), p(0, 1)] : [NaN, NaN], right ? [p(21, 0), p(21, 1)] : [NaN, NaN]];
  return { hand: left || right, body, wrists };
}

function meanRows(rows) {
  const total = [0, 0, 0];
  for (const row of rows) for (let j = 0; j < 3; j++) total[j] = total[j] + row[j];
  return total.map((a) => a / rows.length);
}

export class Segmenter {
  constructor(config = {}, fps = 25.0) {
    this.config = { ...DEFAULTS, ...config };
    validate(this.config, fps);
    const fr = framesOf(this.config, fps);
    this.gap = fr.gap; this.minLen = fr.min_len; this.maxLen = fr.max_len; this.window = fr.window;
    this.reset();
  }

  reset() {
    this.n = 0;
    this._hands = [];
    this._body = [];
    this._speed = [];
    this._wrists = [[NaN, NaN], [NaN, NaN]];
    this._scale = DEFAULT_SCALE;
    this.start = null;
    this.lastHand = null;
    this._cutUntil = -1;
  }

  get lookahead() { return this.window; }
  get active() { return this.start !== null; }

  // One frame's signals ({hand, body, wrists}, as frameSignals gives them) -> the signs ([start, end]
  // inclusive frame numbers) it completes.
  push({ hand, body, wrists }) {
    if (Number.isFinite(body[2])) this._scale = body[2];
    const moved = [];
    for (let h = 0; h < 2; h++) {
      const m = length(wrists[h][0] - this._wrists[h][0], wrists[h][1] - this._wrists[h][1]) / this._scale;
      if (Number.isFinite(m)) moved.push(m);
    }
    const fastest = moved.length ? Math.max(...moved) : 0.0;
    this._speed.push(fastest);
    const jump = moved.length > 0 && fastest > this.config.cut_hand;
    this._wrists = wrists;
    this._hands.push(Boolean(hand));
    this._body.push(body);
    this.n += 1;
    let out = [];
    if (jump) out = out.concat(this._cut(this.n - 1));
    const c = this.n - 1 - this.window;
    if (c > this._cutUntil) {
      const step = this._bodyStep(c);
      if (step > 1 && step >= this._bodyStep(c - 1) && step > this._bodyStep(c + 1)) out = out.concat(this._cut(c));
    }
    return out.concat(this._advance(this.n - 1));
  }

  flush() {
    const out = this.active ? this._close(this.lastHand) : [];
    this.reset();
    return out;
  }

  _bodyStep(c) {
    const k = this.window;
    if (c < k) return 0.0;
    // Python's slices stop at the end of the list.
    const left = this._body.slice(c - k, c).filter((b) => Number.isFinite(b[2]));
    const right = this._body.slice(c, c + k).filter((b) => Number.isFinite(b[2]));
    const need = Math.max(1, Math.floor(k / 2));
    if (left.length < need || right.length < need) return 0.0;
    const lm = meanRows(left), rm = meanRows(right);
    const moved = length(lm[0] - rm[0], lm[1] - rm[1]) / lm[2];
    return Math.max(moved / this.config.cut_body, Math.abs(Math.log(rm[2] / lm[2])) / this.config.cut_scale);
  }

  _cut(c) {
    this._cutUntil = c + 2 * this.window;
    if (!this.active) return [];
    let before = null;
    for (let t = this.start; t < c; t++) if (this._hands[t]) before = t;
    let out = before !== null ? this._close(before) : [];
    this.start = this.lastHand = null;
    for (let t = c; t < this.n - 1; t++) out = out.concat(this._advance(t));
    return out;
  }

  _advance(t) {
    let out = [];
    if (this._hands[t]) {
      if (!this.active) this.start = t;
      this.lastHand = t;
    }
    if (this.active && t - this.lastHand >= this.gap) out = out.concat(this._close(this.lastHand));
    else if (this.active && this.lastHand - this.start + 1 > this.maxLen) out = out.concat(this._split(t));
    return out;
  }

  _split(t) {
    const lo = this.start + this.minLen, hi = t - this.minLen;
    const sp = [0.0, ...this._speed.slice(this.start, t + 1), 0.0];
    let at = lo, best = Infinity;
    for (let u = lo; u <= hi; u++) {  // np.argmin: the first of equal minima
      const i = u - this.start;
      const v = (sp[i] + sp[i + 1]) + sp[i + 2];
      if (v < best) { best = v; at = u; }
    }
    let end = null;
    for (let u = this.start; u < at; u++) if (this._hands[u]) end = u;
    const out = end !== null ? this._close(end) : [];
    let first = null, last = null;
    for (let u = at; u <= t; u++) if (this._hands[u]) { if (first === null) first = u; last = u; }
    this.start = first;
    this.lastHand = last;
    return out;
  }

  _close(end) {
    const start = this.start;
    this.start = this.lastHand = null;
    return end - start + 1 >= this.minLen ? [[start, end]] : [];
  }
}

// Every sign of a whole stream of seed162 frames, as the online segmenter finds it frame by frame.
export function segment(frames, config = {}, fps = 25.0) {
  const seg = new Segmenter(config, fps);
  let out = [];
  for (const f of frames) out = out.concat(seg.push(frameSignals(f)));
  return out.concat(seg.flush());
}
