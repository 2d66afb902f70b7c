"""Bessel layer (Lambda_d, A_d) and the UniformSphere reference target (docs/construction.md §3.3, 11.1-2)."""

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

import jscore as js
from jscore.lowerbound import bessel
from jscore.lowerbound.bessel import (
    DEBYE_POLYNOMIALS,
    bessel_ratio,
    bessel_ratio_derivative,
    log_bessel_mgf,
    log_bessel_mgf_and_ratio,
    log_bessel_mgf_np_reference,
)
from helpers import assert_within_se

# -------------------------------------------------------------------------------- Bessel layer


def test_debye_polynomials_match_dlmf():
    F = Fraction
    spec = {
        1: {1: F(3, 24), 3: F(-5, 24)},
        2: {2: F(81, 1152), 4: F(-462, 1152), 6: F(385, 1152)},
        3: {3: F(30375, 414720), 5: F(-369603, 414720), 7: F(765765, 414720),
            9: F(-425425, 414720)},
        4: {4: F(4465125, 39813120), 6: F(-94121676, 39813120), 8: F(349922430, 39813120),
            10: F(-446185740, 39813120), 12: F(185910725, 39813120)},
    }
    for k, poly in spec.items():
        assert DEBYE_POLYNOMIALS[k] == poly
    # u_k(1) are the Stirling-type coefficients: log(1 + sum u_k(1)/nu^k) = -sum_j B_{2j}/(2j(2j-1) nu^(2j-1))
    # (the Debye expansion at z = 0 must cancel Stirling's series); check the first few exactly.
    u1 = sum(DEBYE_POLYNOMIALS[1].values())
    u2 = sum(DEBYE_POLYNOMIALS[2].values())
    assert u1 == F(-1, 12) and u2 == F(1, 288)


def _reference_grid(max_kappa, dims=(1, 2, 3, 5, 10, 40, 100, 121, 122, 123, 150, 400, 1000, 4096)):
    for d in dims:
        for ratio in [1e-6, 1e-3, 0.1, 0.5, 1.0, 3.0, 10.0, 100.0]:
            if ratio * d <= max_kappa:
                yield d, ratio * d


def _max_errors(grid):
    worst_l = worst_a = 0.0
    for d, kappa in grid:
        lr, ar = log_bessel_mgf_np_reference(kappa, d)
        lam, a = log_bessel_mgf_and_ratio(jnp.float64(kappa), d)
        worst_l = max(worst_l, abs(float(lam) - lr) / max(1.0, abs(lr)))
        worst_a = max(worst_a, abs(float(a) - ar) / ar)
    return worst_l, worst_a


def test_bessel_against_40_digit_series(x64):
    """Spec 11.1: |dLambda| <= 3e-15 max(1,|Lambda|), |dA|/A <= 6e-15 (measured 7e-16 / 4e-16)."""
    worst_l, worst_a = _max_errors(_reference_grid(2500, (1, 2, 3, 10, 40, 121, 122, 123, 1000)))
    assert worst_l <= 3e-15, worst_l
    assert worst_a <= 6e-15, worst_a


@pytest.mark.slow
def test_bessel_against_series_large_d(x64):
    grid = list(_reference_grid(2e5))
    grid += [(d, r * d) for d in [1e4, 1e5, 1e6] for r in [0.3, 1.0, 3.0] if r * d <= 1.2e6]
    grid += [(4096, 4096 * 100.0), (1e4, 2e5)]
    worst_l, worst_a = _max_errors(grid)
    assert worst_l <= 3e-15, worst_l
    assert worst_a <= 6e-15, worst_a


def test_bessel_against_scipy_ive(x64):
    """Where ive does not underflow: A_d = ive(nu+1)/ive(nu), Lambda from log ive (+ cancellation)."""
    for d in [2, 3, 7, 40, 122, 300]:
        nu = d / 2 - 1
        for kappa in np.array([1e-2, 0.3, 1.0, 5.0, 30.0]) * d:
            i0, i1 = special.ive(nu, kappa), special.ive(nu + 1, kappa)
            if not (i0 > 1e-250 and i1 > 1e-250):
                continue
            a_ref = i1 / i0
            lam_ref = special.gammaln(nu + 1) + nu * np.log(2 / kappa) + np.log(i0) + kappa
            scale = abs(special.gammaln(nu + 1)) + abs(nu * np.log(2 / kappa)) + kappa
            lam, a = log_bessel_mgf_and_ratio(jnp.float64(kappa), d)
            assert abs(float(a) / a_ref - 1) < 2e-13, (d, kappa)
            assert abs(float(lam) - lam_ref) < 1e-14 * scale + 1e-15, (d, kappa)


