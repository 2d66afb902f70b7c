"""The optimised hot paths give the same results as the reference formulations (issue 8).

Each optimisation keeps its textbook formulation here as the reference:

- ``GaussianMixture.score/denoise``: scalars folded into the responsibilities, no division per
  coordinate. Reference: ``(mbar - x) / v`` and ``(sigma^2 mbar + std^2 x) / v``: equal to rounding.
- ``Euler.step``: ``x + sigma (sigma - sigma') S``. Reference: ``ratio x + (1 - ratio) D``.
- ``Heun.step``: without churn (``s_churn = 0``) no noise is drawn and the step key's per-chain
  ``fold_in`` is not computed (a while loop of ``[s_churn > 0]`` iterations around the noise, so
  that the state is updated in place: peak memory 3x the state where the noise draw fuses).
  Reference: key derived and noise drawn every step, multiplied by 0 when gamma = 0:
  bit-identical results without churn, equal to float32 rounding with churn.
- ``AbstractFixedStepSampler.solve``: the per-step exhaustion select is left out when the fresh
  budget provably covers the sampler's worst-case query count (it is then the identity), and for
  Heun, which applies the same rule inside its step.
- ``sample``'s initial draw: blockwise over chains (``lax.map``) to bound temporaries. Reference:
  each chain's own draw (``sample_one``): bit-identical.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jscore as js
from jscore.counting import charged_query
from jscore.samplers.base import AbstractFixedStepSampler


# ---------------------------------------------------------------- reference formulations


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
    _selects_on_exhaustion = False  # reference: the loop's own select keeps exhausted states

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
        (js.samplers.Euler(), _RefEuler(), True),
        (js.samplers.Heun(), _RefHeun(), True),
        (js.samplers.Heun(**_CHURN), _RefHeun(**_CHURN), True),
    ],
    ids=["euler", "heun", "heun_churn"],
)
def test_sample_matches_reference(fast, ref, append_zero):
    """Optimised engine vs reference sampler + reference oracle: identical
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
    b = js.sample(oracle, _RefHeun(), sig, key, num_samples=5)
    np.testing.assert_array_equal(a.x, b.x)
    _assert_counts_equal(a, b)


def test_heun_churn_window_matches_reference_with_same_oracle():
    """Churned steps use the same key, noise and formula; the perturbed point is computed in its
    own loop (0 or 1 iterations), so XLA may round its multiply-add differently from the fused
    reference: equal to float32 rounding (a few ulp after 10 steps), identical counts."""
    t, oracle = _problem()
    sig = js.schedules.karras(10)
    key = jax.random.key(6)
    kw = dict(s_churn=10.0, s_tmin=0.1, s_tmax=2.0, s_noise=1.003)
    a = js.sample(oracle, js.samplers.Heun(**kw), sig, key, num_samples=5)
    b = js.sample(oracle, _RefHeun(**kw), sig, key, num_samples=5)
    scale = float(jnp.max(jnp.abs(b.x)))
    np.testing.assert_allclose(a.x, b.x, rtol=1e-5, atol=1e-5 * scale)
    assert not np.allclose(a.x, js.sample(oracle, _RefHeun(**kw), sig, jax.random.key(7),
                                          num_samples=5).x, rtol=1e-3)  # the noise matters
    _assert_counts_equal(a, b)
    assert int(a.stats.levels[0]) > 10 - 1  # churn adds levels (the search path is exercised)


@pytest.mark.slow
def test_per_chain_grids_match_reference():
    """vmapped per-chain grids (batched gamma and levels): Heun with churn gives counts identical
    and states equal to float32 rounding to the reference step."""
    t, oracle = _problem(d=8)
    offsets = jnp.asarray([0.0, 0.25, 0.5, 0.9])
    keys = jax.random.split(jax.random.key(2), 4)

    def run(sampler):
        def one(o, k):
            sig = js.schedules.geometric(9, 0.02, 40.0, offset=o)
            return js.sample_one(oracle, sampler, sig, k, throw=False)

        return jax.vmap(one)(offsets, keys)

    a = run(js.samplers.Heun(s_churn=4.0))
    b = run(_RefHeun(s_churn=4.0))
    np.testing.assert_allclose(a.x, b.x, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(b.x))))
    _assert_counts_equal(a, b)


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


