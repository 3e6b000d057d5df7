"""Misuse through the command line: every case is one `error: ...` line naming the flag, field or file,
a non-zero exit and no traceback (docs/troubleshooting.md, "What happens when...")."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from asl_jax.training import train
from conftest import REPO, tiny_config


@pytest.fixture(scope="module")
def run_dir(small_data, tmp_path_factory):
  wd = str(tmp_path_factory.mktemp("misuse") / "run")
  train.train_and_evaluate(tiny_config(small_data, epochs=1, evaluate_test=False, cache_dir="none"), wd)
  return wd


def _script(name, *args):
  return subprocess.run([sys.executable, os.path.join(REPO, "scripts", name), *args], capture_output=True,
                        text=True, timeout=300)


def _one_line(out, expected):
  assert out.returncode != 0, out.stdout[-1000:]
  assert "Traceback" not in out.stderr, out.stderr[-3000:]
  lines = [l for l in out.stderr.strip().splitlines() if l.startswith("error: ")]
  assert len(lines) == 1 and expected in lines[0], out.stderr[-2000:]


def _clip(small_data):
  lm = small_data["landmarks_dir"]
  return os.path.join(lm, sorted(os.listdir(lm))[0])


@pytest.mark.parametrize("top_k", ["0", "-1"])
def test_predict_top_k_below_one(run_dir, small_data, top_k):
  _one_line(_script("predict.py", f"--workdir={run_dir}", f"--landmarks={_clip(small_data)}", f"--top_k={top_k}"),
            f"--top_k={top_k}: must be >= 1")


def test_live_top_k_below_one(run_dir, small_data):
  _one_line(_script("live.py", f"--workdir={run_dir}", f"--landmarks={_clip(small_data)}", "--top_k=0"),
            "--top_k=0: must be >= 1")


def test_evaluate_negative_batch_size(run_dir):
  _one_line(_script("evaluate.py", f"--workdir={run_dir}", "--batch_size=-5"), "--batch_size=-5: must be >= 1")


def test_predict_gemma_on_a_landmarks_only_run(run_dir, small_data, tmp_path):
  vis = tmp_path / "clip_gemma.npy"
  np.save(vis, np.zeros((8, 1152), np.float32))
  _one_line(_script("predict.py", f"--workdir={run_dir}", f"--landmarks={_clip(small_data)}", f"--gemma={vis}"),
            "was trained on landmarks only and would ignore them; leave --gemma out")


@pytest.mark.parametrize("override,expected", [
    ("--config.lr=nan", "config.lr=nan: must be a finite number"),
    ("--config.speed_range=1.0", "config.speed_range=1.0: must be in [0, 1)"),
    ("--config.flip_prob=2", "config.flip_prob=2.0: a probability"),
])
def test_train_bad_values(small_data, tmp_path, override, expected):
  _one_line(_script("train.py", f"--config={REPO}/configs/demo.py", f"--workdir={tmp_path / 'r'}",
                    f"--config.data_dir={small_data['data_dir']}", f"--config.subset={small_data['subset']}",
                    override), expected)
  assert not (tmp_path / "r").exists()


def _train_args(small_data, workdir, *extra):
  return (f"--config={REPO}/configs/demo.py", f"--workdir={workdir}", f"--config.data_dir={small_data['data_dir']}",
          f"--config.subset={small_data['subset']}", "--config.epochs=1", "--config.hidden_dim=32",
          "--config.progress_bar=False", "--config.cache_dir=none", *extra)


def test_a_foreign_config_json_is_never_overwritten(small_data, tmp_path):
  wd = tmp_path / "mine"
  wd.mkdir()
  for content in ('{"learning_rate": 0.1, "model": "resnet"}', "not json at all"):
    (wd / "config.json").write_text(content)
    _one_line(_script("train.py", *_train_args(small_data, wd)), "config.json: not an asl_jax run's config")
    assert (wd / "config.json").read_text() == content and sorted(os.listdir(wd)) == ["config.json"]


def test_evaluate_val_of_a_run_that_trained_on_val(small_data, tmp_path):
  wd = tmp_path / "tv"
  out = _script("train.py", *_train_args(small_data, wd, "--config.train_subsets=train+val"))
  assert out.returncode == 0, out.stderr[-2000:]
  _one_line(_script("evaluate.py", f"--workdir={wd}", "--split=val"),
            "--split=val: the run in")
  assert _script("evaluate.py", f"--workdir={wd}", "--split=test").returncode == 0


def test_a_test_split_without_features_says_so(small_data, tmp_path):
  import json  # pylint: disable=import-outside-toplevel
  import shutil  # pylint: disable=import-outside-toplevel
  d = tmp_path / "data"
  shutil.copytree(small_data["data_dir"], d)
  split = json.load(open(d / small_data["subset"]))
  for vid, e in split.items():
    if e["subset"] == "test":
      os.remove(d / "landmarks" / f"{vid}_landmarks.npy")
  # ... with a cache directory that cannot be created (under a file): the run goes on without the cache.
  (tmp_path / "a_file").write_text("")
  out = _script("train.py", *_train_args({**small_data, "data_dir": str(d)}, tmp_path / "nt"),
                f"--config.cache_dir={tmp_path / 'a_file' / 'cache'}")
  assert out.returncode == 0, out.stderr[-2000:]
  assert "no test report: none of the test clips of" in out.stderr
  assert f"warning: cannot write the packed-data cache in {tmp_path / 'a_file' / 'cache'}" in out.stderr
  assert "config.cache_dir=none" in out.stderr and "Traceback" not in out.stderr


def test_landmark_files_of_two_sizes_name_the_field_to_set(small_data, tmp_path):
  import shutil  # pylint: disable=import-outside-toplevel
  d = tmp_path / "data"
  shutil.copytree(small_data["data_dir"], d)
  (d / "landmarks" / "extraction_metadata.json").unlink()  # no recorded dimension to go by
  first = sorted((d / "landmarks").iterdir())[0]
  np.save(first, np.zeros((20, 170), np.float32))  # one clip in the holistic170 layout among seed162 ones
  out = _script("train.py", *_train_args({**small_data, "data_dir": str(d)}, tmp_path / "two"))
  _one_line(out, "landmark files disagree on the feature dimension")
  assert "set config.landmark_layout (seed162, holistic170, holistic543) to the one to use" in out.stderr


def test_batch_predict_bad_inputs_fail_alone(run_dir, small_data, tmp_path):
  """A directory with one truncated and one wrongly shaped file among good ones: every good file gets its
  result, each bad one a line naming it, and the exit status says some failed."""
  d = tmp_path / "batch"
  d.mkdir()
  lm = small_data["landmarks_dir"]
  good = sorted(os.listdir(lm))[:3]
  for name in good:
    (d / name).write_bytes(open(os.path.join(lm, name), "rb").read())
  (d / "cut_landmarks.npy").write_bytes(open(os.path.join(lm, good[0]), "rb").read()[:300])
  np.save(d / "wide_landmarks.npy", np.zeros((5, 7), np.float32))
  out = _script("predict.py", f"--workdir={run_dir}", f"--landmarks={d}")
  assert out.returncode == 1 and "Traceback" not in out.stderr
  import json  # pylint: disable=import-outside-toplevel
  rows = [json.loads(l) for l in out.stdout.splitlines()]
  assert sorted(os.path.basename(r["file"]) for r in rows) == good
  errors = [l for l in out.stderr.splitlines() if l.startswith("error: ")]
  assert len(errors) == 2 and "cut_landmarks.npy: truncated" in " ".join(errors) or "cut_landmarks.npy" in errors[0]
  assert any("wide_landmarks.npy" in e and "(frames, 162)" in e for e in errors)
  assert "2 of 5 inputs failed" in out.stderr


def _copy_run(run_dir, tmp_path):
  import shutil  # pylint: disable=import-outside-toplevel
  dst = tmp_path / "copy"
  shutil.copytree(run_dir, dst)
  return dst


@pytest.mark.parametrize("damage,expected", [
    (lambda d: (d / "config.json").write_text((d / "config.json").read_text()[:40]), "config.json: not valid JSON"),
    (lambda d: (d / "config.json").write_text("[1, 2]"), "config.json: expected a JSON dict"),
    (lambda d: _edit(d / "config.json", hidden_dim=64), "config.json does not describe the model in its checkpoint"),
    (lambda d: _edit(d / "config.json", encoder="transformer"), "config.json does not describe the model"),
    (lambda d: _edit(d / "config.json", num_frames="abc"), "field num_frames='abc' has the wrong type"),
    (lambda d: _edit(d / "config.json", num_frames=0), "config.json: config.num_frames=0: must be >= 1"),
    (lambda d: (d / "label_mapping.json").write_text("{\"0\": \"a\""), "label_mapping.json: not valid JSON"),
    (lambda d: (d / "label_mapping.json").write_text("{\"0\": \"a\", \"5\": \"b\"}"), "label_mapping.json: expected"),
])
def test_damaged_or_edited_run_files_are_one_line(run_dir, small_data, tmp_path, damage, expected):
  d = _copy_run(run_dir, tmp_path)
  damage(d)
  _one_line(_script("evaluate.py", f"--workdir={d}"), expected)
  _one_line(_script("predict.py", f"--workdir={d}", f"--landmarks={_clip(small_data)}"), expected)


def _edit(path, **fields):
  import json  # pylint: disable=import-outside-toplevel
  saved = json.load(open(path))
  saved.update(fields)
  path.write_text(json.dumps(saved))


def _zero_checkpoint_files(step):
  for f in (step / "state").rglob("*"):
    if f.is_file() and f.stat().st_size > 100 and "d" in f.parent.name:
      f.write_bytes(b"\0" * f.stat().st_size)


def _best_step(d):
  return next(p for p in (d / "checkpoints" / "best").iterdir() if p.name.isdigit())


@pytest.mark.parametrize("damage,cause", [
    (_zero_checkpoint_files, "file(s) changed since it was written"),
    (lambda step: next(p for p in (step / "state").rglob("*") if p.is_file()).unlink(), "file(s) missing"),
])
def test_a_damaged_checkpoint_says_which_folder_and_what_to_do(run_dir, tmp_path, damage, cause):
  d = _copy_run(run_dir, tmp_path)
  step = _best_step(d)
  damage(step)
  out = _script("evaluate.py", f"--workdir={d}")
  # Found from the checkpoint's file digest before Orbax reads it: one line, no TensorStore tracebacks.
  _one_line(out, f"{step}: cannot restore this checkpoint, it is damaged or incomplete (")
  assert cause in out.stderr
  assert "--checkpoint=latest" in out.stderr and len(out.stderr.strip().splitlines()[-1]) < 600


def test_a_damaged_checkpoint_without_a_digest_still_fails_clearly(run_dir, tmp_path):
  """Checkpoints written before digests: Orbax's own failure, caught (TensorStore's threads may print
  tracebacks of their own around the line)."""
  d = _copy_run(run_dir, tmp_path)
  step = _best_step(d)
  (step / "asl_jax_files.json").unlink()
  _zero_checkpoint_files(step)
  out = _script("evaluate.py", f"--workdir={d}")
  assert out.returncode == 1
  assert f"error: {step}: cannot restore this checkpoint, it is damaged or incomplete" in out.stderr


def test_a_half_written_metrics_line_is_dropped(run_dir, tmp_path):
  d = _copy_run(run_dir, tmp_path)
  with open(d / "metrics.jsonl", "a") as f:
    f.write('{"epoch": 2, "step": 2')  # a kill while appending
  out = _script("evaluate.py", f"--workdir={d}")
  assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
  assert "ignoring its last line, cut short" in out.stderr


# ------------------------------------------------------------------ the commands a new user reaches for next


@pytest.mark.parametrize("fps", ["3e8", "inf", "nan", "-5", "0"])
def test_live_absurd_fps_is_refused_by_name(run_dir, small_data, fps):
  _one_line(_script("live.py", f"--workdir={run_dir}", f"--landmarks={_clip(small_data)}", f"--fps={fps}"),
            f"--fps=")


def test_a_file_given_twice_is_predicted_as_once(run_dir, small_data):
  """Each occurrence gets its line, with the probabilities of the file given once (they were summed per name, so
  a file given twice got twice its probabilities)."""
  from asl_jax.serving import predict  # pylint: disable=import-outside-toplevel
  lm = small_data["landmarks_dir"]
  clip, other = sorted(os.path.join(lm, n) for n in os.listdir(lm))[:2]
  once, = predict.predict_files(run_dir, [clip], top_k=3)
  rows = predict.predict_files(run_dir, [clip, other, clip], top_k=3)
  assert [r["file"] for r in rows] == [clip, other, clip]
  for row in (rows[0], rows[2]):
    assert [t["class"] for t in row["top_k"]] == [t["class"] for t in once["top_k"]]
    np.testing.assert_allclose([t["prob"] for t in row["top_k"]], [t["prob"] for t in once["top_k"]], rtol=1e-5)


def test_live_negative_camera_is_refused_by_name(run_dir):
  _one_line(_script("live.py", f"--workdir={run_dir}", "--camera=-2"), "--camera=-2: a camera index is 0 or more")


@pytest.mark.parametrize("script", ["predict.py", "live.py"])
def test_a_text_file_or_a_video_given_as_landmarks_says_what_it_is(run_dir, tmp_path, script):
  csv = tmp_path / "clip.csv"
  csv.write_text("x,y,z\n0.1,0.2,0.3\n")
  _one_line(_script(script, f"--workdir={run_dir}", f"--landmarks={csv}"),
            f"{csv}: not a .npy file; asl_jax reads NumPy arrays saved with np.save")
  video = os.path.join(REPO, "tests", "data", "test_video.mp4")
  _one_line(_script(script, f"--workdir={run_dir}", f"--landmarks={video}"),
            f"{video}: a video given as landmarks; pass it with --video")


def test_export_refuses_to_overwrite_and_checks_its_folder_first(run_dir, tmp_path):
  mine = tmp_path / "mine"
  mine.mkdir()
  (mine / "meta.json").write_text("my own file")
  out = _script("export.py", f"--workdir={run_dir}", f"--out_dir={mine}")
  _one_line(out, "already holds meta.json; pass --overwrite")
  assert (mine / "meta.json").read_text() == "my own file"
  theirs = tmp_path / "theirs"  # every file an ONNX export writes is checked, the page's two as well
  theirs.mkdir()
  (theirs / "head.bin").write_bytes(b"someone's")
  _one_line(_script("export.py", f"--workdir={run_dir}", "--format=onnx", f"--out_dir={theirs}"),
            "already holds head.bin; pass --overwrite")
  assert (theirs / "head.bin").read_bytes() == b"someone's"
  afile = tmp_path / "a_file"
  afile.write_text("x")
  _one_line(_script("export.py", f"--workdir={run_dir}", f"--out_dir={afile}"), "exists and is not a folder")
  _one_line(_script("export.py", f"--workdir={run_dir}", "--format=onnx", f"--out_dir={afile / 'sub'}"),
            "is a file, so the folder cannot be made there")
  ok = _script("export.py", f"--workdir={run_dir}", f"--out_dir={mine}", "--overwrite")
  assert ok.returncode == 0 and "exported to" in ok.stdout, ok.stderr[-2000:]


def test_the_shipped_model_is_never_written_into(tmp_path):
  """asl-export without --workdir (the shipped model) writes to the current folder, not into the package."""
  from asl_jax import pretrained  # pylint: disable=import-outside-toplevel
  before = sorted(os.listdir(pretrained.WLASL100))
  out = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "export.py")], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
  assert out.returncode == 0, out.stderr[-2000:]
  assert os.path.isfile(tmp_path / "wlasl100_export" / "model.jax_export")
  assert sorted(os.listdir(pretrained.WLASL100)) == before
  _one_line(_script("evaluate.py", "--workdir=wlasl100", "--calibrate"), "is not a place to write")


def test_warnings_are_plain_lines(run_dir, small_data, tmp_path):
  """A library warning reads `warning: ...`, not with absl's `W1206 05:18:46.18 ... file.py:417]` prefix."""
  import json  # pylint: disable=import-outside-toplevel
  split = json.load(open(os.path.join(small_data["data_dir"], small_data["subset"])))
  split["99999"] = {"subset": "test", "action": [0, 1, 10]}  # a clip without features
  data = tmp_path / "data"
  data.mkdir()
  json.dump(split, open(data / small_data["subset"], "w"))
  shutil.copy(os.path.join(small_data["data_dir"], "wlasl_class_list.txt"), data)
  out = _script("evaluate.py", f"--workdir={run_dir}", f"--data_dir={data}",
                f"--landmarks_dir={small_data['landmarks_dir']}", f"--out_dir={tmp_path / 'e'}")
  assert out.returncode == 0, out.stderr[-2000:]
  lines = [l for l in out.stderr.splitlines() if "clips without features" in l]
  assert lines and all(l.startswith("warning: ") for l in lines), out.stderr[-2000:]


