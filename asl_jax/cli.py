"""Console entry points (scripts/*.py and asl-train, asl-evaluate, ...): absl flags -> one library call.

Every entry point's `--help` lists its own flags. A user-facing error (AslJaxError, a bad flag, a
misspelled config field) prints one line `error: ...` on stderr and exits with status 1 (2 for usage).
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging as pylogging
import math
import os
import shlex
import signal
import sys

from absl import app, flags, logging

from asl_jax import allocator, interrupts
from asl_jax.errors import AslJaxError, CheckpointError, ConfigError

HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "-?")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _PlainFormatter(pylogging.Formatter):
  """"warning: message", as the commands' own lines read, instead of absl's "W1206 05:18:46.18 ... file.py:417]"."""

  def format(self, record):
    return f"{record.levelname.lower()}: {record.getMessage()}"


def quiet_logs() -> None:
  """Libraries (Orbax) log every save at INFO; show warnings only, as plain `warning: ...` lines, unless
  --verbosity was given."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
    logging.get_absl_handler().setFormatter(_PlainFormatter())


def run_guarded(fn, quick_exit: bool = False) -> None:
  """Calls fn(); an AslJaxError becomes a one-line message and exit status 1. With `quick_exit`, Ctrl-C and
  SIGTERM end the process at once with 130 / 143 until the command calls interrupts.ready() (asl_jax/interrupts.py)."""
  quiet_logs()
  try:
    with interrupts.quick_exit() if quick_exit else contextlib.nullcontext():
      fn()
  except AslJaxError as e:
    logging.flush()
    print(f"error: {e}", file=sys.stderr)
    _exit_now(1)
  except KeyboardInterrupt:  # Ctrl-C outside training (loading, evaluation, ...): no traceback
    print("interrupted", file=sys.stderr)
    sys.exit(130)
  except BrokenPipeError:  # `asl-predict ... | head`: the reader has what it wanted; no error
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python flushes stdout again at exit
    sys.exit(0)
  except OSError as e:  # a full disk, a read-only workdir, ...: the file and the reason, not a traceback
    logging.flush()
    print(f"error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
    sys.exit(1)


def _exit_now(status: int) -> None:
  """Exits without the interpreter's shutdown: after a failed checkpoint read, TensorStore's background
  threads would print tracebacks of a closed event loop below the one error line."""
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(status)  # pylint: disable=protected-access


def _usage_error(message: str) -> None:
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def flags_help() -> str:
  """One line (plus default) per flag this entry point defined."""
  lines = []
  for flag in sorted(flags.FLAGS.get_flags_for_module(__name__), key=lambda f: f.name):
    default = "" if flag.default in (None, "", []) or flag.default is False or flag.name == "config" else (
        f" (default: {flag.default})")
    if isinstance(flag, flags.MultiFlag):
      default = ""
    lines.append(f"  --{flag.name}: {flag.help}{default}")
  return "\n".join(lines)


def _serve(action, usage: str, argv=None, positional: bool = False, extra_help: str = "", precheck=None,
           quick_exit: bool = True) -> None:
  """app.run a main that calls action(FLAGS, positional args) under run_guarded. `--help` prints `usage`,
  this entry point's flags and `extra_help`; stray arguments are rejected unless `positional`. Run as a
  program (argv None), the process first gets a caching allocator where one is installed (asl_jax.allocator)."""
  if argv is None:
    allocator.use_caching_allocator()
  argv = list(sys.argv if argv is None else argv)
  if any(a in HELP_FLAGS for a in argv[1:]):
    print(usage.strip() + "\n\nflags:\n" + flags_help() + ("\n\n" + extra_help.strip() if extra_help else ""))
    print("\n(--helpfull also lists absl's own flags)")
    sys.exit(0)
  if precheck is not None:
    precheck(argv)

  def parse(args):
    try:
      return flags.FLAGS(args)
    except flags.Error as e:
      _usage_error(f"{e} (--help lists the flags)")

  def main(argv_):
    if len(argv_) > 1 and not positional:
      _usage_error(f"unexpected arguments: {' '.join(argv_[1:])} (--help lists the flags)")
    run_guarded(lambda: action(flags.FLAGS, argv_[1:]), quick_exit)

  app.run(main, argv=argv, flags_parser=parse)


# ---------------------------------------------------------------------------------------------- train

TRAIN_USAGE = """
Train a recognizer, evaluate its best checkpoint on test, write reports (resumes when WORKDIR holds a run):

  python scripts/train.py --config=configs/nslt_100.py --workdir=runs/nslt100 [--config.FIELD=VALUE ...]
  python scripts/train.py --list_config [--config=configs/nslt_100.py]   # every field: value, default, meaning
"""


def _config_files() -> list[str]:
  return sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "configs", "*.py")))


def _train_extra_help() -> str:
  return ("config files: " + ", ".join(_config_files()) + "\n"
          "  (nslt_K.py: the recommended recipe for K classes; seed_nslt_K.py: the seed project's; demo.py)\n"
          "config fields: override any with --config.FIELD=VALUE; --list_config prints them all, grouped, with "
          "defaults and meanings")


