"""What `asl-live` writes: one JSON line per recognised sign (stdout), SubRip subtitles of the glosses (the
`srt` library) and an ELAN annotation file with a gloss tier (pympi-ling), the tool sign-language researchers
annotate video with.

The files are rewritten atomically after every sign (asl_jax.atomic), so Ctrl-C, a kill or a failing source
leaves them complete with every sign recognised up to then; an existing file is never overwritten unless
asked.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import sys

from asl_jax import atomic
from asl_jax.errors import DataError

GLOSS_TIER = "gloss"
SRT_SUFFIX, EAF_SUFFIX = ".srt", ".eaf"


def label(sign: dict) -> str:
  """The subtitle / annotation text of a sign: its top gloss, with a ? when it is a guess; a sign the run
  calls unknown is `?` alone."""
  if sign.get("unknown"):
    return "?"
  top = sign["top_k"][0]
  return f"{top['gloss']}{'?' if sign.get('warning') else ''}"


def srt_text(signs: list[dict]) -> str:
  import srt  # pylint: disable=import-outside-toplevel
  subs = [srt.Subtitle(i + 1, datetime.timedelta(seconds=s["start_s"]), datetime.timedelta(seconds=s["end_s"]),
                       f"{label(s)} ({s['top_k'][0]['prob']:.2f})") for i, s in enumerate(signs)]
  return srt.compose(subs, reindex=False)


def eaf_text(signs: list[dict], media: str | None = None, eaf_dir: str | None = None) -> str:
  """The ELAN document; `media` is linked as ELAN links it: a file:/// URL and, from the .eaf's folder
  `eaf_dir`, a relative one (so the pair still opens after both move together)."""
  from pympi import Elan  # pylint: disable=import-outside-toplevel
  eaf = Elan.Eaf(author="asl_jax")
  if media:
    path = os.path.abspath(media)
    relative = None
    if eaf_dir:
      try:
        relative = "./" + pathlib.Path(os.path.relpath(path, os.path.abspath(eaf_dir))).as_posix()
      except ValueError:  # another drive (Windows): no relative path
        relative = None
    eaf.add_linked_file(pathlib.Path(path).as_uri(), relpath=relative,
                        mimetype="video/mp4" if media.lower().endswith(".mp4") else None)
  eaf.add_tier(GLOSS_TIER)
  eaf.remove_tier("default")
  for s in signs:
    start, end = int(round(s["start_s"] * 1000)), int(round(s["end_s"] * 1000))
    eaf.add_annotation(GLOSS_TIER, start, max(end, start + 1), label(s))
  return '<?xml version="1.0" encoding="UTF-8"?>\n' + Elan.to_string(eaf)


POSE_SUFFIX = ".pose"


def check_outputs(srt_path: str | None, eaf_path: str | None, overwrite: bool = False,
                  pose_path: str | None = None) -> None:
  """The --srt / --eaf / --pose_out paths can be written (a DataError naming the flag otherwise): checked
  before any slow work, and again when they are written."""
  for flag, path, suffix in (("--srt", srt_path, SRT_SUFFIX), ("--eaf", eaf_path, EAF_SUFFIX),
                             ("--pose_out", pose_path, POSE_SUFFIX)):
    if not path:
      continue
    if not path.lower().endswith(suffix):
      raise DataError(f"{flag}={path}: expected a {suffix} file name")
    if os.path.exists(path) and not overwrite:
      raise DataError(f"{flag}={path}: the file exists; remove it or pass --overwrite")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
      raise DataError(f"{flag}={path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
      raise DataError(f"{flag}={path}: directory {parent} is not writable")


class OutputLock:
  """Exclusive OS locks (flock) on the output files of one asl-live, held while it runs: a second asl-live
  given the same --srt / --eaf / --pose_out is refused at once, naming the flag and the holder's PID, instead
  of the two overwriting each other's subtitles. The lock is a hidden file beside the output
  (.NAME.lock), removed when the holder ends; the kernel releases it if the holder dies."""

  def __init__(self, outputs: dict):
    self.outputs = {flag: path for flag, path in outputs.items() if path}
    self._held: list = []

  def __enter__(self):
    try:
      for flag, path in self.outputs.items():
        lock = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.lock")
        try:
          self._held.append((atomic.lock_pid_file(lock), lock))
        except atomic.LockHeld as e:
          raise DataError(f"{flag}={path}: another asl-live (PID {e.holder}) is writing this file; wait for it "
                          "to end or choose another file") from None
    except BaseException:
      self.__exit__()
      raise
    return self

  def __exit__(self, *exc):
    for fd, lock in self._held:
      try:
        os.remove(lock)
      except OSError:
        pass
      os.close(fd)
    self._held = []


class SignLog:
  """The recognised signs so far, echoed as JSON lines and kept in the requested files."""

  def __init__(self, srt_path: str | None = None, eaf_path: str | None = None, media: str | None = None,
               overwrite: bool = False, out=None):
    check_outputs(srt_path, eaf_path, overwrite)
    self.srt_path, self.eaf_path, self.media = srt_path, eaf_path, media
    self.out = out if out is not None else sys.stdout
    self.signs: list[dict] = []
    self.write_files()  # an empty but valid file from the start: the outputs exist even if nothing is signed

  def add(self, sign: dict) -> None:
    """Records a sign: the files first, then its JSON line (a reader of the line finds it in the files)."""
    self.signs.append(sign)
    self.write_files()
    self.out.write(json.dumps(sign) + "\n")
    self.out.flush()

  def write_files(self) -> None:
    """Rewrites the files with every sign so far (again after an interrupt that may have cut a write)."""
    if self.srt_path:
      with atomic.atomic_open(self.srt_path) as f:
        f.write(srt_text(self.signs))
    if self.eaf_path:
      with atomic.atomic_open(self.eaf_path) as f:
        f.write(eaf_text(self.signs, self.media, os.path.dirname(os.path.abspath(self.eaf_path))))