def test_blockwise_run_matches_per_chain(monkeypatch):
    """sample() runs chains in fixed blocks (lax.map over vmapped blocks); on a coordinate-wise
    target chain i is still exactly sample_one(fold_in(key, i)), whatever the block size."""
    import jscore.sampling as sampling

    monkeypatch.setitem(sampling._BLOCK_ELEMENTS, "cpu", 16)  # d = 8: blocks of 2 chains, 7 chains
    assert sampling.chain_block(8) == 2
    oracle = js.oracles.Exact(js.targets.Gaussian(jnp.linspace(-1.0, 1.0, 8), 0.5))
    sig = js.schedules.karras(4)
    key = jax.random.key(12)
    a = js.sample(oracle, js.samplers.Euler(), sig, key, num_samples=7)
    b = jax.vmap(
        lambda i: js.sample_one(oracle, js.samplers.Euler(), sig, jax.random.fold_in(key, i)).x
    )(jnp.arange(7, dtype=jnp.uint32))
    np.testing.assert_array_equal(a.x, b)


def test_exhaustion_select_kept_when_budget_is_short():
    """The fixed-step loop drops its "keep the last state if exhausted" select only when the
    fresh budget covers the sampler's worst case; with a short budget the select stays and an
    exhausted chain keeps the state of its last completed step."""
    from jscore.counting import Ledger
    from jscore.samplers.base import _budget_covers

    t, oracle = _problem(d=4)
    sig = js.schedules.karras(5)
    e = js.samplers.Euler()
    x0 = jnp.linspace(-3.0, 3.0, 4)
    key = jax.random.key(0)
    assert _budget_covers(e, 5, Ledger.empty(5, 5, jnp.float32))
    assert not _budget_covers(e, 5, Ledger.empty(3, 3, jnp.float32))
    short = jax.jit(lambda x: e.solve(oracle, sig, x, key, None, Ledger.empty(3, 3, jnp.float32), None))(x0)
    full = jax.jit(lambda x: e.solve(oracle, sig[:4], x, key, None, Ledger.empty(3, 3, jnp.float32), None))(x0)
    assert bool(short.ledger.exhausted) and int(short.ledger.queries) == 3
    np.testing.assert_array_equal(short.x, full.x)  # frozen after the 3 charged steps
    # traced counters (a ledger passed in from outside a jit): no static proof, select kept
    led = jax.jit(lambda l: jax.tree.map(lambda a: a + 0, l))(Ledger.empty(5, 5, jnp.float32))
    assert _budget_covers(e, 5, led)  # concrete values outside jit
    proofs = []
    jax.jit(lambda l: proofs.append(_budget_covers(e, 5, l)) or l.queries)(led)
    assert proofs == [False]


@pytest.mark.parametrize(
    "kw", [{}, pytest.param({"s_churn": 10.0}, marks=pytest.mark.slow)], ids=["no_churn", "churn"]
)
def test_heun_exhaustion_inside_step_matches_loop_select(kw):
    """Heun applies the exhaustion rule inside its step (fused with the update); with budgets that
    run out mid-step or between steps it equals the reference step + the loop's select (to float32
    rounding: the two programs may contract multiply-adds differently), with identical counts."""
    from jscore.counting import Ledger

    _, oracle = _problem(d=4)
    sig = js.schedules.karras(5)
    x0 = jnp.linspace(-3.0, 3.0, 4)
    key = jax.random.key(1)
    for budget in (3, 4, 9):
        run = jax.jit(lambda x, s: s.solve(oracle, sig, x, key, None,
                                           Ledger.empty(budget, budget, jnp.float32), None))
        a = run(x0, js.samplers.Heun(**kw))
        b = run(x0, _RefHeun(**kw))
        np.testing.assert_allclose(a.x, b.x, rtol=2e-6, atol=2e-6)
        assert int(a.ledger.queries) == int(b.ledger.queries) == budget
        assert bool(a.ledger.exhausted) == bool(b.ledger.exhausted) == (budget < 9)


# ---------------------------------------------------------------- compiled loop structure


def _while_bodies(hlo: str) -> dict:
    """``{body name: [instruction lines]}`` for every while loop of an optimised HLO module."""
    import re

    names = set(re.findall(r"body=(%[\w.\-]+)", hlo))
    bodies, cur = {}, None
    for line in hlo.splitlines():
        if line.startswith("%") or line.startswith("ENTRY"):
            name = line.split()[0]
            cur = name if name in names else None
            if cur:
                bodies[cur] = []
        elif cur and line.strip() and line.strip() != "}":
            bodies[cur].append(line)
    return bodies