def _check_train_argv(argv) -> None:
  """Problems absl / ml_collections report with a traceback, as one line: a missing config file, a
  misspelled --config.FIELD."""
  from asl_jax import config as config_lib  # pylint: disable=import-outside-toplevel
  args = argv[1:]
  for i, arg in enumerate(args):
    if arg.startswith("--config=") or (arg == "--config" and i + 1 < len(args)):
      path = arg.split("=", 1)[1] if "=" in arg else args[i + 1]
      if not os.path.isfile(path):
        # A project config named from another folder (configs/demo.py, or demo.py): the project's own.
        found = next((c for c in (os.path.join(REPO, path), os.path.join(REPO, "configs", os.path.basename(path)))
                      if os.path.isfile(c)), None)
        if found is None:
          listed = ", ".join(os.path.join(REPO, c) for c in _config_files())
          _usage_error(f"--config={path}: config file not found (the project's configs: {listed})")
        if "=" in arg:
          argv[i + 1] = f"--config={found}"
        else:
          argv[i + 2] = found
    elif arg.startswith("--config."):
      name = arg[len("--config."):].split("=", 1)[0].split(".", 1)[0]
      if name not in config_lib.FIELDS:
        close = config_lib.closest_field(name)
        hint = f"; did you mean {close}?" if close else ""
        _usage_error(f"--config.{name}: no such config field{hint} ({command('train.py', '--list_config')} lists "
                     "them)")


def command(script: str, *args: str) -> str:
  """A command line for the user to paste, from any directory, in any shell: the installed entry point with
  its path when that is what ran (asl-train, ...), else this interpreter and the script's path; quoted."""
  entry = "asl-" + script.removesuffix(".py")
  ran = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
  installed = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), entry) if ran.startswith("asl-") else ""
  head = [installed] if installed and os.path.exists(installed) else [sys.executable,
                                                                       os.path.join(REPO, "scripts", script)]
  return " ".join(shlex.quote(part) for part in head + list(args))


def next_commands(workdir: str) -> str:
  """What to run next on a finished run (each line pastes into a fresh shell and runs)."""
  from asl_jax.runs.run_dir import RunDir  # pylint: disable=import-outside-toplevel
  w = os.path.abspath(workdir)
  lines = [
      (command("evaluate.py", f"--workdir={w}", "--split=val"), "another split or checkpoint"),
      (command("predict.py", f"--workdir={w}", "--landmarks=CLIP_landmarks.npy"), "or --video=CLIP.mp4"),
      (command("live.py", f"--workdir={w}", "--video=RECORDING.mp4"), "or --camera=0 --display"),
      (command("export.py", f"--workdir={w}", "--format=onnx"), "a model for onnxruntime alone; --format=jax for jax"),
      ("tensorboard --logdir " + shlex.quote(RunDir(w).tensorboard_dir), "curves (pip install '.[tb]')"),
  ]
  return "\n".join(["next:"] + [f"  {c}    # {why}" for c, why in lines])


def use_xla_cache(cache_dir: str) -> None:
  """Compiled programs persist in CACHE/xla beside the packed data (cache_dir, else $ASL_JAX_CACHE or
  ~/.cache/asl_jax), so a resumed run, a rerun or another seed with the same shapes skips XLA's compilation
  (about 25 s for the recommended model on 2 CPU cores), and predict, live, evaluate, export and enroll start
  without compiling their forward pass again. $JAX_COMPILATION_CACHE_DIR, when set, is used
  instead; cache_dir=none switches it off."""
  if os.environ.get("JAX_COMPILATION_CACHE_DIR") or cache_dir == "none":
    return
  import jax  # pylint: disable=import-outside-toplevel
  from asl_jax.data import packed  # pylint: disable=import-outside-toplevel
  jax.config.update("jax_compilation_cache_dir", os.path.join(packed.cache_root(cache_dir), "xla"))
  if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:  # else the user's (or the tests') value
    # 0.2 s: the forward pass of the shipped model compiles in ~0.95 s on 2 cores, under jax's default of 1 s
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


def train_main(argv=None):
  from ml_collections import config_flags  # pylint: disable=import-outside-toplevel
  config_flags.DEFINE_config_file("config", None, "ml_collections config file (configs/*.py)", lock_config=True)
  flags.DEFINE_string("workdir", None, "run directory: checkpoints, metrics.jsonl, tensorboard/, reports")
  flags.DEFINE_bool("list_config", False, "print every config field (value, default, meaning) and exit")

  def action(f, _):
    from asl_jax import config as config_lib  # pylint: disable=import-outside-toplevel
    if f.list_config:
      print(config_lib.describe(f.config))
      return
    if f.config is None or not f.workdir:
      _usage_error("give --config=configs/FILE.py and --workdir=DIR (--help lists the flags)")
    from asl_jax.evaluation import evaluator as evaluation  # pylint: disable=import-outside-toplevel
    from asl_jax.training import train  # pylint: disable=import-outside-toplevel
    use_xla_cache(f.config.cache_dir)
    result = train.train_and_evaluate(f.config, f.workdir)
    if result["status"] == "interrupted":  # 130 for SIGINT (Ctrl-C), 143 for SIGTERM, as shells report them
      sys.exit(128 + (result.get("signal") or signal.SIGTERM))
    import jax  # pylint: disable=import-outside-toplevel  (already loaded by training)
    if jax.process_index() != 0:  # multi-host: the table and the next steps are process 0's
      return
    if result.get("test_report"):
      with open(result["test_report"], encoding="utf-8") as fh:
        print(evaluation.format_table(json.load(fh)))
      print(f"report: {os.path.abspath(result['test_report'])}")
    print(f"best epoch {result['best_epoch']}; run: {os.path.abspath(f.workdir)}")
    print(next_commands(f.workdir))

  # Training handles its own signals: a checkpoint at the next step boundary (training/console.py, StopFlag).
  _serve(action, TRAIN_USAGE, argv, extra_help=_train_extra_help(), precheck=_check_train_argv, quick_exit=False)


