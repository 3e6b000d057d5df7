"""Extract MediaPipe Holistic landmarks from WLASL videos (run in the extraction environment, see README):

  .venv-extract/bin/python scripts/extract_landmarks.py --data_dir D --output_dir D/landmarks \
      --subset nslt_100.json [--layout seed162|holistic543] [--num_frames 0] [--workers 2] [--skip_existing]
"""


from absl import app, flags

from asl_jax.extract.dataset import extract_dataset

flags.DEFINE_string("data_dir", None, "directory with videos/{id}.mp4 and the split file")
flags.DEFINE_string("output_dir", None, "where {id}_landmarks.npy go (default DATA_DIR/landmarks)")
flags.DEFINE_string("subset", "nslt_100.json", "split file in data_dir: its entries' action frames trim the clips")
flags.DEFINE_enum("layout", "seed162", ["seed162", "holistic543"], "per-frame layout written")
flags.DEFINE_integer("num_frames", 0, "frames per clip, evenly spaced (0: every frame of the trimmed clip)")
flags.DEFINE_integer("workers", 1, "parallel processes (one video each)")
flags.DEFINE_bool("skip_existing", False, "keep landmark files already written (resume an interrupted run)")
flags.mark_flags_as_required(["data_dir"])


def main(argv):
  del argv
  f = flags.FLAGS
  from asl_jax.cli import run_guarded  # pylint: disable=import-outside-toplevel
  from asl_jax.extract.dataset import finish  # pylint: disable=import-outside-toplevel
  out = f.output_dir or f"{f.data_dir}/landmarks"
  run_guarded(lambda: finish(
      extract_dataset(f.data_dir, out, f.subset, f.layout, f.num_frames, f.workers, f.skip_existing), out))


if __name__ == "__main__":
  app.run(main)
