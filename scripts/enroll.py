"""asl-enroll: `python scripts/enroll.py --help` lists the flags (asl_jax/cli.py, enroll_main)."""

from asl_jax.cli import enroll_main

if __name__ == "__main__":
  enroll_main()
