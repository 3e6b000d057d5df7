"""Extract per-frame SigLIP visual features ({id}_gemma.npy) from WLASL videos (in the extraction environment
with the visual extra, README): `... scripts/extract_visual_features.py --help` lists the flags (asl_jax/cli.py)."""

from asl_jax.cli import extract_visual_main

if __name__ == "__main__":
  extract_visual_main()
