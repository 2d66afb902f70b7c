"""Property-based fuzzing of the public API with malformed inputs (hypothesis).

Every call either succeeds with a finite, well-formed result, or raises ``ValueError`` /
``TypeError`` whose message names the argument that was wrong. Anything else (another exception
type, a message that does not say which argument, a non-finite grid, a NaN sample reported as
``success``) fails the test. The default run draws a bounded number of examples per entry point;
``-m slow`` runs many more. The cases found by the first fuzzing audit are kept as regression tests
at the end.
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jscore as js

#: Values no numeric argument should silently accept, mixed with some valid ones.
WEIRD = st.sampled_from([
    None, "0.5", "key", True, False, 1j, complex(1, 0), math.nan, math.inf, -math.inf, -1, -1.0,
    0, 0.0, 1e-300, 1e39, 1e300, 2**31, 2**63, 10**13, [0.1, math.nan], [0.1, 0.2], (),
    np.float64(0.5), np.int64(3), 0.5, 1, 2, 3.0, 80.0, 0.002,
])

FAST = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
MANY = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _names_argument(exc: BaseException, names) -> bool:
    msg = str(exc)
    return any(f"`{n}`" in msg or f"{n}=" in msg or f"({n})" in msg for n in names)


def check_call(fn, kwargs, names=None):
    """Run ``fn(**kwargs)``: a clear error naming one of ``names`` (default: the kwargs), or a result."""
    names = list(kwargs) if names is None else names
    try:
        with warnings.catch_warnings():
            # equinox warns when an array reaches a static field, just before jscore's TypeError
            warnings.filterwarnings("ignore", "A JAX array is being set as static", UserWarning)
            return fn(**kwargs)
    except (ValueError, TypeError) as e:
        assert _names_argument(e, names), f"{fn.__name__}({kwargs}) raised an unclear error: {e!r}"
        return None


# ----------------------------------------------------------------------------- schedules
SCHEDULES = {
    "karras": (js.schedules.karras, ("n", "sigma_min", "sigma_max", "rho", "append_zero")),
    "geometric": (js.schedules.geometric, ("n", "sigma_min", "sigma_max", "offset", "append_zero")),
    "vp_linear": (js.schedules.vp_linear, ("n", "beta_min", "beta_max", "t_min", "append_zero")),
    "cosine": (js.schedules.cosine, ("n", "sigma_min", "sigma_max", "s", "append_zero")),
    "ou_uniform": (js.schedules.ou_uniform, ("n", "t_min", "t_max", "append_zero")),
}
VALID = {"n": 5, "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0, "offset": 0.3, "beta_min": 0.1,
         "beta_max": 20.0, "t_min": 1e-3, "t_max": 1.0, "s": 0.008, "append_zero": True}


def _check_grid(grid, append_zero):
    v = np.asarray(grid, np.float64)
    assert v.ndim == 1 and np.all(np.isfinite(v)), v
    assert np.all(np.diff(v) < 0), v
    pos = v[:-1] if append_zero else v
    assert np.all(pos > 0), v


def _schedule_property(name, bad, value):
    fn, args = SCHEDULES[name]
    kwargs = {a: VALID[a] for a in args}
    kwargs[bad] = value
    out = check_call(fn, kwargs, names=[bad] + [a for a in args if a != bad])
    if out is not None:
        _check_grid(out, kwargs["append_zero"] is True)


@FAST
@given(name=st.sampled_from(sorted(SCHEDULES)), data=st.data(), value=WEIRD)
def test_fuzz_schedules(name, data, value):
    bad = data.draw(st.sampled_from(SCHEDULES[name][1]))
    _schedule_property(name, bad, value)


@pytest.mark.slow
@MANY
@given(name=st.sampled_from(sorted(SCHEDULES)), data=st.data(), value=WEIRD)
def test_fuzz_schedules_many(name, data, value):
    bad = data.draw(st.sampled_from(SCHEDULES[name][1]))
    _schedule_property(name, bad, value)


# ----------------------------------------------------------------------------- samplers
def _sampler_fields():
    import dataclasses

    out = []
    for name in sorted(js.samplers.CATALOGUE):
        for f in dataclasses.fields(js.samplers.make(name)):
            if f.init:
                out.append((name, f.name))
    return out


SAMPLER_FIELDS = _sampler_fields()


def _sampler_property(name, field, value):
    s = check_call(lambda **kw: js.samplers.make(name, **kw), {field: value}, names=[field])
    if s is None:
        return
    # accepted: the sampler must be usable as it is (no deferred TypeError) on a small problem
    oracle = js.oracles.Exact(js.targets.Gaussian(jnp.zeros(2), 1.0))
    try:
        res = js.sample(oracle, s, js.schedules.karras(3), jax.random.key(0), num_samples=2,
                        max_queries=64 if s.num_queries(3, True) is None else None)
    except (ValueError, TypeError) as e:  # e.g. a grid this configuration cannot run on
        assert _names_argument(e, [field, "sigmas", "max_queries"]), repr(e)
        return
    for i, status in enumerate(res.status_names):
        if status == "success":
            assert np.all(np.isfinite(np.asarray(res.x[i]))), (name, field, value)


@FAST
@given(nf=st.sampled_from(SAMPLER_FIELDS), value=WEIRD)
def test_fuzz_sampler_fields(nf, value):
    _sampler_property(*nf, value)


@pytest.mark.slow
@MANY
@given(nf=st.sampled_from(SAMPLER_FIELDS), value=WEIRD)
def test_fuzz_sampler_fields_many(nf, value):
    _sampler_property(*nf, value)


# ----------------------------------------------------------------------------- targets, oracles
TARGET_CASES = [
    (lambda v: js.targets.Gaussian(v, 1.0), "mean"),
    (lambda v: js.targets.Gaussian(jnp.zeros(2), v), "var"),
    (lambda v: js.targets.GaussianMixture(v, 1.0), "means"),
    (lambda v: js.targets.GaussianMixture(jnp.zeros((2, 2)), v), "std"),
    (lambda v: js.targets.GaussianMixture(jnp.zeros((2, 2)), 1.0, v), "weights"),
    (lambda v: js.targets.UniformSphere(2, v), "radius"),
    (lambda v: js.targets.UniformSphere(v, 1.0), "dim"),
    (lambda v: js.oracles.Noisy(js.oracles.Exact(js.targets.Gaussian(jnp.zeros(2), 1.0)), v), "eps"),
    (lambda v: js.oracles.Noisy(js.oracles.Exact(js.targets.Gaussian(jnp.zeros(2), 1.0)), 0.1, p=v), "p"),
]


def _target_property(case, value):
    make, name = TARGET_CASES[case]
    obj = check_call(lambda v: make(v), {"v": value}, names=[name])
    if obj is None:
        return
    # accepted: it must answer finite scores at a finite point
    oracle = obj if isinstance(obj, js.oracles.AbstractOracle) else js.oracles.Exact(obj)
    d = oracle.dim or 2
    res = js.sample(oracle, js.samplers.Euler(), js.schedules.karras(3), jax.random.key(0),
                    num_samples=2, x_init=jnp.ones((2, d)))
    for i, status in enumerate(res.status_names):
        assert status in ("success", "nonfinite"), status
        if status == "success":
            assert np.all(np.isfinite(np.asarray(res.x[i])))


@FAST
@given(case=st.integers(0, len(TARGET_CASES) - 1), value=WEIRD)
def test_fuzz_targets_and_oracles(case, value):
    _target_property(case, value)


@pytest.mark.slow
@MANY
@given(case=st.integers(0, len(TARGET_CASES) - 1), value=WEIRD)
def test_fuzz_targets_and_oracles_many(case, value):
    _target_property(case, value)


# ----------------------------------------------------------------------------- js.sample
SAMPLE_ARGS = ("sigmas", "key", "num_samples", "x_init", "max_queries", "chunk_size", "record")


def _sample_property(arg, value):
    oracle = js.oracles.Exact(js.targets.Gaussian(jnp.zeros(3), 1.0))
    kwargs = dict(sigmas=js.schedules.karras(3), key=jax.random.key(0), num_samples=2)
    if arg == "x_init":
        kwargs.pop("num_samples")
    kwargs[arg] = value
    res = check_call(lambda **kw: js.sample(oracle, js.samplers.Euler(), **kw), kwargs, names=[arg])
    if res is not None:
        assert res.x.ndim >= 2
        for i, status in enumerate(res.status_names):
            if status == "success":
                assert np.all(np.isfinite(np.asarray(res.x[i])))


@FAST
@given(arg=st.sampled_from(SAMPLE_ARGS), value=WEIRD)
def test_fuzz_sample(arg, value):
    _sample_property(arg, value)


@pytest.mark.slow
@MANY
@given(arg=st.sampled_from(SAMPLE_ARGS), value=WEIRD)
def test_fuzz_sample_many(arg, value):
    _sample_property(arg, value)


# ----------------------------------------------------------------------------- regressions
REGRESSIONS = [
    (lambda: js.sample(js.oracles.Exact(js.targets.Gaussian(jnp.zeros(3), 1.0)), js.samplers.Euler(),
                       None, jax.random.key(0), num_samples=2), "sigmas"),
    (lambda: js.sample(js.oracles.Exact(js.targets.Gaussian(jnp.zeros(3), 1.0)), js.samplers.Euler(),
                       js.schedules.karras(3), None, num_samples=2), "key"),
    (lambda: js.sample(js.oracles.Exact(js.targets.Gaussian(jnp.zeros(3), 1.0)), js.samplers.Euler(),
                       js.schedules.karras(3), "key", num_samples=2), "key"),
    (lambda: js.schedules.karras(5, sigma_min="0.5"), "sigma_min"),
    (lambda: js.schedules.ou_uniform(5, 1e-3, None), "t_max"),
    (lambda: js.samplers.make(["euler"]), "name"),
    (lambda: js.sample(js.oracles.Exact(js.targets.Gaussian(jnp.zeros(3), 1.0)), js.samplers.Euler(),
                       js.schedules.karras(3), jax.random.key(0), x_init=np.zeros((0, 3))), "x_init"),
    (lambda: js.samplers.Heun(s_tmax=[0.1, math.nan]), "s_tmax"),
    (lambda: js.sample(js.oracles.Exact(js.targets.Gaussian(jnp.zeros(3), 1.0)), js.samplers.Euler(),
                       js.schedules.karras(3), jax.random.key(0), num_samples=2, max_queries=2**31), "max_queries"),
    (lambda: js.schedules.karras(10**13), "n"),
    (lambda: js.sample(js.oracles.Exact(js.targets.Gaussian(jnp.zeros(3), 1.0)), js.samplers.Euler(),
                       js.schedules.karras(3), jax.random.key(0), num_samples=10**12), "num_samples"),
    (lambda: js.sample(js.oracles.Exact(js.targets.Gaussian(jnp.zeros(10**6), 1.0)), js.samplers.Euler(),
                       js.schedules.karras(3), jax.random.key(0), num_samples=10**6), "num_samples"),
    (lambda: js.schedules.karras(5, sigma_max=math.inf), "sigma_max"),
    (lambda: js.schedules.geometric(5, 0.002, 1e39), "sigma_max"),
    (lambda: js.schedules.cosine(5, sigma_max=math.inf), "sigma_max"),
    (lambda: js.schedules.vp_linear(5, beta_max=1e39), "beta_max"),
    (lambda: js.schedules.ou_uniform(5, 1e-3, 500), "t_max"),
    (lambda: js.targets.Gaussian(jnp.zeros(3), math.inf), "var"),
    (lambda: js.sample(js.oracles.Exact(js.targets.Gaussian(jnp.zeros(3), 1.0)), js.samplers.Euler(),
                       js.schedules.karras(3) + 0j, jax.random.key(0), num_samples=2), "sigmas"),
    (lambda: js.sample(js.oracles.Exact(js.targets.Gaussian(jnp.zeros(3), 1.0)), js.samplers.Euler(),
                       js.schedules.karras(3), jax.random.key(0), x_init=np.zeros((2, 3)) + 1j), "x_init"),
    (lambda: js.targets.Gaussian(jnp.zeros(3) + 1j, 1.0), "mean"),
    (lambda: js.sample(js.oracles.Exact(js.targets.Gaussian(jnp.zeros(3), 1.0)), js.samplers.Euler(),
                       ["80", "1", "0"], jax.random.key(0), num_samples=2), "sigmas"),
    (lambda: js.sample(js.oracles.Exact(js.targets.Gaussian(jnp.zeros(3), 1.0)), js.samplers.Euler(),
                       [True, False], jax.random.key(0), num_samples=2), "sigmas"),
    (lambda: js.samplers.DPMSolverPP(order=True), "order"),
    (lambda: js.samplers.DPMSolverPP(order=2.0), "order"),
    (lambda: js.sample_one(js.oracles.Exact(js.targets.Gaussian(jnp.zeros(3), 1.0)), js.samplers.Euler(),
                           js.schedules.karras(3), jax.random.key(0), throw="no"), "throw"),
    (lambda: js.schedules.karras(5, append_zero="False"), "append_zero"),
    (lambda: js.samplers.Heun(s_churn="0.5"), "s_churn"),
]


@pytest.mark.parametrize("i", range(len(REGRESSIONS)))
def test_audit_regressions_raise_naming_the_argument(i):
    fn, name = REGRESSIONS[i]
    with pytest.raises((ValueError, TypeError)) as info:
        fn()
    assert _names_argument(info.value, [name]), repr(info.value)


def test_lr_adversary_refuses_infinite_p():
    cb = js.targets.SphereCodebook.random(jax.random.key(0), dim=8, rate=0.2)
    with pytest.raises(ValueError, match="`p`"):
        js.oracles.LRAdversary(cb, 0.1, p=math.inf)


def test_nan_oracle_is_a_per_chain_status():
    """A NaN score is a per-chain `nonfinite` status: for the adaptive sampler (not
    `budget_exhausted`) and for a Noisy oracle whose callable eps returns NaN (no batch-wide
    exception)."""
    gauss = js.targets.Gaussian(jnp.zeros(3), 1.0)

    class NaNOracle(js.oracles.AbstractOracle):
        def query(self, x, sigma, state):
            return jnp.full_like(x, jnp.nan), state

        @property
        def dim(self):
            return 3

    sig = js.schedules.geometric(8, 0.05, 20.0)
    res = js.sample(NaNOracle(), js.samplers.Adaptive(), sig, jax.random.key(0), num_samples=2,
                    max_queries=200)
    assert res.status_names == ["nonfinite", "nonfinite"]
    assert int(res.stats.queries[0]) < 200  # it stopped instead of spending the budget

    # eps NaN only where sigma > 1: chains reach those levels, so all are non-finite; a grid below
    # sigma = 1 succeeds
    noisy = js.oracles.Noisy(js.oracles.Exact(gauss), lambda s: jnp.where(s > 1.0, jnp.nan, 0.1))
    hi = js.sample(noisy, js.samplers.Euler(), js.schedules.karras(4), jax.random.key(0), num_samples=3)
    lo = js.sample(noisy, js.samplers.Euler(), js.schedules.karras(4, sigma_max=0.9), jax.random.key(0),
                   num_samples=3)
    assert hi.status_names == ["nonfinite"] * 3
    assert lo.status_names == ["success"] * 3
