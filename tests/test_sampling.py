"""The engine: exact accounting, budgets, traces, invariances, retracing and input errors."""

import math
import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jscore as js
from jscore.counting import charged_query
from jscore.oracles import AbstractOracle
from jscore.samplers import AbstractFixedStepSampler


class CountingOracle(AbstractOracle):
    """Exact scores; its state counts the calls it actually answered (charged ones)."""

    target: js.targets.AbstractTarget

    @property
    def dim(self):
        return self.target.dim

    def init(self, key, dim):
        return jnp.zeros((), jnp.int32)

    def query(self, x, sigma, state):
        return self.target.score(x, sigma), state + 1

    def report(self, state):
        return {"oracle_calls": state}


class TwoQueryEuler(AbstractFixedStepSampler):
    """Test sampler: Euler, but each step queries twice (the second answer is averaged in)."""

    @property
    def is_stochastic(self):
        return False

    def num_queries(self, num_steps, ends_at_zero):
        return None  # pretend data-dependent, so budgets below the full cost are allowed

    def query_capacity(self, num_steps, ends_at_zero):
        return 2 * num_steps

    def init(self, sigmas, x):
        return None

    def step(self, oracle, i, sigmas, x, state, ostate, ledger, key):
        s, s2 = sigmas[i], sigmas[i + 1]
        a, ostate, ledger = charged_query(oracle, x, s, ostate, ledger)
        b, ostate, ledger = charged_query(oracle, x, s, ostate, ledger)
        score = 0.5 * (a + b)
        d = x + s * s * score
        return (s2 / s) * x + (1 - s2 / s) * d, state, ostate, ledger


@pytest.fixture(scope="module")
def gmm():
    key = jax.random.key(0)
    return js.targets.GaussianMixture(2.0 * jax.random.normal(key, (5, 8)), 0.3)


# ---- exact accounting --------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 5])
def test_counts_euler_heun(gmm, n):
    oracle = CountingOracle(gmm)
    key = jax.random.key(1)
    for append_zero in (True, False):
        sig = js.schedules.karras(n, append_zero=append_zero) if append_zero else js.schedules.karras(n + 1)[:-1]
        # note: for append_zero=False the grid is n+1 positive levels, i.e. n steps ending at sigma_N > 0
        r = js.sample(oracle, js.samplers.Euler(), sig, key, num_samples=3)
        assert np.all(r.stats.queries == n) and np.all(r.stats.levels == n) and np.all(r.stats.rounds == n)
        assert np.all(r.stats.oracle_calls == r.stats.queries)
        r = js.sample(oracle, js.samplers.Heun(), sig, key, num_samples=3)
        q = 2 * n - 1 if append_zero else 2 * n
        lv = n if append_zero else n + 1
        assert np.all(r.stats.queries == q) and np.all(r.stats.rounds == q)
        assert np.all(r.stats.levels == lv)
        # the masked corrector of the last step executes but is neither charged nor answered
        assert np.all(r.stats.oracle_calls == q)
        for s in (js.samplers.EulerAncestral(), js.samplers.DDIM(0.3), js.samplers.EulerMaruyama()):
            r = js.sample(oracle, s, sig, key, num_samples=2)
            assert np.all(r.stats.queries == n) and np.all(r.stats.levels == n)


def test_heun_churn_levels_match_spec(gmm):
    oracle = js.oracles.Exact(gmm)
    sig = js.schedules.karras(18)
    key = jax.random.key(0)
    # churn everywhere (S_tmin = 0, S_tmax = inf): every step queries a new off-grid level
    r = js.sample(oracle, js.samplers.Heun(s_churn=40.0), sig, key, num_samples=2)
    assert np.all(r.stats.queries == 35) and np.all(r.stats.levels == 35)
    # EDM ImageNet-64 setting: 13 churned steps, sigma_0 = 80 unchurned: 17 + 13 + 1 = 31
    h = js.samplers.Heun(s_churn=40.0, s_tmin=0.05, s_tmax=50.0, s_noise=1.003)
    n_c = int(np.sum(np.asarray(h.gammas(sig)) > 0))
    assert n_c == 13
    r = js.sample(oracle, h, sig, key, num_samples=2)
    assert np.all(r.stats.queries == 35) and np.all(r.stats.levels == 31)


