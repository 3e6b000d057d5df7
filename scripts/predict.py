"""asl-predict: `python scripts/predict.py --help` lists the flags (asl_jax/cli.py, predict_main)."""

from asl_jax import interrupts

if __name__ == "__main__":
  interrupts.begin()  # Ctrl-C from the first moment exits 130, even inside the imports below
  from asl_jax.cli import predict_main  # pylint: disable=import-outside-toplevel
  predict_main()
