"""The fast profile kernels of the sqrt(d) sweep against the plain per-query functions.

``estimate_and_sides`` (one branch at a time, shared pieces computed once) must give the values of
``informative_terms(...).prob`` and ``informative_sides`` (lower, upper); the early-stopping
bisection must give the fixed 64-step bisection bit for bit; the split profile tables must
match the straightforward ``profile`` means.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jscore.lowerbound import informative as inf
from jscore.lowerbound import scaling

# XLA may round a fused program differently (FMA contraction); one float64 ulp in the cosine t*
# moves log N by ~d t/(1 - t^2) ulp, i.e. ~1e-10 relative at d = 1e6 (the kernel's own condition)
_RTOL = {1600.0: 1e-11, 1e5: 1e-9}


def _queries(d, rate, n_sig=24, n_xi=60, seed=0):
    eps = 1.0 / d
    log_m = inf.effective_log_m_py(d, rate)
    sc = 1.0 / math.sqrt(math.expm1(2.0 * log_m / d))
    lo, up = inf.leading_order_window(d, log_m / d, eps, 2.0)
    span = min(3.0 * max(-lo, up), 4.0)
    sig = jnp.asarray(sc * np.exp(np.linspace(-span, span, n_sig)))[:, None]
    g, c = inf.typical_norm_draws(jax.random.key(seed), d, n_xi)
    xi = inf.typical_norm(sig, g, c, d)
    # off-typical norms too (in and out of the band)
    xi = xi * jnp.exp(0.02 * jax.random.normal(jax.random.key(seed + 1), xi.shape))
    return eps, log_m, sig, xi


@pytest.mark.parametrize("d, wants", [
    (1600.0, ("both", "estimate", "sides")),
    pytest.param(1e5, ("both",), marks=pytest.mark.slow),
])
def test_estimate_and_sides_match_plain_functions(x64, d, wants):
    for rate in (0.3,):
        eps, log_m, sig, xi = _queries(d, rate)
        dd = jnp.asarray(d)
        ref_p, ref = jax.jit(lambda dd, x, s: (
            inf.informative_terms(x, s, dd, None, eps, 2.0, log_m=log_m).prob,
            inf.informative_sides(x, s, dd, None, eps, 2.0, log_m=log_m)))(dd, xi, sig)
        cond_ref = np.broadcast_to(np.asarray(ref.condensed), xi.shape)
        assert cond_ref.any() and (~cond_ref).any()  # both branches exercised
        for branch in ("condensed", "liquid"):
            for want in wants:
                p, lo, up, cond = jax.jit(lambda dd, x, s: inf.estimate_and_sides(
                    x, s, dd, eps, 2.0, log_m=log_m, branch=branch, want=want))(dd, xi, sig)
                np.testing.assert_array_equal(np.broadcast_to(np.asarray(cond), xi.shape),
                                              cond_ref)
                m = cond_ref if branch == "condensed" else ~cond_ref
                pairs = []
                if want != "sides":
                    pairs.append((p, ref_p))
                else:
                    assert p is None
                if want != "estimate":
                    pairs += [(lo, ref.lower), (up, ref.upper)]
                else:
                    assert lo is None and up is None
                for a, b in pairs:
                    a, b = np.asarray(a)[m], np.asarray(b)[m]
                    assert np.all(np.isfinite(a)) and np.any(b > 0) and np.any(b < 1)
                    np.testing.assert_allclose(a, b, rtol=_RTOL[d], atol=1e-300)


def test_estimate_and_sides_bad_arguments(x64):
    with pytest.raises(ValueError, match="branch"):
        inf.estimate_and_sides(1.0, 1.0, 100.0, 0.01, log_m=10.0, branch="both")
    with pytest.raises(ValueError, match="want"):
        inf.estimate_and_sides(1.0, 1.0, 100.0, 0.01, log_m=10.0, branch="liquid", want="x")


def test_early_stopping_bisection_is_the_64_step_one(x64):
    """Same lo, hi bit for bit as 64 fixed steps (roots near 0, near +-1, NaN, no root)."""
    roots = jnp.asarray([0.3, -0.7, 1e-9, -1e-12, 0.999999, 2.0, -3.0, jnp.nan, 1.0 / 3.0])

    def body(_, c):
        lo, hi = c
        mid = 0.5 * (lo + hi)
        up = jnp.sin(mid) ** 3 + mid >= jnp.sin(roots) ** 3 + roots
        return jnp.where(up, lo, mid), jnp.where(up, mid, hi)

    lo0, hi0 = -jnp.ones_like(roots), jnp.ones_like(roots)
    ref = jax.lax.fori_loop(0, 64, body, (lo0, hi0))
    got = jax.jit(lambda a, b: inf._bisect(body, a, b))(lo0, hi0)
    for r, g in zip(ref, got):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(r))


def test_split_profile_tables_match_plain_profiles(x64):
    d, rates = 6400.0, np.array([0.2, 0.4])
    eps = 1.0 / d
    key = jax.random.key(3)
    ls, vals, log_ms, t1s, v_lo, v_hi = scaling.profile_tables(d, rates, eps, 2.0, key=key, n=50,
                                                               grid=16, sides=True)
    s_lo, s_hi = scaling.profile_side_tables(d, ls, log_ms, eps, 2.0, key=key, n=50)
    g, c = inf.typical_norm_draws(key, d, 50)
    sc = 1.0 / np.sqrt(np.expm1(2.0 * log_ms / d))
    sig = jnp.asarray(sc[:, None] * np.exp(ls))
    lm = jnp.asarray(log_ms)[:, None, None]
    plain = jax.jit(lambda sig, g, c, lm: {s: inf.profile(sig, d, None, eps, 2.0, draws=(g, c),
                                                          log_m=lm, side=s)
                                           for s in ("estimate", "lower", "upper")})(sig, g, c, lm)
    for got, s in ((vals, "estimate"), (v_lo, "lower"), (s_lo, "lower"),
                   (v_hi, "upper"), (s_hi, "upper")):
        assert got.shape == (2, 16)
        np.testing.assert_allclose(got, plain[s], rtol=1e-11, atol=1e-15)
    assert np.all(v_lo <= v_hi) and vals.max() > 0.5  # the window is inside the grid
