"""Export a trained run as a self-contained model: a `jax.export` artifact (StableHLO with the weights
inside; `fmt="jax"`) or ONNX models for onnxruntime alone (`fmt="onnx"`: model.onnx for one clip and
model_batched.onnx for padded clips with their lengths, converted by jax2onnx and checked in onnxruntime
against jax before they are written; docs/serving.md, "ONNX").

The exported function takes one raw clip exactly as the feature files hold it and returns class
probabilities:

    probs f32[C] = call(landmarks f32[T, D])                      # landmark runs
    probs f32[C] = call(landmarks f32[T, D], visual f32[Tv, G])   # runs with the visual stream

T >= 1 and Tv >= 1 are symbolic (any clip length). D is the width of the run's landmark layout (162 for
seed162, 170 for holistic170, 1629 for holistic543) and G the visual feature size. Everything the trainer
does to a clip happens inside: layout -> canonical points, body-centred normalisation, uniform
resampling to max_frames, the run's frame sampling and per-frame features, its visual standardisation,
the model (with test-time flips when the run uses them) and the softmax. Zeros mark a part MediaPipe did
not find, as in the feature files, and a NaN or infinite input value is treated the same way. The artifact
is lowered for CPU and CUDA (`platforms` in meta.json), so it runs on either, wherever it was exported.
`meta.json` beside it lists the glosses, the layout, D, G and the call signature. A server needs only jax and numpy:

    import json, jax, numpy as np
    exported = jax.export.deserialize(bytearray(open("export/model.jax_export", "rb").read()))
    glosses = json.load(open("export/meta.json"))["glosses"]
    probs = np.asarray(exported.call(np.load("clip_landmarks.npy").astype(np.float32)))
    print(glosses[int(probs.argmax())], float(probs.max()))
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from asl_jax import atomic
from asl_jax.data import clip_prep, input_pipeline, layouts
from asl_jax.errors import ConfigError, ExportError, MissingDependencyError
from asl_jax.evaluation import calibration, class_vectors, inference
from asl_jax.runs import run_dir
from asl_jax.runs.restore import load_run

EXPORT_FILE = "model.jax_export"
ONNX_FILE = "model.onnx"
ONNX_BATCHED_FILE = "model_batched.onnx"
EMBED_FILE = "embed.onnx"  # raw clip -> (V, E): the embedding of each test-time view (enrolment in the page)
HEAD_FILE = "head.bin"  # the last layer, float32 little-endian: kernel (E, C) row-major, then bias (C)
ONNX_OPSET = 18  # onnxruntime-web 1.2x runs it; jax2onnx's default (23) is newer than many runtimes
ONNX_CONVERTER = "jax2onnx==0.17.1"
FORMATS = ("jax", "onnx")
ONNX_TOLERANCE = 1e-4  # the largest difference from the jax probabilities the export accepts
PLATFORMS = ("cpu", "cuda")  # lowered for both, whichever machine exports: it runs on either
META_FILE = "meta.json"


def _finite(x):
  """A non-finite value is a point MediaPipe did not find (the zeros of the feature files), so one NaN
  never turns every probability into NaN."""
  return jnp.where(jnp.isfinite(x), x, 0.0)


def _one_clip(run, landmarks, visual=None, sort: bool = True) -> input_pipeline.DeviceData:
  """A raw clip (and its visual clip) packed as data of one clip, as the exported functions take it."""
  max_frames = run.config.max_frames
  points, parts, length = clip_prep.pack_clip(_finite(landmarks), run.layout, max_frames, sort=sort)
  data = input_pipeline.DeviceData(points=points[None], parts=parts[None], lengths=length[None],
                                   labels=jnp.zeros(1, jnp.int32))
  if visual is not None:
    vis, vlen = clip_prep.pack_visual(_finite(visual), max_frames)
    data = data.replace(visual=vis[None], visual_lengths=vlen[None])
  return data


def _infer_fn(run, sort: bool = True):
  """The exported computation: raw clip(s) -> probabilities f32[C] (`sort`: see clip_prep.masked_median)."""
  log_probs = inference.log_probs_fn(run.config, run.model, run.visual_norm)

  def infer(landmarks, visual=None):
    return jnp.exp(log_probs(run.params, _one_clip(run, landmarks, visual, sort), jnp.zeros(1, jnp.int32))[0])

  return infer


def _embed_fn(run, sort: bool = True):
  """The exported embedding: raw clip -> (V, E), the input of the last layer in each test-time view
  (inference.embeddings). With the last layer (head.bin) and the temperature it gives model.onnx's
  probabilities, mean over views of softmax((e @ kernel + bias) / T): what the page computes, so that class
  vectors built from a user's examples (class_vectors.class_vector) join the trained ones."""
  embed = inference.embeddings_fn(run.config, run.model, run.visual_norm)

  def fn(landmarks):
    return embed(run.params, _one_clip(run, landmarks, sort=sort), jnp.zeros(1, jnp.int32))[:, 0]

  return fn


