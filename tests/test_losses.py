import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asl_jax.models import losses


def test_class_weights_as_seed():
  labels = np.array([0] * 50 + [1] * 10 + [2] * 5)
  w = losses.class_weights(labels, 3)
  inv = 1 / np.array([50.1, 10.1, 5.1])
  np.testing.assert_allclose(w, np.clip(inv * 3 / inv.sum(), 0.1, 10), rtol=1e-6)
  assert w[2] > w[1] > w[0]
  many = losses.class_weights(np.repeat(np.arange(1000), np.where(np.arange(1000) % 2, 5, 50)), 1000)
  assert many.min() >= 0.1 and many.max() <= 10
  # A class absent from training gets the largest weight, clipped at 10.
  assert losses.class_weights(np.array([0, 0, 1]), 3)[2] == pytest.approx(min(10, (1 / .1) * 3 / (1 / 2.1 + 1 / 1.1 + 10)))


def test_hand_computed_weighted_smoothed_ce():
  logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]], np.float32)
  labels = np.array([0, 2])
  w = np.array([1.0, 2.0, 0.5], np.float32)
  s = 0.1
  logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  num = sum((1 - s) * w[y] * -logp[i, y] + s / 3 * (-(logp[i] * w).sum()) for i, y in enumerate(labels))
  expected = num / (w[0] + w[2])
  got = float(losses.weighted_cross_entropy(logits, labels, w, s))
  assert got == pytest.approx(expected, rel=1e-5)
  # Pinned, worked out by hand: log-sum-exp 2.16985 and 1.55144; nll 0.16985 (w 1) and 1.55144 (w 0.5);
  # smoothing terms 6.09448 and 3.43004; (0.9 * 0.94557 + 0.1 / 3 * 9.52452) / 1.5 = 0.77900.
  assert got == pytest.approx(0.77900, abs=1e-4)
  assert float(losses.weighted_cross_entropy(logits, labels)) == pytest.approx(
      -(logp[0, 0] + logp[1, 2]) / 2, rel=1e-5)


def test_matches_torch():
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(16, 10)).astype(np.float32)
  labels = rng.integers(0, 10, 16)
  w = rng.uniform(0.1, 10, 10).astype(np.float32)
  ref = torch.nn.CrossEntropyLoss(weight=torch.tensor(w), label_smoothing=0.1)(
      torch.tensor(logits), torch.tensor(labels))
  assert float(losses.weighted_cross_entropy(logits, labels, w, 0.1)) == pytest.approx(float(ref), rel=1e-5)


def test_padded_samples_do_not_count():
  logits = np.array([[1.0, 0.0], [0.0, 3.0], [9.0, -9.0]], np.float32)
  labels = np.array([0, 1, 1])
  num, den = losses.weighted_ce_terms(logits, labels, None, 0.0, np.array([1.0, 1.0, 0.0]))
  assert float(num / den) == pytest.approx(float(losses.weighted_cross_entropy(logits[:2], labels[:2])), rel=1e-6)


def test_mixed_ce_is_the_blend_of_both_labels_losses():
  rng = np.random.default_rng(1)
  logits = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)
  y, y2 = jnp.array([0, 1, 2, 3, 4, 0]), jnp.array([1, 1, 3, 0, 2, 4])
  for lam in (1.0, 0.7, 0.5):
    num, den = losses.mixed_ce_terms(logits, y, y2, jnp.float32(lam), None, 0.1)
    want = lam * losses.weighted_cross_entropy(logits, y, None, 0.1) + (1 - lam) * losses.weighted_cross_entropy(
        logits, y2, None, 0.1)
    np.testing.assert_allclose(num / den, want, rtol=1e-6)
  w = jnp.asarray(rng.random(5) + 0.5, jnp.float32)
  np.testing.assert_allclose(losses.mixed_ce_terms(logits, y, y2, jnp.float32(1.0), w, 0.1),
                             losses.weighted_ce_terms(logits, y, w, 0.1), rtol=1e-6)
  np.testing.assert_array_equal(losses.mixed_ce_terms(logits, y, None, None, w, 0.1),
                                losses.weighted_ce_terms(logits, y, w, 0.1))


