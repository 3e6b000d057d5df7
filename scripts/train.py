"""Train a recognizer: python scripts/train.py --config=configs/nslt_100.py --workdir=DIR [--config.F=V]."""

from asl_jax.cli import train_main

if __name__ == "__main__":
  train_main()
