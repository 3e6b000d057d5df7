"""asl-train: `python scripts/train.py --help` lists the flags (asl_jax/cli.py, train_main)."""

from asl_jax.cli import train_main

if __name__ == "__main__":
  train_main()
