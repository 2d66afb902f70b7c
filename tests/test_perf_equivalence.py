"""The optimised hot paths give the same results as the reference formulations (issue 8).

Each optimisation keeps its textbook formulation here as the reference:

- ``Ledger._mark_level``: O(1) fast path for levels queried in non-increasing order, gated
  O(capacity) search otherwise. Reference: ``is_new = charged & ~any(seen == sigma)``. Counts and
  the stored buffer must be *identical*, unbatched and under vmap, including capacity overflow,
  masked calls, repeated, increasing, infinite and NaN levels.
- ``GaussianMixture.score/denoise``: scalars folded into the responsibilities, no division per
  coordinate. Reference: ``(mbar - x) / v`` and ``(sigma^2 mbar + std^2 x) / v``: equal to rounding.
- ``Euler.step``: ``x + sigma (sigma - sigma') S``. Reference: ``ratio x + (1 - ratio) D``.
- ``Heun.step``: without churn (``s_churn = 0``) no noise is drawn and the step key's per-chain
  ``fold_in`` is not computed (a cond on ``s_churn > 0``). Reference: key derived and noise drawn
  every step, multiplied by 0 when gamma = 0: bit-identical results.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jscore as js
from jscore.counting import Ledger, charged_query
from jscore.samplers.base import AbstractFixedStepSampler


# ---------------------------------------------------------------- reference formulations


def _reference_mark_level(ledger, sigma, charged):
    """The original O(capacity) distinct-level update (core as first merged)."""
    sigma = jnp.asarray(sigma, ledger.seen.dtype)
    is_new = charged & ~jnp.any(ledger.seen == sigma)
    slot = jnp.minimum(ledger.levels, ledger.seen.shape[0] - 1)
    old = ledger.seen[slot]
    seen = ledger.seen.at[slot].set(jnp.where(is_new, sigma, old))
    return eqx.tree_at(
        lambda l: (l.seen, l.levels), ledger, (seen, ledger.levels + is_new.astype(jnp.int32))
    )


class _RefLedger(Ledger):
    def _mark_level(self, sigma, charged):
        return _reference_mark_level(self, sigma, charged)


def _ref_mixture_score(t, x, sigma):
    sigma = jnp.asarray(sigma, x.dtype)
    v = t.std * t.std + sigma * sigma
    r = jax.nn.softmax(t.log_weights + (t.means @ x - t.half_sq_norms) / v)
    return (r @ t.means - x) / v


def _ref_mixture_denoise(t, x, sigma):
    sigma = jnp.asarray(sigma, x.dtype)
    v = t.std * t.std + sigma * sigma
    r = jax.nn.softmax(t.log_weights + (t.means @ x - t.half_sq_norms) / v)
    return (sigma * sigma * (r @ t.means) + t.std * t.std * x) / v


class _RefOracle(js.oracles.Exact):
    """Exact oracle answering with the reference mixture formula."""

    def query(self, x, sigma, state):
        return _ref_mixture_score(self.target, x, sigma), state


class _RefEuler(js.samplers.Euler):
    def step(self, oracle, i, sigmas, x, state, ostate, ledger, key):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        score, ostate, ledger = charged_query(oracle, x, sigma, ostate, ledger)
        denoised = x + sigma * sigma * score
        ratio = sigma_next / sigma
        return ratio * x + (1.0 - ratio) * denoised, state, ostate, ledger


class _RefHeun(js.samplers.Heun):
    _lazy_step_key = False  # reference: the key is derived eagerly by solve, every step

    def step(self, oracle, i, sigmas, x, state, ostate, ledger, key):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        gamma = self.gammas(sigmas)[i]
        sigma_hat = sigma * (1.0 + gamma)
        z = jax.random.normal(key, x.shape, x.dtype)
        x_hat = x + self.s_noise * sigma * jnp.sqrt(gamma * (2.0 + gamma)) * z
        score, ostate, ledger = charged_query(oracle, x_hat, sigma_hat, ostate, ledger)
        d = -sigma_hat * score
        x_pred = x_hat + (sigma_next - sigma_hat) * d
        not_last = sigma_next > 0
        score2, ostate, ledger = charged_query(
            oracle, x_pred, sigma_next, ostate, ledger, when=not_last
        )
        d2 = -sigma_next * score2
        x_corr = x_hat + (sigma_next - sigma_hat) * 0.5 * (d + d2)
        return jnp.where(not_last, x_corr, x_pred), state, ostate, ledger


def _with_ref_ledger(sampler_cls):
    """A subclass of ``sampler_cls`` whose solve runs on the reference ledger."""

    class Ref(sampler_cls):
        def solve(self, oracle, sigmas, x, key, ostate, ledger, record):
            ref = _RefLedger(**{f: getattr(ledger, f) for f in ledger.__dataclass_fields__})
            return super().solve(oracle, sigmas, x, key, ostate, ref, record)

    Ref.__name__ = f"Ref{sampler_cls.__name__}"
    return Ref


# ---------------------------------------------------------------- ledger: identical counts

POOL = np.array([3.0, 2.0, 1.5, 1.0, 0.5, 0.25, 0.0, np.inf, np.nan, 2.5], np.float32)


@functools.cache
def _ledger_runner(cls, capacity, budget):
    def body(ledger, inp):
        s, w = inp
        ledger, _ = ledger.charge(s, w)
        return ledger, (ledger.levels, ledger.queries, ledger.exhausted)

    def one(sigmas, when):
        led = Ledger.empty(budget, capacity, jnp.float32)
        led = cls(**{f: getattr(led, f) for f in led.__dataclass_fields__})
        led, hist = jax.lax.scan(body, led, (sigmas, when))
        return led.seen, hist

    return jax.jit(jax.vmap(one))


def _run_ledger(cls, sigmas, when, capacity, budget):
    return _ledger_runner(cls, capacity, budget)(sigmas, when)


@settings(max_examples=30, deadline=None)
@given(
    idx=st.lists(st.lists(st.integers(0, len(POOL) - 1), min_size=14, max_size=14),
                 min_size=3, max_size=3),
    mask=st.lists(st.lists(st.booleans(), min_size=14, max_size=14), min_size=3, max_size=3),
    capacity=st.sampled_from([5, 20]),
    budget=st.sampled_from([10, 20]),
    sort=st.booleans(),
)
def test_ledger_counts_identical_to_reference(idx, mask, capacity, budget, sort):
    """Random level sequences (repeats, increases, 0, inf, NaN, masks, overflow, exhaustion):
    per-step levels/queries/exhausted and the final buffer equal the reference, under vmap."""
    sig = POOL[np.asarray(idx)]
    if sort:  # the grid-sampler pattern: non-increasing with re-queries
        sig = -np.sort(-np.nan_to_num(sig, nan=0.1, posinf=4.0), axis=1)
    sig = jnp.asarray(sig)
    when = jnp.asarray(mask)
    seen_fast, hist_fast = _run_ledger(Ledger, sig, when, capacity, budget)
    seen_ref, hist_ref = _run_ledger(_RefLedger, sig, when, capacity, budget)
    for a, b in zip(hist_fast, hist_ref):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(seen_fast), np.asarray(seen_ref))
    # and the count is the number of distinct charged floats (no overflow case)
    if capacity >= 14:
        for c in range(3):
            charged = []
            for s, w in zip(np.asarray(sig[c]), np.asarray(when[c])):
                if w and len(charged) < budget:
                    charged.append(s)
                elif w:
                    break
            # +inf marks empty slots, so it never counts; NaN != NaN counts every time
            distinct = {float(v) for v in charged if np.isfinite(v)}
            expected = len(distinct) + sum(bool(np.isnan(v)) for v in charged)
            assert int(hist_fast[0][c, -1]) == expected


def test_ledger_fast_path_unbatched_matches_reference():
    """Without vmap (sample_one's case) the gated search is a plain branch: same counts."""
    seq = jnp.asarray([2.0, 1.0, 1.0, 0.5, 1.0, 3.0, 0.5, 0.25, 3.0], jnp.float32)
    charge = jax.jit(lambda l, s: l.charge(s, True)[0])
    for cls in (Ledger, _RefLedger):
        led = Ledger.empty(20, 20, jnp.float32)
        led = cls(**{f: getattr(led, f) for f in led.__dataclass_fields__})
        levels = []
        for s in seq:
            led = charge(led, s)
            levels.append(int(led.levels))
        if cls is Ledger:
            fast = levels
    assert fast == levels == [1, 2, 2, 3, 3, 4, 4, 5, 5]


# ---------------------------------------------------------------- mixture: fused arithmetic


@pytest.mark.parametrize("std", [0.5, 0.0])
def test_mixture_fused_equals_reference_x64(x64, std):
    key = jax.random.key(3)
    k1, k2, k3 = jax.random.split(key, 3)
    means = 3.0 * jax.random.normal(k1, (16, 32))
    w = jax.random.uniform(k2, (16,)) + 0.1
    t = js.targets.GaussianMixture(means, std, weights=w)
    xs = 4.0 * jax.random.normal(k3, (8, 32))
    for sigma in [1e-3, 0.05, 0.7, 3.0, 80.0]:
        got = jax.vmap(t.score, (0, None))(xs, sigma)
        ref = jax.vmap(lambda x: _ref_mixture_score(t, x, sigma))(xs)
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10 * float(jnp.max(jnp.abs(ref))))
        got = jax.vmap(t.denoise, (0, None))(xs, sigma)
        ref = jax.vmap(lambda x: _ref_mixture_denoise(t, x, sigma))(xs)
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10 * float(jnp.max(jnp.abs(ref))))