# ------------------------------------------------------------------------------------------- evaluate

EVALUATE_USAGE = """
Evaluate a trained run (or an ensemble of runs) on a split of its data; writes DIR/eval_SPLIT/report.json
and plots:

  python scripts/evaluate.py --workdir=runs/nslt100 [--split=test] [--checkpoint=best]
  python scripts/evaluate.py --workdir=runs/a,runs/b,runs/c        # their averaged probabilities
  python scripts/evaluate.py --workdir=runs/mine --signs=my_test_signs   # your own clips, SIGNS/<gloss>/

--signs scores the run on clips of yours, in folders named by their sign as asl-enroll takes them (or the page's
export): the signs the run knows as a split is scored, and the others as signs it should call unknown. Clips a
sign was enrolled from are left out. The report goes to WORKDIR/eval_signs/.
"""


def evaluate_main(argv=None):
  if argv is None:  # run as a program: Ctrl-C exits 130 from here on (asl_jax/interrupts.py)
    interrupts.begin()
  flags.DEFINE_string("workdir", None, "training run directory; several, comma-separated, evaluate their "
                      "ensemble (averaged probabilities); omitted or wlasl100: the shipped model")
  flags.DEFINE_string("out_dir", "", "where to write the report (default WORKDIR/eval_SPLIT, or "
                      "FIRST/eval_SPLIT_ensemble for several runs)")
  flags.DEFINE_enum("split", "test", ["test", "val", "train"], "which subset of the run's split file")
  flags.DEFINE_string("checkpoint", "best", "best, latest or a step number")
  flags.DEFINE_integer("batch_size", 0, "evaluation batch size (0: the run's eval_batch_size)")
  flags.DEFINE_string("data_dir", "", "the split file's directory, if it moved since training (default: saved)")
  flags.DEFINE_string("landmarks_dir", "", "the landmark files, if they moved (default: saved)")
  flags.DEFINE_string("gemma_features_dir", "", "the visual features, if they moved (default: saved)")
  flags.DEFINE_bool("calibrate", False, "first fit the run's calibration on its val clips (temperature, unknown "
                    "threshold, enrolment scales) and write WORKDIR/calibration.json: for runs trained before "
                    "training did it")
  flags.DEFINE_bool("overwrite", False, "replace a report already in the --out_dir you name (the run's own "
                    "eval_SPLIT is replaced by each evaluation)")
  flags.DEFINE_string("signs", None, "instead of a split: your own clips, a folder of sign folders (SIGNS/<gloss>/ "
                      "with landmark files or videos) or the page's export; signs the run does not know count as "
                      "ones it should call unknown")

  def action(f, _):
    if f.signs is not None:
      given = [n for n in ("split", "data_dir", "landmarks_dir", "gemma_features_dir") if f[n].present]
      if given:
        _usage_error(f"--signs evaluates your own clips, not the run's data: leave out --{', --'.join(given)}")
      _check_signs(f.signs)
    workdir = _runs(f.workdir)
    if f.batch_size < 0:
      _usage_error(f"--batch_size={f.batch_size}: must be >= 1 (0: the run's eval_batch_size)")
    from asl_jax.serving import evaluate  # pylint: disable=import-outside-toplevel
    from asl_jax.evaluation import evaluator as evaluation  # pylint: disable=import-outside-toplevel
    from asl_jax import pretrained  # pylint: disable=import-outside-toplevel
    out_dir = f.out_dir
    what = "signs" if f.signs is not None else f.split
    if not out_dir and pretrained.is_shipped(workdir.split(",")[0]):  # an installed package is not a place to write
      out_dir = os.path.abspath(f"wlasl100_eval_{what}")
    if out_dir:  # a folder of the user's: checked before the slow work, nothing of theirs replaced unasked
      _check_out_dir(out_dir, evaluation.REPORT_FILES, f.overwrite, flag="--out_dir" if f.out_dir else None)
    use_xla_cache("")
    moved = {"data_dir": f.data_dir, "landmarks_dir": f.landmarks_dir, "gemma_features_dir": f.gemma_features_dir}
    if f.calibrate:
      print(f"calibrating {workdir} on its val split", file=sys.stderr, flush=True)
      cal = evaluate.calibrate_workdir(workdir, moved)
      print(f"calibrated on {cal['clips']} val clips: temperature {cal['temperature']:.3f} (val ECE "
            f"{cal['val_ece_before']:.3f} -> {cal['val_ece_after']:.3f}), unknown below a top-1 probability of "
            f"{cal['unknown_threshold']:.3f}", file=sys.stderr, flush=True)
    if f.signs is not None:
      print(f"evaluating {workdir} on the signs of {f.signs} ({_checkpoint_words(f.checkpoint)})", file=sys.stderr,
            flush=True)
      try:
        report = evaluate.evaluate_signs(workdir, f.signs, f.checkpoint, f.batch_size, out_dir)
      except evaluate.enroll.NoUsableExamples as e:  # why each clip was skipped, then the error
        _say_unused(e.problems, e.left_out)
        raise
      _say_unused(report["skipped"], report["left_out"])
    else:
      print(f"evaluating {workdir} on its {f.split} split ({_checkpoint_words(f.checkpoint)})", file=sys.stderr,
            flush=True)
      report = evaluate.evaluate_workdir(workdir, f.split, f.checkpoint, f.batch_size, out_dir, moved)
    print(evaluation.format_table(report))
    print(f"report: {report['path']}")
    if report.get("skipped"):
      print(f"{len(report['skipped'])} clip(s) or folder(s) skipped (the lines above); the rest is evaluated",
            file=sys.stderr, flush=True)
      sys.exit(3)

  _serve(action, EVALUATE_USAGE, argv)


