"""asl-evaluate: see asl_jax/cli.py (evaluate_main) for the flags."""

from asl_jax.cli import evaluate_main

if __name__ == "__main__":
  evaluate_main()
