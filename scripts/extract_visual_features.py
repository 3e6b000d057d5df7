"""Extract per-frame SigLIP visual features ({id}_gemma.npy, the trainer's gemma_features_dir) from WLASL
videos (run in the extraction environment with the visual extra, see README):

  .venv-extract/bin/python scripts/extract_visual_features.py --data_dir D --output_dir D/gemma_features \
      --subset nslt_100.json [--model_name google/paligemma-3b-pt-224] [--num_frames 16] [--device auto]
"""


from absl import app, flags

from asl_jax.extract.dataset import extract_visual_dataset
from asl_jax.extract.visual import DEFAULT_MODEL

flags.DEFINE_string("data_dir", None, "directory with videos/{id}.mp4 and the split file")
flags.DEFINE_string("output_dir", None, "where {id}_gemma.npy go (default DATA_DIR/gemma_features)")
flags.DEFINE_string("subset", "nslt_100.json", "split file in data_dir: its entries' action frames trim the clips")
flags.DEFINE_string("model_name", DEFAULT_MODEL,
                    "hub name or local directory of a PaliGemma, SigLIP or SigLIP vision checkpoint")
flags.DEFINE_integer("num_frames", 16, "frames per clip, evenly spaced (0: every frame of the trimmed clip)")
flags.DEFINE_enum("device", "auto", ["auto", "cpu", "cuda", "mps"], "torch device (auto: cuda, mps, cpu)")
flags.DEFINE_integer("batch_size", 32, "frames per forward pass")
flags.DEFINE_bool("skip_existing", False, "keep feature files already written (resume an interrupted run)")
flags.mark_flags_as_required(["data_dir"])


def main(argv):
  del argv
  f = flags.FLAGS
  from asl_jax.cli import run_guarded  # pylint: disable=import-outside-toplevel
  from asl_jax.extract.dataset import finish  # pylint: disable=import-outside-toplevel
  out = f.output_dir or f"{f.data_dir}/gemma_features"
  run_guarded(lambda: finish(
      extract_visual_dataset(f.data_dir, out, f.subset, f.model_name, f.num_frames, f.device, f.batch_size,
                             f.skip_existing), out))


if __name__ == "__main__":
  app.run(main)
