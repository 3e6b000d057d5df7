"""Write a synthetic WLASL-shaped data dir: python scripts/make_synthetic.py --out_dir D --num_classes 50."""

import json

from absl import app, flags

from asl_jax.data.synthetic import make_synthetic

flags.DEFINE_string("out_dir", "demo_data", "directory to create")
flags.DEFINE_integer("num_classes", 50, "number of classes (long-tailed counts like WLASL)")
flags.DEFINE_integer("seed", 0, "random seed")
flags.DEFINE_bool("with_visual", False, "also write {id}_gemma.npy (16, 1152) visual features")
flags.DEFINE_float("train_scale", 1.0, "scale the per-class clip counts")
flags.DEFINE_float("visual_strength", 1.0, "class signal in the visual features: 1 strong, 0.1 weak, 0 none")


def main(argv):
  del argv
  f = flags.FLAGS
  info = make_synthetic(f.out_dir, f.num_classes, f.seed, f.with_visual, f.train_scale,
                        visual_strength=f.visual_strength)
  print(json.dumps(info))


if __name__ == "__main__":
  app.run(main)