def test_predict_keeps_its_compiled_forward_pass_on_disk(run_dir, small_data, tmp_path):
  """A second start reads XLA's compilation cache (CACHE/xla) instead of compiling the forward pass again."""
  env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
  env["ASL_JAX_CACHE"] = str(tmp_path / "cache")
  args = [sys.executable, os.path.join(REPO, "scripts", "predict.py"), f"--workdir={run_dir}", _clip(small_data)]
  first = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
  assert first.returncode == 0, first.stderr[-2000:]
  cached = os.listdir(tmp_path / "cache" / "xla")
  assert cached, "nothing was cached"
  second = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
  assert second.returncode == 0 and second.stdout == first.stdout, second.stderr[-2000:]
  assert sorted(os.listdir(tmp_path / "cache" / "xla")) == sorted(cached)  # nothing new compiled


def test_enroll_and_predict_refuse_bad_flags_before_loading(tmp_path):
  """A missing --from run or --signs folder, and an impossible --unknown_threshold, are refused before any
  run is restored (no 'loading' / 'enrolling' line first), with nothing written."""
  out = _script("enroll.py", f"--from={tmp_path / 'nope'}", f"--signs={tmp_path}", f"--workdir={tmp_path / 'new'}")
  _one_line(out, f"--from={tmp_path / 'nope'}: no such run directory")
  out = _script("enroll.py", f"--signs={tmp_path / 'none'}", f"--workdir={tmp_path / 'new'}")
  _one_line(out, f"--signs={tmp_path / 'none'}: not a directory")
  out = _script("enroll.py", f"--from={tmp_path},wlasl100", f"--signs={tmp_path}", f"--workdir={tmp_path / 'new'}")
  _one_line(out, "enrolment takes one base run (enrol the same signs into each member")
  assert not os.path.exists(tmp_path / "new") and "enrolling" not in out.stderr
  out = _script("enroll.py", "--forget=cow", f"--signs={tmp_path}", f"--workdir={tmp_path / 'new'}")
  _one_line(out, "give --signs or --forget, not both: forget first, then enrol into the run that writes")
  out = _script("enroll.py", "--forget=,", f"--workdir={tmp_path / 'new'}")
  _one_line(out, "--forget: give the glosses of the signs to take out, comma-separated")
  assert not os.path.exists(tmp_path / "new")
  np.save(tmp_path / "clip.npy", np.zeros((5, 162), np.float32))
  out = _script("predict.py", f"--landmarks={tmp_path / 'clip.npy'}", "--unknown_threshold=1.5")
  _one_line(out, "--unknown_threshold=1.5: must be a probability in [0, 1]")
  assert "loading" not in out.stderr


