"""Both sides of the informative-probability bracket (docs/certified_bound.md).

Per query: the likelihood-ratio test's rigorous bracket against a direct Monte-Carlo of the
codebook cosines (numpy/scipy, no package functions), the vMF tail bound against quadrature,
``lower <= upper`` everywhere.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special

from jscore.lowerbound import informative as inf


def _log_mgf(kappa, d):
    """``Lambda_d(kappa) = log E[e^{kappa T}]`` for the uniform cosine, via scipy's Bessel I."""
    nu = d / 2.0 - 1.0
    return special.gammaln(d / 2.0) + nu * math.log(2.0 / kappa) + math.log(special.ive(nu, kappa)) + kappa


@pytest.mark.parametrize("d", [5.0, 40.0, 400.0])
def test_vmf_tail_bound_against_quadrature(x64, d):
    for kappa in (0.05 * d, 0.75 * d, 7.5 * d):
        lam = _log_mgf(kappa, d)
        logc = -special.betaln((d - 1) / 2, 0.5)
        dens = lambda t: math.exp(kappa * t - lam + logc + (d - 3) / 2 * math.log1p(-t * t))  # noqa: E731
        for t0 in (-0.5, 0.0, 0.3, 0.7, 0.95):
            exact = integrate.quad(dens, -1.0, t0, limit=400, epsabs=0.0, epsrel=1e-10)[0]
            bound = math.exp(float(inf.log_vmf_lower_tail_bound(t0, kappa, d)))
            assert bound >= exact * (1 - 1e-7) - 1e-300, (d, kappa, t0, bound, exact)
            if 0 < exact < 1e-6:  # deep tail: the tangent bound is tight (Mills ratio)
                assert bound <= 1.2 * exact, (d, kappa, t0, bound, exact)
    assert float(inf.log_vmf_lower_tail_bound(-1.0, 3.0, d)) == -math.inf
    assert float(inf.log_vmf_lower_tail_bound(1.0, 3.0, d)) == 0.0


def test_lr_bracket_against_codebook_monte_carlo(x64):
    """``1 - exp(-N) <= P(L >= lambda) <= N + P_vMF(i < u)/lambda`` with ``L`` from M sampled
    cosines (uniform-sphere marginal T = 2 Beta(a, a) - 1, a = (d-1)/2), at several sigma."""
    d, rate, eps, p, n_books = 30, 0.25, 0.05, 2.0, 1500
    log_m = inf.effective_log_m_py(d, rate)
    M = round(math.exp(log_m))
    r = math.sqrt(d)
    sc = 1.0 / math.sqrt(math.expm1(2 * log_m / d))
    rng = np.random.default_rng(0)
    checked = 0
    for ratio in (0.4, 0.45, 0.5):
        sigma = ratio * sc
        xi = math.sqrt(r * r + d * sigma * sigma)  # a band-typical norm
        kappa = r * xi / sigma**2
        lam_d = _log_mgf(kappa, d)
        b = 2 * r / sigma**2
        lam = 0.5 * (eps / (2 * b)) ** p
        t = 2.0 * rng.beta((d - 1) / 2, (d - 1) / 2, size=(n_books, M)) - 1.0
        log_l = special.logsumexp(kappa * t - lam_d, axis=1) - math.log(M)
        mc = float(np.mean(log_l >= math.log(lam)))
        se = math.sqrt(max(mc * (1 - mc), 1.0 / n_books) / n_books)
        s = inf.informative_sides(xi, sigma, float(d), None, eps, p, log_m=log_m)
        lo, hi = float(s.lr_lower), float(s.lr_upper)
        assert lo <= hi
        assert lo - 4 * se <= mc <= hi + 4 * se, (ratio, lo, mc, hi, se)
        checked += 0.02 < mc < 0.98
    assert checked >= 2  # the check ran where the probability is neither 0 nor 1


def test_sides_ordered_and_contain_default_on_the_condensed_side(x64):
    for d, rate, eps in ((40.0, 0.25, 0.05), (1e5, 0.2, 1e-5)):
        log_m = inf.effective_log_m_py(d, rate)
        sc = 1.0 / math.sqrt(math.expm1(2 * log_m / d))
        g, c = inf.typical_norm_draws(jax.random.key(1), d, 200)
        sig = sc * jnp.exp(jnp.linspace(-1.0, 1.0, 61))[:, None]
        xi = inf.typical_norm(sig, g, c, d)
        f = jax.jit(lambda x, s, lm, d=d, eps=eps: (
            inf.informative_sides(x, s, d, None, eps, 2.0, log_m=lm),
            inf.informative_probability(x, s, d, None, eps, 2.0, log_m=lm)))
        s, est = f(xi, sig, log_m)
        lo, hi, e = (np.asarray(v) for v in (s.lower, s.upper, est))
        assert np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))
        assert np.all((0 <= lo) & (lo <= hi) & (hi <= 1))
        assert np.all(np.asarray(s.lr_lower) <= np.asarray(s.lr_upper))
        assert np.all(np.asarray(s.diff_lower) <= np.asarray(s.diff_upper))
        cond = np.broadcast_to(np.asarray(s.condensed), lo.shape)
        np.testing.assert_allclose(lo[cond], e[cond], atol=1e-12)  # default = lower side there
        assert np.all(e[~cond] >= lo[~cond] - 1e-12)
        # the sides differ where the probability is intermediate
        mid = (e > 0.1) & (e < 0.9)
        assert mid.any() and np.mean(hi[mid] - lo[mid]) > 0.01
