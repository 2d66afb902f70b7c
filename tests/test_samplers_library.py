"""Sampler library (docs/sampler_reference.md §5-13): exact accounting (section 15), per-chain independence,
no-retrace, Picard/midpoint relations and base equivalences.

Counts are checked against an instrumented oracle that tallies its own calls in its state, and
against the table of docs/sampler_reference.md §15 written out independently here (not the samplers'
``num_queries``). Both grid ends (sigma_N = 0 and sigma_N > 0) run in ONE compile per sampler by
vmapping ``sample_one`` over the two grids (traced grids also exercise the traced code paths).
"""

from __future__ import annotations

import math
import pathlib
import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jscore as js
from helpers import assert_within_se, mean_se, var_se
from jscore.oracles.base import AbstractOracle
from jscore.sampling import TRACE_COUNTS
from jscore.samplers.dpm_solver import fast_orders

S = js.samplers
DIM = 3
N = 5


class CountingOracle(AbstractOracle):
    """Exact score plus a per-chain tally of the calls it actually received (state in, state out)."""

    inner: AbstractOracle
    level: jax.Array = eqx.field(converter=jnp.asarray, default=-1.0)  # also count calls at this sigma

    @property
    def dim(self):
        return self.inner.dim

    def init(self, key, dim):
        return {"calls": jnp.zeros((), jnp.int32), "at_level": jnp.zeros((), jnp.int32)}

    def query(self, x, sigma, state):
        score, _ = self.inner.query(x, sigma, None)
        hit = (jnp.asarray(sigma, x.dtype) == jnp.asarray(self.level, x.dtype)).astype(jnp.int32)
        return score, {"calls": state["calls"] + 1, "at_level": state["at_level"] + hit}

    def report(self, state):
        return dict(state)


def _target(dim=DIM):
    return js.targets.Gaussian(jnp.linspace(-0.5, 0.5, dim), jnp.linspace(0.3, 1.5, dim))


def _grids(n=N):
    """Two n-step grids stacked: one ending at 0, one ending at sigma_N = 0.05 > 0."""
    zero = js.schedules.geometric(n, 0.05, 20.0, append_zero=True)
    pos = js.schedules.geometric(n + 1, 0.05, 20.0, append_zero=False)
    return jnp.stack([zero, pos])


def _run_both(sampler, max_queries=None, oracle=None, key=None):
    oracle = CountingOracle(js.oracles.Exact(_target())) if oracle is None else oracle
    key = jax.random.key(3) if key is None else key
    run = lambda s: js.sample_one(oracle, sampler, s, key, max_queries=max_queries, throw=False)
    return jax.vmap(run)(_grids())


# (sampler, (Q, N_sigma, R) for sigma_N = 0, (Q, N_sigma, R) for sigma_N > 0), N = number of steps
def _table(n):
    k, j = 3, 2
    m_pc, m_al, m_sl = 2, 3, 4
    return {
        "ei_score": (S.ExponentialIntegrator(), (n, n, n), (n, n, n)),
        "ei_relative": (S.ExponentialIntegrator(form="relative"), (n, n, n), (n, n, n)),
        "dpm2": (S.DPMSolver(order=2), (2 * n - 1,) * 3, (2 * n,) * 3),
        "dpm3": (S.DPMSolver(order=3), (3 * n - 2,) * 3, (3 * n,) * 3),
        "dpmpp2": (S.DPMSolverPP(order=2), (n, n, n), (n, n, n)),
        "dpmpp3_lof": (S.DPMSolverPP(order=3, lower_order_final=True), (n, n, n), (n, n, n)),
        "unipc1": (S.UniPC(order=1), (n, n, n), (n, n, n)),
        "unipc3": (S.UniPC(order=3), (n, n, n), (n, n, n)),
        "pc": (
            S.PredictorCorrector(corrector_steps=m_pc),
            (n * (m_pc + 1), n, n * (m_pc + 1)),
            (n * (m_pc + 1), n, n * (m_pc + 1)),
        ),
        "rm11": (S.RandomizedMidpoint(), (2 * n - 1,) * 3, (2 * n,) * 3),
        "rm_kj": (
            S.RandomizedMidpoint(num_points=k, picard_iters=j),
            ((n - 1) * (1 + j * k) + 1, n + (n - 1) * k, (n - 1) * (1 + j) + 1),
            (n * (1 + j * k), n * (1 + k), n * (1 + j)),
        ),
        "single_level": (S.SingleLevel(sigma=0.7, steps=m_sl), (m_sl + 1, 1, m_sl + 1), (m_sl + 1, 1, m_sl + 1)),
        "annealed": (S.AnnealedLangevin(steps_per_level=m_al), (n * m_al + 1, n, n * m_al + 1), None),
    }