def test_budget_exhaustion_stops_charging_and_freezes_state(gmm):
    oracle = CountingOracle(gmm)
    sig = js.schedules.karras(6)
    key = jax.random.key(4)
    x_init = jax.random.normal(key, (3, 8)) * 80.0
    full = js.sample(oracle, TwoQueryEuler(), sig, key, x_init=x_init)
    assert np.all(full.stats.queries == 12) and np.all(full.status == js.Status.success)
    # budget 7: three steps complete (6 queries), the 4th step's first query is charged, its second
    # is refused: the chain stops, keeps the state after step 3, and is marked exhausted
    r = js.sample(oracle, TwoQueryEuler(), sig, key, x_init=x_init, max_queries=7)
    assert np.all(r.stats.queries == 7) and np.all(r.stats.oracle_calls == 7)
    assert np.all(r.status == js.Status.budget_exhausted)
    assert r.status_names == ["budget_exhausted"] * 3
    three = js.sample(oracle, TwoQueryEuler(), sig[:4], key, x_init=x_init)
    np.testing.assert_array_equal(r.x, three.x)
    summ = js.summarize(r)
    assert summ["status"]["budget_exhausted"] == 3 and summ["queries"]["total"] == 21


def test_run_chain_is_the_loop_of_sample_one_and_of_padded_sweep_units(gmm):
    """js.sampling.run_chain: bitwise the chain of sample_one; on a grid padded with zero steps and
    the exact cost as budget, ``budget_is_cost`` calls a spent budget success (the sweeps' rule)
    where the default rule calls the refused padded queries an exhausted budget; a mask keeps the
    start zero and non-finite checks on the valid coordinates."""
    from jscore.sampling import initial_point
    from jscore.sampling import run_chain as _run_chain
    from jscore.seeds import chain_key

    run_chain = eqx.filter_jit(_run_chain)  # compiled, as sample_one is

    oracle, sampler = js.oracles.Exact(gmm), js.samplers.Heun()
    sig = js.schedules.karras(5)
    ck = chain_key(jax.random.key(2), 3)
    one = js.sample_one(oracle, sampler, sig, ck)
    cost = sampler.num_queries(5, True)
    r = run_chain(oracle, sampler, sig, ck, dim=8, budget=cost, capacity=cost)
    np.testing.assert_array_equal(r.x, one.x)
    assert int(r.stats.queries) == int(one.stats.queries) == cost and int(r.status) == js.Status.success
    padded = jnp.concatenate([sig, jnp.zeros(3, sig.dtype)])  # 3 extra steps after the final 0
    cap = sampler.query_capacity(8, True)
    strict = run_chain(oracle, sampler, padded, ck, dim=8, budget=cost, capacity=cap)
    as_cost = run_chain(oracle, sampler, padded, ck, dim=8, budget=cost, capacity=cap, budget_is_cost=True)
    np.testing.assert_array_equal(as_cost.x, one.x)
    assert int(strict.status) == js.Status.budget_exhausted and int(as_cost.status) == js.Status.success
    short = run_chain(oracle, sampler, sig, ck, dim=8, budget=cost + 1, capacity=cost + 1, budget_is_cost=True)
    assert int(short.status) == js.Status.budget_exhausted  # fewer queries than the stated cost
    mask = jnp.arange(8) < 6
    x0 = initial_point(sig, ck, 8, mask)
    assert np.all(np.asarray(x0[6:]) == 0) and np.all(np.asarray(x0[:6]) != 0)
    nan_off_mask = x0.at[7].set(jnp.nan)
    m = run_chain(js.sweeps.padding.Masked(oracle, mask), sampler, sig, ck, nan_off_mask, dim=8,
                  budget=cost, capacity=cost, mask=mask)
    assert int(m.status) == js.Status.success and not np.isfinite(np.asarray(m.x[7]))


def test_sample_one_throws_on_exhaustion(gmm):
    with pytest.raises(Exception, match="max_queries"):
        js.sample_one(CountingOracle(gmm), TwoQueryEuler(), js.schedules.karras(4), jax.random.key(0), max_queries=3)
    r = js.sample_one(CountingOracle(gmm), TwoQueryEuler(), js.schedules.karras(4), jax.random.key(0), max_queries=3, throw=False)
    assert int(r.status) == js.Status.budget_exhausted


