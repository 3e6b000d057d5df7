"""Landmark extraction from video with MediaPipe Holistic (the optional `extract` extra)."""

from __future__ import annotations

from asl_jax.errors import DataError


def landmarks_from_video(path: str, layout: str = "seed162"):
  """(T, D) landmarks of every frame of a video in `layout`."""
  try:
    from asl_jax.extract import holistic  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise DataError(f"{path}: reading videos needs the extract extra (pip install -e '.[extract]' in its own "
                    f"environment, see README): {e}") from None
  return holistic.extract_video(path, layout)