# -------------------------------------------------------------------------------------------- predict

PREDICT_USAGE = """
Top-k glosses for new clips, one JSON line per input (without --workdir: the shipped WLASL100 model):

  python scripts/predict.py --workdir=runs/nslt100 --landmarks=clip_landmarks.npy [--landmarks=DIR ...]
  python scripts/predict.py --workdir=runs/nslt100 --video=clip.mp4        # landmarks extracted first
  python scripts/predict.py --workdir=runs/hybrid --landmarks=DIR --gemma=DIR   # runs with visual features
"""


def _runs(value: str | None) -> str:
  """--workdir as every command reads it: one run or several comma-separated (an ensemble), each a directory
  or `wlasl100` (the shipped model); omitted: the shipped model (said on stderr)."""
  from asl_jax import pretrained  # pylint: disable=import-outside-toplevel
  items = [w.strip() for w in (value or "").split(",") if w.strip()]
  if not items:
    path = pretrained.resolve(None)
    print(f"no --workdir: using the shipped WLASL100 model ({path})", file=sys.stderr)
    return path
  from asl_jax.runs.run_dir import RunDir  # pylint: disable=import-outside-toplevel
  paths = [pretrained.resolve(w) for w in items]
  for item, path in zip(items, paths):  # before any output folder is checked or any slow work: is it a run?
    if not os.path.exists(path):
      raise CheckpointError(f"--workdir={item}: no such run directory (a folder a training run wrote, or "
                            "wlasl100 for the shipped model)")
    RunDir(path).require()
  return ",".join(paths)


def _paths(values) -> list[str]:
  """Repeated path flags as every command reads lists (--workdir=a,b too): a value with commas is several
  paths, unless a file or folder of that exact name exists."""
  out = []
  for value in values or []:
    out += [value] if os.path.exists(value) else [v.strip() for v in value.split(",") if v.strip()]
  return out


def _checkpoint_words(checkpoint: str) -> str:
  """"best checkpoint", "latest checkpoint" or "the checkpoint of step 999"."""
  return f"the checkpoint of step {checkpoint}" if str(checkpoint).isdigit() else f"{checkpoint} checkpoint"


def _check_out_dir(out: str, names, overwrite: bool, flag: str | None = "--out_dir") -> None:
  """Before any slow work: `out` must be (or become) a folder, and hold none of `names` unless `overwrite`.
  `flag`: how the user gave `out` (None: a default folder, named as a path)."""
  what = f"{flag}={out}" if flag else out
  if os.path.exists(out) and not os.path.isdir(out):
    _usage_error(f"{what}: exists and is not a folder; give a folder to write the files in")
  parent = out
  while not os.path.exists(parent):
    parent = os.path.dirname(parent) or "."
  if not os.path.isdir(parent):
    _usage_error(f"{what}: {parent} is a file, so the folder cannot be made there")
  if not os.access(parent, os.W_OK):
    _usage_error(f"{what}: {parent} is not writable")
  there = [n for n in names if os.path.exists(os.path.join(out, n))]
  if there and not overwrite:
    _usage_error(f"{what}: already holds {', '.join(there)}; pass --overwrite to replace them, or choose "
                 "another --out_dir")


def _check_signs(signs: str) -> None:
  """--signs (asl-enroll, asl-evaluate) names a folder of sign folders or the page's .json export."""
  if not os.path.isdir(signs) and not (os.path.isfile(signs) and signs.lower().endswith(".json")):
    _usage_error(f"--signs={signs}: not a directory (expected SIGNS/<gloss>/ folders of landmark files or "
                 "videos, or the .json file the web page exports)")


def _say_unused(skipped, left_out=()) -> None:
  """asl-enroll's and asl-evaluate --signs' lines on stderr for the examples not used: `left out: ...` (asl-evaluate:
  a sign's own enrolment examples), then `skipped: ...` (unusable, each with its reason)."""
  for line in left_out:
    print(f"left out: {line}", file=sys.stderr)
  for line in skipped:
    print(f"skipped: {line}", file=sys.stderr)


def _check_threshold(value, accept=None) -> None:
  if value is not None and not 0 <= value <= 1:
    _usage_error(f"--unknown_threshold={value}: must be a probability in [0, 1]")
  if accept is not None and value is not None:
    _usage_error("give --unknown_threshold or --unknown_accept, not both")
  if accept is not None and not 0 < accept <= 1:
    _usage_error(f"--unknown_accept={accept}: the share of known signs to accept, in (0, 1]")


def _unknown_threshold(f, workdir: str | None) -> float | None:
  """--unknown_threshold, or the threshold that accepts --unknown_accept of the (first) run's held-out known
  clips (calibration.threshold_for), said on stderr; None: the run's stored one."""
  if f.unknown_accept is None:
    return f.unknown_threshold
  from asl_jax import pretrained  # pylint: disable=import-outside-toplevel
  from asl_jax.evaluation import calibration  # pylint: disable=import-outside-toplevel
  from asl_jax.runs.restore import split_workdirs  # pylint: disable=import-outside-toplevel
  from asl_jax.runs.run_dir import RunDir  # pylint: disable=import-outside-toplevel
  first = pretrained.resolve(split_workdirs(workdir)[0] if workdir else None)
  threshold = calibration.threshold_for(RunDir(first).calibration(), f.unknown_accept, first)
  print(f"unknown below a top-1 probability of {threshold:.3f}: the run's held-out known clips are accepted "
        f"{f.unknown_accept:.0%} of the time", file=sys.stderr, flush=True)
  return threshold


