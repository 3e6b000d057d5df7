"""Extract landmarks or visual features for every video of a split file: resumable, with metadata and
failures (landmarks in parallel processes, visual features batched on one device)."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time

import numpy as np

from asl_jax import atomic
from asl_jax.data import formats, layouts, splits as splits_lib
from asl_jax.data.features import LANDMARK_SUFFIX, VISUAL_SUFFIX
from asl_jax.extract.visual import DEFAULT_MODEL

FAILURES_FILE = "failed_videos.txt"
METADATA_FILE = "extraction_metadata.json"


POSE_SUFFIX = ".pose"


def _save(out_path: str, arr: np.ndarray) -> None:
  atomic.save_npy(out_path, arr)  # a killed run never leaves a half-written feature file


def _save_pose(out_path: str, arr: np.ndarray, layout: str, video: str, start: int, end: int,
               num_frames: int) -> None:
  """The landmarks as a pose-format file: holistic543 points in the video's pixels, at the rate of the
  frames kept (the video's fps, scaled when num_frames resamples the clip)."""
  from asl_jax.extract import frames as frames_lib  # pylint: disable=import-outside-toplevel
  fps, width, height = frames_lib.video_info(video)
  if num_frames:
    span = len(frames_lib.frame_indices(frames_lib.count_frames(video), start, end, 0))
    fps = fps * len(arr) / max(span, 1)
  formats.write_pose(out_path, layouts.to_holistic543(arr, layout), fps or 25.0, width or 1000, height or 1000)


def _one(job):
  """Worker: (video_id, path, out_path, layout, start, end, num_frames) -> a result dict; an out_path
  ending in .pose is written with pose-format."""
  from asl_jax.extract.holistic import extract_video  # pylint: disable=import-outside-toplevel
  vid, path, out_path, layout, start, end, num_frames = job
  t0 = time.perf_counter()
  try:
    arr = extract_video(path, layout, start, end, num_frames)
  except Exception as e:  # a corrupt or unreadable video: reported, never fatal for the run
    return {"id": vid, "error": f"{type(e).__name__}: {e}"}
  if out_path.endswith(POSE_SUFFIX):
    _save_pose(out_path, arr, layout, path, start, end, num_frames)
  else:
    _save(out_path, arr)
  hands = arr[:, :126] if layout == "seed162" else np.concatenate([arr[:, 1404:1467], arr[:, 1566:1629]], 1)
  pose = arr[:, 126:] if layout == "seed162" else arr[:, 1467:1566]
  left, right = (hands[:, :63] != 0).any(1), (hands[:, 63:] != 0).any(1)
  return {"id": vid, "frames": len(arr), "seconds": time.perf_counter() - t0,
          "left_hand": int(left.sum()), "right_hand": int(right.sum()), "any_hand": int((left | right).sum()),
          "pose": int((pose != 0).any(1).sum())}


def read_entries(data_dir: str, subset: str, dataset: str = "wlasl") -> splits_lib.Split:
  """The clips to extract: an nslt split file's (dataset=wlasl), or ASL Citizen's splits/*.csv."""
  if dataset == "asl_citizen":
    return splits_lib.read_asl_citizen(data_dir)
  return splits_lib.read_split(splits_lib.resolve_split_path(data_dir, subset))


def video_path(data_dir: str, entry: splits_lib.Entry) -> str:
  """A clip's video: the file its dataset names (ASL Citizen), else DATA_DIR/videos/{video_id}.mp4."""
  return os.path.join(data_dir, entry.video or os.path.join("videos", entry.video_id + ".mp4"))


def _jobs(data_dir: str, output_dir: str, subset: str, suffix: str, skip_existing: bool, dataset: str = "wlasl"):
  """([(entry, video path, output path)] of the entries to extract, the failure results of those whose
  video is missing, skipped count)."""
  split = read_entries(data_dir, subset, dataset)
  os.makedirs(output_dir, exist_ok=True)
  jobs, missing, skipped = [], [], 0
  for e in split.entries:
    out_path = os.path.join(output_dir, e.video_id + suffix)
    if skip_existing and os.path.exists(out_path):
      skipped += 1
      continue
    path = video_path(data_dir, e)
    if os.path.exists(path):
      jobs.append((e, path, out_path))
    else:
      missing.append({"id": e.video_id, "error": _not_found(e, path)})
  return jobs, missing, skipped


def _not_found(e: splits_lib.Entry, path: str) -> str:
  """The failure line of a clip whose video is missing: where the split names it, when it says."""
  return f"{e.origin}: names {path}, which does not exist" if e.origin else "video not found"


def _progress(total: int, enabled: bool):
  if not enabled:
    return None
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
  return tqdm(total=total, desc="extracting", unit="video")


def _counts(results, elapsed: float, skipped: int) -> tuple[dict, list, list]:
  """(summary fields, ok results, failed results sorted by id)."""
  ok = [r for r in results if "error" not in r]
  failed = sorted((r for r in results if "error" in r), key=lambda r: r["id"])
  frames = sum(r["frames"] for r in ok)
  return ({"success_count": len(ok), "error_count": len(failed), "skipped_existing": skipped, "frames": frames,
           "seconds": round(elapsed, 1), "frames_per_s": round(frames / elapsed, 1) if elapsed > 0 else None},
          ok, failed)


def _write_reports(output_dir: str, meta: dict, failed: list, extra_lines=()) -> None:
  atomic.write_json(os.path.join(output_dir, METADATA_FILE), meta, indent=1)
  with atomic.atomic_open(os.path.join(output_dir, FAILURES_FILE)) as f:
    f.writelines(f"{r['id']}\t{r['error']}\n" for r in failed)
    f.writelines(extra_lines)


def summary_line(meta: dict, output_dir: str) -> str:
  """One line for the console: written / skipped / failed, and where the failures are listed."""
  line = (f"{output_dir}: {meta['success_count']} written, {meta.get('skipped_existing', 0)} skipped (already "
          f"there), {meta['error_count']} failed")
  if meta.get("no_detection"):
    line += f", {len(meta['no_detection'])} with nobody detected"
  if meta["error_count"] or meta.get("no_detection"):
    line += f" (listed in {os.path.join(output_dir, FAILURES_FILE)})"
  return line


def nothing_extracted(meta: dict) -> bool:
  """True when there was work and none of it succeeded (the CLI then exits non-zero)."""
  return meta["success_count"] == 0 and meta["error_count"] > 0


def finish(meta: dict, output_dir: str) -> None:
  """What the extraction scripts end with: the metadata (stdout), the summary line (stderr), and exit
  status 1 when no video could be processed."""
  print(json.dumps(meta, indent=1))
  print(summary_line(meta, output_dir), file=sys.stderr)
  if nothing_extracted(meta):
    print(f"error: {output_dir}: no video could be processed", file=sys.stderr)
    sys.exit(1)


def extract_dataset(data_dir: str, output_dir: str, subset: str = "nslt_100.json", layout: str = "seed162",
                    num_frames: int = 0, workers: int = 1, skip_existing: bool = False,
                    progress: bool = True, dataset: str = "wlasl", fmt: str = "npy") -> dict:
  """Writes output_dir/{id}_landmarks.npy (fmt=pose: {id}.pose, pose-format's files) for every entry of the
  split (an nslt file, or ASL Citizen's CSVs with dataset=asl_citizen), plus extraction_metadata.json and
  failed_videos.txt; returns the metadata."""
  suffix = POSE_SUFFIX if fmt == "pose" else LANDMARK_SUFFIX
  jobs, results, skipped = _jobs(data_dir, output_dir, subset, suffix, skip_existing, dataset)
  jobs = [(e.video_id, path, out, layout, e.start, e.end, num_frames) for e, path, out in jobs]
  t0 = time.perf_counter()
  bar = _progress(len(jobs), progress)
  ctx = multiprocessing.get_context("spawn")
  with ctx.Pool(max(1, workers)) if workers > 1 else _Serial() as pool:
    for r in pool.imap_unordered(_one, jobs):
      results.append(r)
      if bar is not None:
        bar.update(1)
  if bar is not None:
    bar.close()
  summary, ok, failed = _counts(results, time.perf_counter() - t0, skipped)
  no_person = sorted(r["id"] for r in ok if r["any_hand"] == 0 and r["pose"] == 0)
  from asl_jax.extract.holistic import LAYOUT_DIMS, MODEL_COMPLEXITY  # pylint: disable=import-outside-toplevel
  meta = {
      # A .pose file reads back as holistic543 (data/formats.py), whatever layout was extracted.
      "layout": "holistic543" if fmt == "pose" else layout, "format": fmt,
      "feature_dim": formats.DIM if fmt == "pose" else LAYOUT_DIMS[layout], "num_frames": num_frames, "subset": subset,
      "extractor": f"mediapipe holistic, model_complexity={MODEL_COMPLEXITY}, un-mirrored (anatomical left/right)",
      **summary, "no_detection": no_person, "workers": workers,
      "frames_per_s_per_worker": round(summary["frames"] / max(sum(r["seconds"] for r in ok), 1e-9), 1) if ok else None,
      "fraction_frames_left_hand": _frac(ok, "left_hand"), "fraction_frames_right_hand": _frac(ok, "right_hand"),
      "fraction_frames_any_hand": _frac(ok, "any_hand"), "fraction_frames_pose": _frac(ok, "pose"),
  }
  _write_reports(output_dir, meta, failed,
                 [f"{vid}\tno person detected (all-zero landmarks written)\n" for vid in no_person])
  return meta


def extract_visual_dataset(data_dir: str, output_dir: str, subset: str = "nslt_100.json",
                           model_name: str = DEFAULT_MODEL, num_frames: int = 16,
                           device: str = "auto", batch_size: int = 32, skip_existing: bool = False,
                           progress: bool = True, dataset: str = "wlasl") -> dict:
  """Writes output_dir/{id}_gemma.npy (T, D) per-frame SigLIP features for every entry of the split file
  (the same trimmed, evenly spaced frames as the landmarks), extraction_metadata.json (the seed's keys) and
  failed_videos.txt; returns the metadata dict. One model on one device, frames batched."""
  from asl_jax.extract import frames as frames_lib  # pylint: disable=import-outside-toplevel
  from asl_jax.extract.visual import SiglipFeatureExtractor  # pylint: disable=import-outside-toplevel
  encoder = SiglipFeatureExtractor(model_name, device, batch_size)
  jobs, results, skipped = _jobs(data_dir, output_dir, subset, VISUAL_SUFFIX, skip_existing, dataset)
  t0 = time.perf_counter()
  bar = _progress(len(jobs), progress)
  for e, path, out_path in jobs:
    try:
      clip = list(frames_lib.read_frames(path, e.start, e.end, num_frames))
      if not clip:
        raise ValueError(f"no decodable frames in the segment [{e.start}, {e.end}]")
      _save(out_path, encoder(clip))
      results.append({"id": e.video_id, "frames": len(clip)})
    except Exception as ex:  # a corrupt or unreadable video: reported, never fatal for the run
      results.append({"id": e.video_id, "error": f"{type(ex).__name__}: {ex}"})
    if bar is not None:
      bar.update(1)
  if bar is not None:
    bar.close()
  summary, _, failed = _counts(results, time.perf_counter() - t0, skipped)
  meta = {"model_name": model_name, "num_frames": num_frames, "feature_dim": encoder.feature_dim,
          "subset": subset, "extractor": "SigLIP vision tower, mean over patches per frame",
          "device": encoder.device, **summary}
  _write_reports(output_dir, meta, failed)
  return meta


def _frac(rows, key):
  frames = sum(r["frames"] for r in rows)
  return round(sum(r[key] for r in rows) / frames, 4) if frames else None


class _Serial:
  """The Pool interface, in-process (workers=1)."""

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    return False

  @staticmethod
  def imap_unordered(fn, jobs):
    return map(fn, jobs)
