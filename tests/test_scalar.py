"""Scalar reduction of rotation-equivariant samplers against s_Q, validated against full vectors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jscore as js
from jscore.lowerbound import scalar, trajectory
from jscore.targets import UniformSphere


def _grid(n=8):
    return js.schedules.geometric(n, 0.05, 20.0)


def _x_init(key, n, d, sigma0):
    return sigma0 * jax.random.normal(key, (n, d), jnp.result_type(float))


DETERMINISTIC = [js.samplers.Euler(), js.samplers.Heun()]
STOCHASTIC = [js.samplers.EulerAncestral(), js.samplers.DDIM(eta=0.5), js.samplers.EulerMaruyama(),
              js.samplers.EulerMaruyama(variant="variance"), js.samplers.Heun(s_churn=8.0)]
# DPMSolverPP (2M) and RandomizedMidpoint are checked against full-vector chains written out in
# the tests below (their catalogue samplers' full-vector runs take other arguments).
WRITTEN_OUT = [js.samplers.DPMSolverPP, js.samplers.RandomizedMidpoint]


def test_every_registered_reduction_is_checked_here():
    """Each sampler type with a registered scalar reduction has a full-vector check in this file
    (pathwise when deterministic, in law when stochastic), in the default suite."""
    checked = {type(s) for s in DETERMINISTIC + STOCHASTIC} | set(WRITTEN_OUT)
    assert set(scalar.SCALAR_REDUCTIONS) <= checked, set(scalar.SCALAR_REDUCTIONS) - checked


@pytest.mark.parametrize("sampler", DETERMINISTIC, ids=["euler", "heun"])
def test_deterministic_samplers_pathwise(x64, sampler):
    """Deterministic samplers move on one ray: the scalar chain equals the full-vector run."""
    d, n = 64, 3
    sig = _grid()
    x0 = _x_init(jax.random.key(0), n, d, float(sig[0]))
    full, _ = trajectory.reference_run(sampler, sig, jax.random.key(1), d, n, x_init=x0)
    red, _ = scalar.simulate(sampler, sig, jax.random.key(2), float(d), n,
                             x0_norm=jnp.linalg.norm(x0, axis=1))
    v = np.asarray(red.valid[0])
    q = int(v.sum())
    assert q == sampler.num_queries(len(sig) - 1, True)
    np.testing.assert_allclose(np.asarray(red.xi)[:, v], np.asarray(full.xi)[:, :q], rtol=1e-10)
    np.testing.assert_allclose(np.asarray(red.sigma)[:, v], np.asarray(full.sigma)[:, :q], rtol=1e-14)
    np.testing.assert_allclose(np.asarray(full.overlap)[:, :q], 1.0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(red.overlap)[:, v], 1.0, atol=1e-12)


def _compare_laws(red, full, n):
    v = np.asarray(red.valid[0])
    q = int(v.sum())
    for a, b in [(np.asarray(red.xi)[:, v], np.asarray(full.xi)[:, :q]),
                 (np.asarray(red.overlap)[:, v], np.asarray(full.overlap)[:, :q])]:
        se = np.sqrt(a.var(0) / n + b.var(0) / n) + 1e-12
        assert np.all(np.abs(a.mean(0) - b.mean(0)) <= 5 * se + 1e-10)
        # spreads agree (relative SE of a standard deviation ~ 1/sqrt(2n))
        sa, sb = a.std(0), b.std(0)
        big = sb > 1e-9
        assert np.all(np.abs(np.log(sa[big] / sb[big])) < 5 * math.sqrt(1.0 / n))


@pytest.mark.slow
def test_ancestral_law_matches_full_vector(x64):
    d, n = 64, 1000
    sig = _grid()
    sampler = js.samplers.EulerAncestral()
    full, _ = trajectory.reference_run(sampler, sig, jax.random.key(3), d, n)
    red, _ = scalar.simulate(sampler, sig, jax.random.key(4), float(d), n)
    _compare_laws(red, full, n)


@pytest.mark.parametrize("d", [64, pytest.param(256, marks=pytest.mark.slow)])
@pytest.mark.parametrize("sampler", STOCHASTIC,
                         ids=["ancestral", "ddim05", "em_ou", "em_var", "heun_churn"])
def test_stochastic_laws_match_full_vector(x64, sampler, d):
    """Stochastic samplers: each query's norm and overlap with the start have the law of the
    full-vector run (means within 5 standard errors; |log ratio| of the standard deviations
    below 5/sqrt(n), about 7 of its standard errors 1/sqrt(2n))."""
    n = 1500
    sig = _grid(10)
    full, _ = trajectory.reference_run(sampler, sig, jax.random.key(5), d, n)
    red, _ = scalar.simulate(sampler, sig, jax.random.key(6), float(d), n)
    _compare_laws(red, full, n)


# ------------------------------------------------------------------ DPM-Solver++ 2M (full vectors)
def _dpmpp_2m_full(target, sigmas, x):
    """docs/sampler_reference.md §7 (data prediction, 2M), written out on full vectors."""
    sig = np.asarray(sigmas)
    out = []
    d_prev = None
    for i in range(len(sig) - 1):
        s, s_next = float(sig[i]), float(sig[i + 1])
        out.append(float(jnp.linalg.norm(x)))
        den = target.denoise(x, s)
        if s_next == 0:
            x = den
        else:
            h = math.log(s / s_next)
            if i == 0:
                dbar = den
            else:
                r0 = math.log(float(sig[i - 1]) / s) / h
                dbar = (1 + 1 / (2 * r0)) * den - (1 / (2 * r0)) * d_prev
            x = (s_next / s) * x + (1 - math.exp(-h)) * dbar
        d_prev = den
    return np.array(out), x


def test_dpmpp_2m_matches_full_vector(x64):
    d = 64
    target = UniformSphere(d, math.sqrt(d))
    sig = js.schedules.karras(9, 0.05, 20.0)
    x0 = _x_init(jax.random.key(7), 1, d, float(sig[0]))[0]
    xi_full, x_out = _dpmpp_2m_full(target, sig, x0)
    red, final = scalar.simulate("dpmpp_2m", sig, jax.random.key(8), float(d), 1,
                                 x0_norm=jnp.linalg.norm(x0)[None])
    np.testing.assert_allclose(np.asarray(red.xi)[0], xi_full, rtol=1e-10)
    assert float(final[0]) == pytest.approx(float(jnp.linalg.norm(x_out)), rel=1e-10)
    # the history term matters: plain Euler (DPM-Solver++ 1) differs
    red1, _ = scalar.simulate("euler", sig, jax.random.key(8), float(d), 1,
                              x0_norm=jnp.linalg.norm(x0)[None])
    assert np.max(np.abs(np.asarray(red1.xi)[0] / xi_full - 1)) > 1e-4


# ------------------------------------------------------------------ randomized midpoint (full vectors)
def _rm_chain(target, sigmas, key, x):
    """docs/sampler_reference.md §10, K = J = 1, EDM form, on full vectors: returns query norms (2N-1,)."""
    sig = jnp.asarray(sigmas)
    d = x.shape[0]

    def srel(y, s):
        return target.score(y, s) + y / (1 + s * s)

    norms = []
    n_steps = sig.shape[0] - 1
    for i in range(n_steps):
        s, s_next = sig[i], sig[i + 1]
        norms.append(jnp.linalg.norm(x))
        if i == n_steps - 1:
            x = target.denoise(x, s)
            break
        k = jax.random.fold_in(key, i)
        ku, k1, k2 = jax.random.split(k, 3)
        t, t_next = 0.5 * jnp.log1p(s * s), 0.5 * jnp.log1p(s_next * s_next)
        h = t - t_next
        u = h * jax.random.uniform(ku, (), x.dtype)
        sm = jnp.sqrt(jnp.expm1(2 * (t - u)))
        rho1, rho_ = jnp.exp(-u), jnp.exp(-h)
        rho2 = rho_ / rho1
        n1 = rho1 * jnp.sqrt(s * s - sm * sm) * jax.random.normal(k1, (d,), x.dtype)
        ym = rho1**2 * x + 2 * rho1 * (1 - rho1) * (1 + s * s) * srel(x, s) + n1
        norms.append(jnp.linalg.norm(ym))
        x = (rho_**2 * x + 2 * h * (1 + s_next**2) * srel(ym, sm) + rho2**2 * n1
             + rho2 * jnp.sqrt(sm * sm - s_next**2) * jax.random.normal(k2, (d,), x.dtype))
    return jnp.stack(norms)


@pytest.mark.parametrize("d", [64, pytest.param(256, marks=pytest.mark.slow)])
def test_randomized_midpoint_law_matches_full_vector(x64, d):
    n = 1500
    target = UniformSphere(d, math.sqrt(d))
    sig = _grid(8)
    keys = jax.random.split(jax.random.key(9), n)
    x0 = _x_init(jax.random.key(10), n, d, float(sig[0]))
    full = jax.jit(jax.vmap(lambda k, x: _rm_chain(target, sig, k, x)))(keys, x0)
    red, _ = scalar.simulate("randomized_midpoint", sig, jax.random.key(11), float(d), n)
    a = np.asarray(red.xi)[:, np.asarray(red.valid[0])]
    b = np.asarray(full)
    assert a.shape == b.shape == (n, 2 * 8 - 1)
    se = np.sqrt(a.var(0) / n + b.var(0) / n)
    assert np.all(np.abs(a.mean(0) - b.mean(0)) <= 5 * se)
    assert np.all(np.abs(np.log(a.std(0) / b.std(0))) < 5 * math.sqrt(1.0 / n))


@pytest.mark.slow
def test_large_d_runs_in_scalar_form(x64):
    """d = 1e6 costs O(1) per step: start norm sigma_0 sqrt(d), finite throughout, Tweedie output
    inside the ball of radius r (|D| = r A_d < r); a 12-level grid leaves norm-atypical states."""
    d = 1e6
    sig = _grid(12)
    red, final = scalar.simulate("euler_ancestral", sig, jax.random.key(12), d, 64)
    xi = np.asarray(red.xi)
    assert np.all(np.isfinite(xi))
    np.testing.assert_allclose(xi[:, 0] / (float(sig[0]) * math.sqrt(d)), 1.0, atol=5e-3)
    assert np.all(np.asarray(final) < math.sqrt(d)) and np.all(np.asarray(final) > 0.5 * math.sqrt(d))
    typical = np.sqrt(d * (1 + np.asarray(red.sigma) ** 2))
    assert np.max(np.abs(xi / typical - 1)) > 0.05  # coarse steps: far outside the band


def test_scalar_spec_mapping_and_errors():
    assert scalar.scalar_spec(js.samplers.DDIM()).kind == "euler"
    assert scalar.scalar_spec(js.samplers.EulerAncestral(eta=0.3)).get("eta", None) == pytest.approx(0.3)
    assert scalar.scalar_spec(js.samplers.Heun(s_churn=3.0)).is_stochastic
    assert scalar.scalar_spec("heun").slots == 2
    assert scalar.num_queries(scalar.scalar_spec("randomized_midpoint"), 10) == 19
    with pytest.raises(ValueError, match="posterior"):
        scalar.scalar_spec(js.samplers.EulerAncestral(variance="large"))
    with pytest.raises(ValueError, match="available"):
        scalar.scalar_spec("nope")

    class MyEuler(js.samplers.Euler):  # a subclass may change the update: no inherited reduction
        pass

    with pytest.raises(ValueError, match="No scalar reduction for MyEuler; registered: Euler"):
        scalar.scalar_spec(MyEuler())
    try:
        scalar.register_scalar_reduction(MyEuler)(lambda s: scalar.ScalarSampler("euler"))
        assert scalar.scalar_spec(MyEuler()) == scalar.ScalarSampler("euler")
    finally:
        scalar.SCALAR_REDUCTIONS.pop(MyEuler, None)
    with pytest.raises(TypeError, match="sampler class"):
        scalar.register_scalar_reduction("euler")
    with pytest.raises(ValueError, match="d >= 3"):
        scalar.simulate("euler", _grid(), jax.random.key(0), 2, 1)