UNKNOWN_ACCEPT_HELP = ("call a sign unknown where it scores below this share of the run's held-out known clips: "
                       "0.8 accepts about 80 percent of known signs and rejects more unknown ones (and turns more "
                       "wrong answers into unknown) than the default 0.95")


def predict_main(argv=None):
  if argv is None:  # run as a program: Ctrl-C exits 130 from here on (asl_jax/interrupts.py)
    interrupts.begin()
  flags.DEFINE_string("workdir", None, "training run directory; several, comma-separated, average their "
                      "probabilities (an ensemble); omitted: the shipped WLASL100 model")
  flags.DEFINE_multi_string("landmarks", None, "landmark .npy files or directories of {id}_landmarks.npy "
                            "(repeat the flag; .npy files after the flags count too)")
  flags.DEFINE_multi_string("video", None, "video files or directories of videos: landmarks are extracted with "
                            "MediaPipe first (the extract extra or `make extract-env`)")
  flags.DEFINE_string("gemma", None, "visual features for runs trained with them: a {id}_gemma.npy file (one "
                      "input) or a directory of them")
  flags.DEFINE_string("landmarks_dir", None, "same as --landmarks=DIR")
  flags.DEFINE_string("gemma_features_dir", None, "same as --gemma=DIR")
  flags.DEFINE_integer("top_k", 5, "how many classes to print per input")
  flags.DEFINE_string("checkpoint", "best", "best, latest or a step number")
  flags.DEFINE_float("unknown_threshold", None, "call a sign unknown below this top-1 probability (default: the "
                     "run's, fitted on val to accept 95 percent of known signs; 0: never)")
  flags.DEFINE_float("unknown_accept", None, UNKNOWN_ACCEPT_HELP)

  def action(f, args):
    from asl_jax.serving import predict  # pylint: disable=import-outside-toplevel
    workdir = _runs(f.workdir)
    if f.gemma and f.gemma_features_dir:
      _usage_error("give --gemma or --gemma_features_dir, not both")
    landmarks = _paths(f.landmarks) + ([f.landmarks_dir] if f.landmarks_dir else [])
    videos = _paths(f.video)
    for a in args:  # positional inputs: by their type
      (videos if a.lower().endswith(predict.VIDEO_SUFFIXES) else landmarks).append(a)
    if not landmarks and not videos:
      _usage_error("give --landmarks=FILE.npy or --video=FILE.mp4 (--help lists the flags)")
    if f.top_k < 1:
      _usage_error(f"--top_k={f.top_k}: must be >= 1")
    _check_threshold(f.unknown_threshold, f.unknown_accept)  # before the seconds of loading
    threshold = _unknown_threshold(f, workdir)
    print(f"loading {workdir} ({_checkpoint_words(f.checkpoint)})", file=sys.stderr, flush=True)
    use_xla_cache("")  # a second start skips compiling the forward pass
    rows = predict.predict_files(workdir, landmarks, f.gemma or f.gemma_features_dir, f.top_k, f.checkpoint,
                                 videos=videos, unknown_threshold=threshold)
    for row in rows:
      if "error" in row:
        print(f"error: {row['file']}: {row['error']}", file=sys.stderr)
        continue
      if "warning" in row:
        print(f"warning: {row['file']}: {row['warning']}", file=sys.stderr)
      print(json.dumps(row), flush=True)
    failed = sum("error" in r for r in rows)
    if failed:
      print(f"{failed} of {len(rows)} inputs failed (their lines above)" + (
          "; the others' results are on stdout" if failed < len(rows) else ""), file=sys.stderr)
      sys.exit(1)

  _serve(action, PREDICT_USAGE, argv, positional=True)


# --------------------------------------------------------------------------------------------- export

EXPORT_USAGE = """
Export a trained run as a model that takes a raw clip (T x D, as the landmark files hold it, any T; plus the
visual clip for hybrid runs) and returns class probabilities, with meta.json beside it (docs/serving.md, "Export"):

  python scripts/export.py --workdir=runs/nslt100 [--format=jax|onnx] [--out_dir=DIR] [--checkpoint=best]

--format=jax (default) writes DIR/export/model.jax_export, which needs jax to run; --format=onnx writes
DIR/onnx/model.onnx and model_batched.onnx, which need onnxruntime alone (servers, phones, browsers).
"""


