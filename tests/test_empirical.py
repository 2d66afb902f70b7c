"""js.targets.Empirical: the smoothed empirical law (equal-weight Gaussian mixture on data points)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jscore as js

from helpers import assert_within_se, mean_se


def _np_score(points, h, x, sigma):
    """Independent float64 formula: grad log (1/n) sum_i N(x; x_i, v I), v = h^2 + sigma^2."""
    p = np.asarray(points, np.float64).reshape(len(points), -1)
    x = np.asarray(x, np.float64)
    v = h * h + sigma * sigma
    logw = -np.sum((x[None, :] - p) ** 2, axis=1) / (2 * v)
    logw -= logw.max()
    r = np.exp(logw)
    r /= r.sum()
    return (r @ p - x) / v


def _points(key, n=7, shape=(3, 2, 1)):
    return np.asarray(jax.random.uniform(jax.random.key(key), (n, *shape), minval=-1, maxval=1))


@pytest.mark.x64
@pytest.mark.parametrize("sigma", [1e-3, 0.05, 0.5, 5.0])
@pytest.mark.parametrize("h", [0.0, 0.1])
def test_score_matches_numpy_formula(x64, sigma, h):
    pts = _points(0)
    tgt = js.targets.Empirical(pts, h)
    assert tgt.dim == 6 and tgt.event_shape == (3, 2, 1) and tgt.num_points == 7
    xs = np.asarray(jax.random.normal(jax.random.key(1), (5, 6))) * 0.7
    got = np.asarray(jax.vmap(lambda x: tgt.score(x, sigma))(jnp.asarray(xs)))
    want = np.stack([_np_score(pts, h, x, sigma) for x in xs])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 / (h * h + sigma * sigma))


@pytest.mark.x64
def test_score_is_grad_of_log_prob(x64):
    pts = _points(2, n=5, shape=(4,))
    tgt = js.targets.Empirical(pts, 0.2)
    x = jnp.asarray([0.3, -0.1, 0.8, 0.0])
    for sigma in (0.01, 0.3, 2.0):
        g = jax.grad(lambda y: tgt.log_prob(y, sigma))(x)
        np.testing.assert_allclose(np.asarray(tgt.score(x, sigma)), np.asarray(g), rtol=1e-10)
    # log density itself against the closed form
    v = 0.2**2 + 0.3**2
    d2 = np.sum((np.asarray(x)[None] - pts) ** 2, 1)
    want = np.log(np.mean(np.exp(-d2 / (2 * v)))) - 2 * np.log(2 * np.pi * v)
    np.testing.assert_allclose(float(tgt.log_prob(x, 0.3)), want, rtol=1e-12)


def test_float32_far_points_and_tiny_sigma_are_finite():
    # d = 256, x far from every point, sigma = 1e-3: the log-sum-exp keeps the score finite and
    # (at small sigma) equal to the pull towards the nearest point
    pts = _points(3, n=20, shape=(16, 16, 1))
    tgt = js.targets.Empirical(pts, 0.0)
    x = jnp.full((256,), 5.0)
    for sigma in (1e-3, 1e-1, 10.0):
        s = tgt.score(x, sigma)
        assert s.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(s)))
    flat = pts.reshape(20, -1)
    near = flat[np.argmin(np.sum((flat - 5.0) ** 2, 1))]
    np.testing.assert_allclose(np.asarray(tgt.score(x, 1e-3)) * 1e-6, near - 5.0, rtol=1e-4)


def test_sample_mean_and_variance_within_standard_errors():
    pts = _points(4, n=6, shape=(2, 2))
    h = 0.3
    tgt = js.targets.Empirical(pts, h)
    x = np.asarray(tgt.sample(jax.random.key(5), 40000), np.float64)
    assert x.shape == (40000, 4)
    flat = pts.reshape(6, -1).astype(np.float64)
    mu = flat.mean(0)
    m, se = mean_se(x)
    assert_within_se(m, mu, se, what="sample mean")
    # E (x_j - mu_j)(x_k - mu_k) = population covariance of the points + h^2 delta_jk
    cov = (flat - mu).T @ (flat - mu) / 6 + h * h * np.eye(4)
    prods = (x - mu)[:, :, None] * (x - mu)[:, None, :]
    m2, se2 = mean_se(prods.reshape(len(x), -1))
    assert_within_se(m2, cov.reshape(-1), se2, what="sample covariance")
    # as images
    imgs = tgt.as_events(x)
    assert imgs.shape == (40000, 2, 2)
    np.testing.assert_array_equal(np.asarray(tgt.points), pts.astype(np.float32))


def test_zero_bandwidth_samples_are_data_points():
    pts = _points(6, n=4, shape=(3,))
    tgt = js.targets.Empirical(pts, 0.0)
    x = np.asarray(tgt.sample(jax.random.key(0), 50))
    d = np.min(np.abs(x[:, None, :] - pts[None].astype(np.float32)).max(-1), 1)
    assert np.all(d == 0)


def test_exact_oracle_accepts_image_shaped_points():
    pts = _points(7, n=5, shape=(2, 3, 1))
    tgt = js.targets.Empirical(pts, 0.1)
    x = jnp.asarray(pts[0] + 0.05)
    s, _ = js.oracles.Exact(tgt).query(x, 0.2, None)
    assert s.shape == (2, 3, 1)
    np.testing.assert_allclose(np.asarray(s).reshape(-1), np.asarray(tgt.score(x.reshape(-1), 0.2)),
                               rtol=1e-6)


@pytest.mark.parametrize(
    "points, h, match",
    [(np.zeros(3), 0.1, "points"), (np.zeros((0, 3)), 0.1, "points"),
     (np.zeros((2, 3)), -0.1, "bandwidth"), (np.full((2, 3), np.nan), 0.1, "points"),
     (np.zeros((2, 3)), np.inf, "bandwidth")],
)
def test_bad_input_is_named(points, h, match):
    with pytest.raises(ValueError, match=match):
        js.targets.Empirical(points, h)
