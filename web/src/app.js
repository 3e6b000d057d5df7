// The page: camera -> MediaPipe Holistic (mediapipe/, served with the page) -> seed162 frames -> the
// asl-live segmenter -> model.onnx in onnxruntime-web. Nothing leaves the browser.
//
// URL parameters (all optional): fps=F the camera's frame rate as the segmenter counts it (default: what the
// camera reports, else 25); step=N process every N-th camera frame (asl-live --frame_step); model=DIR the
// exported model's folder (default model/); frames=N stop after N camera frames and finish the open sign
// (tests); debug keeps every frame's landmarks in window.aslLive.landmarks; video=URL recognise a video
// file instead of the camera, every step-th frame in order, as `asl-live --video` does (fps is then the
// file's frame rate, default 25); accept=F call a sign unknown below the threshold that accepts F of the
// model's held-out known signs (0.8, ...: asl-live --unknown_accept); and the segmenter's settings by their
// asl-live names (gap_s=0.32, ...).

import * as ort from "../ort/ort.wasm.min.mjs";
import { DEFAULTS } from "./segmenter.js";
import { Recognizer, assembleFrame, label, unknownThreshold as unknownThresholdOf } from "./recognizer.js";
import { DIM, Head, SignStore, checkGloss, checkNote, cutExample, exampleHash, MAX_EXAMPLES, tried, unsure } from "./enrol.js";

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const status = { state: "loading", signs: [], frames: 0, processed: 0, error: null, ready: false, done: false,
                 holistic_ms: [], fps_processed: 0,
                 enrol: { ready: false, busy: false, message: "", signs: [], persistent: null, available: false } };
window.aslLive = status;  // read by tests/test_web.py

function fail(message) {
  status.error = message;
  status.state = "error";
  const box = $("message");
  box.textContent = message;
  box.hidden = false;
  $("state").textContent = "stopped";
}

function setState(s) {
  status.state = s;
  $("state").textContent = s;
}

// ------------------------------------------------------------------------------------------------ model
async function loadModel(dir) {
  const meta = await (await fetch(`${dir}/meta.json`)).json();
  if (meta.format !== "onnx") throw new Error(`${dir}/meta.json: not an ONNX export (asl-export --format=onnx)`);
  if (meta.landmark_layout !== "seed162" || meta.visual_dim) {
    throw new Error(`${dir}: the page runs landmark-only seed162 models (this one: ${meta.landmark_layout}` +
                    `${meta.visual_dim ? ", with visual features" : ""})`);
  }
  ort.env.wasm.numThreads = 1;  // threads need cross-origin isolation, which a plain static host does not give
  ort.env.wasm.wasmPaths = new URL("../ort/", import.meta.url).href;
  if (meta.embed_file && meta.head && meta.enrol) {
    // The embedding and the last layer: the model's own signs and the user's, computed alike (enrol.js).
    const session = await ort.InferenceSession.create(`${dir}/${meta.embed_file}`, { executionProviders: ["wasm"] });
    const raw = new Float32Array(await (await fetch(`${dir}/${meta.head.file}`)).arrayBuffer());
    const head = new Head(meta, raw);
    const embed = async (frames, t) => {
      const out = await session.run({ landmarks: new ort.Tensor("float32", frames, [t, DIM]) });
      return { emb: out.embeddings.data, views: out.embeddings.dims[0] };
    };
    const classify = async (frames, t) => {
      const { emb, views } = await embed(frames, t);
      return head.probs(emb, views);
    };
    return { meta, classify, embed, head };
  }
  const session = await ort.InferenceSession.create(`${dir}/${meta.file}`, { executionProviders: ["wasm"] });
  const classify = async (raw, t) => {
    const out = await session.run({ landmarks: new ort.Tensor("float32", raw, [t, 162]) });
    return out.probs.data;
  };
  return { meta, classify, embed: null, head: null };
}