def export_main(argv=None):
  if argv is None:  # run as a program: Ctrl-C exits 130 from here on (asl_jax/interrupts.py)
    interrupts.begin()
  flags.DEFINE_string("workdir", None, "training run directory; omitted or wlasl100: the shipped model")
  flags.DEFINE_enum("format", "jax", ["jax", "onnx"], "jax: a jax.export artifact; onnx: ONNX models")
  flags.DEFINE_string("out_dir", None, "where to write the model files and meta.json (default WORKDIR/export "
                      "for jax, WORKDIR/onnx for onnx; for the shipped model ./wlasl100_export or ./wlasl100_onnx)")
  flags.DEFINE_string("checkpoint", "best", "best, latest or a step number")
  flags.DEFINE_bool("overwrite", False, "replace model files already in --out_dir")

  def action(f, _):
    from asl_jax.serving import export  # pylint: disable=import-outside-toplevel
    from asl_jax import pretrained  # pylint: disable=import-outside-toplevel
    workdir = _runs(f.workdir)
    if "," in workdir:
      _usage_error(f"--workdir={f.workdir}: export takes one run (an ensemble is not one model)")
    kind = "export" if f.format == "jax" else "onnx"
    if f.out_dir:
      out = f.out_dir
    elif pretrained.is_shipped(workdir):  # an installed package is not a place to write
      out = os.path.abspath(f"wlasl100_{kind}")
    else:
      out = os.path.join(workdir, kind)
    names = [export.META_FILE] + ([export.EXPORT_FILE] if f.format == "jax" else
                                  [export.ONNX_FILE, export.ONNX_BATCHED_FILE, export.EMBED_FILE, export.HEAD_FILE])
    _check_out_dir(out, names, f.overwrite)
    use_xla_cache("")
    print(f"exporting {workdir} ({_checkpoint_words(f.checkpoint)}) to {out}", file=sys.stderr, flush=True)
    out = export.export_run(workdir, out, f.checkpoint, fmt=f.format,
                            say=lambda m: print(m, file=sys.stderr, flush=True))
    with open(os.path.join(out, export.META_FILE), encoding="utf-8") as fh:
      meta = json.load(fh)
    print(f"exported to {out}: {meta['signature']}")
    if f.format == "onnx":
      print(f"batched: {meta['batched_signature']}")

  _serve(action, EXPORT_USAGE, argv)


# ----------------------------------------------------------------------------------------- extraction

EXTRACT_LANDMARKS_USAGE = """
Extract MediaPipe Holistic landmarks from WLASL videos (DATA_DIR/videos/{id}.mp4) for every entry of a split
file, trimmed to its action frames; run in the extraction environment (`make extract-env`, docs/data.md):

  .venv-extract/bin/python scripts/extract_landmarks.py --data_dir=D [--output_dir=D/landmarks] \\
      [--subset=nslt_100.json] [--layout=seed162] [--workers=2] [--skip_existing]
"""


def _define_extraction_flags(files: str, default_dir: str, num_frames: int) -> None:
  """The flags both extraction entry points share."""
  flags.DEFINE_string("data_dir", None, "directory with videos/{id}.mp4 and the split file")
  flags.DEFINE_string("output_dir", None, f"where {files} go (default DATA_DIR/{default_dir})")
  flags.DEFINE_string("subset", "nslt_100.json", "split file in data_dir: its entries' action frames trim the clips")
  flags.DEFINE_enum("dataset", "wlasl", ["wlasl", "asl_citizen"], "wlasl: --subset's entries, videos/{id}.mp4; "
                    "asl_citizen: ASL Citizen's splits/{train,val,test}.csv and the videos they name")
  flags.DEFINE_integer("num_frames", num_frames, "frames per clip, evenly spaced (0: every frame of the trimmed "
                       "clip)")
  flags.DEFINE_bool("skip_existing", False, "keep files already written (resume an interrupted run)")


def _extraction_output(f, default_dir: str) -> str:
  if not f.data_dir:
    _usage_error("give --data_dir=DIR (--help lists the flags)")
  return f.output_dir or os.path.join(f.data_dir, default_dir)


def extract_landmarks_main(argv=None):
  _define_extraction_flags("{id}_landmarks.npy", "landmarks", 0)
  flags.DEFINE_enum("layout", "seed162", ["seed162", "holistic543"], "per-frame layout written")
  flags.DEFINE_enum("format", "npy", ["npy", "pose"], "npy: {id}_landmarks.npy; pose: {id}.pose, pose-format's "
                    "files (holistic points in the video's pixels; train on them with "
                    "--config.landmarks_pattern={id}.pose)")
  flags.DEFINE_integer("workers", 1, "parallel processes (one video each)")

  def action(f, _):
    out = _extraction_output(f, "landmarks")
    from asl_jax.extract.dataset import extract_dataset, finish  # pylint: disable=import-outside-toplevel
    finish(extract_dataset(f.data_dir, out, f.subset, f.layout, f.num_frames, f.workers, f.skip_existing,
                           dataset=f.dataset, fmt=f.format), out)

  _serve(action, EXTRACT_LANDMARKS_USAGE, argv, quick_exit=False)  # its worker processes end on the same Ctrl-C


EXTRACT_VISUAL_USAGE = """
Extract per-frame SigLIP visual features ({id}_gemma.npy, the trainer's gemma_features_dir) from WLASL
videos; run in the extraction environment with the visual extra (docs/data.md):

  .venv-extract/bin/python scripts/extract_visual_features.py --data_dir=D [--output_dir=D/gemma_features] \\
      [--subset=nslt_100.json] [--model_name=google/paligemma-3b-pt-224] [--num_frames=16] [--device=auto]
"""


