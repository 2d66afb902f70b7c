"""jscore.data.digits: scikit-learn's 8x8 digits, scaled to [-1, 1], upsampled, split by a seed."""

import json

import equinox as eqx
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


# ---------------------------------------------------------------- the convolutional denoiser


@pytest.mark.parametrize("k, stride", [(3, 1), (3, 2), (1, 1)])
def test_conv_matches_lax_convolution(k, stride):
    from jscore.nets import Conv

    c = Conv(3, 5, k, stride=stride, key=jax.random.key(0), dtype=jnp.float32)
    x = jax.random.normal(jax.random.key(1), (3, 9, 8))
    w = c.weight.reshape(5, k, k, 3).transpose(0, 3, 1, 2)  # OIHW
    r = k // 2
    ref = jax.lax.conv_general_dilated(x[None], w, (stride, stride), ((r, r), (r, r)))[0]
    np.testing.assert_allclose(np.asarray(c(x)), np.asarray(ref + c.bias[:, None, None]),
                               rtol=1e-5, atol=1e-5)


def test_patchify_groups_pixels_and_inverts():
    from jscore.nets import patchify, unpatchify

    x = jnp.arange(8 * 12 * 2.0).reshape(8, 12, 2)
    y = patchify(x, 4)
    assert y.shape == (32, 2, 3)
    a, b, i, j, c = 1, 2, 1, 3, 1
    assert float(y[(i * 4 + j) * 2 + c, a, b]) == float(x[a * 4 + i, b * 4 + j, c])
    np.testing.assert_array_equal(np.asarray(unpatchify(y, 4)), np.asarray(x))


def test_conv_denoiser_at_init_is_the_gaussian_denoiser_and_round_trips(tmp_path):
    sd = 0.6
    m = js.nets.DenoiserConv((16, 16, 1), width=8, levels=1, patch=2, sigma_data=sd,
                             key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (256,))
    for sigma in (0.05, 1.0, 20.0):
        c_skip = sd**2 / (sigma**2 + sd**2)
        np.testing.assert_allclose(np.asarray(m(x, sigma)), c_skip * np.asarray(x), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(m.score(x, sigma)), -np.asarray(x) / (sigma**2 + sd**2),
                                   rtol=1e-5)
    assert m(x.reshape(16, 16, 1), 0.5).shape == (16, 16, 1)
    with pytest.raises(ValueError, match="shape"):
        m(x[:100], 0.5)
    with pytest.raises(ValueError, match="divisible"):
        js.nets.DenoiserConv((12, 12, 1), levels=2, patch=2, key=jax.random.key(0))
    # perturb the zero output layer, then save and load bitwise
    m = eqx.tree_at(lambda t: t.conv_out.weight, m, 0.1 * jnp.ones_like(m.conv_out.weight))
    js.nets.save(tmp_path / "m.eqx", m)
    back = js.nets.load(tmp_path / "m.eqx")
    assert back.hyperparams() == m.hyperparams()
    np.testing.assert_array_equal(np.asarray(back(x, 0.3)), np.asarray(m(x, 0.3)))


def test_cli_train_digits_small(tmp_path, capsys):
    from jscore.cli import train as cli_train

    out = tmp_path / "d16"
    rc = cli_train.main(["--data", "digits", "--size", "16", "--steps", "40", "--batch", "32",
                         "--lr", "3e-3", "--ema", "0.9", "--chunk", "20", "--width", "8",
                         "--eval-n", "128", "--eval-levels", "3", "--eval-min", "0.1",
                         "--eval-max", "3", "--no-progress", "--no-plot", "--out", str(out)])
    assert rc == 0
    prof = json.loads((out / "profile.json").read_text())
    assert prof["target"]["target"] == "digits" and prof["target"]["dim"] == 256
    assert prof["model"]["shape"] == [16, 16, 1] and prof["model"]["patch"] == 2
    losses = np.load(out / "losses.npy")
    assert losses[-10:].mean() < losses[:10].mean()  # the EDM loss starts near 1 and falls
    # at sigma = 3 the trained network is measurably better than its initialisation
    top = prof["profile"][-1]
    assert top["ci_high"] < top["eps_init"]
    assert cli_train.main(["--data", "digits", "--size", "12", "--out", str(tmp_path / "bad")]) == 2
    assert "--size" in capsys.readouterr().err