@pytest.mark.parametrize("flag", ["--max_len_s=inf", "--gap_s=nan", "--min_len_s=1e9", "--cut_hand=-inf",
                                  "--gap_s=-1"])
def test_live_absurd_segmenter_settings_are_refused_by_name(run_dir, small_data, flag):
  """A flag error, as --fps's: exit status 2, before the model is loaded."""
  out = _script("live.py", f"--workdir={run_dir}", f"--landmarks={_clip(small_data)}", flag)
  _one_line(out, flag.split("=")[0] + "=")
  assert out.returncode == 2 and "loading" not in out.stderr


def test_live_segmenter_settings_are_checked_before_a_video_is_opened(run_dir):
  """A video's frame rate is known only once it is open; the settings that need none are checked first."""
  video = os.path.join(REPO, "tests", "data", "test_video.mp4")
  out = _script("live.py", f"--workdir={run_dir}", f"--video={video}", "--min_len_s=2", "--max_len_s=3")
  _one_line(out, "--max_len_s=3.0: must exceed twice --min_len_s=2.0")
  assert out.returncode == 2 and "starting landmark extraction" not in out.stderr


def test_live_a_landmark_file_given_as_a_video_says_so(run_dir, small_data):
  out = _script("live.py", f"--workdir={run_dir}", f"--video={_clip(small_data)}")
  _one_line(out, f"{_clip(small_data)}: a landmark file given as a video; pass it with --landmarks")
  assert "starting landmark extraction" not in out.stderr