def extract_visual_main(argv=None):
  from asl_jax.extract.visual import DEFAULT_MODEL  # pylint: disable=import-outside-toplevel
  _define_extraction_flags("{id}_gemma.npy", "gemma_features", 16)
  flags.DEFINE_string("model_name", DEFAULT_MODEL,
                      "hub name or local directory of a PaliGemma, SigLIP or SigLIP vision checkpoint")
  flags.DEFINE_enum("device", "auto", ["auto", "cpu", "cuda", "mps"], "torch device (auto: cuda, mps, cpu)")
  flags.DEFINE_integer("batch_size", 32, "frames per forward pass")

  def action(f, _):
    out = _extraction_output(f, "gemma_features")
    from asl_jax.extract.dataset import extract_visual_dataset, finish  # pylint: disable=import-outside-toplevel
    finish(extract_visual_dataset(f.data_dir, out, f.subset, f.model_name, f.num_frames, f.device, f.batch_size,
                                  f.skip_existing, dataset=f.dataset), out)

  _serve(action, EXTRACT_VISUAL_USAGE, argv, quick_exit=False)


# ----------------------------------------------------------------------------------------------- live

LIVE_USAGE = """
Recognise signs as they come, from a camera, a video (a file or any stream OpenCV opens) or a continuous
landmark sequence; one JSON line per sign on stdout, progress on stderr (docs/live.md, "Live and continuous
recognition"). Without --workdir it uses the shipped WLASL100 model:

  asl-live --camera=0 --display                       # a webcam; q/Esc quit, r reset, space ends the sign
  asl-live --video=recording.mp4 --srt=out.srt --eaf=out.eaf [--frame_step=2]
  asl-live --landmarks=stream_landmarks.npy --fps=25 --workdir=runs/a,runs/b   # an ensemble
"""


# --------------------------------------------------------------------------------------------- enroll

ENROLL_USAGE = """
Your own signs: a new run that knows a base run's signs plus yours, from a few examples of each
(docs/enrolment.md). The base is never changed.

  python scripts/enroll.py --from=wlasl100 --signs=SIGNS --workdir=runs/mine    # or --from=runs/x
  python scripts/enroll.py --signs=asl_jax_signs.json --workdir=runs/mine        # the web page's export
  python scripts/enroll.py --from=runs/mine --list                               # its signs, and where each came from
  python scripts/enroll.py --from=runs/mine --forget=cow,book --workdir=runs/mine2   # take enrolled signs out

SIGNS/<gloss>/ holds one sign's examples: landmark .npy files (any supported layout) or videos (extracted
with MediaPipe, `make extract-env`). A gloss the base knows is refined with its examples. Examples that
cannot be used are one line each; the others are enrolled and the exit status is 3. Each sign is then
checked: with 2 or more examples, is each one recognised when its sign is built from the others alone?
A sign with fewer than half recognised gets a `warning:` line naming the signs they were taken for (and is
listed as "unsure" in the JSON line); each sign's line also names the sign the run would take it for without it.
--forget writes a copy without signs enrolled before: an added sign is dropped, a refined one gets its trained
vector back.
"""


def enroll_main(argv=None):
  if argv is None:  # run as a program: Ctrl-C exits 130 from here on (asl_jax/interrupts.py)
    interrupts.begin()
  flags.DEFINE_string("from", "wlasl100", "the base run directory, or wlasl100 (the shipped model)")
  flags.DEFINE_string("signs", None, "a folder of sign folders (SIGNS/<gloss>/ with that sign's examples), or "
                      "the .json file the web page exports its signs to")
  flags.DEFINE_string("workdir", None, "the new run directory to write (must not exist)")
  flags.DEFINE_list("forget", None, "instead of enrolling: glosses of signs enrolled into --from to take out "
                    "(an added sign is dropped, a refined one gets its trained vector back), written to --workdir")
  flags.DEFINE_bool("list", False, "print the signs of --from, one a line: class, gloss, and whether it was "
                    "trained, enrolled or refined (with how many examples); then exit")

  def action(f, _):
    if f.forget is not None and f.signs:
      _usage_error("give --signs or --forget, not both: forget first, then enrol into the run that writes")
    if not f.list and (not (f.signs or f.forget) or not f.workdir):
      _usage_error("give --signs=SIGNS (or --forget=GLOSSES) and --workdir=NEW_RUN (--help lists the flags)")
    if f.forget is not None and not [g for g in f.forget if g.strip()]:
      _usage_error("--forget: give the glosses of the signs to take out, comma-separated")
    from asl_jax.serving import enroll  # pylint: disable=import-outside-toplevel
    from asl_jax import pretrained  # pylint: disable=import-outside-toplevel
    base = pretrained.resolve(f["from"].value)
    if "," in base and not os.path.isdir(base):
      _usage_error(f"--from={base}: enrolment takes one base run (enrol the same signs into each member, then "
                   "give the enrolled runs to --workdir=A,B,C as an ensemble)")
    if not os.path.isdir(base):
      _usage_error(f"--from={base}: no such run directory (a trained run, or wlasl100 for the shipped model)")
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    if f.list:
      for s in enroll.vocabulary(base):
        how = {"trained": "trained", "enrolled": f"enrolled from {s.get('examples')} example(s)",
               "refined": f"trained, refined with {s.get('examples')} example(s)"}[s["origin"]]
        print(f"{s['class']}\t{s['gloss']}\t{how}")
      return
    if f.forget is not None:
      result = enroll.forget(base, [g.strip() for g in f.forget if g.strip()], f.workdir, say=say)
      print(json.dumps({"workdir": os.path.abspath(result["workdir"]), "dropped": result["dropped"],
                        "restored": result["restored"]}))
      return
    _check_signs(f.signs)
    use_xla_cache("")
    say(f"enrolling the signs of {f.signs} into a copy of {base}")
    try:
      result = enroll.enroll(base, f.signs, f.workdir, say=say)
    except enroll.NoUsableExamples as e:  # why each example was skipped, then the error
      _say_unused(e.problems)
      raise
    _say_unused(result["problems"])
    print(json.dumps({"workdir": os.path.abspath(result["workdir"]), "added": result["added"],
                      "refined": result["refined"], "examples": result["examples"],
                      "skipped": len(result["problems"]),
                      "unsure": [g for g, r in result["check"].items() if enroll.unsure(r)]}))
    w = os.path.abspath(result["workdir"])
    say(f"next: {command('evaluate.py', f'--workdir={w}', '--signs=TEST_SIGNS')}    # how well it knows clips of "
        "yours it was not enrolled from, in TEST_SIGNS/<gloss>/")
    if result["problems"]:
      say(f"{len(result['problems'])} example(s) or folder(s) skipped (the lines above); the rest is enrolled")
      sys.exit(3)

  _serve(action, ENROLL_USAGE, argv)