def test_closed_forms_d1_d3(x64):
    k = jnp.asarray([1e-4, 0.3, 2.0, 40.0, 700.0])
    np.testing.assert_allclose(log_bessel_mgf(k, 1), np.log(np.cosh(np.asarray(k))), rtol=2e-15,
                               atol=1e-16)
    np.testing.assert_allclose(bessel_ratio(k, 1), np.tanh(np.asarray(k)), rtol=2e-15)
    kk = np.asarray(k)
    lam3 = kk + np.log1p(-np.exp(-2 * kk)) - np.log(2 * kk)  # log(sinh k / k)
    # the reference cancels terms of size ~k + |log(2k)|: its own rounding error is ~eps times
    # that sum over |lam3| (1.5e-14 relative at k = 0.3), so the tolerance is derived from it
    ref_err = 8 * np.finfo(np.float64).eps * (kk + np.abs(np.log1p(-np.exp(-2 * kk))) + np.abs(np.log(2 * kk)))
    np.testing.assert_array_less(np.abs(np.asarray(log_bessel_mgf(k, 3)) - lam3)[1:], ref_err[1:])
    np.testing.assert_allclose(bessel_ratio(k, 3)[1:], (1 / np.tanh(kk) - 1 / kk)[1:], rtol=1e-13)


def test_autodiff_lambda_prime_is_A(x64):
    for d in [3, 122, 10**5]:
        k = jnp.asarray([1e-3, 0.2, 1.0, 5.0, 50.0]) * d

        @jax.jit
        def grads(k):
            g = jax.vmap(jax.grad(lambda t: log_bessel_mgf(t, d)))(k)
            ga = jax.vmap(jax.grad(lambda t: bessel_ratio(t, d)))(k)
            return g, ga, bessel_ratio(k, d), bessel_ratio_derivative(k, d)

        g, ga, a, da = grads(k)
        np.testing.assert_allclose(g, a, rtol=3e-14, err_msg=f"d={d}")
        # and A' by autodiff against the closed form 1 - A^2 - (d-1) A / kappa
        np.testing.assert_allclose(ga, da, rtol=1e-9, atol=1e-15)


