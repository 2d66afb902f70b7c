"""k-diffusion's samplers in jscore: exact counts, equality with an independent float64 NumPy
transcription of k-diffusion fed the same noise, the eta = 0 (and order-1) limits against jscore's
deterministic counterparts, orders on the Gaussian closed form, the Brownian bridge, event-shaped
states, and the catalogue in the demo, sweeps and the lower-bound lab.

The reference (``kdiffusion_reference.py``) follows k-diffusion's code in its own variables; it
runs on affine representations too, which gives the exact law of the output on a Gaussian target
(the samplers are affine in the start and the normals there), so weak orders are measured on
exact laws, not Monte-Carlo moments, once the jscore map is shown equal to the reference map.
"""

from __future__ import annotations

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jscore as js
import kdiffusion_reference as R
from helpers import assert_within_se, mean_se, var_se
from jscore.counting import Ledger
from jscore.oracles.base import AbstractOracle
from jscore.samplers.dpmpp_sde import bridge_normals
from test_samplers_library import CountingOracle, _grids, _run_both, _target
from test_samplers_order import _affine_w2, _slope, _targets

S = js.samplers
N = 5


# ---------------------------------------------------------------------------------- counts


def _count_table(n):
    """(sampler, (Q, N_sigma, R) ending at 0, (Q, N_sigma, R) ending at sigma_N > 0, calls at the
    value sigma_2 on the grid ending at 0)."""
    one = ((n, n, n), (n, n, n), 1)
    two_off = ((2 * n - 1,) * 3, (2 * n,) * 3, 1)  # the second stage at an off-grid level
    # ... at the next grid level: sigma_2 is queried by step 1's second stage and step 2's first
    two_on = ((2 * n - 1, n, 2 * n - 1), (2 * n, n + 1, 2 * n), 2)
    return {
        "dpmpp_2m_sde": (S.make("dpmpp_2m_sde"), *one),
        "dpmpp_2m_sde_heun": (S.make("dpmpp_2m_sde_heun"), *one),
        "dpmpp_3m_sde": (S.make("dpmpp_3m_sde"), *one),
        "lms": (S.make("lms"), *one),
        "dpmpp_3m": (S.make("dpmpp_3m"), *one),
        "dpmpp_3m_exact": (S.make("dpmpp_3m_exact"), *one),
        "dpmpp_sde": (S.make("dpmpp_sde"), *two_off),
        "dpmpp_sde_r1": (S.make("dpmpp_sde", r=1.0), *two_on),
        "dpmpp_2s_ancestral": (S.make("dpmpp_2s_ancestral"), *two_on),
        "dpmpp_2s_ancestral_eta05": (S.make("dpmpp_2s_ancestral", eta=0.5), *two_off),
        "dpm_2_ancestral": (S.make("dpm_2_ancestral"), *two_on),
        "dpm_2_ancestral_eta0": (S.make("dpm_2_ancestral", eta=0.0), *two_off),
    }


# each static configuration is one compile; the duplicates of covered code paths run in the slow set
_SLOW_COUNTS = {"dpmpp_2m_sde_heun", "dpmpp_3m", "dpmpp_3m_exact"}


@pytest.mark.parametrize(
    "name", [pytest.param(k, marks=[pytest.mark.slow] if k in _SLOW_COUNTS else []) for k in _count_table(N)]
)
def test_counts_on_both_grid_ends(name):
    sampler, zero, pos, at_sigma2 = _count_table(N)[name]
    oracle = CountingOracle(js.oracles.Exact(_target()), level=_grids()[0, 2])
    res = _run_both(sampler, oracle=oracle)  # float32, both grids in one compile (traced grids)
    q, lv, r = (np.asarray(a) for a in (res.stats.queries, res.stats.levels, res.stats.rounds))
    np.testing.assert_array_equal(q, np.asarray(res.stats.calls))  # charged == received
    assert int(res.stats.at_level[0]) == at_sigma2
    assert (q[0], lv[0], r[0]) == zero and (q[1], lv[1], r[1]) == pos
    assert np.all(np.asarray(res.status) == js.Status.success)
    assert np.all(np.isfinite(np.asarray(res.x)))
    assert sampler.num_queries(N, True) == zero[0] and sampler.num_queries(N, False) == pos[0]


