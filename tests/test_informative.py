"""Spherical caps log S_d and the per-query informative probability pi (docs/construction.md §6, 7.2, 7.3)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jscore.lowerbound import caps
from jscore.lowerbound import informative as inf


def _mp_log_cap(t, d):
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    a = mp.mpf(d - 1) / 2
    tt = mp.mpf(float(t))
    half_i = mp.betainc(a, mp.mpf(1) / 2, 0, (1 - tt) * (1 + tt), regularized=True) / 2
    return float(mp.log(half_i)) if t >= 0 else float(mp.log(1 - half_i))


def test_log_cap_against_mpmath(x64):
    """Both branches, d in [3, 1000], from the cap centre to caps of area e^-2000 (traced d)."""
    f = jax.jit(caps.log_cap)
    for d in [3.0, 40.0, 1000.0]:
        a = (d - 1) / 2
        depth = np.array([1e-3, 0.1, 2.0, 30.0, 300.0, 590.0, 610.0, 2000.0])
        t = np.sqrt(-np.expm1(-depth / a))
        t = np.concatenate([t, -t[:3], [0.0]])
        t = t[np.abs(t) < 1]
        ref = np.array([_mp_log_cap(v, d) for v in t])
        got = np.asarray(f(jnp.asarray(t), jnp.asarray(d)))
        # S_d to ~1e-14 relative, i.e. log S_d to ~1e-15 of its own size (its conditioning)
        np.testing.assert_allclose(got, ref, rtol=5e-15, atol=3e-14)
    # the static-d path is the same code
    t = jnp.asarray([0.1, 0.5, 0.95])
    np.testing.assert_allclose(np.asarray(caps.log_cap(t, 40.0)), np.asarray(f(t, jnp.asarray(40.0))),
                               rtol=1e-15)


def test_log_cap_branches_agree_where_they_overlap(x64):
    cf_f = jax.jit(caps.log_cap_cf)
    bi_f = jax.jit(caps.log_cap_betainc)
    for d in [16.0, 1000.0, 1e6]:
        a = (d - 1) / 2
        depth = np.linspace(300.0, 1500.0, 13)  # a (-log x) on both sides of the switch (600)
        t = np.sqrt(-np.expm1(-depth / a))
        t = jnp.asarray(t[t < 1])
        cf = np.asarray(cf_f(t, jnp.asarray(d)))
        bi = np.asarray(bi_f(t, jnp.asarray(d)))
        np.testing.assert_allclose(cf, bi, rtol=2e-14, atol=1e-13)


def test_log_cap_shape_and_symmetry(x64):
    d = 50.0
    t = jnp.linspace(-1.0, 1.0, 41)
    f = jax.jit(caps.log_cap)
    ls = np.asarray(f(t, jnp.asarray(d)))
    assert ls[0] == 0.0 and ls[-1] == -np.inf
    assert np.all(np.diff(ls) < 0)
    np.testing.assert_allclose(np.exp(ls) + np.exp(ls[::-1]), 1.0, atol=1e-15)
    assert float(f(jnp.asarray(0.0), jnp.asarray(d))) == pytest.approx(math.log(0.5), abs=1e-15)
    # d = 3: u_1 is uniform on [-1, 1]
    tt = jnp.asarray([-0.5, 0.2, 0.9])
    np.testing.assert_allclose(np.exp(f(tt, jnp.asarray(3.0))), (1 - np.asarray(tt)) / 2, rtol=1e-14)


def test_log_beta_half_against_mpmath(x64):
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 30
    for a in [0.5, 4.5, 29.9, 30.0, 31.7, 500.0, 4.5e5]:
        ref = float(mp.log(mp.beta(a, 0.5)))
        assert caps.log_beta_half(a) == pytest.approx(ref, abs=1e-14)
        assert float(caps.log_beta_half(jnp.asarray(a))) == pytest.approx(ref, abs=2e-14)


def test_cap_threshold_solves_m_s_equals_one(x64):
    d = 300.0
    log_m = jnp.asarray([30.0, 90.0])
    t1 = caps.cap_threshold(d, log_m)
    np.testing.assert_allclose(np.asarray(caps.log_cap(t1, d)), -np.asarray(log_m), rtol=1e-10)
    # the asymptotic value sqrt(1 - exp(-2R)) is approached from below
    assert np.all(np.asarray(t1) < np.sqrt(-np.expm1(-2 * np.asarray(log_m) / d)))


def test_band_matches_adversary(x64):
    from jscore.oracles import LRAdversary
    from jscore.targets import SphereCodebook

    cb = SphereCodebook.random(jax.random.key(0), 12, 0.3)
    adv = LRAdversary(cb, 0.05, 3.0)
    for s in [0.2, 1.0, 4.0]:
        prm = adv.parameters(s)
        lo, hi = inf.norm_band(s, 12.0, 0.05, 3.0)
        assert max(float(lo), 0.0) == pytest.approx(float(prm.band_lo), rel=1e-12)
        assert float(hi) == pytest.approx(float(prm.band_hi), rel=1e-12)


def test_pi_limits_and_window_at_large_d(x64):
    """pi -> 0 far below and far above the window, -> 1 inside; profile monotone on each side;
    the traced-d path equals the static-d one."""
    d, rate = 102400.0, 0.3
    eps = 1.0 / d
    sc = float(inf.critical_sigma(rate))
    draws = inf.typical_norm_draws(jax.random.key(3), d, 300)
    ls = np.concatenate([np.linspace(-0.3, -0.02, 15), [0.0], np.linspace(0.01, 0.2, 12)])
    prof_f = jax.jit(lambda dd, s: inf.profile(s, dd, None, eps, draws=draws, log_m=rate * d))
    prof = np.asarray(prof_f(jnp.asarray(d), jnp.asarray(sc * np.exp(ls))))
    assert prof[0] < 1e-6 and prof[-1] < 1e-6
    i0 = int(np.argmax(ls == 0.0))
    assert prof[i0] > 1 - 1e-9
    assert np.all(np.diff(prof[: i0 + 1]) >= -1e-12)
    assert np.all(np.diff(prof[i0:]) <= 1e-12)
    # per query: a norm outside the band gives 0 even at sigma_c
    lo, hi = inf.norm_band(sc, d, eps)
    xi = jnp.sqrt(jnp.asarray([0.98 * float(lo), float(lo + hi) / 2, 1.02 * float(hi)]))
    traced = jax.jit(lambda dd: inf.informative_terms(xi, sc, dd, rate, eps))(jnp.asarray(d))
    assert np.asarray(traced.prob).tolist()[::2] == [0.0, 0.0]
    assert float(traced.prob[1]) == 1.0
    # static d (the Bessel layer's own regime choice) gives the same numbers
    static = jax.jit(lambda: inf.informative_terms(xi, sc, d, rate, eps))()
    np.testing.assert_allclose(np.asarray(static.t_star), np.asarray(traced.t_star), rtol=1e-13)


def test_profile_reference_row_d40(x64):
    """docs/construction.md §11.6 (d = 40, R = 0.25, M = 22 027, eps = 0.05, p = 2).

    The spec's formula row (0.32 at 2.5 sigma_c) is the 0/1 guard's ("indicator"); the default
    one-big-jump liquid term reads the exact-codebook row there (0.26-0.27 in the spec's lab,
    0.265 in benchmarks/results/lowerbound_validation).
    """
    d = 40.0
    log_m = math.log(22027)
    assert inf.effective_log_m_py(d, 0.25) == pytest.approx(log_m)
    sc = 1.0 / math.sqrt(math.expm1(2 * log_m / d))
    ratios = np.array([0.4, 0.5, 0.6, 1.0, 2.0, 2.5, 3.0])
    draws = inf.typical_norm_draws(jax.random.key(11), d, 3000)
    guards = {"indicator": [0.01, 0.34, 0.95, 1.00, 1.00, 0.32, 0.00],
              "truncated": [0.01, 0.34, 0.95, 1.00, 1.00, 0.265, 0.00]}
    got = jax.jit(lambda s: {g: inf.profile(s, d, None, 0.05, 2.0, draws=draws, log_m=log_m,
                                            guard=g) for g in guards})(jnp.asarray(sc * ratios))
    for guard, expected in guards.items():
        np.testing.assert_allclose(np.asarray(got[guard]), expected, atol=0.03, err_msg=guard)


def test_truncated_liquid_term_properties(x64):
    """The one-big-jump liquid term (module docstring): finite probabilities in [0, 1] over
    extreme inputs; the bulk can only add (t* <= the single-codeword threshold, pi >= the
    single-codeword pi); without the bulk and with the spec's jump factor it is exactly the
    spec's single-codeword term; larger eps is never more informative. Traced d (one compile
    per variant for d = 64, 1600, 1e6)."""

    def grid(d, rate):
        log_m = inf.effective_log_m_py(d, rate)
        sc = 1.0 / math.sqrt(math.expm1(2 * log_m / d))
        sig = sc * np.exp(np.linspace(-3.0, 3.0, 25))[:, None]
        xi = np.sqrt(d + d * sig**2) * np.array([0.0, 0.9, 1.0, 1.1, 3.0])[None, :]
        eps = np.array([1.0 / d, 2.0 / d])[:, None, None]  # eps and 2 eps
        return jnp.asarray(xi), jnp.asarray(sig), jnp.asarray(log_m), jnp.asarray(eps)

    variants = [{}, dict(collective=False), dict(collective=False, jump="spec"),
                dict(collective=False, guard="indicator")]
    @jax.jit
    def all_variants(dd, x, s, lm, e):
        out = []
        for kw in variants:
            t = inf.informative_terms(x, s, dd, None, e, log_m=lm, **kw)
            out.append((t.prob, t.t_star))
        return out

    for d, rate in [(64.0, 0.25), (1600.0, 0.3), (1e6, 0.3)]:
        res = all_variants(jnp.asarray(d), *grid(d, rate))
        (new, t_new), (one, t_one), (spec, _), (old, _) = (
            [np.asarray(v) for v in r] for r in res)
        for pr in (new, one):
            assert np.all(np.isfinite(pr)) and np.all((pr >= 0) & (pr <= 1))
        assert not np.any(np.isnan(t_new))
        assert np.all(t_new <= t_one + 1e-12) and np.all(new >= one - 1e-12)
        np.testing.assert_allclose(spec, old, rtol=1e-12, atol=1e-300)
        assert np.all(new[1] <= new[0] + 1e-12)  # 2 eps vs eps
        assert new.max() == 1.0 and new.min() == 0.0


def test_truncated_tends_to_indicator_at_large_d(x64):
    """As d grows the profile of the one-big-jump term tends to the spec's 0/1-guard profile
    (p = 2, eps = 1/d, R = 0.3; the largest gap sits at the upper window edge)."""
    both = jax.jit(lambda dd, s, dr, lm: [inf.profile(s, dd, None, 1.0 / dd, draws=dr, log_m=lm,
                                                      guard=g) for g in ("truncated", "indicator")])
    gaps = []
    for d in [1600.0, 25600.0, 409600.0]:
        log_m = inf.effective_log_m_py(d, 0.3)
        sc = 1.0 / math.sqrt(math.expm1(2 * log_m / d))
        lo, up = inf.leading_order_window(d, 0.3, 1.0 / d)
        s = jnp.asarray(sc * np.exp(np.linspace(0.0, 1.5 * up, 16)))
        draws = inf.typical_norm_draws(jax.random.key(0), d, 200)
        a, b = (np.asarray(v) for v in both(jnp.asarray(d), s, draws, jnp.asarray(log_m)))
        gaps.append(np.max(np.abs(a - b)))
    assert gaps[0] < 0.03 and gaps[-1] < 1e-3
    assert gaps[0] > gaps[1] > gaps[2]


@pytest.mark.slow
def test_profile_guard_variants_d40(x64):
    """The spec's 0/1 guard at its finite-d cosine under-fires on the liquid side at d = 40, and
    without the collective term the liquid side collapses (docs/construction.md §7.2: underestimated by
    up to 0.54)."""
    d = 40.0
    log_m = math.log(22027)
    sc = 1.0 / math.sqrt(math.expm1(2 * log_m / d))
    draws = inf.typical_norm_draws(jax.random.key(11), d, 3000)
    t1f = caps.cap_threshold(d, jnp.asarray(log_m))
    fin = float(inf.profile(jnp.asarray([2.0 * sc]), d, None, 0.05, 2.0, draws=draws,
                            log_m=log_m, t1=t1f, guard="indicator")[0])
    assert fin < 0.95
    for guard in ("indicator", "truncated"):
        no_coll = float(inf.profile(jnp.asarray([2.0 * sc]), d, None, 0.05, 2.0, draws=draws,
                                    log_m=log_m, collective=False, guard=guard)[0])
        assert no_coll < 0.7
    # the one-big-jump term needs no guard: exact codebooks measure 0.99-1.00 here
    assert float(inf.profile(jnp.asarray([2.0 * sc]), d, None, 0.05, 2.0, draws=draws,
                             log_m=log_m)[0]) > 0.97


@pytest.mark.slow
def test_window_width_d1600(x64):
    """Section 6 table at d = 1600 (R = 0.3, p = 2, eps = 1/d): edges and normalised width."""
    d = 1600.0
    lo, up = inf.window_edges(d, 0.3, 1.0 / d, 2.0, key=jax.random.key(0), n=500, grid=48,
                              rounds=3)
    assert lo == pytest.approx(-0.180, rel=0.05)
    assert up == pytest.approx(0.133, rel=0.05)
    w_norm = (up - lo) * math.sqrt(d / math.log(d * d))
    assert w_norm == pytest.approx(3.26, rel=0.03)


def test_reference_control_below_decoder_threshold(x64):
    from jscore.lowerbound.scaling import reference_control

    for d in [16, 64, 1600]:
        assert reference_control(d, 0.45) <= -3.0


def test_reference_control_traced_d_equals_static_d(x64):
    """One program for every d >= 60 (d traced) gives log10(M S_d(0.9)) of the static-d cap."""
    from jscore.lowerbound.caps import log_cap
    from jscore.lowerbound.scaling import reference_control

    for d in [100.0, 25600.0, 1e6]:
        static = (inf.effective_log_m_py(d, 0.45)
                  + float(log_cap(jnp.asarray(0.9, jnp.float64), d))) / math.log(10.0)
        assert reference_control(d, 0.45) == pytest.approx(static, rel=1e-14)


def test_bad_dimension():
    with pytest.raises(TypeError, match="number"):
        caps.log_cap(0.5, "10")
    with pytest.raises(ValueError, match=">= 2"):
        caps.log_cap(0.5, 1.0)
    with pytest.raises(ValueError, match="guard"):
        inf.guard_threshold(10.0, 2.0, kind="bogus")


@pytest.mark.slow
def test_window_table_and_kstar_reference(x64):
    """Section 6 table and section 8 K*: windows, N(d) and ideal K* within 5 %, flat normalised
    width, slopes of N and K* near 0.45."""
    from jscore.lowerbound import scaling

    ref = {1600: (-0.180, 0.133, 2.2, 10.5), 6400: (-0.102, 0.068, 4.0, 19.3),
           25600: (-0.056, 0.036, 7.3, 35.8), 102400: (-0.030, 0.019, 13.8, 67.0)}
    rates = np.linspace(0.15, 0.45, 9)
    w = np.full(9, 1.0)
    w[0] = w[-1] = 0.5
    w /= w.sum()
    ks, ns, wn = [], [], []
    for d, (lo_r, up_r, n_r, k_r) in ref.items():
        lo, up = inf.window_edges(float(d), 0.3, 1.0 / d, 2.0, key=jax.random.key(d), n=1000)
        assert lo == pytest.approx(lo_r, rel=0.05, abs=0.002)
        assert up == pytest.approx(up_r, rel=0.05, abs=0.002)
        wn.append((up - lo) * math.sqrt(d / math.log(d * d)))
        ls, vals, log_ms, _ = scaling.profile_tables(float(d), rates, 1.0 / d, 2.0,
                                                     key=jax.random.key(1), n=1000)
        n_win, _ = scaling.window_count(float(d), rates, ls, vals, log_ms)
        k, _ = scaling._kstar_search(lambda K: scaling.ideal_success(K, rates, w, ls, vals, log_ms, float(d)))
        assert n_win == pytest.approx(n_r, rel=0.06)
        assert k == pytest.approx(k_r, rel=0.05)
        ks.append(k)
        ns.append(n_win)
    ds = list(ref)
    assert max(wn) - min(wn) < 0.03 * np.mean(wn)
    from jscore.fit import loglog_slope

    assert 0.40 < loglog_slope(ds, ks).slope < 0.48
    assert 0.40 < loglog_slope(ds, ns).slope < 0.48


@pytest.mark.slow
def test_robustness_entries(x64):
    """Section 8.7 table entries at d = 1600 (p in {1, 4}), within 4 %."""
    expected = {(1.0, "1/d"): 2.62, (4.0, "1/d"): 4.03, (2.0, "1/sqrt(d)"): 2.92, (2.0, "1/d^2"): 3.56}
    from jscore.lowerbound.scaling import eps_value

    for (p, rule), val in expected.items():
        d = 1600.0
        eps = eps_value(d, rule)
        lo, up = inf.window_edges(d, 0.3, eps, p, key=jax.random.key(2), n=1000)
        assert (up - lo) * math.sqrt(d / math.log(d / eps)) == pytest.approx(val, rel=0.04)