@pytest.mark.parametrize("name", list(_table(N)))
def test_fixed_grid_counts_match_table(name):
    sampler, zero, pos = _table(N)[name]
    res = _run_both(sampler)
    q, lv, r = (np.asarray(a) for a in (res.stats.queries, res.stats.levels, res.stats.rounds))
    calls = np.asarray(res.stats.calls)
    np.testing.assert_array_equal(q, calls)  # charged == evaluations the oracle received
    assert (q[0], lv[0], r[0]) == zero
    if pos is not None:
        assert (q[1], lv[1], r[1]) == pos
    assert np.all(np.asarray(res.status)[: 1 if pos is None else 2] == js.Status.success)
    assert np.all(np.isfinite(np.asarray(res.x)[0]))
    # the samplers' own static formulas agree with the table
    assert sampler.num_queries(N, True) == zero[0]
    if pos is not None:
        assert sampler.num_queries(N, False) == pos[0]


def test_fixed_grid_exact_budget_and_static_minimum():
    oracle = js.oracles.Exact(_target())
    sig = js.schedules.geometric(N, 0.05, 20.0)
    with pytest.raises(ValueError, match="below the"):
        js.sample(oracle, S.DPMSolver(order=3), sig, jax.random.key(0), num_samples=2, max_queries=3 * N - 3)
    with pytest.raises(ValueError, match="sigma = 0"):
        js.sample(oracle, S.AnnealedLangevin(2), sig[:-1], jax.random.key(0), num_samples=2)
    with pytest.raises(ValueError, match="sigma_min"):
        js.sample(oracle, S.DPMSolver(order=3, budget=9), sig, jax.random.key(0), num_samples=2)
    for bad in (lambda: S.DPMSolver(order=4), lambda: S.ExponentialIntegrator(form="x"),
                lambda: S.Adaptive(pair="rk"), lambda: S.RandomizedMidpoint(num_points=0),
                lambda: S.ParallelPicard(window=0), lambda: S.UniPC(variant="bh3"),
                lambda: S.PredictorCorrector(predictor=S.Heun()), lambda: S.DPMSolver(order=2, budget=6)):
        with pytest.raises((ValueError, TypeError)):
            bad()


def test_dpm_solver_fast_orders_and_counts():
    for m in range(1, 200):
        orders = fast_orders(m)
        assert sum(orders) == m and len(orders) == m // 3 + 1 and set(orders) <= {1, 2, 3}
    oracle = CountingOracle(js.oracles.Exact(_target()))
    sig = js.schedules.geometric(N, 0.05, 20.0, append_zero=False)
    res = js.sample(oracle, S.DPMSolver(order=3, budget=11), sig, jax.random.key(0), num_samples=2)
    for a in (res.stats.queries, res.stats.levels, res.stats.rounds, res.stats.calls):
        np.testing.assert_array_equal(np.asarray(a), 11)


def test_no_direct_oracle_queries_in_samplers():
    root = pathlib.Path(js.samplers.__file__).parent
    offenders = [p.name for p in root.glob("*.py") if re.search(r"\.query\(", p.read_text())]
    assert offenders == []


# ----------------------------------------------------------------------------------------------
# Parallel Picard
# ----------------------------------------------------------------------------------------------


