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


def test_float32_trajectory_is_not_zero_at_d2000():
    """float32: ``log M = R d = 600`` once overflowed ``exp`` (P = 0 for every chain); the
    single-precision sides now track float64 on the same queries."""
    from jscore.lowerbound import trajectory
    from jscore.lowerbound.scalar import Trajectory

    d, rate, eps = 2000.0, 0.3, 1 / 2000
    sc = 1.0 / math.sqrt(math.expm1(2 * rate))
    rng = np.random.default_rng(0)
    sig = sc * np.exp(rng.uniform(-0.25, 0.2, (64, 6)))
    chi = rng.chisquare(d - 1, sig.shape)
    g = rng.standard_normal(sig.shape)
    r = math.sqrt(d)
    xi = np.sqrt(r * r + 2 * sig * r * g + sig * sig * (g * g + chi))
    out = {}
    for x64 in (False, True):
        with jax.enable_x64(x64):
            ft = jnp.float64 if x64 else jnp.float32
            t = Trajectory(jnp.asarray(xi, ft), jnp.asarray(sig, ft), jnp.zeros(sig.shape, ft),
                           jnp.ones(sig.shape, bool))
            b = jax.jit(lambda t: trajectory.assemble(t, d, rate, eps, estimate=False))(t)
            out[x64] = [np.asarray(v, np.float64) for v in (b.p_lower, b.p_upper)]
    for v32, v64 in zip(out[False], out[True]):
        assert np.all(np.isfinite(v32)) and np.mean(v64) > 0.3
        assert abs(np.mean(v32) - np.mean(v64)) < 0.05, (np.mean(v32), np.mean(v64))


# ------------------------------------------------------------------ K*_lo, K*_hi for Euler, d = 1600
# An independent float64 implementation: numpy/scipy only (Debye series for the Bessel functions,
# Gauss-Laguerre / Gauss-Legendre quadrature for caps, vMF tails and the liquid bulk).
_GLAG = np.polynomial.laguerre.laggauss(60)
_GLEG = np.polynomial.legendre.leggauss(240)


def _log_bessel_i(nu, x):
    """log I_nu(x), uniform (Debye) expansion to 1/nu^3 (nu ~ 800 here: ~1e-12 relative)."""
    z = x / nu
    sq = np.sqrt(1 + z * z)
    pp = 1 / sq
    u1 = (3 * pp - 5 * pp**3) / 24
    u2 = (81 * pp**2 - 462 * pp**4 + 385 * pp**6) / 1152
    u3 = (30375 * pp**3 - 369603 * pp**5 + 765765 * pp**7 - 425425 * pp**9) / 414720
    eta = sq + np.log(z / (1 + sq))
    return (-0.5 * np.log(2 * np.pi * nu) + nu * eta - 0.5 * np.log(sq)
            + np.log1p(u1 / nu + u2 / nu**2 + u3 / nu**3))


def _lam_a(kappa, d):
    nu = d / 2 - 1
    li = _log_bessel_i(nu, kappa)
    lam = special.gammaln(d / 2) + nu * np.log(2 / kappa) + li
    return lam, np.exp(_log_bessel_i(nu + 1, kappa) - li)


def _log_cap(t, d):
    """log S_d(t) = log P(u_1 >= t), u uniform on S^{d-1}."""
    a, a3 = (d - 1) / 2, (d - 3) / 2
    t = np.asarray(t, float)
    out = np.empty_like(t)
    small = t < 0.3
    ts = t[small]
    i = special.betainc(a, 0.5, 1 - ts * ts)
    out[small] = np.where(ts >= 0, np.log(0.5 * i), np.log1p(-0.5 * i))
    tb = np.minimum(t[~small], 1 - 1e-15)
    x, w = _GLAG
    one_m = 1 - tb * tb
    s = np.sqrt(1 - one_m[:, None] * np.exp(-x[None, :] / a3))
    integ = np.sum(w[None, :] * np.exp(-x[None, :] / a3) / s, axis=1)
    log_cd = special.gammaln(d / 2) - special.gammaln(a) - 0.5 * np.log(np.pi)
    out[~small] = log_cd + (a3 + 1) * np.log(one_m) - np.log(2 * a3) + np.log(integ)
    out[t >= 1] = -np.inf
    return out


def _log_integral(phi, dphi, lo, hi):
    """log int_lo^hi exp(phi(s)) ds (Gauss-Legendre, log-sum-exp); arrays of intervals."""
    x, w = _GLEG
    mid, half = 0.5 * (hi + lo), 0.5 * (hi - lo)
    s = mid[:, None] + half[:, None] * x[None, :]
    v = phi(s)
    m = np.max(v, axis=1, keepdims=True)
    return m[:, 0] + np.log(np.sum(w[None, :] * np.exp(v - m), axis=1) * half)