def head_layer(run) -> dict:
  """The run's last layer as the page reads it: {"kind": "dense" | "cosine", "kernel" (E, C) float32,
  "bias" (C,), "log_scale" (cosine only)}; None for a run whose output is not one layer over the embedding
  (a head per stream)."""
  if run.model.stream_heads:
    return None
  head = run.params["head"]["logits"]
  out = {"kind": "cosine" if "log_scale" in head else "dense",
         "kernel": np.asarray(head["kernel"], np.float32), "bias": np.asarray(head["bias"], np.float32)}
  if "log_scale" in head:
    out["log_scale"] = float(np.asarray(head["log_scale"]))
  return out


def _batched_infer_fn(run, sort: bool = True):
  """Padded clips -> probabilities f32[B, C]: landmarks (B, T, D) with lengths (B,) (the first lengths[b]
  frames of clip b are the clip, clamped to [1, T]), plus visual (B, Tv, G) and visual_lengths (B,) for
  hybrid runs. Each clip gets the same result as alone through `_infer_fn`."""
  max_frames = run.config.max_frames
  log_probs = inference.log_probs_fn(run.config, run.model, run.visual_norm)

  def infer(landmarks, lengths, visual=None, visual_lengths=None):
    pack = lambda x, n: clip_prep.pack_clip(x, run.layout, max_frames, n, sort)  # noqa: E731
    points, parts, length = jax.vmap(pack)(_finite(landmarks), lengths)
    # Clip numbers as an iota of the inputs' own batch dimension (jnp.arange(B) would lose the tie to B
    # in the ONNX converter's tracing).
    clips = jax.lax.broadcasted_iota(jnp.int32, length.shape, 0)
    data = input_pipeline.DeviceData(points=points, parts=parts, lengths=length, labels=jnp.zeros_like(clips))
    if visual is not None:
      vis, vlen = jax.vmap(lambda x, n: clip_prep.pack_visual(x, max_frames, n))(_finite(visual), visual_lengths)
      data = data.replace(visual=vis, visual_lengths=vlen)
    return jnp.exp(log_probs(run.params, data, clips))

  return infer


def _signature(run, dim: int, verb: str = "call") -> str:
  c = len(run.glosses)
  return f"probs f32[{c}] = {verb}(landmarks f32[T, {dim}]" + (
      f", visual f32[Tv, {run.visual_dim}])" if run.visual_dim else ")") + ", any T >= 1" + (
          " and Tv >= 1" if run.visual_dim else "")


# The shares of known signs accepted whose thresholds an export carries (the page's accept=F, asl-predict's
# --unknown_accept=F), when the run's calibration keeps its held-out scores.
EXPORT_ACCEPTS = (0.99, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5)