@pytest.mark.parametrize("script", ["predict.py", "live.py", "evaluate.py", "export.py"])
def test_a_file_or_a_folder_that_is_no_run_as_workdir(small_data, tmp_path, script):
  """The same line from every command: a file is not a run directory; a folder without config.json is asked
  about (not a missing input_spec.json naming another missing file)."""
  extra = [f"--landmarks={_clip(small_data)}"] if script in ("predict.py", "live.py") else []
  afile = tmp_path / "a_file"
  afile.write_text("x")
  _one_line(_script(script, f"--workdir={afile}", *extra), f"{afile}: a file, not a run directory")
  _one_line(_script(script, f"--workdir={tmp_path}", *extra),
            f"{tmp_path / 'config.json'}: missing (the run's configuration); is this a training workdir?")


def test_evaluate_checks_its_report_folder_first_and_never_replaces_a_report_unasked(run_dir, tmp_path):
  afile = tmp_path / "a_file"
  afile.write_text("x")
  out = _script("evaluate.py", f"--workdir={run_dir}", f"--out_dir={afile}")
  _one_line(out, f"--out_dir={afile}: exists and is not a folder")
  assert "evaluating" not in out.stderr  # refused before the run was restored
  mine = tmp_path / "mine"
  mine.mkdir()
  (mine / "report.json").write_text("my own report")
  _one_line(_script("evaluate.py", f"--workdir={run_dir}", f"--out_dir={mine}"),
            "already holds report.json; pass --overwrite")
  assert (mine / "report.json").read_text() == "my own report"
  ok = _script("evaluate.py", f"--workdir={run_dir}", f"--out_dir={mine}", "--overwrite")
  assert ok.returncode == 0 and "report:" in ok.stdout, ok.stderr[-2000:]
  again = _script("evaluate.py", f"--workdir={run_dir}")  # the run's own eval_test/ is replaced each time
  assert again.returncode == 0 and _script("evaluate.py", f"--workdir={run_dir}").returncode == 0, again.stderr