MAX_FPS = 1000.0  # --fps above this is a typo (the ring buffer is sized from it)


def live_main(argv=None):
  if argv is None:  # run as a program: Ctrl-C exits 130 from here on (asl_jax/interrupts.py)
    interrupts.begin()
  import dataclasses  # pylint: disable=import-outside-toplevel
  from asl_jax.live import segmenter  # pylint: disable=import-outside-toplevel
  flags.DEFINE_string("workdir", "", "training run directory, or several comma-separated (an ensemble); "
                      "empty: the shipped WLASL100 model")
  flags.DEFINE_integer("camera", None, "camera index (OpenCV), e.g. 0")
  flags.DEFINE_string("video", None, "a video file or a stream URL OpenCV opens")
  flags.DEFINE_string("landmarks", None, "a continuous landmark sequence (T, D) .npy in any supported layout")
  flags.DEFINE_float("fps", 25.0, "frames per second of --landmarks (camera and video report their own)")
  flags.DEFINE_bool("realtime", False, "--landmarks: deliver the frames at --fps, as a live stream would")
  flags.DEFINE_integer("frame_step", 1, "camera / video: extract every N-th frame (2 keeps 25 fps input real "
                       "time on 2 CPU cores)")
  flags.DEFINE_integer("top_k", 5, "glosses per sign")
  flags.DEFINE_string("srt", None, "also write SubRip subtitles of the glosses to this .srt file")
  flags.DEFINE_string("eaf", None, "also write an ELAN annotation file (gloss tier) to this .eaf file")
  flags.DEFINE_string("pose_out", None, "also write the landmarks of the stream to this pose-format .pose file "
                      "(replay it with --landmarks, or open it in pose-format's viewer)")
  flags.DEFINE_bool("overwrite", False, "replace existing --srt / --eaf / --pose_out files")
  flags.DEFINE_bool("display", False, "show the camera / video with the skeleton, the segmenter's state and the "
                    "recent glosses (needs OpenCV with a GUI in the extraction environment)")
  flags.DEFINE_string("checkpoint", "best", "best, latest or a step number")
  flags.DEFINE_float("unknown_threshold", None, "call a sign unknown (? in the subtitles) below this top-1 "
                     "probability (default: the run's, fitted on val to accept 95 percent of known signs; 0: never)")
  flags.DEFINE_float("unknown_accept", None, UNKNOWN_ACCEPT_HELP)
  defaults = segmenter.SegmenterConfig()
  for field in dataclasses.fields(segmenter.SegmenterConfig):
    flags.DEFINE_float(field.name, getattr(defaults, field.name), f"segmenter: {field.metadata.get('help', '')}"
                       .rstrip(": "))

  def action(f, _):
    from asl_jax.live import stream  # pylint: disable=import-outside-toplevel
    if f.top_k < 1:
      _usage_error(f"--top_k={f.top_k}: must be >= 1")
    _check_threshold(f.unknown_threshold, f.unknown_accept)
    if not (math.isfinite(f.fps) and 0 < f.fps <= MAX_FPS):
      _usage_error(f"--fps={f.fps}: frames per second of --landmarks must be a number in (0, {MAX_FPS}]")
    if f.camera is not None and f.camera < 0:
      _usage_error(f"--camera={f.camera}: a camera index is 0 or more (0 is the first camera)")
    if f.frame_step < 1:
      _usage_error(f"--frame_step={f.frame_step}: must be >= 1")
    seg = segmenter.SegmenterConfig(**{fl.name: f[fl.name].value for fl in dataclasses.fields(
        segmenter.SegmenterConfig)})
    try:  # the segmenter's flags, before the seconds of loading (at --fps where it is known)
      if f.landmarks is not None:
        seg.validate(f.fps)
      else:
        seg.check()
    except ConfigError as e:
      _usage_error(str(e))
    workdir = _runs(f.workdir) if f.workdir else None
    threshold = _unknown_threshold(f, workdir)
    use_xla_cache("")
    result = stream.recognize(workdir, camera=f.camera, video=f.video,
                              landmarks=f.landmarks, fps=f.fps, config=seg, top_k=f.top_k, srt=f.srt, eaf=f.eaf,
                              overwrite=f.overwrite, display=f.display, frame_step=f.frame_step,
                              checkpoint=f.checkpoint, realtime=f.realtime, unknown_threshold=threshold,
                              pose_out=f.pose_out)
    if result["status"] == "interrupted":
      sys.exit(130)

  _serve(action, LIVE_USAGE, argv)


if __name__ == "__main__":
  train_main()