def test_mixture_fused_equals_reference_f32():
    k1, k2 = jax.random.split(jax.random.key(4))
    t = js.targets.GaussianMixture(3.0 * jax.random.normal(k1, (16, 64)), 0.5)
    xs = 5.0 * jax.random.normal(k2, (16, 64))
    for sigma in [2e-3, 0.3, 5.0, 80.0]:
        got = jax.vmap(t.score, (0, None))(xs, sigma)
        ref = jax.vmap(lambda x: _ref_mixture_score(t, x, sigma))(xs)
        scale = float(jnp.max(jnp.abs(ref)))
        np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5 * scale)
    assert got.dtype == jnp.float32


# ---------------------------------------------------------------- end to end: samplers + ledger


def _problem(d=16, n=6):
    k1, k2 = jax.random.split(jax.random.key(7))
    t = js.targets.GaussianMixture(3.0 * jax.random.normal(k1, (16, d)), 0.5)
    return t, js.oracles.Exact(t)


def _assert_counts_equal(a, b):
    for f in ("queries", "levels", "rounds"):
        np.testing.assert_array_equal(getattr(a.stats, f), getattr(b.stats, f))
    np.testing.assert_array_equal(a.status, b.status)


_CHURN = dict(s_churn=8.0, s_tmin=0.05, s_tmax=5.0)