// ----------------------------------------------------------------------------------------------- drawing
const HAND = [[0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [5, 6], [6, 7], [7, 8], [5, 9], [9, 10], [10, 11], [11, 12],
              [9, 13], [13, 14], [14, 15], [15, 16], [13, 17], [0, 17], [17, 18], [18, 19], [19, 20]];
const ARMS = [[11, 12], [11, 13], [13, 15], [12, 14], [14, 16], [11, 23], [12, 24], [23, 24]];

function draw(ctx, image, results) {
  const { width: w, height: h } = ctx.canvas;
  ctx.save();
  ctx.translate(w, 0);
  ctx.scale(-1, 1);  // a mirror, as people expect of their own camera; the landmarks came from the unmirrored frame
  ctx.drawImage(image, 0, 0, w, h);
  const lines = (pts, pairs, colour, lw) => {
    if (!pts) return;
    ctx.strokeStyle = colour;
    ctx.lineWidth = lw;
    ctx.beginPath();
    for (const [a, b] of pairs) {
      if (!pts[a] || !pts[b]) continue;
      ctx.moveTo(pts[a].x * w, pts[a].y * h);
      ctx.lineTo(pts[b].x * w, pts[b].y * h);
    }
    ctx.stroke();
    ctx.fillStyle = colour;
    for (const p of pts) ctx.fillRect(p.x * w - 2, p.y * h - 2, 4, 4);
  };
  if (results) {
    lines(results.poseLandmarks && results.poseLandmarks.slice(0, 25), ARMS, "#ffffff", 3);
    lines(results.leftHandLandmarks, HAND, "#ff6060", 2);
    lines(results.rightHandLandmarks, HAND, "#60c0ff", 2);
  }
  ctx.restore();
}

// ----------------------------------------------------------------------------------------------- display
function show(signs, active) {
  $("state").textContent = active ? "signing" : "waiting";
  const last = signs[signs.length - 1];
  if (last) {
    $("current").textContent = label(last);
    $("current").className = last.warning || last.unknown ? "guess" : "";
  }
  $("recent").innerHTML = "";
  for (const s of signs.slice(-8).reverse()) {
    const li = document.createElement("li");
    li.textContent = `${label(s)} `;
    const p = document.createElement("span");
    p.className = "prob";
    p.textContent = s.top_k.slice(0, 3).map((t) => `${t.gloss} ${t.prob.toFixed(2)}`).join(" · ");
    li.appendChild(p);
    $("recent").appendChild(li);
  }
}

// ------------------------------------------------------------------------------------------------ camera
async function openCamera(video) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("This browser gives the page no camera access (it needs a secure context: https or localhost).");
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (e) {
    if (e.name === "NotAllowedError" || e.name === "SecurityError") {
      throw new Error("Camera permission was denied: allow the camera for this page (the icon in the address bar) and reload.");
    }
    if (e.name === "NotFoundError" || e.name === "OverconstrainedError" || e.name === "NotReadableError") {
      throw new Error(`No usable camera was found (${e.name}): connect a camera, close other programs using it, and reload.`);
    }
    throw new Error(`The camera could not be started: ${e.name}: ${e.message}`);
  }
  video.srcObject = stream;
  await video.play();
  const settings = stream.getVideoTracks()[0].getSettings();
  return settings.frameRate || 25;
}

async function openVideo(video, url) {
  video.src = url;
  await new Promise((resolve, reject) => {
    video.onloadeddata = resolve;
    video.onerror = () => reject(new Error(`${url}: cannot be opened as a video by this browser`));
  });
}

// Shows the frame at time t: resolves when that frame has been presented (after 'seeked' the element
// may still hold the previous frame, and drawImage would read it), or 250 ms after 'seeked' when no new
// frame comes (a seek within the frame already shown).
function seek(video, t) {
  return new Promise((resolve) => {
    let done = false;
    const finish = () => { if (!done) { done = true; resolve(); } };
    video.requestVideoFrameCallback(finish);
    video.onseeked = () => setTimeout(finish, 250);
    video.currentTime = t;
  });
}

// ------------------------------------------------------------------------------------------- your signs
// "Add a sign": a gloss, then a recording (the camera until Stop, or the video's frames in video mode); the
// segmenter cuts the sign out of it as it cuts signs in recognition, and exactly one sign is kept.
const MAX_RECORD_S = 10;

class Enrolment {
  constructor(model, store, onChange) {
    this.model = model;
    this.store = store;
    this.onChange = onChange;
    this.embs = new Map();  // gloss -> [embedding (V x E) of each example]
    this.views = 1;
    this.recording = null;
  }

  say(message) {
    status.enrol.message = message;
    $("enrol-message").textContent = message;
  }

