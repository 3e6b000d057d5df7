"""asl_jax.allocator: an entry point re-executes itself with a caching allocator preloaded (same PID and
arguments), its children get the environment as it was, $ASL_JAX_MALLOC chooses, and training gives the
same numbers, bit for bit, with either allocator."""

import json
import os
import subprocess
import sys

import pytest

from asl_jax import allocator
from asl_jax.training import train
from conftest import REPO, tiny_config

LIBRARY = allocator.caching_library()
needs_library = pytest.mark.skipif(
    LIBRARY is None or not sys.platform.startswith("linux"),
    reason="no caching allocator installed (Debian / Ubuntu: apt-get install libtcmalloc-minimal4)")

# A program as an entry point starts: it says its PID, re-executes (or not), then reports what it has and
# what a program it starts sees.
PROBE = """
import json, os, subprocess, sys
from asl_jax import allocator
print("pid", os.getpid(), flush=True)
allocator.use_caching_allocator()
child = subprocess.run([sys.executable, "-c", "import json, os; from asl_jax import allocator; "
                        "print(json.dumps([allocator.loaded(), os.environ.get('LD_PRELOAD')]))"],
                       capture_output=True, text=True, check=True)
print(json.dumps({"pid": os.getpid(), "argv": sys.argv[1:], "loaded": allocator.loaded(),
                  "LD_PRELOAD": os.environ.get("LD_PRELOAD"), "child": json.loads(child.stdout),
                  "marker": [k for k in os.environ if k.startswith("_ASL_JAX")]}))
"""


def _probe(tmp_path, **env):
  script = tmp_path / "probe.py"
  script.write_text(PROBE)
  base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", allocator.ENV)}
  out = subprocess.run([sys.executable, str(script), "a b", "--x=1"], capture_output=True, text=True,
                       env={**base, **env}, timeout=120, check=False)
  assert out.returncode == 0, out.stderr
  first, last = out.stdout.splitlines()[0], out.stdout.splitlines()[-1]
  return int(first.split()[1]), json.loads(last), out.stderr


@needs_library
def test_an_entry_point_reexecutes_itself_with_the_allocator_and_its_children_do_not_inherit_it(tmp_path):
  pid, got, _ = _probe(tmp_path)
  assert got["pid"] == pid and got["argv"] == ["a b", "--x=1"]  # the same process, the same arguments
  assert got["loaded"] is not None and any(name in got["loaded"] for name in ("tcmalloc", "jemalloc"))
  assert got["LD_PRELOAD"] is None and got["marker"] == []  # the environment as it was
  assert got["child"] == [None, None]  # a program it starts runs with the system's allocator


@needs_library
def test_a_users_own_preload_is_kept(tmp_path):
  other = "/lib/x86_64-linux-gnu/libm.so.6"
  if not os.path.exists(other):
    pytest.skip("no libm at the Debian path")
  _, got, _ = _probe(tmp_path, LD_PRELOAD=other)
  assert got["loaded"] is not None and got["LD_PRELOAD"] == other and got["child"] == [None, other]


def test_system_and_unknown_choices_keep_the_systems_allocator(tmp_path):
  pid, got, err = _probe(tmp_path, ASL_JAX_MALLOC="system")
  assert got["pid"] == pid and got["loaded"] is None and got["LD_PRELOAD"] is None and err == ""
  _, got, err = _probe(tmp_path, ASL_JAX_MALLOC="tcmaloc")
  assert got["loaded"] is None
  assert err.strip() == ("warning: $ASL_JAX_MALLOC='tcmaloc' is not auto, system, tcmalloc, jemalloc or a library "
                         "path; using the system allocator")
  _, got, err = _probe(tmp_path, ASL_JAX_MALLOC=str(tmp_path / "nothing.so"))
  assert got["loaded"] is None and "no such library here" in err


@pytest.mark.heavy
@needs_library
def test_training_through_the_cli_gets_the_allocator_and_the_same_numbers(tiny_data, tmp_path):
  """The train entry point runs with the caching allocator (no note that one is missing), and every epoch's
  train loss, val metrics and the test report equal those of the same run with the system's allocator."""
  runs = {}
  for choice in ("auto", "system"):
    wd = tmp_path / choice
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    out = subprocess.run(
        [sys.executable, os.path.join(REPO, "scripts", "train.py"), f"--config={REPO}/configs/nslt_100.py",
         f"--workdir={wd}", f"--config.data_dir={tiny_data['data_dir']}", f"--config.subset={tiny_data['subset']}",
         "--config.epochs=2", "--config.hidden_dim=32", "--config.progress_bar=False", "--config.batch_size=8",
         "--config.dropout_rng=threefry"], capture_output=True, text=True, timeout=300, check=False,
        env={**env, allocator.ENV: choice})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "without a caching memory allocator" not in out.stderr  # (system: chosen, so no note either)
    rows = [json.loads(line) for line in open(wd / "metrics.jsonl", encoding="utf-8")]
    report = json.load(open(wd / "eval_test" / "report.json", encoding="utf-8"))
    runs[choice] = ([{k: v for k, v in r.items() if not k.endswith("time_s")} for r in rows],
                    {k: report[k] for k in ("checkpoint_step", "per_instance", "per_class", "per_class_accuracy")})
  assert runs["auto"] == runs["system"]


@pytest.mark.skipif(allocator.caching_library("jemalloc") is None, reason="jemalloc is not installed")
def test_jemalloc_is_told_to_keep_freed_memory_and_its_setting_is_not_inherited(tmp_path):
  """jemalloc purges freed blocks over 8 MB at once unless told otherwise (MALLOC_CONF), the behaviour the
  allocator is there to avoid; a MALLOC_CONF of the user's own is left as it is."""
  probe = tmp_path / "conf.py"
  probe.write_text("import json, os, sys\nfrom asl_jax import allocator\nconf = os.environ.get('MALLOC_CONF')\n"
                   "allocator.use_caching_allocator()\nprint(json.dumps([allocator.loaded(), conf, "
                   "os.environ.get('MALLOC_CONF')]))\n")
  base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF")}
  for user, seen in ((None, "dirty_decay_ms:-1,muzzy_decay_ms:-1"), ("narenas:1", "narenas:1")):
    env = {**base, allocator.ENV: "jemalloc", **({"MALLOC_CONF": user} if user else {})}
    out = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True, env=env, timeout=60,
                         check=True)
    loaded, conf_at_start, conf_after = json.loads(out.stdout)
    assert "jemalloc" in loaded
    assert conf_at_start == seen and conf_after == user  # what jemalloc read; what the children get


def test_training_in_a_process_without_one_says_how_to_get_it(tiny_data, tmp_path, capsys, monkeypatch):
  """Training from Python (this test process: no allocator preloaded) notes what the steps lose, and how to
  get the allocator: the LD_PRELOAD line where one is installed, the package where none is."""
  if allocator.loaded() is not None:
    pytest.skip("this process already has a caching allocator")
  monkeypatch.delenv(allocator.ENV, raising=False)
  train.train_and_evaluate(tiny_config(tiny_data, epochs=1, evaluate_test=False), str(tmp_path / "run"))
  err = capsys.readouterr().err
  assert "note: this process runs without a caching memory allocator; " in err
  assert (f"start Python with LD_PRELOAD={LIBRARY} " if LIBRARY else "apt-get install libtcmalloc-minimal4") in err