def _concave_window(dphi, hi, idx):
    """Interval below ``hi`` that holds all but e^{-60} of exp(phi) (phi concave on (-1, 1))."""
    g = dphi(hi, idx)
    lo = np.where(g > 0, hi - 60 / np.maximum(g, 1e-300), -1.0)
    # mode below hi: bisection for phi' = 0, then +-15 curvature widths
    a, b = np.full_like(hi, -1 + 1e-12), hi.copy()
    for _ in range(80):
        m = 0.5 * (a + b)
        pos = dphi(m, idx) > 0
        a, b = np.where(pos, m, a), np.where(pos, b, m)
    mode = 0.5 * (a + b)
    h = 1e-7
    curv = -(dphi(mode + h, idx) - dphi(mode - h, idx)) / (2 * h)
    wdt = 1 / np.sqrt(np.maximum(curv, 1e-300))
    lo = np.where(g > 0, lo, mode - 15 * wdt)
    hi2 = np.where(g > 0, hi, np.minimum(hi, mode + 15 * wdt))
    return np.maximum(lo, -1 + 1e-12), hi2


def _sides_np(xi, sigma, d, log_m, eps, p=2.0):
    """(lower, upper) of the informative probability, per query (docs/certified_bound.md §1)."""
    r = math.sqrt(d)
    a3 = (d - 3) / 2
    kappa = r * xi / sigma**2
    lam, A = _lam_a(kappa, d)
    B = 2 * r / sigma**2
    log_lam = math.log(0.5) + p * (np.log(eps / (2 * B)))
    tband = math.log(2) - log_lam
    s2 = sigma**2
    half = 2 * np.sqrt((d * s2 * s2 + 2 * r * r * s2) * tband)
    x2 = xi * xi
    band = (x2 >= r * r + d * s2 - half) & (x2 <= r * r + d * s2 + half + 2 * s2 * tband)
    cond = 0.5 * np.log1p(1 / s2) >= log_m / d
    # LR test
    t_lr = (log_m + log_lam + lam) / kappa
    log_n = np.where(t_lr >= 1, -np.inf, log_m + _log_cap(np.clip(t_lr, -1, 1), d))
    lr_lo = -np.expm1(-np.exp(np.minimum(log_n, 700)))
    log_cd = special.gammaln(d / 2) - special.gammaln((d - 1) / 2) - 0.5 * math.log(math.pi)
    n = xi.size
    idx_all = np.arange(n)

    def psi(s, idx):
        return kappa[idx, None] * s - lam[idx, None] + log_cd + a3 * np.log1p(-s * s)

    def dpsi(s, idx):
        return kappa[idx] - 2 * a3 * s / (1 - s * s)

    tail = np.zeros(n)
    inside = (t_lr > -1) & (t_lr < 1) & (dpsi(np.clip(t_lr, -0.999, 0.999), idx_all) > 0)
    ii = idx_all[inside]
    if ii.size:
        hi = t_lr[ii]
        lo = np.maximum(hi - 60 / dpsi(hi, ii), -1 + 1e-12)
        tail[ii] = np.exp(_log_integral(lambda s: psi(s, ii), None, lo, hi))
    tail[(t_lr >= 1) | ((t_lr < 1) & ~inside & (t_lr > -1))] = 1.0
    lr_hi = np.minimum(np.exp(np.minimum(np.logaddexp(log_n, np.log(np.maximum(tail, 1e-300))
                                                      - log_lam), 700)), 1.0)
    # difference test (liquid model): g(t) = (r/s^2)^2 (e^{kappa t - Lambda}/M)^2 (1 - 2At + A^2)
    lg0 = 2 * (np.log(r / s2) - lam - log_m)
    log_d2 = 2 * math.log(eps / 2)

    def log_g(t, idx):
        return lg0[idx] + 2 * kappa[idx] * t + np.log(1 - 2 * A[idx] * t + A[idx] ** 2)

    a, b = np.full(n, -1.0), np.ones(n)
    for _ in range(80):
        m = 0.5 * (a + b)
        up = log_g(m, idx_all) >= log_d2
        a, b = np.where(up, a, m), np.where(up, m, b)
    never = log_g(np.ones(n), idx_all) < log_d2
    t_g = np.where(never, np.inf, b)
    log_ng = np.where(never, -np.inf, log_m + _log_cap(np.clip(t_g, -1, 1), d))
    diff_lo = -np.expm1(-np.exp(np.minimum(log_ng, 700)))

    def phi(s, idx):
        return (log_m[idx, None] + lg0[idx, None] + 2 * kappa[idx, None] * s
                + np.log(1 - 2 * A[idx, None] * s + A[idx, None] ** 2) + log_cd
                + a3 * np.log1p(-s * s))

    def dphi(s, idx):
        return (2 * kappa[idx] - 2 * A[idx] / (1 - 2 * A[idx] * s + A[idx] ** 2)
                - 2 * a3 * s / (1 - s * s))

    hi = np.minimum(np.where(never, 1.0, t_g), 1 - 1e-12)
    lo, hi = _concave_window(dphi, hi, idx_all)
    log_bulk = _log_integral(lambda s: phi(s, idx_all), None, lo, hi)
    diff_hi = np.minimum(np.exp(np.minimum(np.logaddexp(log_ng, log_bulk - log_d2), 700)), 1.0)
    lower = band * np.where(cond, lr_lo, np.minimum(diff_lo, lr_hi))
    upper = band * np.where(cond, lr_hi, np.minimum(lr_hi, diff_hi))
    return np.minimum(lower, upper), upper


