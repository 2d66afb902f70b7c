"""LRAdversary (docs/construction.md §5), Reference control and flag accounting through js.sample."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jscore as js
from jscore.lowerbound.audit import critical_sigma


@pytest.fixture(scope="module")
def cb20():
    return js.targets.SphereCodebook.random(jax.random.key(7), 20, 0.25)  # M = 149


def _spec_params(r, d, sigma, eps, p):
    B = 2 * r / sigma**2
    lam = 0.5 * (eps / (2 * B)) ** p
    t = math.log(2 / lam)
    v = d * sigma**4 + 2 * r * r * sigma**2
    lo = r * r + d * sigma**2 - 2 * math.sqrt(v * t)
    hi = r * r + d * sigma**2 + 2 * math.sqrt(v * t) + 2 * sigma**2 * t
    return B, lam, t, max(lo, 0.0), hi


def test_parameters_match_spec(cb20, x64):
    r, d = float(cb20.radius), 20
    for p in [1.0, 2.0, 4.0]:
        adv = js.oracles.LRAdversary(cb20, 0.05, p)
        for sigma in [0.05, 0.7, 1.3, 6.0]:
            prm = adv.parameters(sigma)
            B, lam, t, lo, hi = _spec_params(r, d, sigma, 0.05, p)
            np.testing.assert_allclose(
                [prm.bound, np.exp(prm.log_lambda), prm.t, prm.band_lo, prm.band_hi],
                [B, lam, t, lo, hi], rtol=1e-12)
    # the codebook-free layer (lower_bound.informative) uses the same band
    from jscore.lowerbound.informative import norm_band

    adv = js.oracles.LRAdversary(cb20, 0.05, 2.0)
    lo, hi = norm_band(0.7, 20.0, 0.05, 2.0, rho=float(cb20.rho))
    prm = adv.parameters(0.7)
    np.testing.assert_allclose([prm.band_lo, prm.band_hi], [max(float(lo), 0.0), hi], rtol=1e-6)


@pytest.mark.parametrize("d", [40, 1600, 100_000])
def test_band_mass_is_below_eta(d, x64):
    """Exact P_sigma(|x|^2 outside band) (noncentral chi-square) <= eta; spec: <= 8 % of eta."""
    r = math.sqrt(d)
    cb = js.targets.SphereCodebook(jnp.zeros((1, d)).at[0, 0].set(r))
    rate = 0.25
    sc = float(critical_sigma(rate))
    for eps in [0.05, 1 / d]:
        adv = js.oracles.LRAdversary(cb, eps, 2.0)
        for f in [0.3, 1.0, 3.0]:
            s = f * sc
            prm = adv.parameters(s)
            nc = r * r / s**2
            mass = stats.ncx2.cdf(float(prm.band_lo) / s**2, d, nc) + stats.ncx2.sf(
                float(prm.band_hi) / s**2, d, nc)
            eta = math.exp(float(prm.log_lambda))
            assert mass <= 0.08 * eta, (d, eps, f, mass / eta)


def test_answer_semantics(cb20, x64, getkey):
    adv = js.oracles.LRAdversary(cb20, 0.05, 2.0)
    ref = cb20.reference
    sc = float(critical_sigma(cb20.effective_rate))
    f = jax.jit(jax.vmap(lambda x, s: (adv.answer(x, s), cb20.score(x, s), ref.score(x, s),
                                       cb20.log_likelihood_ratio(x, s)), in_axes=(0, None)))
    seen = set()
    for s in np.array([0.3, 1.0, 2.0, 2.6, 4.0]) * sc:
        xs = jnp.concatenate([cb20.sample_noised(getkey(), s, 200), ref.sample_noised(getkey(), s, 200),
                              3.0 * cb20.sample_noised(getkey(), s, 50)])
        a, sp, sq, logl = f(xs, s)
        prm = adv.parameters(s)
        n2 = np.sum(np.asarray(xs) ** 2, 1)
        band = (n2 >= float(prm.band_lo)) & (n2 <= float(prm.band_hi))
        lr = np.asarray(logl) >= float(prm.log_lambda)
        diff = np.linalg.norm(np.asarray(sp) - np.asarray(sq), axis=1)
        vis = diff > 0.025
        flag = band & lr & vis
        np.testing.assert_array_equal(a.informative, flag)
        np.testing.assert_allclose(a.diff, diff, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(a.score, np.where(flag[:, None], sp, sq), rtol=1e-12, atol=1e-12)
        assert not np.any(a.informative[-50:])  # scaled points leave the band
        seen.update(zip(band, lr, vis))
    assert len(seen) >= 4  # several combinations of the three tests were exercised


def test_reference_points_outside_window_are_silent(cb20, getkey):
    """Codebook-independent points: no informative answer far below/above sigma_c; many near it."""
    adv = js.oracles.LRAdversary(cb20, 0.05, 2.0)
    sc = float(critical_sigma(cb20.effective_rate))
    f = jax.jit(jax.vmap(lambda x, s: adv.answer(x, s).informative, in_axes=(0, None)))
    frac = []
    for s in [0.15 * sc, sc, 8 * sc]:
        xs = cb20.reference.sample_noised(getkey(), s, 500)
        frac.append(float(np.mean(f(xs, s))))
    assert frac[0] == 0.0 and frac[2] == 0.0 and frac[1] > 0.9, frac


def _replay_flags(adv, x0, trace_x, sigmas):
    """Euler queries (x_k, sigma_k) with x_0 given and x_{k+1} the state after step k."""
    xs = np.concatenate([x0[None], trace_x[:-1]])
    f = jax.jit(jax.vmap(lambda x, s: adv.answer(x, s).informative))
    return np.asarray(f(jnp.asarray(xs), jnp.asarray(sigmas[:-1], xs.dtype)))


def test_flag_accounting_through_sample(cb20, getkey):
    adv = js.oracles.LRAdversary(cb20, 0.05, 2.0)
    sigmas = js.schedules.geometric(6, 0.05, 8.0)
    n = 12
    x0 = np.asarray(cb20.reference.sample_noised(getkey(), float(sigmas[0]), n))
    res = js.sample(adv, js.samplers.Euler(), sigmas, getkey(), x_init=jnp.asarray(x0),
                    record=js.Record(every=1, x=True))
    tx = np.asarray(res.trace.x)
    for i in range(n):
        flags = _replay_flags(adv, x0[i], tx[i], np.asarray(sigmas))
        assert bool(res.stats.informative[i]) == bool(flags.any())
        assert int(res.stats.informative_count[i]) == int(flags.sum())
        first = int(np.argmax(flags)) + 1 if flags.any() else 0
        assert int(res.stats.first_informative[i]) == first
    assert np.any(res.stats.informative)  # the run does reach the window
    ref = js.sample(js.oracles.Reference(cb20.reference), js.samplers.Euler(), sigmas, getkey(),
                    num_samples=4)
    assert not np.any(ref.stats.informative) and np.all(ref.stats.first_informative == 0)


def test_eps_and_p_sweeps_do_not_retrace(cb20, getkey):
    from jscore.sampling import TRACE_COUNTS

    sigmas = js.schedules.geometric(3, 0.1, 5.0)
    js.sample(js.oracles.LRAdversary(cb20, 0.05, 2.0), js.samplers.Euler(), sigmas, getkey(),
              num_samples=2)
    before = TRACE_COUNTS["sample"]
    for eps, p in [(0.01, 2.0), (0.2, 1.0), (0.03, 4.0)]:
        js.sample(js.oracles.LRAdversary(cb20, eps, p), js.samplers.Euler(), sigmas, getkey(),
                  num_samples=2)
    assert TRACE_COUNTS["sample"] == before


def test_two_query_controls(getkey):
    """Spec 11.7: {20, 0.02} + Tweedie: exact oracle decodes, reference/adversary never do."""
    cb = js.targets.SphereCodebook.random(getkey(), 24, 0.25)  # M = 404
    sigmas = jnp.asarray([20.0, 0.02, 0.0])
    rates = {}
    for name, oracle in [("exact", js.oracles.Exact(cb)),
                         ("reference", js.oracles.Reference(cb.reference)),
                         ("adversary", js.oracles.LRAdversary(cb, 0.05, 2.0))]:
        res = js.sample(oracle, js.samplers.Euler(), sigmas, getkey(), num_samples=100)
        assert np.all(res.stats.queries == 2) and np.all(res.stats.levels == 2)
        dec = js.lowerbound.decode(cb, res.x, 0.9)
        rates[name] = float(np.mean(np.asarray(dec.index) >= 0))
        if name == "adversary":
            assert not np.any(res.stats.informative)
    assert rates["exact"] >= 0.95 and rates["reference"] == 0.0 and rates["adversary"] == 0.0, rates


def test_gaussian_codebook_adversary_runs(getkey, x64):
    cb = js.targets.GaussianCodebook.random(getkey(), 12, 0.3)
    adv = js.oracles.LRAdversary(cb, 0.05, 2.0)
    prm = adv.parameters(0.8)
    # B solves the fixed point B = (max|y| + rho^2 sqrt(hi)/(rho^2+s^2))/s^2 with hi from B
    ymax = float(np.max(np.linalg.norm(cb.codebook, axis=1)))
    B = (ymax + np.sqrt(float(prm.band_hi)) / (1 + 0.64)) / 0.64
    np.testing.assert_allclose(float(prm.bound), B, rtol=1e-6)
    xs = cb.sample_noised(getkey(), 0.8, 50)
    a = jax.jit(jax.vmap(lambda x: adv.answer(x, 0.8)))(xs)
    assert np.all(np.isfinite(a.score)) and np.all(a.in_band)


def test_errors(cb20):
    with pytest.raises(TypeError, match="SphereCodebook"):
        js.oracles.LRAdversary(js.targets.Gaussian.isotropic(3), 0.1)
    with pytest.raises(ValueError, match="eps"):
        js.oracles.LRAdversary(cb20, 0.0)
    with pytest.raises(ValueError, match="p"):
        js.oracles.LRAdversary(cb20, 0.1, p=0.5)
    with pytest.raises(TypeError):
        js.oracles.Reference(cb20.codebook)
