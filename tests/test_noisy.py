"""Noisy oracles hit their nominal L^p(p_sigma) error; score_error's CI is calibrated."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jscore as js
from jscore.counting import Ledger, charged_query
from jscore.oracles.noisy import chi_log_moment, chi_norm
from jscore.sampling import TRACE_COUNTS

from helpers import assert_within_se

LEVEL = 1 - 1e-6  # two-sided z = 4.89: a miss is a real discrepancy, not bad luck
SIGMAS = np.array([0.1, 0.6, 3.0])
PS = (1.0, 2.0, 4.0)


@pytest.fixture(scope="module")
def gmm():
    means = jax.random.normal(jax.random.key(7), (3, 4)) * 1.5
    return js.targets.GaussianMixture(means, 0.4, weights=jnp.array([0.5, 0.3, 0.2]))


def _unit_custom(x, sigma, key):
    # an error field with a sigma-dependent, x-dependent size (not unit: calibrated via target=)
    return jnp.tanh(x) * (1.0 + sigma) + 0.1


def _make(kind, inner, eps, p, gmm):
    if kind == "custom":
        return js.oracles.Noisy(inner, eps, p, kind=_unit_custom, target=gmm, num_calibration=16384)
    return js.oracles.Noisy(inner, eps, p, kind=kind, num_calibration=16384)


def _check_covers(prof, eps, rtol=1e-5):
    eps = np.broadcast_to(np.asarray(eps, np.float64), prof.estimate.shape)
    lo, hi = prof.lower * (1 - rtol), prof.upper * (1 + rtol)  # rtol: float32 rounding when CI ~ 0
    ok = (lo <= eps) & (eps <= hi)
    assert ok.all(), f"eps {eps} outside CI [{prof.lower}, {prof.upper}] (estimate {prof.estimate})"


@pytest.mark.parametrize("kind", ["gaussian", "bias", "relative", "custom"])
def test_noisy_hits_nominal_eps(kind, gmm, getkey):
    inner = js.oracles.Exact(gmm)
    key = getkey()
    for p in PS:
        oracle = _make(kind, inner, 0.37, p, gmm)
        prof = js.metrics.score_error_profile(oracle, gmm, SIGMAS, key, p=p, n=4096, level=LEVEL)
        _check_covers(prof, 0.37)
        if kind == "bias":  # |e| = eps pointwise
            np.testing.assert_allclose(prof.estimate, 0.37, rtol=1e-5)


@pytest.mark.parametrize("p", PS)
def test_relative_closed_form_gaussian(p, getkey):
    target = js.targets.Gaussian(jnp.array([0.5, -1.0, 2.0]), 0.8)
    oracle = js.oracles.Noisy(js.oracles.Exact(target), 0.2, p, kind="relative")
    assert oracle.calib_log_norms is None  # closed form, no Monte Carlo
    prof = js.metrics.score_error_profile(oracle, target, SIGMAS, getkey(), p=p, n=4096, level=LEVEL)
    _check_covers(prof, 0.2)


def test_per_level_and_callable_eps(gmm, getkey):
    inner = js.oracles.Exact(gmm)
    grid = js.schedules.geometric(5, 0.1, 3.0)  # 5 levels + trailing 0
    eps = jnp.array([0.5, 0.4, 0.3, 0.2, 0.1])
    oracle = js.oracles.Noisy(inner, eps, 2, kind="gaussian", sigmas=grid)
    levels = np.asarray(grid[:-1])
    prof = js.metrics.score_error_profile(oracle, gmm, levels, getkey(), n=4096, level=LEVEL)
    _check_covers(prof, eps)
    # between levels: linear in log sigma
    mid = float(np.sqrt(levels[0] * levels[1]))
    np.testing.assert_allclose(float(oracle.eps_at(mid)), 0.45, rtol=1e-5)
    fn = js.oracles.Noisy(inner, lambda s: 0.1 * s, 2, kind="bias")
    prof = js.metrics.score_error_profile(fn, gmm, levels, getkey(), n=4096)
    np.testing.assert_allclose(prof.estimate, 0.1 * levels, rtol=1e-5)


GRID = js.schedules.karras(4, 0.05, 10.0)


def test_eps_zero_equals_inner(gmm, getkey):
    """eps = 0 answers exactly the inner oracle, and the stochastic sampler's noise is untouched."""
    inner = js.oracles.Exact(gmm)
    sampler = js.samplers.EulerAncestral()
    key = getkey()
    ref = js.sample(inner, sampler, GRID, key, num_samples=4)
    for kind in ("gaussian", "bias"):
        res = js.sample(js.oracles.Noisy(inner, 0.0, kind=kind), sampler, GRID, key, num_samples=4)
        np.testing.assert_array_equal(res.x, ref.x)
        np.testing.assert_array_equal(res.stats.queries, ref.stats.queries)


