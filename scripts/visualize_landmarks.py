"""Draw a landmarks file: python scripts/visualize_landmarks.py FILE.npy [--layout auto] [--augment] [--out_dir D]"""

from absl import app, flags

from asl_jax.cli import run_guarded

flags.DEFINE_string("layout", "auto", "auto (by dimension) | seed162 | holistic170 | holistic543")
flags.DEFINE_bool("augment", False, "also draw the clip after the training augmentations")
flags.DEFINE_string("out_dir", None, "where the PNG / GIF go (default: beside the file)")
flags.DEFINE_integer("num_frames", 32, "frames of the augmented view")
flags.DEFINE_integer("seed", 0, "augmentation seed")


def main(argv):
  if len(argv) < 2:
    raise app.UsageError("give one or more landmark .npy files")
  from asl_jax.data.visualize import visualize  # pylint: disable=import-outside-toplevel
  f = flags.FLAGS

  def go():
    for path in argv[1:]:
      for out in visualize(path, f.out_dir, f.layout, f.augment, f.num_frames, f.seed):
        print(out)
  run_guarded(go)


if __name__ == "__main__":
  app.run(main)