def _batched_ops(lines, n):
    """Top-level ops of shape ``[n, ...]`` (any dtype) in a loop body, by opcode."""
    import re

    out = {}
    for line in lines:
        m = re.match(r"\s*(?:ROOT )?%\S+ = \w+\[" + str(n) + r"(?:,\d+)*\]\{[\d,]*\} ([\w\-]+)\(", line)
        if m and m.group(1) not in ("parameter", "get-tuple-element", "bitcast"):
            out[m.group(1)] = out.get(m.group(1), 0) + 1
    return out


def test_euler_loop_compiles_like_a_hand_written_scan():
    """The profile's claim (benchmarks/README.md, "Profile"): with one grid for all chains,
    ``js.sample``'s Euler loop body does the same per-chain work as a hand-written batched
    ``lax.scan`` of the step: the same chain-batched operations (the counting ledger, incl. the
    distinct-level buffer, stays unbatched: no ``(n, L)`` array in the loop carry), and the same
    result to rounding with exact counts Q = N_sigma = R = steps."""
    n, d, steps = 96, 24, 8  # distinct sizes so that shapes identify the chain axis
    t, oracle = _problem(d=d)
    sig = js.schedules.karras(steps)
    x0 = sig[0] * jax.random.normal(jax.random.key(3), (n, d))

    def scan(x, s, tgt):
        score = jax.vmap(tgt.score, in_axes=(0, None))

        def body(x, i):
            return x + (s[i] * (s[i] - s[i + 1])) * score(x, s[i]), None

        return jax.lax.scan(body, x, jnp.arange(steps))[0]

    from jscore import sampling

    # compile js.sample's own executable once (as js.sample does) and run it
    args = (oracle, js.samplers.Euler(), sig, jax.random.key(0), x0,
            jnp.arange(n, dtype=jnp.uint32),
            sampling._plan(oracle, js.samplers.Euler(), sig, d, None), None, n)  # one block
    compiled = sampling._sample_batch.lower(*args).compile()
    res = compiled(*args)
    scan_compiled = jax.jit(scan).lower(x0, sig, t).compile()
    ref = scan_compiled(x0, sig, t)
    np.testing.assert_allclose(res.x, ref, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(ref))))
    for f in ("queries", "levels", "rounds"):
        np.testing.assert_array_equal(getattr(res.stats, f), steps)
    js_hlo, scan_hlo = compiled.compiled.as_text(), scan_compiled.as_text()
    js_bodies, scan_bodies = _while_bodies(js_hlo), _while_bodies(scan_hlo)
    assert len(js_bodies) == len(scan_bodies) == 1
    (js_body,), (scan_body,) = js_bodies.values(), scan_bodies.values()
    assert _batched_ops(js_body, n) == _batched_ops(scan_body, n)
    assert _batched_ops(js_body, n)  # the state update is there (the pattern matches)


@pytest.mark.parametrize("name", ["euler", "euler_ancestral"])
def test_scalar_sides_in_point_blocks_equal_one_call(x64, monkeypatch, name):
    """The lower-bound sweep's scalar chains run in blocks of ``POINT_BLOCK`` points: every
    point's (p_lower, p_upper, levels) equals one call over all points (bitwise for the
    deterministic sampler, to rounding for the ancestral one), and point counts that are
    multiples of the block share one compiled program."""
    from jscore.lowerbound import grids
    from jscore.lowerbound.scaling import make_draws

    d = 400.0

    def sides(n_points, block):
        monkeypatch.setattr(grids, "POINT_BLOCK", block)
        dr = make_draws(name, d, 1 / d, 2.0, 0.3, key=jax.random.key(5), n_points=n_points,
                        n_reps=2, k_max=64)
        return [np.asarray(x) for x in dr._sides(6)]

    whole = sides(24, 512)  # 48 points, one call (block 64, padded)
    blocked = sides(24, 16)  # three calls of 16
    tol = 0 if name == "euler" else 1e-13
    for w, b in zip(whole, blocked):
        assert w.shape == b.shape == (48,)
        np.testing.assert_allclose(b, w, rtol=tol, atol=0)
    # Other tests in this worker may have compiled other shapes of the same program: count
    # only what a new point count adds. 16 points (8 x 2) in blocks of 16 is the block shape
    # the 48-point run already compiled, so nothing new compiles.
    spec = grids.scalar_spec(name)
    fn = next(f for k, f in grids._JIT.items() if k[0] == "sides" and k[2] == (spec, 64))
    before = fn._cache_size()
    sides(8, 16)
    assert fn._cache_size() == before
    sides(40, 16)  # 80 points: five blocks of the same shape
    assert fn._cache_size() == before
