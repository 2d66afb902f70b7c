import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jscore as js
from helpers import assert_within_se, mean_se, var_se


def _targets(dim=5):
    key = jax.random.key(7)
    k1, k2, k3 = jax.random.split(key, 3)
    mean = jax.random.normal(k1, (dim,))
    return {
        "gauss_iso": js.targets.Gaussian(mean, 0.7),
        "gauss_diag": js.targets.Gaussian(mean, jnp.linspace(0.1, 2.0, dim)),
        "gauss_point": js.targets.Gaussian(mean, 0.0),
        "gmm": js.targets.GaussianMixture(
            3.0 * jax.random.normal(k2, (4, dim)), 0.5, jnp.array([0.1, 0.2, 0.3, 0.4])
        ),
        "gmm_point_masses": js.targets.GaussianMixture(2.0 * jax.random.normal(k3, (3, dim)), 0.0),
    }


@pytest.mark.parametrize("name", list(_targets()))
@pytest.mark.parametrize("sigma", [1e-3, 0.3, 5.0, 1e3])
def test_score_is_grad_log_prob_and_denoise_is_tweedie(x64, name, sigma):
    target = _targets()[name]
    x = jax.random.normal(jax.random.key(1), (target.dim,)) * 2.0
    g = jax.grad(target.log_prob)(x, sigma)
    np.testing.assert_allclose(target.score(x, sigma), g, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        target.denoise(x, sigma), x + sigma**2 * target.score(x, sigma), rtol=1e-9, atol=1e-9
    )


def test_gaussian_log_prob_closed_form(x64):
    from scipy.stats import multivariate_normal

    t = js.targets.Gaussian(jnp.array([0.5, -1.0]), jnp.array([0.3, 2.0]))
    x = jnp.array([0.1, 0.2])
    ref = multivariate_normal(np.array([0.5, -1.0]), np.diag([0.3 + 4.0, 2.0 + 4.0])).logpdf(x)
    np.testing.assert_allclose(t.log_prob(x, 2.0), ref, rtol=1e-12)


def test_gmm_log_prob_closed_form(x64):
    from scipy.stats import multivariate_normal

    means = np.array([[0.0, 1.0], [2.0, -1.0]])
    t = js.targets.GaussianMixture(jnp.asarray(means), 0.4, jnp.array([1.0, 3.0]))
    x = np.array([0.7, 0.1])
    v = 0.16 + 0.25
    ref = np.log(
        0.25 * multivariate_normal(means[0], v * np.eye(2)).pdf(x)
        + 0.75 * multivariate_normal(means[1], v * np.eye(2)).pdf(x)
    )
    np.testing.assert_allclose(t.log_prob(jnp.asarray(x), 0.5), ref, rtol=1e-12)


@pytest.mark.parametrize("name", ["gauss_diag", "gmm"])
@pytest.mark.parametrize("sigma", [0.2, 2.0])
def test_denoiser_is_conditional_mean_monte_carlo(name, sigma):
    # D(y) = E[x0 | y] iff E[(x0 - D(y)) g(y)] = 0 for all g: check g = 1 and g = y per coordinate.
    target = _targets(dim=4)[name]
    n = 50_000
    k0, k1 = jax.random.split(jax.random.key(3))
    x0 = target.sample(k0, n)
    y = x0 + sigma * jax.random.normal(k1, x0.shape)
    resid = np.asarray(x0 - jax.vmap(target.denoise, (0, None))(y, sigma), dtype=np.float64)
    for g in (np.ones_like(resid), np.asarray(y, dtype=np.float64)):
        m, se = mean_se(resid * g)
        assert_within_se(m, 0.0, se, what=f"E[(x0 - D) g] for {name}")
    # and a wrong denoiser (shrunk) is detected by the same statistic
    bad = np.asarray(x0 - 0.9 * jax.vmap(target.denoise, (0, None))(y, sigma), dtype=np.float64)
    m, se = mean_se(bad * np.asarray(y))
    assert np.any(np.abs(m) > 5 * se)