@pytest.mark.parametrize("script", ["predict.py", "live.py", "evaluate.py", "export.py"])
def test_a_missing_workdir_names_the_flag(small_data, tmp_path, script):
  extra = [f"--landmarks={_clip(small_data)}"] if script in ("predict.py", "live.py") else []
  _one_line(_script(script, f"--workdir=wlasl100,{tmp_path / 'nope'}", *extra),
            f"--workdir={tmp_path / 'nope'}: no such run directory (a folder a training run wrote, or wlasl100")


def test_lists_take_commas_in_every_path_flag(run_dir, small_data, tmp_path):
  """--landmarks=a.npy,b.npy is two inputs, as --workdir=a,b is two runs; a file whose name has a comma is
  still one."""
  clip = np.load(_clip(small_data))
  for name in ("a.npy", "b.npy", "c,d.npy"):
    np.save(tmp_path / name, clip)
  out = _script("predict.py", f"--workdir={run_dir}", f"--landmarks={tmp_path / 'a.npy'},{tmp_path / 'b.npy'}",
                f"--landmarks={tmp_path / 'c,d.npy'}")
  assert out.returncode == 0, out.stderr[-2000:]
  assert [json.loads(l)["file"] for l in out.stdout.splitlines()] == [
      str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), str(tmp_path / "c,d.npy")]


