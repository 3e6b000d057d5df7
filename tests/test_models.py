import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asl_jax.data import layouts
from asl_jax.models import hybrid, layers
from asl_jax.models.heads import DEEP_HEAD_ABOVE, NO_HIDDEN

F = layouts.FEATURE_DIM


def test_sinusoidal_values_match_formula():
  table = layers.sinusoidal_table(50, 8)
  for pos in (0, 1, 7, 49):
    for i in range(4):
      angle = pos / 10000 ** (2 * i / 8)
      assert table[pos, 2 * i] == pytest.approx(np.sin(angle), abs=1e-6)
      assert table[pos, 2 * i + 1] == pytest.approx(np.cos(angle), abs=1e-6)
  assert layers.sinusoidal_table(3000, 6).shape == (3000, 6)  # any length
  x = jnp.zeros((2, 5, 8))
  y = layers.SinusoidalPositionalEncoding().apply({}, x)
  np.testing.assert_allclose(y[1], table[:5], atol=1e-6)


def _batch(rng, b, t, lengths, visual_dim=0, vis_t=None):
  x = rng.normal(size=(b, t, F)).astype(np.float32)
  mask = np.arange(t)[None] < np.asarray(lengths)[:, None]
  batch = {"landmarks": x * mask[..., None], "mask": mask}
  if visual_dim:
    vt = vis_t or t
    vmask = np.arange(vt)[None] < np.minimum(np.asarray(lengths), vt)[:, None]
    batch["visual"] = rng.normal(size=(b, vt, visual_dim)).astype(np.float32) * vmask[..., None]
    batch["visual_mask"] = vmask
  return batch


def _pad(batch, t):
  out = {}
  for k, v in batch.items():
    extra = np.zeros((v.shape[0], t - v.shape[1]) + v.shape[2:], v.dtype)
    if v.dtype != bool:
      extra += 5.0  # garbage in the padding must not matter
    out[k] = np.concatenate([v, extra], 1)
  return out


def _trained_like(params, scale=0.3):
  """Every parameter moved off its initial value: freshly initialised biases and LayerNorm offsets are zero,
  which hides a missing mask (zeros stay zero); trained weights are not."""
  leaves, tree = jax.tree_util.tree_flatten(params)
  keys = jax.random.split(jax.random.key(42), len(leaves))
  return jax.tree_util.tree_unflatten(tree, [p + scale * jax.random.normal(k, p.shape, p.dtype)
                                             for p, k in zip(leaves, keys)])


@pytest.mark.parametrize("encoder", ["lstm", "transformer", "conv_transformer"])
@pytest.mark.parametrize("fusion", ["concat", "attention", "gated", "landmarks_only", "visual_only"])
def test_padding_invariance(encoder, fusion):
  rng = np.random.default_rng(0)
  use_visual = fusion != "landmarks_only"
  model = hybrid.HybridModel(num_classes=7, hidden_dim=32, dropout=0.3, encoder=encoder,
                             fusion_type=fusion if fusion in ("concat", "attention", "gated") else "concat",
                             use_landmarks=fusion != "visual_only", use_visual=use_visual)
  b16 = _batch(rng, 3, 16, [16, 9, 1], visual_dim=24 if use_visual else 0)
  params = _trained_like(model.init(jax.random.key(0), b16))
  logits16 = model.apply(params, b16)
  logits64 = model.apply(params, _pad(b16, 64))
  assert logits16.shape == (3, 7)
  np.testing.assert_allclose(logits16, logits64, atol=2e-5)
  assert np.abs(np.asarray(logits16[0] - logits16[1])).max() > 1e-4  # the inputs do matter


def test_lstm_reads_true_last_frame():
  """The backward direction starts at the last real frame: changing a real frame changes the output."""
  rng = np.random.default_rng(1)
  model = hybrid.HybridModel(num_classes=5, hidden_dim=16, dropout=0.0, use_visual=False)
  b = _batch(rng, 1, 10, [6])
  params = model.init(jax.random.key(0), b)
  base = model.apply(params, b)
  changed = {**b, "landmarks": b["landmarks"].copy()}
  changed["landmarks"][0, 5] += 1.0  # the last real frame
  assert np.abs(np.asarray(model.apply(params, changed) - base)).max() > 1e-4


def test_head_depth_switches_at_500_and_final_init_scale():
  for classes, depth in ((DEEP_HEAD_ABOVE, 2), (DEEP_HEAD_ABOVE + 1, 3)):
    model = hybrid.HybridModel(num_classes=classes, hidden_dim=64, dropout=0.5, use_visual=False,
                               encoder="transformer", transformer_layers=1)  # the head alone matters: a cheap encoder
    params = model.init(jax.random.key(0), hybrid.example_batch(1, 4, F))["params"]
    head = params["head"]
    dense = [k for k in head if k.startswith("DenseBlock")] + ["logits"]
    assert len(dense) == depth
    if depth == 3:
      k = np.asarray(head["logits"]["kernel"])
      assert k.shape == (128, classes)
      bound = 0.1 * np.sqrt(6.0 / (128 + classes))  # Xavier uniform, gain 0.1
      assert np.abs(k).max() <= bound and np.abs(k).max() > 0.9 * bound
      assert head["DenseBlock_0"]["Dense_0"]["kernel"].shape == (64, 128)


