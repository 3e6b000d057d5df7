"""asl-evaluate: `python scripts/evaluate.py --help` lists the flags (asl_jax/cli.py, evaluate_main)."""

from asl_jax.cli import evaluate_main

if __name__ == "__main__":
  evaluate_main()