def test_trace_records_cumulative_counts(gmm):
    sig = js.schedules.karras(7)
    r = js.sample(js.oracles.Exact(gmm), js.samplers.Heun(), sig, jax.random.key(0), num_samples=2,
                  record=js.Record(every=3, x=True))
    assert r.trace.queries.shape == (2, 3)
    np.testing.assert_array_equal(r.trace.queries[0], [6, 12, 13])
    np.testing.assert_array_equal(r.trace.levels[0], [4, 7, 7])
    np.testing.assert_allclose(r.trace.sigma[0], np.asarray(sig)[[3, 6, 7]])
    np.testing.assert_array_equal(r.trace.x[:, -1], r.x)
    assert js.sample(js.oracles.Exact(gmm), js.samplers.Heun(), sig, jax.random.key(0), num_samples=2).trace is None


# ---- invariances -------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler", [js.samplers.Heun(s_churn=5.0), js.samplers.EulerAncestral()])
def test_batch_size_and_chunk_invariance(gmm, sampler):
    oracle = js.oracles.Exact(gmm)
    sig = js.schedules.karras(5)
    key = jax.random.key(9)
    small = js.sample(oracle, sampler, sig, key, num_samples=4)
    big = js.sample(oracle, sampler, sig, key, num_samples=64)
    chunked = js.sample(oracle, sampler, sig, key, num_samples=64, chunk_size=16)
    one = js.sample_one(oracle, sampler, sig, jax.random.fold_in(key, 3))
    # Chains run in fixed blocks (chain_block), so the batch size changes nothing, bit for bit,
    # even though XLA fuses the mixture's products across the chains of a block.
    np.testing.assert_array_equal(small.x, big.x[:4])
    chunked_small = js.sample(oracle, sampler, sig, key, num_samples=20, chunk_size=16)
    np.testing.assert_array_equal(chunked_small.x, chunked.x[:20])
    # another block size regroups the mixture's products: float rounding only
    np.testing.assert_allclose(chunked.x, big.x, rtol=1e-5, atol=1e-5)
    # sample_one runs without vmap: the mixture's (K, d) @ (d,) products round differently.
    np.testing.assert_allclose(one.x, big.x[3], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(chunked.stats.queries, big.stats.queries)
    np.testing.assert_array_equal(small.stats.levels, big.stats.levels[:4])


def test_batch_size_invariance_is_bitwise_for_elementwise_targets():
    # With no reductions in the score (Gaussian target), seed i is bit-identical in any batch.
    oracle = js.oracles.Exact(js.targets.Gaussian(jnp.linspace(-1, 1, 8), 0.5))
    sig = js.schedules.karras(5)
    key = jax.random.key(9)
    small = js.sample(oracle, js.samplers.EulerAncestral(), sig, key, num_samples=4)
    big = js.sample(oracle, js.samplers.EulerAncestral(), sig, key, num_samples=64)
    np.testing.assert_array_equal(small.x, big.x[:4])


def test_jit_equals_eager(gmm):
    oracle = js.oracles.Exact(gmm)
    sig = js.schedules.karras(4)
    key = jax.random.key(2)
    jitted = js.sample_one(oracle, js.samplers.Heun(s_churn=3.0), sig, key)
    with jax.disable_jit():
        eager = js.sample_one(oracle, js.samplers.Heun(s_churn=3.0), sig, key)
    np.testing.assert_allclose(eager.x, jitted.x, rtol=1e-5, atol=1e-5)
    assert int(eager.stats.queries) == int(jitted.stats.queries) == 7


def test_typed_and_raw_keys_accepted(gmm):
    sig = js.schedules.karras(3)
    r1 = js.sample(js.oracles.Exact(gmm), js.samplers.Euler(), sig, jax.random.PRNGKey(0), num_samples=2)
    r2 = js.sample(js.oracles.Exact(gmm), js.samplers.Euler(), sig, jax.random.key(0), num_samples=2)
    assert r1.x.shape == r2.x.shape == (2, 8)


def test_changing_array_values_does_not_retrace():
    key = jax.random.key(0)
    sig = js.schedules.karras(6)
    before = js.sampling.TRACE_COUNTS["sample"]
    for i in range(5):
        target = js.targets.GaussianMixture(jax.random.normal(jax.random.fold_in(key, i), (3, 4)), 0.1 + i / 10)
        sampler = js.samplers.Heun(s_churn=float(i), s_tmin=0.01 * i, s_noise=1.0 + i / 100)
        grid = js.schedules.karras(6, sigma_max=40.0 + i)
        js.sample(js.oracles.Exact(target), sampler, grid, key, num_samples=8)
        js.sample(js.oracles.Exact(target), js.samplers.EulerAncestral(eta=i / 5), sig, key, num_samples=8)
    assert js.sampling.TRACE_COUNTS["sample"] - before == 2


def test_float64_under_x64(x64):
    t = js.targets.Gaussian(jnp.zeros(3), 1.0)
    r = js.sample(js.oracles.Exact(t), js.samplers.Euler(), js.schedules.karras(3), jax.random.key(0), num_samples=2)
    assert r.x.dtype == jnp.float64


def test_samplers_use_the_one_door():
    # samplers obtain scores only through counting.charged_query / charged_round
    root = pathlib.Path(js.__file__).parent / "samplers"
    offenders = [p.name for p in root.glob("*.py") if ".query(" in p.read_text()]
    assert offenders == []


# ---- bad input: one test per structural mistake -------------------------------------------------
def test_error_x_init_wrong_shape(gmm):
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        js.sample(js.oracles.Exact(gmm), js.samplers.Euler(), js.schedules.karras(3), jax.random.key(0), x_init=jnp.zeros(8))
    with pytest.raises(ValueError, match=r"shape \(d,\)"):
        js.sample_one(js.oracles.Exact(gmm), js.samplers.Euler(), js.schedules.karras(3), jax.random.key(0), x_init=jnp.zeros((2, 8)))


def test_error_dimension_mismatch(gmm):
    with pytest.raises(ValueError, match="dimension 5 but the oracle answers in dimension 8"):
        js.sample(js.oracles.Exact(gmm), js.samplers.Euler(), js.schedules.karras(3), jax.random.key(0), x_init=jnp.zeros((2, 5)))


def test_error_non_decreasing_schedule(gmm):
    with pytest.raises(ValueError, match="strictly decreasing"):
        js.sample(js.oracles.Exact(gmm), js.samplers.Euler(), jnp.array([1.0, 2.0, 0.0]), jax.random.key(0), num_samples=2)
    with pytest.raises(ValueError, match="non-negative"):
        js.sample(js.oracles.Exact(gmm), js.samplers.Euler(), jnp.array([1.0, -1.0]), jax.random.key(0), num_samples=2)
    with pytest.raises(ValueError, match="at least 2"):
        js.sample(js.oracles.Exact(gmm), js.samplers.Euler(), jnp.array([1.0]), jax.random.key(0), num_samples=2)


def test_error_negative_or_out_of_range_knobs():
    with pytest.raises(ValueError, match="eta"):
        js.samplers.EulerAncestral(eta=-0.1)
    with pytest.raises(ValueError, match="eta"):
        js.samplers.DDIM(eta=1.5)
    with pytest.raises(ValueError, match="s_churn"):
        js.samplers.Heun(s_churn=-1.0)


def test_error_unknown_options():
    with pytest.raises(ValueError, match="variant"):
        js.samplers.EulerMaruyama(variant="heun")
    with pytest.raises(ValueError, match="variance"):
        js.samplers.EulerAncestral(variance="small")
    with pytest.raises(ValueError, match="Unknown sampler"):
        js.samplers.make("nope")


def test_error_budget_below_fixed_cost(gmm):
    with pytest.raises(ValueError, match="35 queries Heun needs for a 18-step grid"):
        js.sample(js.oracles.Exact(gmm), js.samplers.Heun(), js.schedules.karras(18), jax.random.key(0), num_samples=2, max_queries=20)


def test_error_missing_num_samples_and_wrong_types(gmm):
    with pytest.raises(ValueError, match="num_samples"):
        js.sample(js.oracles.Exact(gmm), js.samplers.Euler(), js.schedules.karras(3), jax.random.key(0))
    with pytest.raises(TypeError, match="oracle"):
        js.sample(gmm, js.samplers.Euler(), js.schedules.karras(3), jax.random.key(0), num_samples=2)
    with pytest.raises(TypeError, match="sampler"):
        js.sample(js.oracles.Exact(gmm), "euler", js.schedules.karras(3), jax.random.key(0), num_samples=2)
    with pytest.raises(TypeError, match="key"):
        js.sample(js.oracles.Exact(gmm), js.samplers.Euler(), js.schedules.karras(3), 0, num_samples=2)
    with pytest.raises(TypeError, match="Exact"):
        js.oracles.Exact("gmm")
