"""asl-live: `python scripts/live.py --help` lists the flags (asl_jax/cli.py, live_main)."""

from asl_jax.cli import live_main

if __name__ == "__main__":
  live_main()