def test_a_head_without_hidden_layers_is_the_last_layer_on_the_pooled_output():
  rng = np.random.default_rng(3)
  model = hybrid.HybridModel(num_classes=5, hidden_dim=16, dropout=0.5, use_visual=False, head_layers=NO_HIDDEN,
                             encoder="transformer", transformer_layers=1)
  b = _batch(rng, 3, 8, [8, 5, 2])
  params = model.init(jax.random.key(0), b)
  assert list(params["params"]["head"]) == ["logits"] and params["params"]["head"]["logits"]["kernel"].shape == (16, 5)
  emb = model.apply(params, b, method=model.embed)
  pooled = model.apply(params, b, method=model.encode)
  np.testing.assert_array_equal(emb, pooled)
  head = params["params"]["head"]["logits"]
  np.testing.assert_allclose(model.apply(params, b), emb @ head["kernel"] + head["bias"], rtol=1e-5, atol=1e-5)
  t1 = model.apply(params, b, train=True, rngs={"dropout": jax.random.key(1)})
  t2 = model.apply(params, b, train=True, rngs={"dropout": jax.random.key(2)})
  assert np.abs(np.asarray(t1 - t2)).max() > 1e-4  # the head's dropout stays, on the pooled output


@pytest.mark.parametrize("classes,expected", [(100, 15.76e6), (1000, 18.05e6)])
def test_seed_parameter_count(classes, expected):
  model = hybrid.HybridModel(num_classes=classes, hidden_dim=512, dropout=0.5, fusion_type="concat")
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), hybrid.example_batch(1, 16, F, 1152)))
  n = hybrid.count_params(shapes["params"])
  assert abs(n - expected) / expected < 0.01, n


def test_dropout_only_in_training():
  rng = np.random.default_rng(2)
  model = hybrid.HybridModel(num_classes=4, hidden_dim=16, dropout=0.5, use_visual=False)
  b = _batch(rng, 2, 8, [8, 5])
  params = model.init(jax.random.key(0), b)
  np.testing.assert_array_equal(model.apply(params, b), model.apply(params, b))
  t1 = model.apply(params, b, train=True, rngs={"dropout": jax.random.key(1)})
  t2 = model.apply(params, b, train=True, rngs={"dropout": jax.random.key(2)})
  assert np.abs(np.asarray(t1 - t2)).max() > 1e-4


def test_transformer_layer_dropout_is_separate():
  """`dropout` for the seed's blocks, `transformer_dropout` inside the Transformer's layers only."""
  rng = np.random.default_rng(3)
  b = _batch(rng, 2, 8, [8, 5])

  def spread(dropout, layer_dropout):
    model = hybrid.HybridModel(num_classes=4, hidden_dim=16, dropout=dropout, encoder="transformer",
                               use_visual=False, transformer_dropout=layer_dropout)
    params = model.init(jax.random.key(0), b)
    t1 = model.apply(params, b, train=True, rngs={"dropout": jax.random.key(1)})
    t2 = model.apply(params, b, train=True, rngs={"dropout": jax.random.key(2)})
    return float(np.abs(np.asarray(t1 - t2)).max())

  assert spread(0.0, 0.0) == 0.0
  assert spread(0.0, 0.3) > 1e-4 and spread(0.3, 0.0) > 1e-4


def test_lstm_recurrence_gradient_matches_autodiff():
  """The hand-written backward pass of the fused recurrence equals autodiff of the same scan."""
  from asl_jax.models import lstm
  rng = np.random.default_rng(3)
  t, b, h = 7, 3, 5
  xs = jnp.asarray(rng.normal(size=(t, 2, b, 4 * h)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(2, h, 4 * h)) * 0.3, jnp.float32)
  mask = jnp.asarray((np.arange(t)[:, None] < np.array([7, 4, 1])[None])[:, None, :, None])
  weights = jnp.asarray(rng.normal(size=(t, 2, b, h)), jnp.float32)

  def loss(fn, xs, w):
    ys, h_last = fn(xs, w, mask)[:2]
    return (ys * weights).sum() + (h_last ** 3).sum()

  ours = jax.grad(lambda xs, w: loss(lstm.recurrence, xs, w), argnums=(0, 1))(xs, w)
  scan = lambda xs, w, m: lstm._recurrence_scan(jnp.float32, xs, w, m)  # noqa: E731  # pylint: disable=protected-access
  ref = jax.grad(lambda xs, w: loss(scan, xs, w), argnums=(0, 1))(xs, w)
  for a, r in zip(ours, ref):
    np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-5)
  assert np.abs(np.asarray(ours[1])).max() > 1e-3