  // Embeds the examples not embedded yet (those stored at start-up, imported or just recorded: each sign's
  // embeddings are a prefix of its examples, as both only grow at the end and shrink together), then updates.
  async embedNew() {
    for (const rec of this.store.list()) {
      const list = this.embs.get(rec.gloss) || [];
      for (let i = list.length; i < rec.examples.length; i++) {
        const emb = await this._embed(rec.examples[i].landmarks, rec.examples[i].frames);
        emb.hash = await exampleHash(rec.examples[i].landmarks);  // an example the model was enrolled from counts once
        list.push(emb);
      }
      this.embs.set(rec.gloss, list);
    }
    this.update();
  }

  async _embed(frames, t) {
    const { emb, views } = await this.model.embed(frames, t);
    this.views = views;
    return Float32Array.from(emb);
  }

  // The vocabulary from the stored signs: the model's glosses, then the new ones.
  update() {
    const { head } = this.model;
    // Each sign from its examples that the model was not enrolled from already (none left: it stays the model's).
    const fresh = new Map(this.store.list().map((r) => [r.gloss, head.fresh(r.gloss, this.embs.get(r.gloss) || [])])
                                            .filter(([, embs]) => embs.length));
    const signs = [...fresh].map(([gloss, embs]) => ({ gloss, vector: head.vector(gloss, embs, this.views) }));
    const glosses = head.setSigns(signs);
    // Each sign checked on its own examples, as asl-enroll does (enroll.check_lines).
    this.checks = new Map(signs.map((s) => [s.gloss, head.check(signs, s.gloss, fresh.get(s.gloss), this.views)]));
    status.enrol.signs = this.store.list().map((r) => ({ gloss: r.gloss, examples: r.examples.length,
                                                         known: head.knows(r.gloss) }));
    status.enrol.checks = Object.fromEntries(this.checks);
    status.enrol.glosses = glosses.length;
    const added = head.added.length, refined = head.refined.length;
    $("yours").textContent = added || refined ? `; yours: ${added} new sign${added === 1 ? "" : "s"}` +
        (refined ? `, ${refined} refined` : "") : "";
    this.onChange(glosses);
    this.render();
  }

  render() {
    const ul = $("signs");
    ul.innerHTML = "";
    for (const rec of this.store.list()) {
      const li = document.createElement("li");
      li.dataset.gloss = rec.gloss;
      const name = document.createElement("span");
      name.className = "gloss";
      name.textContent = rec.gloss;
      li.appendChild(name);
      const count = document.createElement("span");
      count.className = "count";
      count.textContent = ` ${rec.examples.length} example${rec.examples.length === 1 ? "" : "s"}` +
          (this.model.head.knows(rec.gloss) ? " (refines the model's sign)" : "");
      li.appendChild(count);
      const check = this.checks?.get(rec.gloss);
      if (check && tried(check)) {
        const note = document.createElement("span");
        note.className = unsure(check) ? "check unsure" : "check";
        note.textContent = checkNote(check);
        li.appendChild(note);
      }
      rec.examples.forEach((_, i) => {
        const b = document.createElement("button");
        b.className = "remove-example";
        b.textContent = `× ${i + 1}`;
        b.title = `delete example ${i + 1} of ${rec.gloss}`;
        b.onclick = () => this.guard(async () => {
          await this.store.removeExample(rec.gloss, i);
          this.embs.get(rec.gloss)?.splice(i, 1);
          this.update();
          this.say(`Deleted example ${i + 1} of "${rec.gloss}".`);
        });
        li.appendChild(b);
      });
      const del = document.createElement("button");
      del.className = "remove-sign";
      del.textContent = "delete sign";
      del.onclick = () => this.guard(async () => {
        await this.store.removeSign(rec.gloss);
        this.embs.delete(rec.gloss);
        this.update();
        this.say(`Deleted "${rec.gloss}".`);
      });
      li.appendChild(del);
      ul.appendChild(li);
    }
  }

  // Runs an action with the panel busy; an error is the panel's message.
  async guard(fn) {
    status.enrol.busy = true;
    try {
      await fn();
    } catch (e) {
      this.say(e.message);
    } finally {
      status.enrol.busy = false;
    }
  }

