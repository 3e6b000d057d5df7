"""asl-predict: see asl_jax/cli.py (predict_main) for the flags."""

from asl_jax.cli import predict_main

if __name__ == "__main__":
  predict_main()
