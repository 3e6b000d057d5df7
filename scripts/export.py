"""asl-export: see asl_jax/cli.py (export_main) for the flags."""

from asl_jax.cli import export_main

if __name__ == "__main__":
  export_main()