def unknown_thresholds(run) -> dict[str, float] | None:
  """{share: threshold} for EXPORT_ACCEPTS (calibration.threshold_for), or None without held-out scores."""
  cal = run.calibration
  if not cal or not cal.get("known_scores"):
    return None
  return {str(a): calibration.threshold_for(cal, a, run.workdir) for a in EXPORT_ACCEPTS}


def _meta(run, workdir: str, dim: int) -> dict:
  return {"temperature": float(run.model.temperature),  # inside the model: its probabilities are calibrated
          # A sign is unknown when its top-1 probability is below this (null: the run calls nothing unknown).
          "unknown_threshold": run.unknown_threshold,
          # The threshold for another share of known signs accepted (null: the run keeps no held-out scores).
          "unknown_thresholds": unknown_thresholds(run),
          "inputs": ["landmarks"] + (["visual"] if run.visual_dim else []),
          "landmark_layout": run.layout, "landmark_dim": dim, "visual_dim": run.visual_dim,
          "num_classes": len(run.glosses), "glosses": list(run.glosses), "checkpoint_step": run.step,
          "max_frames": run.config.max_frames, "num_frames": run.config.num_frames,
          "tta_flip": bool(run.config.tta_flip), "workdir": os.path.abspath(workdir),
          "non_finite_inputs": "a NaN or infinite value counts as an undetected point (0), as in the feature files"}


def _say(say, message: str) -> None:
  if say is not None:
    say(message)


def export_run(workdir: str, out_dir: str, checkpoint: str = "best", fmt: str = "jax", say=None) -> str:
  """Serialises the run's raw-clip -> probabilities function with its parameters baked in; returns out_dir.
  `fmt`: "jax" (model.jax_export, needs jax to run) or "onnx" (model.onnx and model_batched.onnx, need
  onnxruntime alone); meta.json describes what was written. `say(line)` hears each step (the CLI prints them)."""
  if fmt not in FORMATS:
    raise ConfigError(f"--format={fmt!r}: expected one of {', '.join(FORMATS)}")
  if fmt == "onnx":
    _onnx_libraries()  # before the (slow) loading
  _say(say, "restoring the run")
  run = load_run(workdir, checkpoint)
  dim = layouts.LAYOUT_DIMS[run.layout]
  if fmt == "onnx":
    return _export_onnx(run, workdir, out_dir, dim, say)
  _say(say, "tracing and serialising the model (jax.export)")
  if run.visual_dim:
    t, tv = jax.export.symbolic_shape("t, tv", constraints=("t >= 1", "tv >= 1"))
    specs = [jax.ShapeDtypeStruct((t, dim), jnp.float32), jax.ShapeDtypeStruct((tv, run.visual_dim), jnp.float32)]
  else:
    (t,) = jax.export.symbolic_shape("t", constraints=("t >= 1",))
    specs = [jax.ShapeDtypeStruct((t, dim), jnp.float32)]
  exported = jax.export.export(jax.jit(_infer_fn(run)), platforms=PLATFORMS)(*specs)
  os.makedirs(out_dir, exist_ok=True)
  atomic.write_bytes(os.path.join(out_dir, EXPORT_FILE), exported.serialize())
  meta = {"format": "jax", "file": EXPORT_FILE, "signature": _signature(run, dim), **_meta(run, workdir, dim),
          "platforms": list(exported.platforms)}
  atomic.write_json(os.path.join(out_dir, META_FILE), meta, indent=1)
  return out_dir


def _onnx_libraries():
  """(jax2onnx, onnxruntime), or one line saying how to install what is missing."""
  try:
    import jax2onnx  # pylint: disable=import-outside-toplevel  (optional dependencies)
    import onnxruntime  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise MissingDependencyError(
        f"--format=onnx needs the onnx extra and jax2onnx ({e}): `pip install -e '.[onnx]'` in the asl_jax "
        f"checkout, then `pip install --no-deps {ONNX_CONVERTER}` (`make demo` / `make test` install both)") from e
  return jax2onnx, onnxruntime