def test_lstm_bfloat16_matmuls_track_float32():
  """lstm_matmul_dtype=bfloat16: same parameters, outputs and gradients within bfloat16 rounding, padding
  still exact, and the matmuls really run in bfloat16 (forward and backward)."""
  from asl_jax.models import lstm
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.normal(size=(3, 9, 24)), jnp.float32)
  mask = jnp.asarray(np.arange(9)[None] < np.array([[9], [5], [2]]))
  f32, b16 = lstm.BiLSTM(16, 2), lstm.BiLSTM(16, 2, matmul_dtype="bfloat16")
  params = f32.init(jax.random.key(0), x, mask)

  def loss(model, p, x):
    out, final = model.apply(p, x, mask)
    return (out ** 2).sum() + final.sum(), (out, final)

  (l32, (o32, h32)), g32 = jax.value_and_grad(lambda p: loss(f32, p, x), has_aux=True)(params)
  (l16, (o16, h16)), g16 = jax.value_and_grad(lambda p: loss(b16, p, x), has_aux=True)(params)
  np.testing.assert_allclose(o16, o32, atol=3e-2)
  np.testing.assert_allclose(h16, h32, atol=3e-2)
  assert abs(float(l16 - l32)) < 2e-2 * abs(float(l32)) and float(jnp.abs(o16 - o32).max()) > 0
  for a, b in zip(jax.tree.leaves(g16), jax.tree.leaves(g32)):
    assert float(jnp.linalg.norm(a - b)) < 0.05 * float(jnp.linalg.norm(b))
  padded = jnp.concatenate([x, jnp.asarray(rng.normal(size=(3, 7, 24)), jnp.float32)], 1)
  pmask = jnp.concatenate([mask, jnp.zeros((3, 7), bool)], 1)
  np.testing.assert_array_equal(b16.apply(params, padded, pmask)[1], h16)
  hlo = jax.jit(jax.grad(lambda p: loss(b16, p, x)[0])).lower(params).as_text()
  assert hlo.count("bf16") > 10 and "dot_general" in hlo


def test_reverse_frames_gradient_is_the_reverse_gather():
  from asl_jax.models import lstm
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.normal(size=(3, 6, 2)), jnp.float32)
  mask = jnp.asarray(np.arange(6)[None] < np.array([[6], [3], [1]]))
  rev = lstm.reverse_index(mask)
  np.testing.assert_array_equal(np.asarray(lstm.reverse_frames(x, rev))[1, :3], np.asarray(x)[1, 2::-1])
  w = jnp.asarray(rng.normal(size=x.shape), jnp.float32)
  ours = jax.grad(lambda x: (lstm.reverse_frames(x, rev) * w).sum())(x)
  ref = jax.grad(lambda x: (jnp.take_along_axis(x, rev[..., None], axis=1) * w).sum())(x)
  np.testing.assert_allclose(ours, ref, rtol=1e-6)


def test_dropout_rate_and_scaling():
  x = jnp.ones((200, 500))
  y = np.asarray(layers.Dropout(0.3).apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(0)}))
  kept = y != 0
  assert abs(kept.mean() - 0.7) < 0.005
  np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-4)  # inverted dropout keeps the expectation
  np.testing.assert_array_equal(layers.Dropout(0.3).apply({}, x, deterministic=True), x)


def test_depthwise_conv_matches_a_direct_convolution():
  from asl_jax.models.encoders import DepthwiseConv1D  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 11, 5)).astype(np.float32)
  for k in (1, 4, 5):
    conv = DepthwiseConv1D(k)
    params = conv.init(jax.random.key(k), x)
    w, b = np.asarray(params["params"]["kernel"]), np.asarray(params["params"]["bias"])
    left = (k - 1) // 2
    xp = np.pad(x, ((0, 0), (left, k - 1 - left), (0, 0)))
    expected = sum(xp[:, j:j + 11] * w[j] for j in range(k)) + b
    np.testing.assert_allclose(conv.apply(params, x), expected, atol=1e-5)


def test_drop_path_drops_whole_samples():
  x = jnp.ones((4000, 3, 2))
  y = np.asarray(layers.DropPath(0.25).apply({}, x, True, rngs={"dropout": jax.random.key(0)}))
  per_sample = y.reshape(4000, -1)
  np.testing.assert_allclose(np.unique(per_sample), [0.0, 1 / 0.75], rtol=1e-6)
  assert (per_sample == per_sample[:, :1]).all()  # all or nothing per sample
  assert abs((per_sample[:, 0] == 0).mean() - 0.25) < 0.03
  np.testing.assert_array_equal(layers.DropPath(0.25).apply({}, x, False), x)