@pytest.mark.parametrize(
    "fast,ref,append_zero",
    [
        (js.samplers.Euler(), _with_ref_ledger(_RefEuler)(), True),
        (js.samplers.Heun(), _with_ref_ledger(_RefHeun)(), True),
        (js.samplers.Heun(**_CHURN), _with_ref_ledger(_RefHeun)(**_CHURN), True),
    ],
    ids=["euler", "heun", "heun_churn"],
)
def test_sample_matches_reference(fast, ref, append_zero):
    """Optimised engine vs reference sampler + reference oracle + reference ledger: identical
    counts and status, final states equal to float32 rounding (chaotic growth bounded by 1e-4
    of the state's scale over the grid)."""
    t, oracle = _problem()
    sig = js.schedules.karras(12, append_zero=append_zero)
    key = jax.random.key(11)
    a = js.sample(oracle, fast, sig, key, num_samples=6)
    b = js.sample(_RefOracle(t), ref, sig, key, num_samples=6)
    _assert_counts_equal(a, b)
    scale = float(jnp.max(jnp.abs(b.x)))
    np.testing.assert_allclose(a.x, b.x, rtol=1e-4, atol=1e-4 * scale)


def test_heun_no_churn_bit_identical_with_same_oracle():
    """Skipping the noise draw when gamma = 0 changes nothing: bit-identical states."""
    t, oracle = _problem()
    sig = js.schedules.karras(10, append_zero=False)  # corrector on every step
    key = jax.random.key(5)
    a = js.sample(oracle, js.samplers.Heun(), sig, key, num_samples=5)
    b = js.sample(oracle, _with_ref_ledger(_RefHeun)(), sig, key, num_samples=5)
    np.testing.assert_array_equal(a.x, b.x)
    _assert_counts_equal(a, b)


def test_heun_churn_window_bit_identical_with_same_oracle():
    """Churned steps use the same key and formula: bit-identical states with partial churn."""
    t, oracle = _problem()
    sig = js.schedules.karras(10)
    key = jax.random.key(6)
    kw = dict(s_churn=10.0, s_tmin=0.1, s_tmax=2.0, s_noise=1.003)
    a = js.sample(oracle, js.samplers.Heun(**kw), sig, key, num_samples=5)
    b = js.sample(oracle, _with_ref_ledger(_RefHeun)(**kw), sig, key, num_samples=5)
    np.testing.assert_array_equal(a.x, b.x)
    _assert_counts_equal(a, b)
    assert int(a.stats.levels[0]) > 10 - 1  # churn adds levels (the search path is exercised)


