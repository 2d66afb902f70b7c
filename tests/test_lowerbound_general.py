"""The general (full-vector) path of the lower-bound experiment (jscore.lowerbound.general)."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

import jscore as js
from jscore.counting import charged_query
from jscore.lowerbound.general import (
    FullVectorDraws,
    draws_for,
    has_scalar_reduction,
    resolve_sampler,
)
from jscore.lowerbound.scaling import SamplerDraws, kstar_sides
from jscore.samplers.base import AbstractFixedStepSampler

D = 400
EPS = 1.0 / D


class MyEuler(AbstractFixedStepSampler):
    """A user's Euler, written from the formula: y' = (s'/s) y + (1 - s'/s) D(y, s)."""

    @property
    def is_stochastic(self):
        return False

    def num_queries(self, num_steps, ends_at_zero):
        return num_steps

    def init(self, sigmas, x):
        return None

    def step(self, oracle, i, sigmas, x, state, ostate, ledger, key):
        s, s_next = sigmas[i], sigmas[i + 1]
        score, ostate, ledger = charged_query(oracle, x, s, ostate, ledger)
        denoised = x + s**2 * score
        return (s_next / s) * x + (1.0 - s_next / s) * denoised, state, ostate, ledger


def _width(d, eps):
    """Window width w(d) from its measured normalisation w sqrt(d / ln(d/eps)) ~ 3.26 (p = 2): it
    only sets the resolution of the level count, which both paths share."""
    return 3.26 * math.sqrt(math.log(d / eps) / d)


@pytest.fixture(scope="module")
def width():
    return _width(D, EPS)


def _paired_z(a, b):
    """Mean of the paired replicate differences over its standard error (replicates independent)."""
    diff = np.asarray(a, float) - np.asarray(b, float)
    se = diff.std(ddof=1) / math.sqrt(diff.size)
    return diff.mean(), se


def test_full_vector_matches_scalar_reduction_euler(width):
    """Same lattice, independent chain draws of the same law: both sides agree within 4 SE."""
    with jax.enable_x64(True):
        key = jax.random.key(5)
        full = FullVectorDraws("euler", D, EPS, 2.0, width, key=key, n_points=16, n_reps=8)
        scal = SamplerDraws("euler", D, EPS, 2.0, width, key=key, n_points=16, n_reps=8)
        for K in (5,):  # P in the middle of [0, 1] at d = 400
            f, s = full(K), scal(K)
            assert np.all(f[0] <= f[1] + 1e-12)
            for side in (0, 1):
                assert 0.05 < f[side].mean() < 0.95  # not a saturated comparison
                m, se = _paired_z(f[side], s[side])
                assert se > 0
                assert abs(m) < 4.0 * se, (K, side, m, se)
            assert f[2] == pytest.approx(s[2], abs=0.5)  # mean distinct levels in the band


D_SMALL, EPS_SMALL = 100, 0.01  # K* ~ 3: kstar_sides needs few distinct K (one compile each)


@pytest.fixture(scope="module")
def user_kstar():
    """A user's AbstractSampler through draws_for (full-vector path) and kstar_sides."""
    with jax.enable_x64(True):
        dm = draws_for(MyEuler(), D_SMALL, EPS_SMALL, 2.0, _width(D_SMALL, EPS_SMALL),
                       key=jax.random.key(8), n_points=8, n_reps=4)
        klo, khi, curves = kstar_sides(dm, 4.0)
    return dm, klo, khi, curves


def test_user_defined_sampler_runs_through_kstar_sides(user_kstar):
    dm, klo, khi, curves = user_kstar
    assert not has_scalar_reduction(MyEuler())
    assert has_scalar_reduction(js.samplers.Euler())
    assert isinstance(dm, FullVectorDraws)
    assert np.all(np.isfinite(klo)) and np.all(klo <= khi + 1e-9)
    for lo, hi, _ in curves.values():
        assert np.all(lo <= hi + 1e-12) and np.all((lo >= 0) & (hi <= 1))
    # same keys and x0, the same update up to rounding: the catalogue Euler's full-vector draws
    K = sorted(curves)[0]
    with jax.enable_x64(True):
        de = FullVectorDraws(js.samplers.Euler(), D_SMALL, EPS_SMALL, 2.0,
                             _width(D_SMALL, EPS_SMALL), key=jax.random.key(8), n_points=8,
                             n_reps=4)
        b = de(K)
    np.testing.assert_allclose(curves[K][0], b[0], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(curves[K][1], b[1], rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_user_defined_sampler_kstar_matches_scalar_euler(user_kstar):
    """K* of the user's Euler (full vectors) against the catalogue Euler's scalar reduction on
    independent draws: equal within 4 standard errors (+ 1 level of bisection resolution)."""
    _, klo, khi, _ = user_kstar
    with jax.enable_x64(True):
        ref = draws_for("euler", D_SMALL, EPS_SMALL, 2.0, _width(D_SMALL, EPS_SMALL),
                        key=jax.random.key(9), n_points=8, n_reps=4)
        assert isinstance(ref, SamplerDraws)
        rlo, rhi, _ = kstar_sides(ref, 4.0)
    for mine_k, ref_k in ((klo, rlo), (khi, rhi)):
        se = math.hypot(np.std(mine_k, ddof=1), np.std(ref_k, ddof=1)) / math.sqrt(len(mine_k))
        assert abs(np.mean(mine_k) - np.mean(ref_k)) < 4.0 * se + 1.0, (mine_k, ref_k)


def test_resolve_sampler():
    assert isinstance(resolve_sampler("unipc"), js.samplers.UniPC)
    h = resolve_sampler("heun:s_churn=40,s_noise=1.0")
    assert float(h.s_churn) == 40.0
    assert float(resolve_sampler("heun", s_churn=5).s_churn) == 5.0
    e = js.samplers.Euler()
    assert resolve_sampler(e) is e
    # a sampler without a scalar reduction takes the full-vector path
    assert not has_scalar_reduction(resolve_sampler("unipc"))


@pytest.mark.parametrize("bad, exc, word", [
    (3, TypeError, "sampler"),
    (object(), TypeError, "sampler"),
    ("no_such_sampler", ValueError, "no_such_sampler"),
    ("heun:s_churn", ValueError, "key=value"),
    ("heun:bogus=1", TypeError, "bogus"),
])
def test_resolve_sampler_bad_inputs(bad, exc, word):
    with pytest.raises(exc, match=word):
        resolve_sampler(bad)


def test_bad_arguments(width):
    with pytest.raises(ValueError, match="options"):
        resolve_sampler(js.samplers.Euler(), s_churn=1)
    with pytest.raises(ValueError, match="n_reps"):
        FullVectorDraws("euler", D, EPS, 2.0, width, key=jax.random.key(0), n_reps=0)
    with pytest.raises(ValueError, match="`d`"):
        FullVectorDraws("euler", 1.5, EPS, 2.0, width, key=jax.random.key(0))
