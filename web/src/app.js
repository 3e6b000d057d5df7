// The page: camera -> MediaPipe Holistic (mediapipe/, served with the page) -> seed162 frames -> the
// asl-live segmenter -> model.onnx in onnxruntime-web. Nothing leaves the browser.
//
// URL parameters (all optional): fps=F the camera's frame rate as the segmenter counts it (default: what the
// camera reports, else 25); step=N process every N-th camera frame (asl-live --frame_step); model=DIR the
// exported model's folder (default model/); frames=N stop after N camera frames and finish the open sign
// (tests); debug keeps every frame's landmarks in window.aslLive.landmarks; video=URL recognise a video
// file instead of the camera, every step-th frame in order, as `asl-live --video` does (fps is then the
// file's frame rate, default 25); and the segmenter's settings by their asl-live names (gap_s=0.32, ...).

import * as ort from "../ort/ort.wasm.min.mjs";
import { DEFAULTS } from "./segmenter.js";
import { Recognizer, assembleFrame, label } from "./recognizer.js";

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const status = { state: "loading", signs: [], frames: 0, processed: 0, error: null, ready: false, done: false,
                 holistic_ms: [], fps_processed: 0 };
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
  const session = await ort.InferenceSession.create(`${dir}/${meta.file}`, { executionProviders: ["wasm"] });
  const classify = async (raw, t) => {
    const out = await session.run({ landmarks: new ort.Tensor("float32", raw, [t, 162]) });
    return out.probs.data;
  };
  return { meta, classify };
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

// -------------------------------------------------------------------------------------------------- main
async function main() {
  const dir = params.get("model") || "model";
  const step = Math.max(1, parseInt(params.get("step") || "1", 10));
  const stopAfter = parseInt(params.get("frames") || "0", 10);
  const debug = params.has("debug");
  status.landmarks = [];
  const config = {};
  for (const key of Object.keys(DEFAULTS)) if (params.has(key)) config[key] = Number(params.get(key));

  setState("loading the model");
  const { meta, classify } = await loadModel(dir);
  $("model").textContent = `${meta.num_classes} signs (${meta.workdir.split("/").slice(-2).join("/")}, step ${meta.checkpoint_step})`;

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
    const cameraFps = await openCamera(video);
    fps = Number(params.get("fps") || cameraFps) / step;
  }
  status.fps = fps;
  const recognizer = new Recognizer(classify, meta.glosses, fps,
                                    { config, frameStep: step, unknownThreshold: meta.unknown_threshold ?? null });
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
    if (debug) status.landmarks.push(Array.from(frame));
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
  if (file) {
    // Every step-th frame of the file in order, each shown by seeking to the middle of its display time.
    const total = Math.floor(video.duration * fps * step + 1e-6);
    const count = stopAfter > 0 ? Math.min(stopAfter, total) : total;
    status.frames = count;
    for (let index = 0; index < count; index += step) {
      await seek(video, (index + 0.5) / (fps * step));
      await process();
    }
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