def test_bad_options_are_clear_errors():
    for bad, match in [
        (lambda: S.DPMSolverPPMultistepSDE(order=4), "order"),
        (lambda: S.DPMSolverPPMultistepSDE(solver_type="rk4"), "solver_type"),
        (lambda: S.DPMSolverPPMultistepSDE(eta=-0.1), "eta"),
        (lambda: S.DPMSolverPPSinglestepSDE(r=0.0), "r"),
        (lambda: S.DPMSolverPPSinglestepSDE(eta=1.5), "eta"),
        (lambda: S.DPM2Ancestral(eta=1.2), "eta"),
        (lambda: S.DPMSolverPP2SAncestral(s_noise=-1.0), "s_noise"),
        (lambda: S.LMS(order=0), "order"),
    ]:
        with pytest.raises(ValueError, match=match):
            bad()


# ------------------------------------------------------- equality with the NumPy transcription

D = 5
KEY = jax.random.key(7)


def _gaussian(d=D):
    rng = np.random.default_rng(0)
    return 0.5 * rng.normal(size=d), np.exp(rng.uniform(np.log(0.2), np.log(2.0), size=d))


def _normals(chain, step, two, d=D):
    """The normals jscore's sampler stream gives step ``step`` of chain ``chain`` (float64):
    ``fold_in(fold_in(fold_in(key, chain), SAMPLER = 1), step)``; two-normal steps split it."""
    k = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(KEY, chain), 1), step)
    if not two:
        return np.asarray(jax.random.normal(k, (d,), jnp.float64))
    ka, kb = jax.random.split(k)
    return tuple(np.asarray(jax.random.normal(kk, (d,), jnp.float64)) for kk in (ka, kb))


def _paths(sampler, grids, x_init):
    """``(G, C, d)`` outputs of chains ``c`` (key ``fold_in(KEY, c)``) on each of the G grids."""
    m, v = _gaussian()
    oracle = js.oracles.Exact(js.targets.Gaussian(jnp.asarray(m), jnp.asarray(v)))
    keys = jax.vmap(lambda c: jax.random.fold_in(KEY, c))(jnp.arange(x_init.shape[0]))
    one = lambda g, k, x: js.sample_one(oracle, sampler, g, k, x_init=x).x
    over_chains = jax.vmap(one, in_axes=(None, 0, 0))
    return np.asarray(jax.vmap(over_chains, in_axes=(0, None, None))(grids, keys, jnp.asarray(x_init)))


def _two_grids(n=7):
    """Karras grids of n steps ending at 0 and at sigma_min = 0.002 > 0 (float64)."""
    return np.stack([np.asarray(js.schedules.karras(n)), np.asarray(js.schedules.karras(n + 1, append_zero=False))])


REFERENCE_CASES = {
    "dpmpp_2m_sde": (lambda: S.DPMSolverPPMultistepSDE(order=2, eta=0.7, s_noise=0.9),
                     R.dpmpp_2m_sde, dict(eta=0.7, s_noise=0.9), False),
    "dpmpp_2m_sde_heun": (lambda: S.make("dpmpp_2m_sde_heun"), R.dpmpp_2m_sde, dict(solver_type="heun"), False),
    "dpmpp_3m_sde": (lambda: S.make("dpmpp_3m_sde", eta=0.6), R.dpmpp_3m_sde, dict(eta=0.6), False),
    "dpmpp_3m_sde_default": (lambda: S.make("dpmpp_3m_sde"), R.dpmpp_3m_sde, {}, False),
    "dpmpp_2s_ancestral": (lambda: S.make("dpmpp_2s_ancestral", eta=0.8, s_noise=1.1),
                           R.dpmpp_2s_ancestral, dict(eta=0.8, s_noise=1.1), False),
    "dpm_2_ancestral": (lambda: S.make("dpm_2_ancestral"), R.dpm_2_ancestral, {}, False),
    "dpmpp_sde": (lambda: S.make("dpmpp_sde"), R.dpmpp_sde, {}, True),
    "dpmpp_sde_r04": (lambda: S.make("dpmpp_sde", eta=0.9, r=0.4), R.dpmpp_sde, dict(eta=0.9, r=0.4), True),
    "lms": (lambda: S.make("lms"), R.lms, {}, False),
}


