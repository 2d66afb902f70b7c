"""jscore.data.digits: scikit-learn's 8x8 digits, scaled to [-1, 1], upsampled, split by a seed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits

import jscore as js
from jscore.data import digits, upsample_matrix


@pytest.fixture(scope="module")
def raw():
    d = load_digits()
    return d.images.astype(np.float64), d.target


def test_size8_is_the_affine_rescaling_and_the_split_partitions_the_set(raw):
    imgs, labels = raw
    ds = digits(8, held_out=0.2, seed=0)
    assert ds.train.shape == (1438, 8, 8, 1) and ds.test.shape == (359, 8, 8, 1)
    assert ds.train.dtype == np.float32
    both = np.concatenate([ds.train, ds.test])[..., 0].astype(np.float64)
    # every loaded image is v / 8 - 1 of exactly one sklearn image, each used once
    want = imgs / 8.0 - 1.0
    order = np.lexsort(want.reshape(len(want), -1).T)
    got_order = np.lexsort(both.reshape(len(both), -1).T)
    np.testing.assert_allclose(both[got_order], want[order], atol=1e-7)
    assert both.min() == -1.0 and both.max() == 1.0
    assert np.bincount(np.concatenate([ds.train_labels, ds.test_labels])).tolist() == \
        np.bincount(labels).tolist()


def test_split_is_fixed_by_seed():
    a, b, c = digits(8, seed=0), digits(8, seed=0), digits(8, seed=1)
    np.testing.assert_array_equal(a.test, b.test)
    assert not np.array_equal(a.test_labels, c.test_labels)
    # the split does not depend on the size: same labels in the same order
    np.testing.assert_array_equal(digits(16, seed=0).test_labels, a.test_labels)


@pytest.mark.parametrize("size", [16, 32, 64])
def test_bilinear_upsampling_matches_jax_image_resize(size):
    x = np.random.default_rng(size).uniform(-1, 1, (8, 8))
    u = upsample_matrix(size)
    want = np.asarray(jax.image.resize(jnp.asarray(x, jnp.float32), (size, size), "linear"))
    np.testing.assert_allclose(u @ x @ u.T, want, atol=1e-6)
    np.testing.assert_allclose(u.sum(1), 1.0)
    assert np.linalg.matrix_rank(u) == 8  # injective: intrinsic dimension unchanged


def test_nearest_upsampling_is_a_scaled_isometry():
    u = upsample_matrix(32, "nearest")
    np.testing.assert_array_equal(u.T @ u, 4 * np.eye(8))
    ds8, ds32 = digits(8, mode="nearest"), digits(32, mode="nearest")
    a, b = ds8.train[:50].reshape(50, -1), ds32.train[:50].reshape(50, -1)
    d8 = np.linalg.norm(a[:, None] - a[None], axis=-1)
    d32 = np.linalg.norm(b[:, None] - b[None], axis=-1)
    np.testing.assert_allclose(d32, 4 * d8, rtol=1e-5, atol=1e-4)  # |U X U^T|_F = k |X|_F


def test_upsampled_data_keeps_its_rank_and_range():
    x8 = digits(8).train.reshape(1438, -1).astype(np.float64)
    x16 = digits(16).train
    assert x16.shape == (1438, 16, 16, 1)
    assert x16.min() >= -1.0 - 1e-6 and x16.max() <= 1.0 + 1e-6
    r8 = np.linalg.matrix_rank(x8, tol=1e-4)
    assert np.linalg.matrix_rank(x16.reshape(1438, -1).astype(np.float64), tol=1e-4) == r8
    assert r8 >= 60  # the 8x8 digits use (almost) all 64 pixels


def test_empirical_target_on_digits():
    ds = digits(8)
    tgt = js.targets.Empirical(ds.train, 0.05)
    assert tgt.dim == 64 and tgt.event_shape == (8, 8, 1) and tgt.num_points == 1438
    s = tgt.score(jnp.asarray(ds.test[0].reshape(-1)), 0.1)
    assert bool(jnp.all(jnp.isfinite(s)))


@pytest.mark.parametrize(
    "kw, match",
    [({"size": 12}, "size"), ({"size": 8, "held_out": 1.0}, "held_out"),
     ({"size": 8, "seed": -1}, "seed"), ({"size": 16, "mode": "cubic"}, "mode")],
)
def test_bad_arguments_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        digits(**kw)
