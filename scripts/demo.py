"""`make demo`: synthetic WLASL-shaped data -> train -> evaluate on test -> print where the report is."""

import json
import os

from absl import app, flags

from asl_jax.allocator import use_caching_allocator
from asl_jax.cli import next_commands, run_guarded

flags.DEFINE_string("data_dir", "demo_data", "where the synthetic data is written (reused when present)")
flags.DEFINE_string("workdir", "demo_run", "run directory")
flags.DEFINE_integer("num_classes", 50, "synthetic classes")
flags.DEFINE_integer("epochs", 0, "override the demo config's epochs (0: keep)")


def main(argv):
  del argv
  f = flags.FLAGS
  from asl_jax.training import train  # pylint: disable=import-outside-toplevel
  from asl_jax.data.synthetic import make_synthetic  # pylint: disable=import-outside-toplevel
  from asl_jax.config import load_config_file  # pylint: disable=import-outside-toplevel

  def go():
    split = os.path.join(f.data_dir, f"nslt_{f.num_classes}.json")
    if not os.path.exists(split):
      print(f"writing synthetic WLASL-shaped data ({f.num_classes} classes) to {f.data_dir}/ ...")
      info = make_synthetic(f.data_dir, f.num_classes, seed=0)
      print(f"  {info['sizes']}")
    config = load_config_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "demo.py"))
    config.data_dir, config.subset = f.data_dir, os.path.basename(split)
    if f.epochs:
      config.epochs = f.epochs
    print(f"training ({config.encoder}, hidden {config.hidden_dim}, {config.epochs} epochs) in {f.workdir}/ ...")
    result = train.train_and_evaluate(config, f.workdir)
    if result["test_report"]:
      with open(result["test_report"], encoding="utf-8") as fh:
        report = json.load(fh)
      from asl_jax.evaluation.evaluator import format_table  # pylint: disable=import-outside-toplevel
      print(format_table(report))
      print(f"report: {os.path.abspath(result['test_report'])}")
      print(f"plots:  {os.path.dirname(os.path.abspath(result['test_report']))}/*.png")
      print(next_commands(f.workdir))
  run_guarded(go)


if __name__ == "__main__":
  use_caching_allocator()
  app.run(main)