@pytest.mark.parametrize("name", list(REFERENCE_CASES))
def test_equals_numpy_transcription_of_k_diffusion(x64, name):
    make, ref, kw, two = REFERENCE_CASES[name]
    m, v = _gaussian()
    grids = _two_grids()
    x_init = np.random.default_rng(1).normal(size=(3, D)) * 80.0
    out = _paths(make(), jnp.asarray(grids), x_init)
    for g, grid in enumerate(grids):
        for c in range(x_init.shape[0]):
            expect = ref(R.GaussianDenoiser(m, v), list(map(float, grid)), x_init[c],
                         lambda i: _normals(c, i, two), **kw)
            np.testing.assert_allclose(out[g, c], expect, rtol=0, atol=1e-10, err_msg=f"{name} grid {g}")


def test_lms_is_the_reference_affine_map(x64):
    """LMS is deterministic and affine on a Gaussian target, ``out = A x + B`` per coordinate: A and
    B from two jscore chains equal the reference's affine representation."""
    m, v = _gaussian()
    grids = _two_grids(9)
    out = _paths(S.LMS(), jnp.asarray(grids), np.stack([np.zeros(D), np.ones(D)]))
    for g, grid in enumerate(grids):
        start = np.column_stack([np.zeros(D), np.ones(D)])  # x = 0 + 1 * x_0
        rep = R.lms(R.GaussianDenoiser(m, v, rep=True), list(map(float, grid)), start)
        np.testing.assert_allclose(out[g, 0], rep[:, 0], rtol=0, atol=1e-10)
        np.testing.assert_allclose(out[g, 1] - out[g, 0], rep[:, 1], rtol=0, atol=1e-10)


# ----------------------------------------------- limits against jscore's deterministic samplers

LIMITS = {
    "2m_sde_eta0_is_dpmpp_2m": (lambda: S.DPMSolverPPMultistepSDE(order=2, eta=0.0), lambda: S.DPMSolverPP(order=2)),
    "3m_sde_eta0_midpoint_is_dpmpp_3m": (
        lambda: S.DPMSolverPPMultistepSDE(order=3, eta=0.0, solver_type="midpoint"), lambda: S.make("dpmpp_3m")),
    "order1_sde_is_euler_ancestral": (lambda: S.DPMSolverPPMultistepSDE(order=1), lambda: S.EulerAncestral()),
    "dpm_2_ancestral_eta0_is_dpm_solver_2": (lambda: S.DPM2Ancestral(eta=0.0), lambda: S.DPMSolver(order=2)),
    "dpmpp_sde_eta0_is_2s": (lambda: S.DPMSolverPPSinglestepSDE(eta=0.0), lambda: S.DPMSolverPP2SAncestral(eta=0.0)),
    "lms_order1_is_euler": (lambda: S.LMS(order=1), lambda: S.Euler()),
}


_FAST_LIMITS = {"order1_sde_is_euler_ancestral", "3m_sde_eta0_midpoint_is_dpmpp_3m"}


@pytest.mark.parametrize(
    "name", [pytest.param(k, marks=[] if k in _FAST_LIMITS else [pytest.mark.slow]) for k in LIMITS]
)
def test_limits_equal_existing_samplers(x64, name):
    new, old = LIMITS[name]
    grids = jnp.asarray(_two_grids())
    x_init = np.random.default_rng(2).normal(size=(2, D)) * 80.0
    a, b = _paths(new(), grids, x_init), _paths(old(), grids, x_init)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------- orders

SMIN, SMAX = 0.5, 80.0


def _exact_law_w2(fn, n, m, v, two=False, **kw):
    """W2 between the exact law of ``fn``'s output (start ``N(m, v + SMAX^2)``, geometric grid of
    n steps to SMIN) and the target's ``N(m, v + SMIN^2)``, from the affine representation."""
    sig = np.geomspace(SMAX, SMIN, n + 1)
    mu, var = R.exact_law(fn, sig, m, v, v + SMAX**2, 2 if two else 1, **kw)
    return float(np.sqrt(np.sum((mu - m) ** 2 + (np.sqrt(var) - np.sqrt(v + SMIN**2)) ** 2)))