  // The frames of a finished recording -> one example of `gloss`, or a message saying why not.
  async keep(gloss, frames, fps) {
    const cut = cutExample(frames, status.segmenterConfig, fps);
    if (cut.error) {
      this.say(cut.error);
      return;
    }
    const { example: flat, frames: t } = cut;
    const isNew = !this.store.signs.has(gloss);
    const rec = await this.store.add(gloss, flat, t, fps);
    await this.embedNew();
    const known = this.model.head.knows(gloss);
    const n = rec.examples.length;
    const check = this.checks?.get(gloss);
    this.say(isNew ? `Added "${gloss}" from one example (${t} frames)` + (known ? `: the model knows "${gloss}", and your examples refine it.` : ".")
                   : `Added example ${n} to "${gloss}", which now has ${n} examples.` +
                     (check && unsure(check) ? ` Only ${check.recognised} of the ${tried(check)} tried ${check.recognised === 1 ? "is" : "are"} recognised from the others (the rest are taken for ${[...new Set(check.takenFor)].join(", ")}): add examples, or check they are all the same sign.` : ""));
  }
}

function download(name, text) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  a.download = name;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

async function setUpEnrolment(model, recognizerRef) {
  const panel = $("enrol");
  if (!model.head) {
    panel.querySelectorAll("button, input").forEach((el) => { el.disabled = true; });
    $("enrol-message").textContent = model.meta.embed_file && !model.meta.enrol
      ? "This model cannot learn new signs: it has no enrolment scales. Run asl-evaluate --workdir=RUN --calibrate, then export it again."
      : "This model cannot learn new signs: export it again with asl-export --format=onnx (it then writes embed.onnx and head.bin).";
    status.enrol.message = $("enrol-message").textContent;
    status.enrol.ready = true;
    return null;
  }
  const store = await SignStore.open();
  status.enrol.persistent = store.persistent;
  const enrolment = new Enrolment(model, store, (glosses) => {
    if (recognizerRef.current) recognizerRef.current.glosses = glosses;
  });
  await enrolment.embedNew();
  if (!store.persistent) {
    enrolment.say("This browser refuses the page storage (private browsing, or storage switched off): your signs are kept " +
                  "until the page is closed, not after a reload. Export them to keep them.");
  }
  $("export").onclick = () => enrolment.guard(async () => {
    if (!store.list().length) throw new Error("No signs to export yet: add one first.");
    download("asl_jax_signs.json", store.exportText());
    const n = store.list().length;
    enrolment.say(`Exported ${n} sign${n === 1 ? "" : "s"} to asl_jax_signs.json (asl-enroll --signs=asl_jax_signs.json reads it).`);
  });
  $("import").onchange = (ev) => enrolment.guard(async () => {
    const file = ev.target.files[0];
    ev.target.value = "";
    if (!file) return;
    const got = await store.importText(file.name, await file.text(), model.head.baseGlosses);
    await enrolment.embedNew();
    const doubtful = [...enrolment.checks].filter(([, c]) => unsure(c)).map(([g]) => g);
    enrolment.say(`Imported ${got.signs} sign${got.signs === 1 ? "" : "s"} (${got.examples} example${got.examples === 1 ? "" : "s"}) from ${file.name}` +
                  (got.skipped ? `; ${got.skipped} example(s) skipped (unreadable, or past ${MAX_EXAMPLES} a sign).` : ".") +
                  (doubtful.length ? ` Fewer than half of the examples of ${doubtful.join(", ")} are recognised from the others: see the list.` : ""));
  });
  $("record").onclick = () => enrolment.guard(async () => {
    if (enrolment.recording) {  // Stop
      await status.stopRecording();
      return;
    }
    const { gloss, error } = checkGloss($("gloss").value, [...model.head.baseGlosses, ...store.signs.keys()]);
    if (error) throw new Error(error);
    if (status.source === "video" && !status.done) throw new Error("The video is still being recognised: record when it has finished.");
    if (!status.source) throw new Error(status.sourceError ? `No camera to record from: ${status.sourceError}` : "The camera is not ready yet: wait for it, then record.");
    const note = store.signs.has(gloss) ? `"${gloss}" exists: this recording adds an example to it. ` : "";
    await status.startRecording(enrolment, gloss, note);
  });
  status.enrol.available = true;
  status.enrol.ready = true;
  return enrolment;
}