def test_regime2_recurrence_identities(x64):
    """Lambda_m = Lambda_{m+2} + log1p(k A_{m+2}/m), A_m = k/(m + k A_{m+2}) across regimes."""
    k = jnp.asarray([1e-3, 0.5, 3.0, 60.0, 2000.0])
    for m in [2, 9, 119, 120, 121, 122]:
        lam_m, a_m = log_bessel_mgf_and_ratio(k, m)
        lam_p, a_p = log_bessel_mgf_and_ratio(k, m + 2)
        np.testing.assert_allclose(lam_m, lam_p + jnp.log1p(k * a_p / m), rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(a_m, k / (m + k * a_p), rtol=1e-14)


def test_small_and_large_kappa_limits(x64):
    for d in [2, 1000, 10**6]:
        lam, a = log_bessel_mgf_and_ratio(jnp.asarray([0.0, 1e-300, 1e-12 * d]), d)
        assert abs(float(lam[0])) < 1e-15 and float(a[0]) == 0.0
        np.testing.assert_allclose(a[1:], np.array([1e-300, 1e-12 * d]) / d, rtol=1e-12)
        big = jnp.asarray(1e8 * d)
        np.testing.assert_allclose(bessel_ratio(big, d), 1 - (d - 1) / (2 * 1e8 * d), rtol=1e-12)
    # symmetry: Lambda even, A odd
    np.testing.assert_allclose(log_bessel_mgf(-3.0, 10), log_bessel_mgf(3.0, 10), rtol=1e-15)
    np.testing.assert_allclose(bessel_ratio(-3.0, 10), -bessel_ratio(3.0, 10), rtol=1e-15)


def test_float32_path_finite_and_accurate():
    kappa = np.array([0.0, 1e-37, 1e-20, 1e-3, 1.0, 30.0, 1e4, 1e8, 1e20, 3e38], np.float32)
    for d in [1, 3, 121, 122, 10**6]:
        lam, a = log_bessel_mgf_and_ratio(jnp.asarray(kappa), d)
        assert lam.dtype == jnp.float32 and a.dtype == jnp.float32
        assert np.all(np.isfinite(lam)) and np.all(np.isfinite(a)), d
        assert np.all((a >= 0) & (a <= 1)) and np.all(lam >= -1e-6)
        with jax.enable_x64(True):
            lam64, a64 = log_bessel_mgf_and_ratio(jnp.asarray(kappa, jnp.float64), d)
        err = np.abs(np.asarray(lam, np.float64) - np.asarray(lam64))
        assert np.all(err <= 5e-7 * np.maximum(1.0, np.abs(lam64))), (d, err)  # a few float32 ulps
        np.testing.assert_allclose(a, a64, rtol=2e-6, atol=np.finfo(np.float32).tiny)


def test_bessel_jit_vmap_and_errors():
    f = jax.jit(lambda k: log_bessel_mgf_and_ratio(k, 50))
    lam, a = jax.vmap(f)(jnp.ones((3, 2)))
    assert lam.shape == (3, 2) and a.shape == (3, 2)
    with pytest.raises(TypeError, match="static"):
        log_bessel_mgf(1.0, jnp.asarray(3))
    with pytest.raises(ValueError, match=">= 1"):
        bessel_ratio(1.0, 0)
    assert bessel.NU0 == 60.0


# -------------------------------------------------------------------------------- UniformSphere


def test_sphere_score_is_grad_log_prob(x64, getkey):
    for d, sigma in [(50, 0.9)]:
        t = js.targets.UniformSphere(d, math.sqrt(d))
        xs = t.sample_noised(getkey(), sigma, 4)
        g, s = jax.jit(jax.vmap(lambda x: (jax.grad(t.log_prob)(x, sigma), t.score(x, sigma))))(xs)
        assert np.all(np.linalg.norm(g - s, axis=1) <= 1e-12 * np.linalg.norm(s, axis=1))
    # central finite differences of log q (spec 11.2: relative 2e-9 at d=50, sigma=0.9, h=1e-5)
    t = js.targets.UniformSphere(50, math.sqrt(50))
    x = t.sample_noised(getkey(), 0.9, 1)[0]
    h = 1e-5
    e = h * jnp.eye(50)
    lp = jax.jit(jax.vmap(lambda xx: t.log_prob(xx, 0.9)))
    fd = np.asarray((lp(x + e) - lp(x - e)) / (2 * h))
    s = np.asarray(t.score(x, 0.9))
    assert np.linalg.norm(fd - s) / np.linalg.norm(s) < 2e-8


def test_sphere_d1_is_two_point_mixture(x64):
    """d = 1: S_r = {-r, r}; q_sigma = (phi(x-r) + phi(x+r))/2."""
    t = js.targets.UniformSphere(1, 1.3)
    for x, s in [(0.2, 0.4), (-2.0, 1.0), (0.0, 0.3), (5.0, 0.2)]:
        xv = jnp.asarray([x])
        ref = np.log(0.5 * (np.exp(-(x - 1.3) ** 2 / (2 * s * s)) + np.exp(-(x + 1.3) ** 2 / (2 * s * s)))) - 0.5 * np.log(2 * np.pi * s * s)
        np.testing.assert_allclose(t.log_prob(xv, s), ref, rtol=1e-13)
        np.testing.assert_allclose(t.denoise(xv, s)[0], 1.3 * np.tanh(1.3 * x / s**2), rtol=1e-13,
                                   atol=1e-300)


@pytest.mark.parametrize("d", [3, 10])
def test_sphere_denoiser_vs_monte_carlo_tweedie(x64, getkey, d):
    """E[y | x] by self-normalised importance sampling over y ~ Q, with a delta-method SE."""
    r, sigma = math.sqrt(d), 0.8
    t = js.targets.UniformSphere(d, r)
    x = t.sample_noised(getkey(), sigma, 1)[0]
    ys = np.asarray(t.sample(getkey(), 200_000))
    logw = ys @ np.asarray(x) / sigma**2
    w = np.exp(logw - logw.max())
    wn = w / w.sum()
    est = wn @ ys
    se = np.sqrt(np.sum(wn[:, None] ** 2 * (ys - est) ** 2, axis=0))  # ratio-estimator SE
    assert_within_se(est, t.denoise(x, sigma), se, what="MC Tweedie")


def test_sphere_sampling(getkey):
    d, r = 7, 2.0
    t = js.targets.UniformSphere(d, r)
    y = np.asarray(t.sample(getkey(), 20_000))
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), r, rtol=1e-5)
    m, se = y.mean(0), y.std(0) / np.sqrt(len(y))
    assert_within_se(m, 0.0, se, what="sphere mean")
    x = np.asarray(t.sample_noised(getkey(), 0.7, 20_000), np.float64)
    n2 = (x * x).sum(1)
    assert_within_se(n2.mean(), r * r + d * 0.49, n2.std() / np.sqrt(len(n2)), what="|x|^2")


def test_sphere_float32_finite_everywhere(getkey):
    t = js.targets.UniformSphere(1000, math.sqrt(1000))
    xs = jnp.concatenate([t.sample_noised(getkey(), s, 2) for s in (1e-3, 1.0, 1e3)])
    f = jax.jit(jax.vmap(lambda x, s: (t.score(x, s), t.log_prob(x, s)), in_axes=(0, None)))
    for s in (1e-3, 1.0, 1e3):
        out = f(xs, s)
        assert all(np.all(np.isfinite(o)) for o in out)
    assert np.all(np.isfinite(t.score(jnp.zeros(1000), 0.5)))
    assert t.score(jnp.zeros(1000), 0.5).dtype == jnp.float32


def test_sphere_errors():
    with pytest.raises(ValueError, match="radius"):
        js.targets.UniformSphere(3, -1.0)
    with pytest.raises(TypeError):
        js.targets.UniformSphere(3.5, 1.0)