def test_gaussian_kind_own_stream(gmm, getkey):
    """Query k of a chain adds eps * z_k / m_p(d), z_k = normal(fold_in(own key, k)); masked calls don't advance."""
    d = gmm.dim
    inner = js.oracles.Exact(gmm)
    oracle = js.oracles.Noisy(inner, 0.3, 4.0, kind="gaussian")
    okey = getkey()
    st = oracle.init(okey, d)
    ledger = Ledger.empty(10, 10, jnp.float32)
    x = jnp.linspace(-1.0, 1.0, d)
    own = jax.random.fold_in(okey, 0x4E6F6973)
    c = 0.3 / float(chi_norm(d, 4.0))
    k = 0
    query = eqx.filter_jit(lambda o, st, ledger, when: charged_query(o, x, 0.5, st, ledger, when=when))
    for when in (True, False, True, True):
        s, st, ledger = query(oracle, st, ledger, jnp.asarray(when))
        if when:
            expected = gmm.score(x, 0.5) + c * jax.random.normal(jax.random.fold_in(own, k), (d,))
            np.testing.assert_allclose(s, expected, rtol=1e-5, atol=1e-6)
            k += 1
    assert int(st.count) == 3 and int(ledger.queries) == 3


def test_custom_kind_unit_contract(gmm, getkey):
    """Without `target=`, a callable kind is used as given (the caller promises unit L^p size)."""
    e1 = jnp.zeros(gmm.dim).at[0].set(1.0)
    oracle = js.oracles.Noisy(js.oracles.Exact(gmm), 0.3, kind=lambda x, s, k: e1)
    assert oracle.calib_log_norms is None
    x = jnp.linspace(-1.0, 1.0, gmm.dim)
    s, _ = oracle.query(x, 0.5, oracle.init(getkey(), gmm.dim))
    np.testing.assert_allclose(s - gmm.score(x, 0.5), 0.3 * e1, atol=1e-6)


def test_bias_direction_fixed_per_level(gmm, getkey):
    oracle = js.oracles.Noisy(js.oracles.Exact(gmm), 0.3, kind="bias")
    st = oracle.init(getkey(), gmm.dim)
    x1, x2 = jnp.zeros(gmm.dim), jnp.ones(gmm.dim)
    e = lambda x, s: oracle.query(x, s, st)[0] - gmm.score(x, s)  # noqa: E731
    np.testing.assert_allclose(e(x1, 0.5), e(x2, 0.5), atol=1e-6)
    assert float(jnp.linalg.norm(e(x1, 0.5) - e(x1, 0.7))) > 0.01
    # shared key: identical directions in every chain
    shared = js.oracles.Noisy(js.oracles.Exact(gmm), 0.3, kind="bias", key=jax.random.key(3))
    a = shared.query(x1, 0.5, shared.init(getkey(), gmm.dim))[0]
    b = shared.query(x1, 0.5, shared.init(getkey(), gmm.dim))[0]
    np.testing.assert_array_equal(a, b)


def test_sweeping_eps_and_p_never_retraces(gmm, getkey):
    inner = js.oracles.Exact(gmm)
    sampler = js.samplers.EulerAncestral()
    key = getkey()
    outs = [js.sample(js.oracles.Noisy(inner, 0.0), sampler, GRID, key, num_samples=4).x]
    before = TRACE_COUNTS["sample"]
    for eps, p in [(0.1, 2.0), (0.2, 1.0), (0.5, 4.0), (1.0, 3.0)]:
        o = js.oracles.Noisy(inner, eps, p, kind="gaussian")
        outs.append(js.sample(o, sampler, GRID, key, num_samples=4).x)
    assert TRACE_COUNTS["sample"] == before
    assert not np.array_equal(outs[0], outs[1])
    lv = np.asarray(GRID[:-1])
    js.sample(js.oracles.Noisy(inner, 0.1 * jnp.ones(4), kind="bias", sigmas=lv), sampler, GRID, key,
              num_samples=4)
    before = TRACE_COUNTS["sample"]
    for scale in (0.2, 0.3):
        o = js.oracles.Noisy(inner, scale * jnp.arange(1.0, 5.0), kind="bias", sigmas=lv)
        js.sample(o, sampler, GRID, key, num_samples=4)
    assert TRACE_COUNTS["sample"] == before


