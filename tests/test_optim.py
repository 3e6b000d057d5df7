"""The fused AdamW + clipping equals the optax chain it replaces."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from asl_jax import models
from asl_jax.models import hybrid
from asl_jax.training.optim import clipped_adamw, decay_mask


@pytest.mark.parametrize("grad_scale,max_norm,masked", [(1e-3, 1.0, False), (10.0, 1.0, False), (10.0, 0.0, False),
                                                        (1e-3, 1.0, True)])
def test_matches_optax_chain(grad_scale, max_norm, masked):
  """Small gradients (no clipping), large ones (clipped) and clipping off, over a warmup-cosine schedule;
  and weight decay on the matrices only (optax's `mask`)."""
  rng = np.random.default_rng(0)
  params = {"a": {"kernel": jnp.asarray(rng.normal(size=(7, 5)), jnp.float32)},
            "b": {"bias": jnp.asarray(rng.normal(size=3), jnp.float32)}}
  schedule = optax.warmup_cosine_decay_schedule(0.0, 1e-2, 3, 10)
  mask = decay_mask if masked else None
  ref = optax.adamw(schedule, weight_decay=0.05, mask=mask)
  if max_norm > 0:
    ref = optax.chain(optax.clip_by_global_norm(max_norm), ref)
  fused = clipped_adamw(schedule, max_norm, weight_decay=0.05, mask=mask)

  @jax.jit
  def run(p):
    def body(carry, g):
      (pr, sr), (pf, sf) = carry
      ur, sr = ref.update(g, sr, pr)
      uf, sf = fused.update(g, sf, pf)
      return ((optax.apply_updates(pr, ur), sr), (optax.apply_updates(pf, uf), sf)), None
    grads = jax.tree.map(lambda x: grad_scale * jax.random.normal(jax.random.key(1), (8,) + x.shape), p)
    (out_ref, out_fused), _ = jax.lax.scan(body, ((p, ref.init(p)), (p, fused.init(p))), grads)
    return out_ref, out_fused

  (pr, _), (pf, sf) = run(params)
  assert int(sf.count) == 8
  moved = max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(pr), jax.tree.leaves(params)))
  assert moved > 1e-3  # the comparison is over real updates
  for a, b in zip(jax.tree.leaves(pr), jax.tree.leaves(pf)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


def test_decay_mask_keeps_matrices_only():
  """weight_decay_on=matrices: every encoder's kernels and LSTM matrices are decayed, no bias or LayerNorm
  scale is."""
  for encoder in ("lstm", "transformer", "conv_transformer"):
    model = hybrid.HybridModel(num_classes=5, hidden_dim=16, dropout=0.0, encoder=encoder, use_visual=False)
    batch = {"landmarks": np.zeros((1, 8, 166), np.float32), "mask": np.ones((1, 8), bool)}
    params = model.init(jax.random.key(0), batch)["params"]
    named = models.named_leaves(params)
    decayed = models.named_leaves(decay_mask(params))
    for path, leaf in named.items():
      name = path.rsplit("/", 1)[-1]
      if name in ("bias", "scale") or name.startswith("b_"):
        assert not decayed[path], path
      else:
        assert decayed[path] and leaf.ndim >= 2, path
    assert sum(decayed.values()) >= 4