def _to_onnx(fn, inputs, input_names, output_names):
  """jax2onnx conversion of fn, with the checks and repairs its output needs for onnxruntime
  (docs/serving.md, "ONNX"): the value_info shapes jax2onnx records for dynamic dimensions can be wrong (2T labelled T after
  a concatenation), and onnxruntime trusts them, so they are dropped and onnxruntime infers its own."""
  jax2onnx, _ = _onnx_libraries()
  # jax2onnx imports every plugin it ships, and logs a traceback for each one whose library (equinox,
  # dm_pix, ...) is not installed: none of them is needed here.
  # onnx_ir warns for every intermediate value whose type it does not record (onnxruntime infers them).
  quiet = [logging.getLogger(name) for name in ("jax2onnx", "onnx_ir")]
  levels = [q.level for q in quiet]
  for q in quiet:
    q.setLevel(logging.ERROR)
  try:
    with warnings.catch_warnings(), _output_check_from_the_last_node():
      warnings.filterwarnings("ignore", message="Explicitly requested dtype float64")  # jax makes them float32
      model = jax2onnx.to_onnx(fn, inputs, input_names=input_names, output_names=output_names,
                               model_name="asl_jax", opset=ONNX_OPSET)
  finally:
    for q, level in zip(quiet, levels):
      q.setLevel(level)
  del model.graph.value_info[:]
  _drop_unused_initializers(model.graph)
  return model


@contextlib.contextmanager
def _output_check_from_the_last_node():
  """Makes jax2onnx's conversion linear in the model's size instead of quadratic, for the version pinned here.

  After lowering each jaxpr equation, jax2onnx 0.17.1 checks that the equation's outputs are values of the graph
  (`output_binding._value_is_graph_connected`): it compares them with the graph's inputs, then every
  initializer, then the outputs of every node from the first. The value was almost always made by the node just
  added, so each check scans the whole graph, and checking took 2/3 of `asl-export --format=onnx` (12 of 18 s
  for a tiny recommended-config run: 3 conversions, about 2900 equations in all). This check looks at the nodes
  from the last one back first: the same comparison over the same values (an `any`, so the order cannot change
  the answer; the files are byte-identical), found at once. Another jax2onnx version is left alone: its code
  may differ.
  """
  try:
    from jax2onnx.converter import output_binding  # pylint: disable=import-outside-toplevel
    pinned = importlib.metadata.version("jax2onnx") == ONNX_CONVERTER.split("==")[1]
  except (ImportError, importlib.metadata.PackageNotFoundError):
    pinned = False
  original = getattr(output_binding, "_value_is_graph_connected", None) if pinned else None
  if original is None:
    yield
    return

  def connected(ctx, value) -> bool:
    same = output_binding._value_matches_reference  # pylint: disable=protected-access
    return (any(same(out, value) for node in reversed(ctx.builder.nodes) for out in node.outputs)
            or any(same(v, value) for v in ctx.builder.inputs)
            or any(same(v, value) for v in ctx.builder.initializers))

  output_binding._value_is_graph_connected = connected  # pylint: disable=protected-access
  try:
    yield
  finally:
    output_binding._value_is_graph_connected = original  # pylint: disable=protected-access


def _drop_unused_initializers(graph) -> None:
  """Removes the constants no node reads (jax2onnx leaves a few behind; onnxruntime warns about each)."""
  used = set(o.name for o in graph.output)
  def visit(g):
    for node in g.node:
      used.update(node.input)
      for attr in node.attribute:
        for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
          visit(sub)
  visit(graph)
  keep = [init for init in graph.initializer if init.name in used]
  del graph.initializer[:]
  graph.initializer.extend(keep)


