"""asl-export: `python scripts/export.py --help` lists the flags (asl_jax/cli.py, export_main)."""

from asl_jax.cli import export_main

if __name__ == "__main__":
  export_main()