def test_batched_ledger_per_chain_grids():
    """vmapped per-chain grids make the ledger batched (the gated search runs under vmap):
    counts identical to the reference ledger, states bit-identical (same arithmetic)."""
    t, oracle = _problem(d=8)
    offsets = jnp.asarray([0.0, 0.25, 0.5, 0.9])
    keys = jax.random.split(jax.random.key(2), 4)

    def run(sampler):
        def one(o, k):
            sig = js.schedules.geometric(9, 0.02, 40.0, offset=o)
            return js.sample_one(oracle, sampler, sig, k, throw=False)

        return jax.vmap(one)(offsets, keys)

    a = run(js.samplers.Heun(s_churn=4.0))
    b = run(_with_ref_ledger(_RefHeun)(s_churn=4.0))
    np.testing.assert_array_equal(a.x, b.x)
    _assert_counts_equal(a, b)


def test_traced_grid_gradient_still_works():
    """The ledger's gated search carries no tangents: gradients through sampling w.r.t. the grid
    values and the target are unchanged (equal to the reference-ledger engine's)."""
    t, oracle = _problem(d=4)
    key = jax.random.key(9)

    def loss(sig, sampler):
        return jnp.sum(js.sample_one(oracle, sampler, sig, key, throw=False).x ** 2)

    sig = js.schedules.karras(5)
    ga = jax.grad(loss)(sig, js.samplers.Euler())
    gb = jax.grad(loss)(sig, _with_ref_ledger(js.samplers.Euler)())
    assert np.all(np.isfinite(np.asarray(ga)))
    np.testing.assert_allclose(ga, gb, rtol=1e-4, atol=1e-6)


def test_fixed_step_subclass_protocol_unchanged():
    """Subclasses written against the public protocol still run (no new abstract methods)."""

    class Plain(AbstractFixedStepSampler):
        @property
        def is_stochastic(self):
            return False

        def num_queries(self, num_steps, ends_at_zero):
            return num_steps

        def init(self, sigmas, x):
            return None

        def step(self, oracle, i, sigmas, x, state, ostate, ledger, key):
            s, _ = sigmas[i], sigmas[i + 1]
            score, ostate, ledger = charged_query(oracle, x, s, ostate, ledger)
            return x + 0.0 * score, state, ostate, ledger

    _, oracle = _problem(d=3)
    r = js.sample(oracle, Plain(), js.schedules.karras(5), jax.random.key(0), num_samples=2)
    np.testing.assert_array_equal(r.stats.levels, [5, 5])


def test_heun_step_direct_call_with_plain_key():
    """Heun.step keeps its protocol: called directly with a plain key (not the engine's lazy key)
    it gives the same step as the engine's lazy-key path."""
    from jscore.counting import Ledger
    from jscore.samplers.base import _StepKey
    from jscore.seeds import step_key

    t, oracle = _problem(d=5)
    h = js.samplers.Heun(s_churn=20.0)
    sig = js.schedules.karras(6)
    x = jnp.linspace(-1.0, 1.0, 5)
    stream = jax.random.key(8)
    led = Ledger.empty(11, 11, jnp.float32)
    a = h.step(oracle, 2, sig, x, None, None, led, step_key(stream, 2))
    b = h.step(oracle, 2, sig, x, None, None, led, _StepKey(stream, 2))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(np.asarray(a[0]), np.asarray(h.step(
        oracle, 2, sig, x, None, None, led, step_key(stream, 3))[0]))  # the key is used


def test_blockwise_initial_draw_matches_per_chain(monkeypatch):
    """sample() draws initial points blockwise (lax.map) to bound temporaries; chain i is still
    exactly sample_one(fold_in(key, i)), whatever the block size."""
    import jscore.sampling as sampling

    monkeypatch.setattr(sampling, "_INIT_BLOCK", 16)  # d = 8: blocks of 2 chains, 7 chains
    _, oracle = _problem(d=8)
    sig = js.schedules.karras(4)
    key = jax.random.key(12)
    a = js.sample(oracle, js.samplers.Euler(), sig, key, num_samples=7)
    b = jax.vmap(
        lambda i: js.sample_one(oracle, js.samplers.Euler(), sig, jax.random.fold_in(key, i)).x
    )(jnp.arange(7, dtype=jnp.uint32))
    np.testing.assert_array_equal(a.x, b)
