"""Starting a run from a trained one (`init_from`, fine-tuning): every parameter whose name and shape match
is copied from the trained run's evaluation weights; the classifier layers (`logits`) are new when the two
runs' classes differ, and so is anything the trained model does not have. The optimiser starts afresh.

What was loaded and what is new is printed and saved in DIR/init_from.json.
"""

from __future__ import annotations

import jax
import numpy as np

from asl_jax import config as config_lib, models, pretrained
from asl_jax.errors import ConfigError
from asl_jax.runs import restore

# Fields that shape the parameters besides the model section: a difference makes their shapes differ.
_SHAPING = ("features", "use_z")


def _model_fields() -> list[str]:
  section = next(fields for name, fields in config_lib.SECTIONS.items() if name.startswith("model"))
  return [f.name for f in section] + list(_SHAPING)


def warm_start(config, params, glosses) -> tuple[dict, dict]:
  """(params with the trained run's weights where they fit, report). `params`: the new run's initial
  parameters; `glosses`: its classes."""
  source = pretrained.resolve(config.init_from)
  src = restore.load_run(source)
  same_classes = tuple(src.glosses) == tuple(glosses)
  theirs, ours = models.named_leaves(src.params), models.named_leaves(params)
  loaded, new, mismatched = [], [], []
  for name, value in ours.items():
    other = theirs.get(name)
    if name.split("/")[-2:-1] == ["logits"] and not same_classes:
      new.append(name)
    elif other is None:
      new.append(name)
    elif tuple(other.shape) != tuple(value.shape):
      mismatched.append(name)
    else:
      loaded.append(name)
  if mismatched or not any(not n.startswith("head") for n in loaded):
    diff = [f"{f}: {src.config[f]!r} there, {config[f]!r} here" for f in _model_fields()
            if f in src.config and src.config[f] != config[f]]
    raise ConfigError(f"config.init_from={config.init_from}: the model in {source} has another shape "
                      f"({len(mismatched)} parameters differ, e.g. {mismatched[:2]}); set these fields as there:\n  "
                      + "\n  ".join(diff or ["(no model field differs: the input layout or streams do)"]))
  merged = {name: (np.asarray(theirs[name]) if name in loaded else value) for name, value in ours.items()}
  treedef = jax.tree_util.tree_structure(params)
  out = jax.tree_util.tree_unflatten(treedef, [merged[n] for n in ours])
  count = lambda names: int(sum(np.prod(ours[n].shape) for n in names))  # noqa: E731
  report = {"init_from": source, "step": src.step, "same_classes": same_classes,
            "loaded": loaded, "new": new, "loaded_params": count(loaded), "new_params": count(new)}
  return out, report


def init_summary(report: dict) -> str:
  why = "" if report["same_classes"] else " (the classes differ: a new classifier)"
  new = ", ".join(report["new"][:6]) + (" ..." if len(report["new"]) > 6 else "")
  return (f"init_from {report['init_from']} (step {report['step']}): loaded {len(report['loaded'])} tensors "
          f"({report['loaded_params'] / 1e6:.2f} M parameters); new {len(report['new'])} "
          f"({report['new_params'] / 1e6:.3f} M){why}{': ' + new if new else ''}")