WEAK = {  # name: (reference, options, two normals per step, weak order on Gaussian targets, Ns)
    "dpmpp_2m_sde": (R.dpmpp_2m_sde, {}, False, 2, (32, 64, 128)),
    # heun: the mean and spread errors cancel near N = 32 on the isotropic target; asymptotic from 128
    "dpmpp_2m_sde_heun": (R.dpmpp_2m_sde, dict(solver_type="heun"), False, 2, (128, 256, 512)),
    "dpmpp_3m_sde": (R.dpmpp_3m_sde, {}, False, 2, (64, 128, 256)),
    "dpmpp_2s_ancestral": (R.dpmpp_2s_ancestral, {}, False, 2, (32, 64, 128)),
    "dpm_2_ancestral": (R.dpm_2_ancestral, {}, False, 2, (32, 64, 128)),
    "dpmpp_sde": (R.dpmpp_sde, {}, True, 2, (32, 64, 128)),
    "dpmpp_sde_eta05": (R.dpmpp_sde, dict(eta=0.5), True, 2, (32, 64, 128)),
    "lms": (R.lms, {}, False, 4, (64, 128, 256)),  # deterministic: within 0.3, below
}


@pytest.mark.parametrize("name", list(WEAK))
def test_weak_order_in_law_on_gaussians(name):
    """Weak order of the exact output law (the map equals jscore's, tested above): the slope of
    log W2 against log N is within 0.4 of the order (0.3 for the deterministic LMS), on an
    isotropic and a diagonal target."""
    fn, kw, two, order, ns = WEAK[name]
    tol = 0.3 if name == "lms" else 0.4
    for label, (m, v) in _targets().items():
        errs = [_exact_law_w2(fn, n, m, v, two, **kw) for n in ns]
        slope = _slope(ns, errs)
        assert abs(-slope - order) <= tol, f"{name} on {label}: slope {slope:.2f}, errors {errs}"


@pytest.mark.slow
def test_lms_order_four_in_jscore(x64):
    """LMS run by jscore, affine W2 on the Gaussian closed form: slope within 0.3 of 4."""
    ns = (64, 128, 256)
    for label, (m, v) in _targets().items():
        errs = [_affine_w2(S.LMS(), n, m, v) for n in ns]
        slope = _slope(ns, errs)
        assert abs(-slope - 4) <= 0.3, f"lms on {label}: slope {slope:.2f}, errors {errs}"


@pytest.mark.slow
def test_dpmpp_sde_law_by_monte_carlo_matches_exact_law(x64):
    """jscore's dpmpp_sde (noise through the Brownian bridge) over 4096 chains: per-coordinate mean
    and variance within 5 standard errors of the exact law of the reference map."""
    m, v = _gaussian(4)
    n, chains = 6, 4096
    sig = np.geomspace(SMAX, SMIN, n + 1)
    oracle = js.oracles.Exact(js.targets.Gaussian(jnp.asarray(m), jnp.asarray(v)))
    x_init = m + np.sqrt(v + SMAX**2) * np.asarray(jax.random.normal(jax.random.key(3), (chains, 4), jnp.float64))
    out = np.asarray(js.sample(oracle, S.make("dpmpp_sde"), jnp.asarray(sig), jax.random.key(4), x_init=x_init).x)
    mu, var = R.exact_law(R.dpmpp_sde, sig, m, v, v + SMAX**2, 2)
    est, se = mean_se(out)
    assert_within_se(est, mu, se, what="dpmpp_sde mean")
    est, se = var_se(out)
    assert_within_se(est, var, se, what="dpmpp_sde variance")


