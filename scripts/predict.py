"""asl-predict: `python scripts/predict.py --help` lists the flags (asl_jax/cli.py, predict_main)."""

from asl_jax.cli import predict_main

if __name__ == "__main__":
  predict_main()