def test_the_shipped_model_names_no_data_paths_and_evaluating_it_asks_for_them(run_dir, small_data, tmp_path):
  """The shipped run's config.json keeps none of the paths of the machine it was trained on, and
  asl-evaluate on it without --data_dir says what to pass (pretrained.package writes it so)."""
  from asl_jax import pretrained  # pylint: disable=import-outside-toplevel
  saved = json.load(open(os.path.join(pretrained.WLASL100, "config.json"), encoding="utf-8"))
  assert all(saved[k] == "" for k in pretrained.DATA_PATH_FIELDS), {k: saved[k] for k in pretrained.DATA_PATH_FIELDS}
  out = _script("evaluate.py", "--workdir=wlasl100", f"--out_dir={tmp_path / 'e'}")
  _one_line(out, "data_dir is empty, so the split file 'nslt_100.json' has no folder")
  assert "pass --data_dir=DIR" in out.stderr and not os.path.exists(tmp_path / "e")
  # Packaging a run (benchmarks/ship_model.py does) leaves the paths out, and the package predicts.
  pretrained.package(run_dir, str(tmp_path / "pkg"))
  packed = json.load(open(tmp_path / "pkg" / "config.json", encoding="utf-8"))
  assert all(packed[k] == "" for k in pretrained.DATA_PATH_FIELDS)
  assert json.load(open(os.path.join(run_dir, "config.json"), encoding="utf-8"))["data_dir"]  # the source keeps them
  ok = _script("predict.py", f"--workdir={tmp_path / 'pkg'}", f"--landmarks={_clip(small_data)}")
  assert ok.returncode == 0 and json.loads(ok.stdout.splitlines()[0])["top_k"], ok.stderr[-2000:]
