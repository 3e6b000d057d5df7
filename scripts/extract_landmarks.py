"""Extract MediaPipe Holistic landmarks from WLASL videos (in the extraction environment, README):
`.venv-extract/bin/python scripts/extract_landmarks.py --help` lists the flags (asl_jax/cli.py)."""

from asl_jax.cli import extract_landmarks_main

if __name__ == "__main__":
  extract_landmarks_main()