def test_noisy_errors(gmm):
    inner = js.oracles.Exact(gmm)
    with pytest.raises(ValueError, match="eps"):
        js.oracles.Noisy(inner, -0.1)
    with pytest.raises(ValueError, match="eps"):
        js.oracles.Noisy(inner, jnp.array([0.1, -0.1]), sigmas=[1.0, 0.5])
    with pytest.raises(ValueError, match="eps"):
        js.oracles.Noisy(inner, float("nan"))
    with pytest.raises(ValueError, match="p"):
        js.oracles.Noisy(inner, 0.1, p=0.5)
    with pytest.raises(ValueError, match="kind"):
        js.oracles.Noisy(inner, 0.1, kind="uniform")
    with pytest.raises(ValueError, match="sigmas"):
        js.oracles.Noisy(inner, jnp.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="entries"):
        js.oracles.Noisy(inner, jnp.array([0.1, 0.2]), sigmas=[3.0, 2.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="target"):
        js.oracles.Noisy(js.oracles.Noisy(inner, 0.1), 0.1, kind="relative")
    with pytest.raises(TypeError):
        js.oracles.Noisy(gmm, 0.1)


# ------------------------------------------------------------------------------ score_error


@pytest.mark.parametrize("p", PS)
def test_score_error_ci_covers_closed_form(p, getkey):
    """Oracle = exact score of N(m, v1) against target N(m, v2): |e| = |1/a1 - 1/a2| sqrt(a2) chi_d."""
    d, v1, v2, sigma = 5, 0.5, 1.3, 0.7
    m = jnp.arange(d, dtype=jnp.float32) / d
    oracle = js.oracles.Exact(js.targets.Gaussian(m, v1))
    target = js.targets.Gaussian(m, v2)
    a1, a2 = v1 + sigma**2, v2 + sigma**2
    exact = abs(1 / a1 - 1 / a2) * np.sqrt(a2) * float(chi_norm(d, p))
    key = getkey()
    r = js.metrics.score_error(oracle, target, sigma, key, p=p, n=8192, level=LEVEL)
    assert r.lower <= exact <= r.upper
    assert_within_se(r.estimate, exact, r.se, k=5)
    assert r.lower < r.estimate < r.upper and r.n == 8192 and r.p == p
    if p == 2.0:  # a profile's entry i equals score_error at sigmas[i] (common random numbers)
        prof = js.metrics.score_error_profile(oracle, target, [sigma, 2 * sigma], key, p=p, n=8192)
        np.testing.assert_allclose(prof.estimate[0], r.estimate, rtol=1e-6)
        assert prof.estimate.shape == (2,) and prof.sigma[1] == 2 * sigma


def test_score_error_mean_shift_p2(getkey):
    d, sigma = 3, 0.4
    m1, m2 = jnp.array([0.3, 0.0, -0.2]), jnp.zeros(d)
    oracle = js.oracles.Exact(js.targets.Gaussian(m1, 0.5))
    target = js.targets.Gaussian(m2, 1.0)
    a1, a2 = 0.5 + sigma**2, 1.0 + sigma**2
    exact = np.sqrt(float(jnp.sum((m1 - m2) ** 2)) / a1**2 + d * a2 * (1 / a1 - 1 / a2) ** 2)
    r = js.metrics.score_error(oracle, target, sigma, getkey(), n=8192, level=LEVEL)
    assert r.lower <= exact <= r.upper


def test_score_error_errors(gmm, getkey):
    oracle = js.oracles.Exact(gmm)
    with pytest.raises(ValueError, match="sigma"):
        js.metrics.score_error(oracle, gmm, 0.0, getkey())
    with pytest.raises(ValueError, match="p"):
        js.metrics.score_error(oracle, gmm, 1.0, getkey(), p=0.5)
    with pytest.raises(ValueError, match="dim"):
        js.metrics.score_error(js.oracles.Exact(js.targets.Gaussian(jnp.zeros(2), 1.0)), gmm, 1.0, getkey())
    with pytest.raises(TypeError):
        js.metrics.score_error(oracle, oracle, 1.0, getkey())


def test_chi_log_moment_stable():
    # large d: log-space formula stays finite; p = 2 gives E chi^2 = d exactly
    for d in (1, 7, 10_000):
        np.testing.assert_allclose(np.exp(float(chi_log_moment(d, 2.0))), d, rtol=1e-4)
    assert np.isfinite(float(chi_norm(10**6, 4.0)))
