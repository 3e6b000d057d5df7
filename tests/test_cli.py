"""The command line as a new user meets it: --help, the config listing, one-line errors, 1-based epochs,
a shortened recipe, what training prints at the end, a finished run rerun, predict's typed inputs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from asl_jax import config as config_lib
from asl_jax.errors import DataError
from asl_jax.serving import predict
from asl_jax.training import train
from conftest import REPO, tiny_config


def _script(name, *args, timeout=300):
  return subprocess.run([sys.executable, os.path.join(REPO, "scripts", name), *args], capture_output=True,
                        text=True, timeout=timeout)


@pytest.mark.parametrize("script,flags", [
    ("train.py", ["--config", "--workdir", "--list_config"]),
    ("evaluate.py", ["--workdir", "--split", "--checkpoint", "--out_dir", "--data_dir", "--signs"]),
    ("predict.py", ["--workdir", "--landmarks", "--video", "--gemma", "--top_k"]),
    ("live.py", ["--workdir", "--camera", "--video", "--landmarks", "--fps", "--frame_step", "--srt", "--eaf",
                 "--display", "--gap_s", "--cut_body", "--max_len_s"]),
    ("export.py", ["--workdir", "--out_dir", "--checkpoint"]),
    ("enroll.py", ["--from", "--signs", "--workdir", "--forget", "--list"]),
    ("extract_landmarks.py", ["--data_dir", "--output_dir", "--layout", "--workers"]),
])
def test_help_lists_the_entry_points_own_flags(script, flags):
  out = _script(script, "--help")
  assert out.returncode == 0, out.stderr[-1500:]
  for flag in flags:
    assert f"  {flag}: " in out.stdout, (flag, out.stdout)
  if script == "train.py":
    assert "configs/nslt_100.py" in out.stdout and "--list_config" in out.stdout


def test_list_config_prints_every_field_with_its_meaning():
  out = _script("train.py", "--list_config", f"--config={REPO}/configs/nslt_100.py")
  assert out.returncode == 0, out.stderr[-1500:]
  for name in config_lib.default_config():
    assert f"\n  {name} = " in "\n" + out.stdout, name
  assert "hidden_dim = 192  (default 512)" in out.stdout  # the config's value beside the default
  assert "[lstm | transformer | conv_transformer]" in out.stdout
  assert all(f.help for f in config_lib.FIELDS.values())


@pytest.mark.parametrize("args,expected", [
    (["--config.hiden_dim=64"], "--config.hiden_dim: no such config field; did you mean hidden_dim?"),
    (["--config.zzz=1"], f"--config.zzz: no such config field ({sys.executable} {REPO}/scripts/train.py --list_config"),
])
def test_misspelled_field_is_one_line(tmp_path, args, expected):
  out = _script("train.py", f"--config={REPO}/configs/nslt_100.py", f"--workdir={tmp_path / 'run'}", *args)
  assert out.returncode != 0
  assert out.stderr.strip() == f"error: {expected}" or out.stderr.strip().startswith(f"error: {expected}")
  assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
  assert not (tmp_path / "run").exists()


def test_missing_config_file_is_one_line(tmp_path):
  out = _script("train.py", "--config=configs/nslt_10.py", f"--workdir={tmp_path / 'run'}")
  assert out.returncode != 0 and "Traceback" not in out.stderr
  assert out.stderr.startswith("error: --config=configs/nslt_10.py: config file not found (the project's configs: ")
  # The configs it lists work from anywhere: absolute paths.
  assert os.path.join(REPO, "configs", "demo.py") in out.stderr


def test_a_project_config_named_from_another_folder_is_the_projects(tmp_path):
  """--config=configs/demo.py (or demo.py) from outside the checkout reads the project's configs/demo.py."""
  for name in ("configs/demo.py", "demo.py"):
    out = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "train.py"), f"--config={name}",
                          "--list_config"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0 and "data_dir = 'demo_data'" in out.stdout, out.stderr[-2000:]


