"""`asl-live`: recognise the signs of a camera, a video or a landmark stream, as they come.

Results go to stdout (one JSON line per sign) and to the --srt / --eaf files; progress and warnings go to
stderr.
"""

from __future__ import annotations

import io
import sys
import time
from typing import Sequence

import numpy as np

from asl_jax import interrupts, pretrained
from asl_jax.data import formats, layouts
from asl_jax.errors import DataError
from asl_jax.live import recognizer as rec_lib, segmenter as seg_lib, sources, writers
from asl_jax.runs.restore import split_workdirs
from asl_jax.runs.run_dir import RunDir


def _say(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)


def recognize(workdir: str | Sequence[str] | None, *, camera: int | None = None, video: str | None = None,
              landmarks=None, fps: float = 25.0, config: seg_lib.SegmenterConfig = seg_lib.SegmenterConfig(),
              top_k: int = 5, srt: str | None = None, eaf: str | None = None, overwrite: bool = False,
              display: bool = False, frame_step: int = 1, checkpoint: str = "best", out=None,
              quiet: bool = False, realtime: bool = False, unknown_threshold: float | None = None,
              pose_out: str | None = None) -> dict:
  """Runs one source to its end (or Ctrl-C). Exactly one of camera, video, landmarks (a .npy, .parquet or
  .pose path, or a (T, D) array). `pose_out`: the stream's landmarks are also written there as a pose-format
  file when it ends. Returns {"signs": [...], "frames", "seconds" (wall), "stream_s", "status"}."""
  given = [s for s in (camera, video, landmarks) if s is not None]
  if len(given) != 1:
    raise DataError("give exactly one source: --camera=INDEX, --video=PATH or --landmarks=FILE.npy")
  if isinstance(video, str) and (video.endswith(".npy") or formats.is_landmark_format(video)):
    raise DataError(f"{video}: a landmark file given as a video; pass it with --landmarks")
  config.check()  # before the seconds of loading (the rate of a camera or video is known once it is open)
  say = (lambda m: None) if quiet else _say  # noqa: E731
  writers.check_outputs(srt, eaf, overwrite, pose_out)  # before the seconds of loading and compiling
  workdirs = [pretrained.resolve(w) for w in (split_workdirs(workdir) if workdir else [""])]
  source = None
  lock = writers.OutputLock({"--srt": srt, "--eaf": eaf, "--pose_out": pose_out})
  lock.__enter__()  # a second asl-live on the same files is refused now, not after compiling
  try:
    layout = RunDir(workdirs[0]).input_spec().layout
    if landmarks is not None:
      source = sources.LandmarkSource(landmarks, fps, realtime=realtime)
    else:  # started first: MediaPipe starts in its process while this one restores and compiles the model
      name = str(camera) if camera is not None else video
      say(f"starting landmark extraction for {'camera ' + name if camera is not None else name}")
      # The extraction writes seed162 or holistic543; a run on another layout reads the superset.
      extracted = layout if layout in sources.EXTRACT_LAYOUTS else "holistic543"
      source = sources.ExtractionSource(name, extracted, frame_step, display)
    say(f"loading {', '.join(workdirs)}")
    predictors = rec_lib.load_predictors(workdirs, checkpoint)
    layout = predictors[0].run.layout
    if source.layout != layout:
      say(f"note: {source.name} holds {source.layout} landmarks and the model was trained on {layout}; both "
          "become the same canonical points (parts a layout lacks count as undetected)")
    t0 = time.perf_counter()
    recog = rec_lib.Recognizer(predictors, source.fps, config, source.layout, top_k, source.frame_step,
                               unknown_threshold)
    say(f"model ready ({time.perf_counter() - t0:.1f} s to compile); reading {source.name} at "
        f"{source.fps:g} fps")
    log = writers.SignLog(srt, eaf, media=video, overwrite=overwrite, out=out)
    kept = [] if pose_out else None
    interrupts.ready()  # from here Ctrl-C finishes the sign in progress and writes every file
    result = _loop(source, recog, log, say, kept)
    if pose_out and kept:
      _write_pose(pose_out, np.stack(kept), source, overwrite)
      say(f"landmarks of {len(kept)} frames written to {pose_out}")
    return result
  finally:
    if source is not None:
      source.close()
    lock.__exit__()


def _write_pose(path: str, frames: np.ndarray, source, overwrite: bool) -> None:
  """The stream's landmark rows as a pose-format file, in the pixels of the camera's or video's frames (the
  extraction child measured them; 640 x 480 for a landmark file, which has no frame size)."""
  writers.check_outputs(None, None, overwrite, path)
  header = getattr(source, "header", {})
  width, height = header.get("width") or 640, header.get("height") or 480
  formats.write_pose(path, layouts.to_holistic543(frames, source.layout), source.fps, width, height)


def _loop(source, recog: rec_lib.Recognizer, log: writers.SignLog, say, kept: list | None = None) -> dict:
  start = time.perf_counter()
  status = "finished"
  recent: list[str] = []

  def emit(signs):
    for s in signs:
      log.add(s)
      recent.append(f"{writers.label(s)} {s['top_k'][0]['prob']:.2f}")
      if "warning" in s:
        say(f"warning: frames {s['start_frame']}-{s['end_frame']}: {s['warning']}")

  try:
    for frame, arrived in source:
      if kept is not None:
        kept.append(np.asarray(frame, np.float32))
      emit(recog.push(frame, arrived))
      while source.keys:
        if source.keys.popleft() == b"r":
          recog.reset()
        else:
          emit(recog.finish())
      if source.display:
        source.show({"state": "signing" if recog.segmenter.active else "waiting", "glosses": recent[-5:]})
    emit(recog.finish())
  except KeyboardInterrupt:
    status = "interrupted"
    try:
      emit(recog.finish())  # the sign in progress counts: a signer presses Ctrl-C after the last sign
    except KeyboardInterrupt:  # pressed again: stop now
      pass
    log.write_files()
  wall = time.perf_counter() - start
  stream_s = recog.n / recog.fps  # seconds of the source
  n = len(log.signs)
  say(f"{n} sign{'' if n == 1 else 's'} in {stream_s:.1f} s of input ({recog.n} frames) in {wall:.1f} s "
      f"({stream_s / max(wall, 1e-9):.1f}x real time){'; interrupted' if status == 'interrupted' else ''}")
  return {"signs": log.signs, "frames": recog.n, "seconds": wall, "stream_s": stream_s, "status": status}


def recognize_with(predictors, landmarks, fps: float, config: seg_lib.SegmenterConfig = seg_lib.SegmenterConfig(),
                   top_k: int = 5, frame_step: int = 1) -> dict:
  """`recognize` on a (T, D) landmark array with runs already restored (benchmarks, tests): no files, no
  output."""
  source = sources.LandmarkSource(landmarks, fps)
  recog = rec_lib.Recognizer(predictors, fps, config, source.layout, top_k, frame_step)
  return _loop(source, recog, writers.SignLog(out=io.StringIO()), lambda m: None)