def _euler_success(K, d, xi0s, us, rates, eps):
    """Mean over (initial norm, offset, rate) grids of the two sides for Euler on K levels."""
    r = math.sqrt(d)
    delta = math.log(1000.0) / K
    sig = 20.0 * np.exp(-(np.arange(K)[None, :] + us[:, None]) * delta)  # (U, K)
    xis = []
    for xi0 in xi0s:
        y = xi0 * sig[:, 0]
        col = []
        for k in range(K):
            s = sig[:, k]
            col.append(y.copy())
            s_next = sig[:, k + 1] if k + 1 < K else np.zeros_like(s)
            _, A = _lam_a(r * y / s**2, d)
            ratio = s_next / s
            y = (ratio + (1 - ratio) * r * A / y) * y
        xis.append(np.stack(col, 1))
    xi = np.concatenate(xis)  # (X U, K)
    sg = np.tile(sig, (len(xi0s), 1))
    lo_tot = hi_tot = 0.0
    for rate in rates:
        log_m = rate * d
        lo, hi = _sides_np(xi.ravel(), sg.ravel(), d, np.full(xi.size, log_m), eps)
        lo_tot += np.mean(lo.reshape(xi.shape).max(1))
        hi_tot += np.mean(np.minimum(hi.reshape(xi.shape).sum(1), 1.0))
    return lo_tot / len(rates), hi_tot / len(rates)


def _kstar_np(fn, k0=6):
    vals = {}
    k = k0
    assert fn(k) < 0.5
    while fn(k) < 0.5:
        vals[k] = fn(k)
        k += 1
    vals[k] = fn(k)
    a, b = vals[k - 1], vals[k]
    return k - 1 + (0.5 - a) / (b - a)


@pytest.mark.slow
def test_kstar_euler_d1600_against_independent_computation(x64):
    """K*_lo and K*_hi of Euler at d = 1600 (about 10.0 and 10.5) against the numpy/scipy
    implementation above, within the Monte-Carlo interval; lower <= upper and monotone curves."""
    from jscore.lowerbound import scaling as sc

    d, eps = 1600.0, 1 / 1600
    # independent: midpoint grids over the offset (32) and the rate (16), two chi quantiles of
    # the initial norm |y_0| / sigma_0
    us = (np.arange(32) + 0.5) / 32
    rates = 0.15 + 0.3 * (np.arange(16) + 0.5) / 16
    xi0s = np.sqrt(stats_chi2_ppf([1 / 4, 3 / 4], d))
    cache = {}

    def succ(K):
        if K not in cache:
            cache[K] = _euler_success(K, d, xi0s, us, rates, eps)
        return cache[K]

    k_lo_np = _kstar_np(lambda K: succ(K)[1], 9)
    k_hi_np = _kstar_np(lambda K: succ(K)[0], 9)
    # the package: randomly shifted lattices, MC interval over replicates
    width = 3.29 * math.sqrt(math.log(d / eps) / d)
    draws = sc.SamplerDraws("euler", d, eps, 2.0, width, key=jax.random.key(0), n_points=64,
                            n_reps=6)
    klo, khi, curves = sc.kstar_sides(draws, 10.0)
    for ks, ref in ((klo, k_lo_np), (khi, k_hi_np)):
        m, h = sc.mc_interval(ks)
        assert abs(m - ref) <= max(2 * h, 0.01 * ref), (m, h, ref, k_lo_np, k_hi_np)
    assert k_lo_np <= k_hi_np
    for lo, hi, _ in curves.values():  # lower <= upper at every K and replicate
        assert np.all(lo <= hi)
    ks = sorted(curves)
    for a, b in zip(ks, ks[1:]):  # common random numbers: monotone in K, replicate by replicate
        assert np.all(curves[b][0] >= curves[a][0] - 1e-12)
        assert np.all(curves[b][1] >= curves[a][1] - 1e-12)


def stats_chi2_ppf(q, d):
    from scipy import stats

    return stats.chi2.ppf(q, d)