def _probe_inputs(run, dim: int, batched: bool):
  """Deterministic clips for the export's self-check: a synthetic signer (every part present, the left
  hand missing for a few frames) of 37 frames, and for the batched model also one of 5 frames padded to 37."""
  rng = np.random.default_rng(0)
  def clip(t):
    lm = rng.uniform(0.3, 0.7, (t, dim)).astype(np.float32)
    lm[: t // 4, : dim // 3] = 0
    return lm
  vis = lambda t: rng.normal(size=(t, run.visual_dim)).astype(np.float32)  # noqa: E731
  if not batched:
    return [clip(37)] + ([vis(20)] if run.visual_dim else [])
  lms = np.stack([clip(37), np.pad(clip(5), ((0, 32), (0, 0)))])
  out = [lms, np.array([37, 5], np.int32)]
  if run.visual_dim:
    out += [np.stack([vis(20), np.pad(vis(3), ((0, 17), (0, 0)))]), np.array([20, 3], np.int32)]
  return out


def _check_onnx(model, fn, inputs, names, what: str, quantity: str = "probabilities") -> np.ndarray:
  """The converted model must give the jax function's probabilities (1e-4) in onnxruntime: the converter is
  young, and a wrong conversion is caught here rather than on a user's device. Returns jax's output."""
  _, onnxruntime = _onnx_libraries()
  options = onnxruntime.SessionOptions()
  options.log_severity_level = 4  # fatal only: a failure here becomes one ExportError line
  try:
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    got = session.run(None, dict(zip(names, inputs)))[0]
  except Exception as e:  # pylint: disable=broad-except  (onnxruntime raises its own exception types)
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise ExportError(f"{what}: onnxruntime cannot run the converted model ({first}); nothing was written "
                      "(use --format=jax)") from e
  want = np.asarray(jax.jit(fn)(*inputs))
  err = float(np.max(np.abs(got - want)))
  if not err <= ONNX_TOLERANCE:
    raise ExportError(f"{what}: onnxruntime's {quantity} differ from jax's by {err:.2g} (> {ONNX_TOLERANCE}); "
                      "the conversion is wrong, nothing was written (use --format=jax)")
  return want


def _export_onnx(run, workdir: str, out_dir: str, dim: int, say=None) -> str:
  g = run.visual_dim
  _say(say, f"converting to ONNX (jax2onnx): {ONNX_FILE}, one clip of any length (15-30 s on 2 cores)")
  single_fn = _infer_fn(run, sort=False)
  single_names = ["landmarks"] + (["visual"] if g else [])
  single = _to_onnx(single_fn, [("T", dim)] + ([("Tv", g)] if g else []), single_names, ["probs"])
  probe = _probe_inputs(run, dim, False)
  probs = _check_onnx(single, single_fn, probe, single_names, ONNX_FILE)
  _say(say, f"checked {ONNX_FILE} against jax; converting {ONNX_BATCHED_FILE}, a padded batch of clips")
  batched_fn = _batched_infer_fn(run, sort=False)
  batched_in = [("B", "T", dim), jax.ShapeDtypeStruct(("B",), jnp.int32)]
  batched_names = ["landmarks", "lengths"]
  if g:
    batched_in += [("B", "Tv", g), jax.ShapeDtypeStruct(("B",), jnp.int32)]
    batched_names += ["visual", "visual_lengths"]
  batched = _to_onnx(batched_fn, batched_in, batched_names, ["probs"])
  _check_onnx(batched, batched_fn, _probe_inputs(run, dim, True), batched_names, ONNX_BATCHED_FILE)
  _say(say, f"checked {ONNX_BATCHED_FILE} against jax")
  head = head_layer(run) if not g else None
  embed = None
  if head is not None:
    _say(say, f"converting {EMBED_FILE}, the clip's embedding (for signs enrolled in the page)")
    embed_fn = _embed_fn(run, sort=False)
    embed = _to_onnx(embed_fn, [("T", dim)], ["landmarks"], ["embeddings"])
    emb = _check_onnx(embed, embed_fn, probe, ["landmarks"], EMBED_FILE, "embeddings")
    _check_head(run, head, emb, probs)
    _say(say, f"checked {EMBED_FILE} against jax")
  _say(say, "writing")
  os.makedirs(out_dir, exist_ok=True)
  atomic.write_bytes(os.path.join(out_dir, ONNX_FILE), single.SerializeToString())
  atomic.write_bytes(os.path.join(out_dir, ONNX_BATCHED_FILE), batched.SerializeToString())
  extra = {}
  if embed is not None:
    atomic.write_bytes(os.path.join(out_dir, EMBED_FILE), embed.SerializeToString())
    atomic.write_bytes(os.path.join(out_dir, HEAD_FILE), np.concatenate(
        [head["kernel"].ravel(), head["bias"]]).astype("<f4").tobytes())
    cal = run.calibration or {}
    extra = {"embed_file": EMBED_FILE, "embed_signature": f"embeddings f32[V, {head['kernel'].shape[0]}] = "
                                                          f"run(landmarks f32[T, {dim}])",
             "head": {"file": HEAD_FILE, "kind": head["kind"], "embedding_dim": int(head["kernel"].shape[0]),
                      "num_classes": int(head["kernel"].shape[1]), "log_scale": head.get("log_scale"),
                      "layout": "kernel (E, C) row-major, then bias (C), float32 little-endian"},
             "enrol": cal.get("enrol"), "refine_weight": class_vectors.REFINE_WEIGHT,
             # the run's enrolled signs (class_vectors "earlier"): a sign the page is given again is rebuilt
             "enrolled_signs": (run_dir.RunDir(run.workdir).enrolled() or {}).get("signs", {})}
  c = len(run.glosses)
  meta = {"format": "onnx", "file": ONNX_FILE, "batched_file": ONNX_BATCHED_FILE, "opset": ONNX_OPSET,
          "signature": _signature(run, dim, "run"),
          "batched_signature": f"probs f32[B, {c}] = run(landmarks f32[B, T, {dim}], lengths i32[B]" + (
              f", visual f32[B, Tv, {g}], visual_lengths i32[B])" if g else ")") +
          ": clip b is its first lengths[b] frames (clamped to [1, T]); the rest is padding",
          **_meta(run, workdir, dim), **extra}
  atomic.write_json(os.path.join(out_dir, META_FILE), meta, indent=1)
  return out_dir


def head_probs(emb: np.ndarray, head: dict, temperature: float) -> np.ndarray:
  """(C,) probabilities from one clip's (V, E) embeddings through the last layer: the mean over views of
  softmax(logits / T), as the page computes them (web/src/enrol.js, classify)."""
  return calibration.mean_probs(class_vectors.head_logits(emb, head)[:, None], temperature)[0]


def _check_head(run, head: dict, emb: np.ndarray, probs: np.ndarray) -> None:
  """The page's arithmetic (embedding, last layer, temperature, views) must give the model's probabilities:
  `emb` and `probs` are the jax embedding and probabilities of the same probe clip."""
  err = float(np.max(np.abs(head_probs(emb, head, float(run.model.temperature)) - probs)))
  if not err <= ONNX_TOLERANCE:
    raise ExportError(f"{EMBED_FILE}: the embedding through the last layer differs from the model's probabilities "
                      f"by {err:.2g} (> {ONNX_TOLERANCE}); nothing was written")


def load_exported(out_dir: str):
  """(call, meta): call(landmarks[, visual]) -> probabilities (C,), using only jax (no asl_jax model code)."""
  with open(os.path.join(out_dir, EXPORT_FILE), "rb") as fh:
    exported = jax.export.deserialize(bytearray(fh.read()))
  with open(os.path.join(out_dir, META_FILE), encoding="utf-8") as fh:
    meta = json.load(fh)
  return (lambda *inputs: np.asarray(exported.call(*(np.asarray(x, np.float32) for x in inputs)))), meta