// -------------------------------------------------------------------------------------------------- main
async function main() {
  const dir = params.get("model") || "model";
  const step = Math.max(1, parseInt(params.get("step") || "1", 10));
  const stopAfter = parseInt(params.get("frames") || "0", 10);
  const debug = params.has("debug");
  status.landmarks = [];
  const config = {};
  for (const key of Object.keys(DEFAULTS)) if (params.has(key)) config[key] = Number(params.get(key));

  status.segmenterConfig = config;

  setState("loading the model");
  const model = await loadModel(dir);
  const { meta, classify } = model;
  // "Say ? more often": the threshold that accepts 80 % of the model's held-out known signs (accept=0.8,
  // asl-live --unknown_accept=0.8); unticked, the one accept= chose, else the model's own.
  const unknownThreshold = unknownThresholdOf(meta, params.get("accept"));
  const strictBox = $("strict"), strict = (meta.unknown_thresholds || {})["0.8"] ?? null;
  const loose = unknownThreshold === strict ? (meta.unknown_threshold ?? null) : unknownThreshold;
  strictBox.disabled = strict === null;
  strictBox.checked = strict !== null && unknownThreshold === strict;
  status.unknownThreshold = unknownThreshold;  // ticked exactly when it is the strict one
  $("model").textContent = `${meta.num_classes} signs (${meta.workdir.split("/").slice(-2).join("/")}, step ${meta.checkpoint_step})`;
  const recognizerRef = { current: null };
  await setUpEnrolment(model, recognizerRef);

  setState("loading MediaPipe Holistic");
  if (typeof Holistic === "undefined") throw new Error("mediapipe/holistic.js did not load: rebuild the page with `make web`");
  // eslint-disable-next-line no-undef
  const holistic = new Holistic({ locateFile: (file) => `mediapipe/${file}` });
  // asl_jax's extraction: model_complexity=1, tracking across frames, smoothing on, no face refinement.
  holistic.setOptions({ modelComplexity: 1, smoothLandmarks: true, refineFaceLandmarks: false,
                        enableSegmentation: false, selfieMode: false });
  let latest = null;
  holistic.onResults((r) => { latest = r; });
  await holistic.initialize();

  const video = $("video");
  const file = params.get("video");
  let fps;
  if (file) {
    setState("opening the video");
    await openVideo(video, file);
    fps = Number(params.get("fps") || 25) / step;
  } else {
    setState("starting the camera");
    let cameraFps;
    try {
      cameraFps = await openCamera(video);
    } catch (e) {
      status.sourceError = e.message;  // the panel of your signs still lists, imports and exports
      throw e;
    }
    fps = Number(params.get("fps") || cameraFps) / step;
  }
  status.fps = fps;
  status.source = file ? "video" : "camera";
  const recognizer = new Recognizer(classify, model.head ? model.head.glosses : meta.glosses, fps,
                                    { config, frameStep: step, unknownThreshold });
  recognizerRef.current = recognizer;
  strictBox.onchange = () => {  // the signs from now on
    status.unknownThreshold = strictBox.checked ? strict : loose;
    recognizer.unknownThreshold = status.unknownThreshold;
  };
  const ctx = $("preview").getContext("2d");
  // Holistic reads a copy of each frame, at the source's own size unless input=WIDTH scales it (keeping the
  // aspect ratio); the preview keeps the source's aspect ratio too.
  const inputWidth = parseInt(params.get("input") || String(video.videoWidth), 10);
  const small = document.createElement("canvas");
  small.width = inputWidth;
  small.height = Math.round(inputWidth * video.videoHeight / video.videoWidth);
  const smallCtx = small.getContext("2d");
  $("preview").height = Math.round($("preview").width * video.videoHeight / video.videoWidth);
  status.ready = true;
  setState("waiting");

  // Each camera frame is processed when the previous one is done and it is an N-th frame (step); a frame
  // that arrives while the page is still busy is dropped and counted, and the page says so.
  let current = null;  // the frame being processed
  let recording = null;  // {gloss, frames, enrolment} while an example is recorded
  const videoFrames = [];  // video mode: every frame recognised, the example "Record an example" adds
  let seen = 0;
  const t0 = performance.now();
  const process = async () => {
    const start = performance.now();
    smallCtx.drawImage(video, 0, 0, small.width, small.height);
    // Timestamps as the Python solution API gives them (33333 us per processed frame, whatever the real
    // time, the first at 33333: a first frame at 0 is not after the smoothing filters' initial time, so
    // they skip it and start a frame late), so that the landmark smoothing filters as asl-live's does.
    // The public send() drops its timestamp argument; the pinned package's inner graph takes it in ms
    // (the half microsecond keeps its conversion to whole microseconds from rounding down).
    const stamp = ((status.processed + 1) * 33333 + 0.5) / 1000;
    if (holistic.h && typeof holistic.h.send === "function") await holistic.h.send({ image: small }, stamp);
    else await holistic.send({ image: small });
    status.holistic_ms.push(performance.now() - start);
    if (status.holistic_ms.length > 1000) status.holistic_ms.shift();  // the recent frames' times, not a whole session's
    const frame = assembleFrame(latest || {});
    if (recording) {  // a sign being added: its frames go to the recording, not to recognition
      recording.frames.push(frame);
      status.processed += 1;
      draw(ctx, video, latest);
      if (!file && recording.frames.length >= MAX_RECORD_S * fps) await status.stopRecording();
      return;
    }
    if (debug) status.landmarks.push(Array.from(frame));
    if (file) videoFrames.push(frame);
    const signs = await recognizer.push(frame);
    status.processed += 1;
    status.signs.push(...signs);
    draw(ctx, video, latest);
    if (signs.length || status.processed % 5 === 0) show(status.signs, recognizer.segmenter.active);
    status.fps_processed = status.processed / ((performance.now() - t0) / 1000);
    const dropped = status.dropped ? `, ${status.dropped} dropped while busy (try step=${step + 1})` : "";
    const which = step === 1 ? "every frame" : `1 frame in ${step}`;
    $("speed").textContent = `${status.fps_processed.toFixed(1)} frames/s processed (${which} of the ` +
        `${file ? "video" : "camera"}, ${fps.toFixed(1)} fps after the step${dropped})`;
  };
  // The end of the stream (frames=N, or the video's last frame): the open sign is finished.
  const finish = async () => {
    status.signs.push(...(await recognizer.finish()));
    status.done = true;
    show(status.signs, false);
    setState("finished");
  };
  status.dropped = 0;
  // Every step-th frame of the file in order, each shown by seeking to the middle of its display time.
  const playVideo = async () => {
    const total = Math.floor(video.duration * fps * step + 1e-6);
    const count = stopAfter > 0 ? Math.min(stopAfter, total) : total;
    status.frames = count;
    for (let index = 0; index < count; index += step) {
      await seek(video, (index + 0.5) / (fps * step));
      await process();
    }
  };
  // Recording an example: the camera until Stop (at most MAX_RECORD_S). In video mode the example is the video's
  // frames as recognised, with nothing to record: MediaPipe over the same video again would give the same sign.
  status.startRecording = async (enrolment, gloss, note = "") => {
    if (file) {
      enrolment.say(`${note}Adding "${gloss}" from the video.`);
      await enrolment.keep(gloss, videoFrames, fps);
      return;
    }
    recording = { gloss, frames: [], enrolment };
    enrolment.recording = recording;
    status.enrol.recording = true;
    recognizer.reset();
    $("record").textContent = "Stop";
    enrolment.say(`${note}Recording "${gloss}": sign it once, hands down before and after, then press Stop.`);
  };
  status.stopRecording = async () => {
    const rec = recording;
    if (!rec) return;
    recording = null;
    rec.enrolment.recording = null;
    status.enrol.recording = false;
    $("record").textContent = "Record an example";
    await rec.enrolment.keep(rec.gloss, rec.frames, fps);
  };
  if (file) {
    await playVideo();
    await finish();
    return;
  }
  const onFrame = () => {
    if (status.done) return;
    const index = seen++;
    status.frames = seen;
    const finishing = stopAfter > 0 && seen >= stopAfter;
    if (index % step === 0) {
      if (current) {
        status.dropped += 1;
      } else {
        current = process().catch((e) => fail(`Recognition stopped: ${e.message}`)).finally(() => { current = null; });
      }
    }
    if (finishing) {  // after the frame in hand, whether this one was processed or not
      (current || Promise.resolve()).then(() => !status.error && finish()).catch((e) => fail(`Recognition stopped: ${e.message}`));
    } else {
      video.requestVideoFrameCallback(onFrame);
    }
  };
  video.requestVideoFrameCallback(onFrame);
}

main().catch((e) => fail(e.message));