def test_picard_tol_zero_and_inf_relations_and_base_equivalence():
    n, p = 7, 3
    oracle = CountingOracle(js.oracles.Exact(_target()))
    sig = js.schedules.geometric(n, 0.05, 20.0)
    key = jax.random.key(5)
    eta = 0.5  # stochastic base: the noise must be the base sampler's, step for step
    exact = S.ParallelPicard(window=p, tol=0.0, eta=eta)
    res0 = js.sample(oracle, exact, sig, key, num_samples=3)
    np.testing.assert_array_equal(np.asarray(res0.stats.rounds), n)
    np.testing.assert_array_equal(np.asarray(res0.stats.queries), n * p - p * (p - 1) // 2)
    np.testing.assert_array_equal(np.asarray(res0.stats.calls), np.asarray(res0.stats.queries))
    np.testing.assert_array_equal(np.asarray(res0.stats.levels), n)
    base = js.sample(oracle, S.EulerAncestral(eta), sig, key, num_samples=3)
    np.testing.assert_allclose(np.asarray(res0.x), np.asarray(base.x), rtol=1e-6, atol=1e-6)

    before = TRACE_COUNTS["sample"]
    res_inf = js.sample(oracle, S.ParallelPicard(window=p, tol=float("inf"), eta=eta), sig, key, num_samples=3)
    assert TRACE_COUNTS["sample"] == before  # tol is an array field: no retrace
    np.testing.assert_array_equal(np.asarray(res_inf.stats.rounds), math.ceil(n / p))
    np.testing.assert_array_equal(np.asarray(res_inf.stats.queries), n)
    np.testing.assert_array_equal(np.asarray(res_inf.stats.calls), n)

    mid = js.sample(oracle, S.ParallelPicard(window=p, tol=0.3, eta=eta), sig, key, num_samples=3)
    q, r = np.asarray(mid.stats.queries), np.asarray(mid.stats.rounds)
    assert np.all((math.ceil(n / p) <= r) & (r <= n) & (n <= q) & (q <= p * r))
    np.testing.assert_array_equal(np.asarray(mid.stats.calls), q)
    assert np.all(np.asarray(mid.status) == js.Status.success)


@pytest.mark.slow
def test_picard_small_window_and_max_sweeps_exhaustion():
    n = 4
    oracle = CountingOracle(js.oracles.Exact(_target()))
    sig = js.schedules.geometric(n + 1, 0.05, 20.0, append_zero=False)
    res = js.sample(oracle, S.ParallelPicard(window=10, tol=0.0, max_sweeps=2), sig, jax.random.key(0), num_samples=2)
    # window larger than N: sweep b queries N - b entries; two sweeps: 4 + 3
    np.testing.assert_array_equal(np.asarray(res.stats.queries), 7)
    np.testing.assert_array_equal(np.asarray(res.stats.rounds), 2)
    assert res.status_names == ["budget_exhausted"] * 2


# ----------------------------------------------------------------------------------------------
# Adaptive
# ----------------------------------------------------------------------------------------------


def _accepted(res):
    return np.sum(np.isfinite(np.asarray(res.trace.sigma)), axis=-1)


@pytest.mark.parametrize(
    "pair,order,reuse",
    [
        ("dpm", 2, True),
        ("dpm", 3, True),
        pytest.param("dpm", 2, False, marks=pytest.mark.slow),
        ("ggf", 2, True),
        pytest.param("ggf", 2, False, marks=pytest.mark.slow),
    ],
)
def test_adaptive_counts_every_attempt(pair, order, reuse):
    sig = js.schedules.geometric(N, 0.05, 20.0)
    smin = float(sig[-2])
    oracle = CountingOracle(js.oracles.Exact(_target(8)), level=smin)
    # a huge first step forces rejections
    sampler = S.Adaptive(order=order, pair=pair, reuse_start=reuse, h_init=4.0, rtol=0.02)
    res = js.sample(oracle, sampler, sig, jax.random.key(1), num_samples=3, max_queries=600,
                    record=js.Record())
    q, lv, r = (np.asarray(a, np.int64) for a in (res.stats.queries, res.stats.levels, res.stats.rounds))
    np.testing.assert_array_equal(q, np.asarray(res.stats.calls))
    np.testing.assert_array_equal(r, q)
    assert np.all(np.asarray(res.status) == js.Status.success)
    n_acc = _accepted(res)
    k = order if pair == "dpm" else 2
    if reuse:
        n_rej = (q - 1 - k * n_acc) // (k - 1)
        np.testing.assert_array_equal(k * n_acc + (k - 1) * n_rej + 1, q)
    else:
        n_rej = (q - 1) // k - n_acc
        np.testing.assert_array_equal(k * (n_acc + n_rej) + 1, q)
    assert np.all(n_rej >= 1) and np.all(n_acc >= 1)
    if pair == "dpm":
        np.testing.assert_array_equal(lv, k * n_acc + (k - 1) * n_rej + 1)
    else:
        n_min = np.asarray(res.stats.at_level) - 1  # capped K2 calls; the Tweedie call is the +1
        assert np.all(n_min >= 1)
        np.testing.assert_array_equal(lv, n_acc + n_rej + 2 - n_min)
    # the last accepted step lands exactly on sigma_min
    last = np.asarray(res.trace.sigma)[np.arange(3), n_acc - 1]
    np.testing.assert_array_equal(last, smin)


def test_adaptive_budget_exhaustion_and_per_chain_independence():
    sig = js.schedules.geometric(N, 0.05, 20.0)
    oracle = CountingOracle(js.oracles.Exact(_target(8)))
    sampler = S.Adaptive(pair="ggf", rtol=0.02)
    key = jax.random.key(2)
    batch = js.sample(oracle, sampler, sig, key, num_samples=3, max_queries=400)
    for i in (0, 2):
        one = js.sample_one(oracle, sampler, sig, jax.random.fold_in(key, i), max_queries=400)
        assert int(one.stats.queries) == int(batch.stats.queries[i])
        assert int(one.stats.levels) == int(batch.stats.levels[i])
        np.testing.assert_allclose(np.asarray(one.x), np.asarray(batch.x[i]), rtol=1e-6)
    assert len(set(np.asarray(batch.stats.queries).tolist())) > 1  # chains really differ
    small = js.sample(oracle, sampler, sig, key, num_samples=3, max_queries=9)
    assert small.status_names == ["budget_exhausted"] * 3
    assert np.all(np.asarray(small.stats.queries) <= 9)
    np.testing.assert_array_equal(np.asarray(small.stats.calls), np.asarray(small.stats.queries))


def test_picard_per_chain_independence():
    sig = js.schedules.geometric(8, 0.05, 20.0)
    oracle = js.oracles.Exact(js.targets.GaussianMixture(jnp.array([[-2.0, 0.0, 1.0], [2.0, 1.0, 0.0]]), 0.3))
    sampler = S.ParallelPicard(window=4, tol=0.05, eta=1.0)
    key = jax.random.key(4)
    batch = js.sample(oracle, sampler, sig, key, num_samples=4)
    for i in (1, 3):
        one = js.sample_one(oracle, sampler, sig, jax.random.fold_in(key, i))
        assert int(one.stats.queries) == int(batch.stats.queries[i])
        assert int(one.stats.rounds) == int(batch.stats.rounds[i])


# ----------------------------------------------------------------------------------------------
# Equivalences and no-retrace
# ----------------------------------------------------------------------------------------------


def test_randomized_midpoint_kj1_is_the_sequential_formula(x64):
    """K = J = 1 reproduces the EDM-form sequential randomized-midpoint step, written out here."""
    tgt = _target(4)
    oracle = js.oracles.Exact(tgt)
    sig = jnp.array([3.0, 1.2])
    x0 = jnp.array([0.3, -1.0, 2.0, 0.5])
    res = js.sample_one(oracle, S.RandomizedMidpoint(), sig, jax.random.key(7), x_init=x0)
    # replay the draws: step key = fold_in(stream(chain, SAMPLER), 0); split into (u, w)
    skey = jax.random.fold_in(js.seeds.stream(jax.random.key(7), js.seeds.SAMPLER), 0)
    k_u, k_w = jax.random.split(skey)
    s, s2 = 3.0, 1.2
    t, t2 = 0.5 * np.log1p(s * s), 0.5 * np.log1p(s2 * s2)
    h = t - t2
    u = float(jax.random.uniform(k_u, (1,), jnp.float64)[0]) * h
    w = np.asarray(jax.random.normal(k_w, (2, 4), jnp.float64))
    sm = np.sqrt((1 + s * s) * np.exp(-2 * u) - 1)
    rho1, rho = np.exp(-u), np.exp(-h)
    rho2 = rho / rho1
    srel = lambda y, sg: np.asarray(tgt.score(jnp.asarray(y), sg)) + y / (1 + sg * sg)
    y = np.asarray(x0)
    n1 = rho1 * np.sqrt(s * s - sm * sm) * w[0]
    ym = rho1**2 * y + 2 * rho1 * (1 - rho1) * (1 + s * s) * srel(y, s) + n1
    y1 = rho**2 * y + 2 * h * (1 + s2 * s2) * srel(ym, sm) + rho2**2 * n1 + rho2 * np.sqrt(sm * sm - s2 * s2) * w[1]
    np.testing.assert_allclose(np.asarray(res.x), y1, rtol=1e-10, atol=1e-10)


def test_no_retrace_when_hyperparameters_change():
    oracle = js.oracles.Exact(_target())
    sig = js.schedules.geometric(N, 0.05, 20.0)
    key = jax.random.key(0)
    cases = [
        [S.PredictorCorrector(corrector_steps=1, snr=s) for s in (0.05, 0.1, 0.2)],
        [S.Adaptive(rtol=r, atol=a) for r, a in ((0.05, 0.01), (0.1, 0.001), (0.01, 0.02))],
        [S.SingleLevel(sigma=s, steps=3, snr=0.1) for s in (0.3, 1.0, 2.0)],
    ]
    for samplers in cases:
        js.sample(oracle, samplers[0], sig, key, num_samples=2, max_queries=200)
        before = TRACE_COUNTS["sample"]
        for smp in samplers[1:]:
            js.sample(oracle, smp, sig, key, num_samples=2, max_queries=200)
        assert TRACE_COUNTS["sample"] == before, type(samplers[0]).__name__


@pytest.mark.parametrize(
    "make", [lambda: S.ExponentialIntegrator(form="relative"), lambda: S.RandomizedMidpoint(num_points=2, picard_iters=2)],
    ids=["ei_relative", "rm_k2j2"],
)
def test_relative_score_forms_exact_for_standard_normal(make):
    """For p = N(0, I), S_rel = 0: both relative-score samplers are exact in law on any grid, so a
    3-step grid from q_{sigma_0} must give q_{sigma_N} = N(0, (1 + sigma_N^2) I) (5-SE tolerance)."""
    d, n = 64, 1024
    oracle = js.oracles.Exact(js.targets.Gaussian(jnp.zeros(d), 1.0))
    sig = jnp.array([40.0, 3.0, 1.1, 0.5])
    x0 = jnp.sqrt(1 + 40.0**2) * jax.random.normal(jax.random.key(9), (n, d))
    out = np.asarray(js.sample(oracle, make(), sig, jax.random.key(2), x_init=x0).x).ravel()
    m, se_m = mean_se(out)
    v, se_v = var_se(out)
    assert_within_se(m, 0.0, se_m, what="mean")
    assert_within_se(v, 1.0 + 0.5**2, se_v, what="variance")


def test_predictor_corrector_per_chain_snr():
    """The Langevin step size uses this chain's norms only: a chain's output is the same alone and
    in a batch whose other chains start far away."""
    oracle = js.oracles.Exact(_target(8))
    sig = js.schedules.geometric(4, 0.05, 20.0)
    sampler = S.PredictorCorrector(corrector_steps=2, snr=0.2)
    key = jax.random.key(8)
    x0 = 20.0 * jax.random.normal(jax.random.key(1), (3, 8))
    x0 = x0.at[1].multiply(100.0)
    batch = js.sample(oracle, sampler, sig, key, x_init=x0)
    one = js.sample_one(oracle, sampler, sig, jax.random.fold_in(key, 2), x_init=x0[2])
    np.testing.assert_allclose(np.asarray(one.x), np.asarray(batch.x[2]), rtol=1e-5, atol=1e-6)