def test_bridge_normals_have_the_brownian_correlation():
    frac = jnp.asarray([0.1, 0.5, 0.9, 1.0])  # one column per fraction, 20000 draws each
    z_sub, z_full = bridge_normals(jax.random.key(0), (20000, 4), jnp.float32, frac)
    z_sub, z_full = np.asarray(z_sub, np.float64), np.asarray(z_full, np.float64)
    for z in (z_sub, z_full):
        est, se = var_se(z)
        assert_within_se(est, np.ones(4), se, what="variance")
    prod = z_sub * z_full
    est, se = mean_se(prod)
    assert_within_se(est, np.sqrt(np.asarray(frac)), np.maximum(se, 1e-6), what="correlation")


# -------------------------------------------------------------------- event-shaped states


class _StdNormalOracle(AbstractOracle):
    """Exact score of N(0, I) for a state of any shape: ``-x/(1 + sigma^2)``."""

    scale: jax.Array = eqx.field(converter=jnp.asarray, default=1.0)

    @property
    def dim(self):
        return None

    def init(self, key, dim):
        return None

    def query(self, x, sigma, state):
        return -self.scale * x / (1.0 + sigma * sigma), state


@pytest.mark.parametrize(
    "name", ["dpmpp_3m_sde"] + [pytest.param(k, marks=pytest.mark.slow) for k in ("dpmpp_sde", "dpm_2_ancestral", "lms")]
)
def test_event_shaped_state_equals_flat_state(name):
    """The updates are elementwise in x: a (2, 3) state gives the flat (6,) state's answer, reshaped
    (noise drawn at the state's shape: same key and size give the same normals)."""
    sampler = S.make(name)
    sig = js.schedules.karras(4)
    x = jax.random.normal(jax.random.key(1), (2, 3)) * sig[0]
    oracle = _StdNormalOracle()

    def run(x0):
        ledger = Ledger.empty(100, 16, x0.dtype)
        return sampler.solve(oracle, sig, x0, jax.random.key(2), None, ledger, None).x

    np.testing.assert_allclose(np.asarray(run(x)).reshape(-1), np.asarray(run(x.reshape(-1))), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------- the demo, sweeps and the lower-bound lab


@pytest.mark.slow
def test_new_samplers_in_the_demo(tmp_path, capsys):
    from jscore.cli import main

    rc = main(["demo", "--dim", "4", "--num-samples", "32", "--budgets", "6", "--samplers",
               "dpmpp_sde,lms", "--out", str(tmp_path), "--quiet", "--no-plot"])
    assert rc == 0
    rows = {r["sampler"]: r for r in json.loads((tmp_path / "demo.json").read_text())["rows"]}
    # budget 6: dpmpp_sde runs 3 steps (2*3 - 1 = 5 queries); lms 6 steps (6 queries)
    assert rows["dpmpp_sde"]["steps"] == 3 and rows["dpmpp_sde"]["queries"] == 5
    assert rows["lms"]["steps"] == 6 and rows["lms"]["queries"] == 6 and rows["lms"]["levels"] == 6
    assert {"dpmpp_2m_sde", "dpmpp_3m_exact"} <= set(js.samplers.CATALOGUE)


def test_new_samplers_in_toml_sweeps():
    from jscore.sweeps import engine
    from jscore.sweeps.spec import load_spec

    spec = load_spec('samplers = ["dpmpp_2m_sde:eta=0.5", "lms", "dpm_2_ancestral"]\n'
                     'dims = "4"\nseeds = "0-3"\nchunk = 4\nsteps = [3]\nmetrics = ["kl"]\n')
    plan = engine.validate(spec)
    objs = {c.sampler.label: c.sampler_obj for c in plan.cells}
    assert isinstance(objs["lms"], S.LMS) and isinstance(objs["dpm_2_ancestral"], S.DPM2Ancestral)
    assert float(objs["dpmpp_2m_sde:eta=0.5"].eta) == 0.5


@pytest.mark.slow
def test_new_sampler_in_the_exact_lower_bound_lab(tmp_path, capsys):
    from jscore.cli import main

    argv = ["lowerbound", "exact", "--dims", "12", "--rates", "0.3", "--ks", "2", "--chains", "8",
            "--offsets", "1", "--samplers", "dpmpp_2m_sde", "--oracles", "exact",
            "--experiment", "success", "--out", str(tmp_path)]
    assert main(argv) == 0
    text = (tmp_path / "success_units.csv").read_text()
    assert "dpmpp_2m_sde" in text