def test_train_cli_end_to_end(tiny_data, tmp_path):
  """A recommended config shortened to 2 epochs (below its 10 warmup epochs) trains; epochs are 1-based in
  metrics.jsonl, the result and the console; the end prints evaluate's table and the next commands; a
  rerun of the finished run says so and where its report is, without training or evaluating again. The
  workdir has a space in its name: the printed commands quote it."""
  wd = tmp_path / "my run"
  args = [f"--config={REPO}/configs/nslt_100.py", f"--workdir={wd}", f"--config.data_dir={tiny_data['data_dir']}",
          f"--config.subset={tiny_data['subset']}", "--config.epochs=2", "--config.hidden_dim=32",
          "--config.progress_bar=True", "--config.batch_size=8", "--config.cache_dir=none"]
  out = _script("train.py", *args)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "note: warmup_epochs=10 is more than epochs=2" in out.stderr
  assert "\r" not in out.stderr  # stderr is no terminal: plain lines, no progress-bar fragments
  # What the user sees while nothing else would print: loading, compiling, the first validation and save, test;
  # on stderr, so stdout holds the results alone (the test table, the report's path and the next commands).
  for said in ("loading the data: ", "compiling the train step", "compiled the train step in ",
               "validating on ", "saving checkpoints to ", "testing the best checkpoint (epoch "):
    assert said in out.stderr and said not in out.stdout, said
  rows = [json.loads(l) for l in open(wd / "metrics.jsonl")]
  assert [r["epoch"] for r in rows] == [1, 2]
  assert "epoch 1: " in out.stderr and "epoch 2: " in out.stderr and "epoch 0" not in out.stderr
  assert "per-instance" in out.stdout and f"report: {wd}/eval_test/report.json" in out.stdout
  # Every printed command runs as pasted into a fresh shell elsewhere, with no environment activated.
  printed = [line.split("    #")[0].strip() for line in out.stdout.split("next:\n", 1)[1].splitlines()]
  assert len(printed) == 5 and printed[0].startswith(sys.executable)
  clean = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "ASL_JAX_CACHE": str(tmp_path / "c")}
  ran = subprocess.run(printed[0], shell=True, cwd="/", env=clean, capture_output=True, text=True, timeout=300)
  assert ran.returncode == 0 and "val split" in ran.stdout, ran.stderr[-2000:]
  ran = subprocess.run(printed[3], shell=True, cwd="/", env=clean, capture_output=True, text=True, timeout=300)
  assert ran.returncode == 0 and "exported to" in ran.stdout, ran.stderr[-2000:]
  assert os.path.getsize(wd / "onnx" / "model.onnx") > 0 and os.path.getsize(wd / "onnx" / "model_batched.onnx") > 0
  best = max(rows, key=lambda r: r["val_top1"])
  assert f"best epoch {best['epoch']};" in out.stdout
  again = _script("train.py", *args)
  assert again.returncode == 0, again.stderr[-2000:]
  assert f"this run is finished (2 epochs, best epoch {best['epoch']}); its test report: {wd}/eval_test/report.json" \
      in again.stderr
  assert "epoch 1: " not in again.stderr
  assert [json.loads(l) for l in open(wd / "metrics.jsonl")] == rows


def test_metrics_of_an_older_run_are_renumbered_on_resume(tiny_data, tmp_path):
  """Runs written before epochs were 1-based had 0-based rows and best_epoch: resuming renumbers them."""
  wd = str(tmp_path / "run")
  cfg = tiny_config(tiny_data, epochs=2, evaluate_test=False)
  first = train.train_and_evaluate(cfg, wd)
  path = os.path.join(wd, "metrics.jsonl")
  rows = [json.loads(l) for l in open(path)]
  assert [r["epoch"] for r in rows] == [1, 2]
  with open(path, "w") as f:
    f.writelines(json.dumps({**r, "epoch": r["epoch"] - 1}) + "\n" for r in rows)
  again = train.train_and_evaluate(cfg, wd)
  assert [json.loads(l) for l in open(path)] == rows
  assert again["best_epoch"] == first["best_epoch"]


def test_predict_inputs_are_typed(tiny_data, tmp_path):
  video = os.path.join(REPO, "tests", "data", "test_video.mp4")
  lm = os.path.join(tiny_data["landmarks_dir"], sorted(os.listdir(tiny_data["landmarks_dir"]))[0])
  with pytest.raises(DataError, match="test_video.mp4: a video given as landmarks; pass it with --video"):
    predict.expand_inputs([video])
  with pytest.raises(DataError, match="not a video .*landmark .npy files go with --landmarks"):
    predict.expand_inputs([lm], "video")
  gemma = os.path.join(tiny_data["gemma_features_dir"], sorted(os.listdir(tiny_data["gemma_features_dir"]))[0])
  with pytest.raises(DataError, match="visual features given as landmarks; pass them with --gemma"):
    predict.expand_inputs([gemma])
  with pytest.raises(DataError, match="no videos"):
    predict.expand_inputs([tiny_data["landmarks_dir"]], "video")
  assert predict.expand_inputs([tiny_data["landmarks_dir"]]) == sorted(
      os.path.join(tiny_data["landmarks_dir"], n) for n in os.listdir(tiny_data["landmarks_dir"]) if n.endswith(".npy"))
  np.testing.assert_equal(len(predict.expand_inputs([os.path.dirname(video)], "video")), 1)


def test_predict_into_a_closed_pipe_is_quiet(tiny_data, tmp_path):
  """`asl-predict ... | head -1`: the reader stops early; no error line, status 0 (100 glosses a line, so
  the output is larger than the pipe's buffer)."""
  lm = tiny_data["landmarks_dir"]
  out = subprocess.run(f"set -o pipefail; {sys.executable} {REPO}/scripts/predict.py --landmarks={lm} --top_k=100 "
                       "| head -1", shell=True,
                       capture_output=True, text=True, timeout=300, executable="/bin/bash")
  assert len(out.stdout.splitlines()) == 1 and json.loads(out.stdout)["top_k"]
  assert "Broken pipe" not in out.stderr and "error" not in out.stderr, out.stderr[-2000:]
  assert out.returncode == 0


def test_readme_python_example_runs(small_data, tmp_path):
  """README's Python API example, run as written on a small synthetic set (paths and epochs swapped in)."""
  readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
  block = readme.split("From Python (what the scripts call):\n\n```python\n", 1)[1].split("```", 1)[0]
  assert len(block.strip().splitlines()) <= 16
  code = (block.replace('"demo_data", "nslt_50.json"', f'{small_data["data_dir"]!r}, {small_data["subset"]!r}')
          .replace('"demo_data/landmarks/', f'"{small_data["landmarks_dir"]}/').replace("config.epochs = 5",
                                                                                         "config.epochs = 1")
          .replace('"runs/api"', repr(str(tmp_path / "api"))))
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYTHONPATH=REPO))
  assert out.returncode == 0, out.stderr[-3000:]
  assert "'top1'" in out.stdout and "'gloss'" in out.stdout
