"""Schedule families produce the grids they claim (independent formulas here), and the parser."""

import math

import numpy as np
import pytest

from jscore.lowerbound.schedule_families import (
    EDM, Geometric, Karras, User, VPLinear, family, sparsest)

SMIN, SMAX = 0.02, 20.0
ALL = ["geometric", "karras", "karras:3", "edm", "vp_linear", "cosine", "uniform"]


def _bisect(f, target, lo, hi):
    """Solve increasing f(u) = target on [lo, hi] by bisection (independent of closed forms)."""
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) < target else (lo, mid)
    return 0.5 * (lo + hi)


@pytest.mark.parametrize("spec", ALL)
def test_monotone_positive_endpoints(spec):
    g = family(spec).grid(12, SMIN, SMAX)
    assert g.shape == (12,) and np.all(g > 0) and np.all(np.diff(g) < 0)
    np.testing.assert_allclose([g[0], g[-1]], [SMAX, SMIN], rtol=1e-12)


def test_geometric_ratio_constant_and_offset():
    g = Geometric().grid(9, SMIN, SMAX)
    r = g[1:] / g[:-1]
    np.testing.assert_allclose(r, (SMIN / SMAX) ** (1 / 8), rtol=1e-12)
    g2 = Geometric().grid(9, SMIN, SMAX, offset=0.5)
    np.testing.assert_allclose(g2 / g, math.sqrt(r[0]), rtol=1e-12)


def test_karras_formula():
    K, rho = 18, 5.0
    i = np.arange(K)
    ref = (SMAX ** (1 / rho) + i / (K - 1) * (SMIN ** (1 / rho) - SMAX ** (1 / rho))) ** rho
    np.testing.assert_allclose(family("karras:5").grid(K, SMIN, SMAX), ref, rtol=1e-12)
    assert family("karras:5") == Karras(5.0)


def test_edm_defaults():
    g = EDM().grid(18)
    assert EDM().rho == 7.0
    np.testing.assert_allclose([g[0], g[-1]], [80.0, 0.002], rtol=1e-12)
    np.testing.assert_allclose(g, Karras(7.0).grid(18, 0.002, 80.0), rtol=1e-12)


def test_vp_linear_is_ddpm_betas():
    K, b0, b1 = 10, 0.1, 20.0
    # discrete DDPM: alpha_bar = prod(1 - beta_t/N); continuum limit exp(-int beta); sigma^2 = 1/abar - 1
    def sigma_of_u(u):
        n = 200_000
        t = (np.arange(n) + 0.5) / n * u
        log_abar = np.sum(np.log1p(-(b0 + (b1 - b0) * t) * (u / n)))
        return math.sqrt(math.exp(-log_abar) - 1.0)
    u_hi = _bisect(sigma_of_u, SMAX, 0.0, 1.0)
    u_lo = _bisect(sigma_of_u, SMIN, 0.0, 1.0)
    us = np.linspace(u_hi, u_lo, K)
    ref = np.array([sigma_of_u(u) for u in us])
    np.testing.assert_allclose(VPLinear().grid(K, SMIN, SMAX), ref, rtol=1e-4)


def test_cosine_alpha_bar():
    K, s = 8, 0.008
    f = lambda u: math.cos(math.pi * (u + s) / (2 * (1 + s))) ** 2  # noqa: E731
    sigma = lambda u: math.sqrt(f(0) / f(u) - 1.0)  # noqa: E731  abar = f(u)/f(0)
    u_hi, u_lo = _bisect(sigma, SMAX, 0.0, 0.999999), _bisect(sigma, SMIN, 0.0, 0.999999)
    ref = np.array([sigma(u) for u in np.linspace(u_hi, u_lo, K)])
    np.testing.assert_allclose(family("cosine").grid(K, SMIN, SMAX), ref, rtol=1e-9)


def test_uniform_and_user():
    np.testing.assert_allclose(family("uniform").grid(5, 1.0, 9.0), [9, 7, 5, 3, 1], rtol=1e-12)
    u = family("user:20,10,1")
    assert u == User((20.0, 10.0, 1.0))
    np.testing.assert_array_equal(u.grid(3), [20.0, 10.0, 1.0])
    with pytest.raises(ValueError, match="K=3"):
        u.grid(4)


@pytest.mark.parametrize("spec", ALL)
def test_offset_rescales_by_one_mean_log_step(spec):
    fam = family(spec)
    g0, g1 = fam.grid(7, SMIN, SMAX), fam.grid(7, SMIN, SMAX, offset=0.25)
    np.testing.assert_allclose(g1 / g0, math.exp(-0.25 * math.log(SMAX / SMIN) / 6), rtol=1e-12)


@pytest.mark.parametrize("bad, match", [
    ("karras:x", "Cannot read"), ("karras:1,2", "one number"), ("geometric:2", "no parameter"),
    ("ddim", "Unknown schedule"), ("user:", "needs its levels"), ("user:1,2", "decreasing"),
    ("karras:-1", "rho"), ("user:5,0", "positive")])
def test_parser_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        family(bad)


def test_grid_argument_errors():
    with pytest.raises(ValueError, match="K"):
        Geometric().grid(1, SMIN, SMAX)
    with pytest.raises(ValueError, match="sigma_min"):
        Geometric().grid(5, 2.0, 1.0)
    with pytest.raises(ValueError, match="offset"):
        Geometric().grid(5, SMIN, SMAX, offset=1.0)
    with pytest.raises(TypeError, match="spec"):
        family(7)


def test_sparsest():
    gap, where = sparsest([20.0, 10.0, 1.0])
    assert gap == pytest.approx(math.log(10.0)) and where == pytest.approx(math.sqrt(10.0))
    # the range's ends count: nothing below 1 inside [0.01, 20]
    gap, where = sparsest([20.0, 10.0, 1.0], 0.01, 20.0)
    assert gap == pytest.approx(math.log(100.0)) and where == pytest.approx(0.1)
    # geometric: every gap equal; Karras rho=7 has unequal log-steps, the widest one found
    g = Geometric().grid(11, SMIN, SMAX)
    assert sparsest(g)[0] == pytest.approx(math.log(SMAX / SMIN) / 10)
    k = Karras(7.0).grid(11, SMIN, SMAX)
    gap, where = sparsest(k)
    steps = -np.diff(np.log(k))
    assert gap == pytest.approx(steps.max()) and gap > math.log(SMAX / SMIN) / 10
    assert where == pytest.approx(math.sqrt(k[np.argmax(steps)] * k[np.argmax(steps) + 1]))
