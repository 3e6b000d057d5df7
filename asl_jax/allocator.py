"""A caching memory allocator for the command-line processes (Linux).

XLA's CPU runtime allocates each program's temporary buffers (about 100 MB for the recommended train step)
on every call and frees them after it. glibc's malloc hands blocks that large back to the kernel at once
(mmap / munmap; its threshold stops at 32 MB), so every step faults in and zeroes them again: on 2 cores
a fifth of the step's time is spent in the kernel (benchmarks/run_cost.py, docs/performance.md, "Performance").
tcmalloc and jemalloc keep freed memory for the next call. The arithmetic is untouched: the same results,
bit for bit.

An entry point (`scripts/*.py`, `asl-*`) calls `use_caching_allocator()` before anything heavy is imported.
Where a caching allocator is installed (Debian / Ubuntu: `apt-get install libtcmalloc-minimal4`) and not
loaded yet, it replaces the process by itself with the library in LD_PRELOAD (the same PID, arguments,
descriptors and environment); the new process removes it from LD_PRELOAD again, so the programs it starts
(the landmark extraction child, a browser) run with their usual allocator.

$ASL_JAX_MALLOC chooses: `auto` (the default: tcmalloc, else jemalloc, else the system's), `system` (no
change), `tcmalloc`, `jemalloc`, or the path of a shared library.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import sys

ENV = "ASL_JAX_MALLOC"
_ACTIVE = "_ASL_JAX_MALLOC_PRELOADED"  # set across the re-exec: the variables as they were before it
_LIBRARIES = {"tcmalloc": ("tcmalloc_minimal", "tcmalloc"), "jemalloc": ("jemalloc",)}
_KNOWN = ("tcmalloc", "jemalloc", "mimalloc")
# jemalloc purges freed blocks over 8 MB at once by default, which is the behaviour this avoids.
_JEMALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"


def loaded() -> str | None:
  """The caching allocator mapped into this process (a library path), or None."""
  try:
    with open("/proc/self/maps", encoding="utf-8") as fh:
      maps = fh.read()
  except OSError:
    return None
  for line in maps.splitlines():
    fields = line.split(maxsplit=5)  # address, perms, offset, device, inode, then the path (if any)
    path = fields[5] if len(fields) == 6 else ""
    if any(name in os.path.basename(path) for name in _KNOWN):
      return path
  return None


def caching_library(choice: str = "auto") -> str | None:
  """The library `choice` names ($ASL_JAX_MALLOC's values but system) where it is installed, else None."""
  if os.sep in choice:
    return choice if os.path.isfile(choice) else None
  names = [n for kind in _LIBRARIES.values() for n in kind] if choice == "auto" else _LIBRARIES.get(choice, ())
  for name in names:
    found = ctypes.util.find_library(name)
    if found:
      return found
  return None


def _choice() -> str:
  return os.environ.get(ENV, "auto").strip() or "auto"


def _wanted(choice: str) -> bool:
  """Whether this process should get a caching allocator it does not have yet."""
  return choice != "system" and sys.platform.startswith("linux") and loaded() is None


def advice() -> str | None:
  """What a process without a caching allocator loses and how to get one; None where one is loaded, where
  $ASL_JAX_MALLOC=system chose the system's, or off Linux."""
  if not _wanted(_choice()):
    return None
  installed = caching_library()
  how = ("install one (Debian / Ubuntu: apt-get install libtcmalloc-minimal4)" if installed is None else
         f"start Python with LD_PRELOAD={installed} (the asl-* commands and scripts/*.py do it by themselves)")
  return (f"this process runs without a caching memory allocator; {how} and each CPU step takes about a fifth "
          "less time (docs/performance.md, Performance)")


def use_caching_allocator() -> None:
  """Re-executes this program with a caching allocator preloaded, when one is found and none is loaded
  (see the module docstring); else returns. In the re-executed process: restores LD_PRELOAD and returns."""
  if _ACTIVE in os.environ:  # the re-executed process: its children get the environment as it was
    for key, value in json.loads(os.environ.pop(_ACTIVE)).items():
      if value is None:
        os.environ.pop(key, None)
      else:
        os.environ[key] = value
    return
  choice = _choice()
  if choice not in ("auto", "system", *_LIBRARIES) and os.sep not in choice:
    print(f"warning: ${ENV}={choice!r} is not auto, system, tcmalloc, jemalloc or a library path; "
          "using the system allocator", file=sys.stderr)
    return
  if not _wanted(choice):
    return
  library = caching_library(choice)
  if library is None:
    if choice != "auto":
      print(f"warning: ${ENV}={choice}: no such library here; using the system allocator", file=sys.stderr)
    return
  argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
  if not argv or not os.path.exists(sys.executable):
    return
  before = os.environ.get("LD_PRELOAD")
  added = {"LD_PRELOAD": library + (" " + before if before else "")}
  if "jemalloc" in os.path.basename(library) and "MALLOC_CONF" not in os.environ:
    added["MALLOC_CONF"] = _JEMALLOC_CONF
  if "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD" not in os.environ:  # no "large alloc" lines on stderr
    added["TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"] = str(1 << 40)
  env = {**os.environ, **added, _ACTIVE: json.dumps({k: os.environ.get(k) for k in added})}
  sys.stdout.flush()
  sys.stderr.flush()
  try:
    os.execve(sys.executable, argv, env)
  except OSError:  # (an interpreter that cannot be re-run: carry on as we are)
    return