def test_outlier_clips_are_trained_towards_uniform_over_the_other_classes():
  logits = np.array([[2.0, 0.0, -1.0, 0.5], [0.0, 1.0, 0.0, 3.0], [1.0, 1.0, 1.0, -9.0]], np.float32)
  labels = np.array([0, 3, 3])
  logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  want = (-logp[0, 0] - logp[1, :3].mean() - logp[2, :3].mean()) / 3
  num, den = losses.weighted_ce_terms(logits, labels, None, 0.0, outlier=3)
  assert float(num / den) == pytest.approx(want, rel=1e-5)
  # Uniform over the known classes (and nothing on the outlier's own column) is the outlier's best answer:
  # its loss is then log 3; the third row is nearly that.
  assert float(-logp[2, :3].mean()) == pytest.approx(np.log(3), abs=1e-3)
  grads = jax.grad(lambda lg: losses.weighted_cross_entropy(lg, labels[1:], None, 0.0))  # no outlier: labels win
  assert float(grads(logits[1:])[0, 3]) < 0
  g = jax.grad(lambda lg: jnp.sum(jnp.stack(losses.weighted_ce_terms(lg, labels, None, 0.0, outlier=3))[0]))(logits)
  assert float(g[1, 3]) > 0 and float(g[2, 3]) > 0  # the outlier column is pushed down for outliers
  # Known clips are unaffected by the option, under mixup too.
  known = np.array([0, 1, 2])
  np.testing.assert_array_equal(losses.weighted_ce_terms(logits, known, None, 0.1, outlier=3),
                                losses.weighted_ce_terms(logits, known, None, 0.1))
  num, den = losses.mixed_ce_terms(logits, labels, known, jnp.float32(0.5), None, 0.0, outlier=3)
  assert float(num / den) == pytest.approx(
      0.5 * want + 0.5 * float(losses.weighted_cross_entropy(logits, known)), rel=1e-5)


def _supcon_by_hand(z, labels, t):
  z = z / np.linalg.norm(z, axis=1, keepdims=True)
  terms = []
  for i in range(len(z)):
    others = [j for j in range(len(z)) if j != i]
    positives = [j for j in others if labels[j] == labels[i]]
    if not positives:
      continue
    log_den = np.log(sum(np.exp(z[i] @ z[j] / t) for j in others))
    terms.append(np.mean([log_den - z[i] @ z[p] / t for p in positives]))
  return np.mean(terms)


def test_supervised_contrastive_is_the_formula_and_rewards_clusters():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(9, 5)).astype(np.float32)
  labels = np.array([0, 0, 1, 1, 1, 2, 3, 3, 4])  # classes 2 and 4 have one sample: no positive, no term
  got = float(losses.supervised_contrastive(jnp.asarray(z), jnp.asarray(labels), 0.2))
  assert got == pytest.approx(_supcon_by_hand(z, labels, 0.2), rel=1e-5)
  # Only angles count: rescaling each embedding changes nothing.
  scaled = z * rng.uniform(0.1, 10, size=(9, 1)).astype(np.float32)
  assert float(losses.supervised_contrastive(jnp.asarray(scaled), jnp.asarray(labels), 0.2)) == pytest.approx(got, rel=1e-5)
  # Clips of a class near their own class vector score lower than the same labels scattered.
  centres = rng.normal(size=(5, 5)).astype(np.float32)
  clustered = centres[labels] + 0.05 * rng.normal(size=(9, 5)).astype(np.float32)
  assert float(losses.supervised_contrastive(jnp.asarray(clustered), jnp.asarray(labels), 0.2)) < got - 1
  # No anchor with a positive: zero, not NaN.
  assert float(losses.supervised_contrastive(jnp.asarray(z[:3]), jnp.asarray([0, 1, 2]), 0.2)) == 0.0