@pytest.mark.parametrize("name", ["gauss_diag", "gmm"])
def test_sample_moments(name):
    target = _targets(dim=3)[name]
    x = np.asarray(target.sample(jax.random.key(11), 100_000), dtype=np.float64)
    if name == "gauss_diag":
        mean, var = np.asarray(target.mean), np.asarray(target.var)
    else:
        w = np.asarray(target.weights)
        mu = np.asarray(target.means)
        mean = w @ mu
        var = w @ (mu**2) - mean**2 + float(target.std) ** 2
    m, se = mean_se(x)
    assert_within_se(m, mean, se, what="sample mean")
    # variance SE for non-Gaussian data: sqrt((m4 - v^2) / n) from the sample's 4th moment
    v = x.var(0, ddof=1)
    m4 = ((x - x.mean(0)) ** 4).mean(0)
    assert_within_se(v, var, np.sqrt((m4 - v**2) / x.shape[0]), what="sample variance")


@pytest.mark.parametrize("dim", [1, 2**10, 2**16])
def test_no_nan_across_sigma_range_float32(dim):
    key = jax.random.key(0)
    gmm = js.targets.GaussianMixture(3.0 * jax.random.normal(key, (8, dim)), 0.05)
    gau = js.targets.Gaussian(jnp.zeros(dim), jnp.linspace(0.0, 1.0, dim))
    sigmas = jnp.geomspace(1e-4, 1e4, 9)

    @jax.jit
    def evaluate(target, x):
        one = lambda s: (target.score(x, s), target.denoise(x, s), target.log_prob(x, s))
        return jax.vmap(one)(sigmas)

    for target in (gmm, gau):
        x0 = target.sample(jax.random.fold_in(key, 1), 1)[0]
        for scale in (0.0, 1.0, 1e4):
            x = x0 + scale * jax.random.normal(jax.random.fold_in(key, 2), (dim,))
            for out in evaluate(target, x):
                assert out.dtype == jnp.float32
                assert bool(jnp.all(jnp.isfinite(out))), (type(target).__name__, scale)


def test_float64_dtypes(x64):
    t = js.targets.GaussianMixture(jnp.ones((2, 3)), 0.5)
    assert t.score(jnp.zeros(3), 1.0).dtype == jnp.float64


def test_large_dimension_sampling_runs():
    # d = 2^20 with a few chains: no K x d per-chain temporaries, bounded memory
    dim = 2**20
    key = jax.random.key(0)
    gmm = js.targets.GaussianMixture(jax.random.normal(key, (4, dim)), 0.5)
    res = js.sample(js.oracles.Exact(gmm), js.samplers.Euler(), js.schedules.karras(6), key, num_samples=3)
    assert res.x.shape == (3, dim)
    assert bool(jnp.all(jnp.isfinite(res.x)))
    assert np.all(np.asarray(res.stats.queries) == 6)
    # each chain lands in one mode: per-coordinate squared distance to the nearest mean is far
    # below the ~2 that separates two means (6 ODE steps under-disperse, so not ~std^2 = 0.25)
    d2 = jnp.sum((res.x[:, None, :] - gmm.means[None]) ** 2, -1) / dim
    assert bool(jnp.all(d2.min(1) < 0.5)) and bool(jnp.all(jnp.sort(d2, 1)[:, 1] > 1.5))


def test_target_bad_input():
    with pytest.raises(ValueError, match="mean"):
        js.targets.Gaussian(jnp.zeros((2, 2)), 1.0)
    with pytest.raises(ValueError, match="var"):
        js.targets.Gaussian(jnp.zeros(3), -1.0)
    with pytest.raises(ValueError, match="var"):
        js.targets.Gaussian(jnp.zeros(3), jnp.ones(2))
    with pytest.raises(ValueError, match="means"):
        js.targets.GaussianMixture(jnp.zeros(3), 1.0)
    with pytest.raises(ValueError, match="weights"):
        js.targets.GaussianMixture(jnp.zeros((2, 3)), 1.0, jnp.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="weights"):
        js.targets.GaussianMixture(jnp.zeros((2, 3)), 1.0, jnp.ones(3))
    with pytest.raises(ValueError, match="std"):
        js.targets.GaussianMixture(jnp.zeros((2, 3)), -0.1)
