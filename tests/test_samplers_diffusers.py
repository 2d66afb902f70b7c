"""diffusers' schedulers in jscore: DEIS, DPM-Solver++ 2M heun, singlestep DPM-Solver(++),
SDE-DPM-Solver++ 2M, iPNDM and PNDM.

- exact counts (queries, levels, rounds) against an instrumented oracle, on a grid ending at 0 and
  one ending at sigma_N > 0, in one compile per sampler (vmapped grids);
- linear-map equality with independent float64 numpy recursions written here in diffusers'
  VP variables (``alpha = 1/sqrt(1 + s^2)``, ``sigma_vp = s alpha``, ``x_vp = alpha y``, the
  scheduler formulas as diffusers writes them), for a Gaussian target (affine denoiser), including
  the first-step and final-step rules; the SDE solver is fed the same noise as jscore draws;
- convergence orders on the Gaussian closed form (as tests/test_samplers_order.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jscore as js
from jscore.seeds import SAMPLER, chain_key, stream
from test_samplers_library import N, _run_both
from test_samplers_order import _affine_w2, _moment_error, _slope, _targets

S = js.samplers
NEW = ["deis_2", "deis_3", "dpmpp_2m_heun", "dpmpp_2s", "dpmpp_3s", "dpmpp_2s_heun",
       "dpmpp_3s_heun", "sde_dpmpp_2m", "ipndm", "pndm"]


@pytest.mark.parametrize("name", NEW)
def test_counts_on_both_grid_ends(name):
    sampler = S.make(name)
    res = _run_both(sampler)
    q, lv, r = (np.asarray(a) for a in (res.stats.queries, res.stats.levels, res.stats.rounds))
    np.testing.assert_array_equal(q, np.asarray(res.stats.calls))
    # PNDM's Heun warm-up asks twice at sigma_1 (one extra query and round, no extra level)
    extra = 1 if name == "pndm" else 0
    for end in (0, 1):
        assert (q[end], lv[end], r[end]) == (N + extra, N, N + extra), (name, end)
    assert sampler.num_queries(N, True) == sampler.num_queries(N, False) == N + extra
    assert np.all(np.asarray(res.status) == js.Status.success)
    assert np.all(np.isfinite(np.asarray(res.x)))


def test_pndm_single_step_into_zero_is_tweedie(x64):
    m, v = np.array([0.3, -1.0]), np.array([0.5, 2.0])
    oracle = js.oracles.Exact(js.targets.Gaussian(jnp.asarray(m), jnp.asarray(v)))
    y0 = np.array([[1.0, 2.0]])
    res = js.sample(oracle, S.PNDM(), jnp.asarray([3.0, 0.0]), jax.random.key(0), x_init=jnp.asarray(y0))
    assert int(res.stats.queries[0]) == 1 and S.PNDM().num_queries(1, True) == 1
    np.testing.assert_allclose(np.asarray(res.x), _denoise(y0, 3.0, m, v), rtol=1e-12)


# ----------------------------------------------------------------- numpy references (VP variables)
def _denoise(y, s, m, v):
    return y - s * s * (y - m) / (v + s * s)


def _vp(s):
    """(alpha, sigma_vp, lambda) of the VE level s (sigma_vp = 0, lambda = inf at s = 0)."""
    a = 1.0 / np.sqrt(1.0 + s * s)
    return a, s * a, (np.inf if s == 0 else np.log(1.0 / s))


def _model(y, s, m, v, kind):
    d = _denoise(y, s, m, v)
    return d if kind == "x0" else (y - d) / s  # (x_vp - alpha x0)/sigma_vp = (y - D)/s


def _run_ref(sig, y0, m, v, kind, update):
    """Generic loop: update(i, x_vp, outs) -> next x_vp; outs = model outputs so far (newest last)."""
    x = _vp(sig[0])[0] * y0
    outs = []
    for i in range(len(sig) - 1):
        a = _vp(sig[i])[0]
        outs.append(_model(x / a, sig[i], m, v, kind))
        x = update(i, x, outs)
    return x / _vp(sig[-1])[0]


def ref_deis(sig, y0, m, v, order, lof=False):
    n = len(sig) - 1
    lg = np.log

    def ind2(t, b, c):
        return t * (-lg(c) + lg(t) - 1) / (lg(b) - lg(c))

    def ind3(t, b, c, d):
        num = t * (lg(c) * (lg(d) - lg(t) + 1) - lg(d) * lg(t) + lg(d) + lg(t) ** 2 - 2 * lg(t) + 2)
        return num / ((lg(b) - lg(c)) * (lg(b) - lg(d)))

    def update(i, x, e):
        p = min(order, i + 1, n - i if lof else order)
        a_t, s_t, _ = _vp(sig[i + 1])
        a_0, s_0, _ = _vp(sig[i])
        if sig[i + 1] == 0:
            return _denoise(x / a_0, sig[i], m, v)  # Tweedie into 0
        rt, r0 = s_t / a_t, s_0 / a_0
        if p == 1:
            return a_t / a_0 * x - s_t * (np.exp(lg(r0 / rt)) - 1.0) * e[-1]
        r1 = sig[i - 1]
        if p == 2:
            c1 = ind2(rt, r0, r1) - ind2(r0, r0, r1)
            c2 = ind2(rt, r1, r0) - ind2(r0, r1, r0)
            return a_t * (x / a_0 + c1 * e[-1] + c2 * e[-2])
        r2 = sig[i - 2]
        c1 = ind3(rt, r0, r1, r2) - ind3(r0, r0, r1, r2)
        c2 = ind3(rt, r1, r2, r0) - ind3(r0, r1, r2, r0)
        c3 = ind3(rt, r2, r0, r1) - ind3(r0, r2, r0, r1)
        return a_t * (x / a_0 + c1 * e[-1] + c2 * e[-2] + c3 * e[-3])

    return _run_ref(sig, y0, m, v, "eps", update)


def ref_dpmpp_2m(sig, y0, m, v, solver_type, noises=None):
    """diffusers multistep DPM-Solver++ (noises=None) or SDE-DPM-Solver++ order 2."""

    def update(i, x, d):
        a_t, s_t, l_t = _vp(sig[i + 1])
        _, s_0, l_0 = _vp(sig[i])
        h = l_t - l_0
        e = 0.0 if sig[i + 1] == 0 else np.exp(-h)
        if noises is None:
            if i == 0 or sig[i + 1] == 0:
                return (s_t / s_0) * x - a_t * (e - 1.0) * d[-1]
            r0 = (l_0 - _vp(sig[i - 1])[2]) / h
            d0, d1 = d[-1], (d[-1] - d[-2]) / r0
            base = (s_t / s_0) * x - a_t * (e - 1.0) * d0
            if solver_type == "midpoint":
                return base - 0.5 * a_t * (e - 1.0) * d1
            return base + a_t * ((e - 1.0) / h + 1.0) * d1
        noise = s_t * np.sqrt(1.0 - e * e) * noises[i]
        if i == 0 or sig[i + 1] == 0:
            return (s_t / s_0 * e) * x + a_t * (1.0 - e * e) * d[-1] + noise
        r0 = (l_0 - _vp(sig[i - 1])[2]) / h
        d0, d1 = d[-1], (d[-1] - d[-2]) / r0
        base = (s_t / s_0 * e) * x + a_t * (1.0 - e * e) * d0 + noise
        if solver_type == "midpoint":
            return base + 0.5 * a_t * (1.0 - e * e) * d1
        return base + a_t * ((1.0 - e * e) / (-2.0 * h) + 1.0) * d1

    return _run_ref(sig, y0, m, v, "x0", update)


def _order_list(order, steps, lof):
    if lof:
        if order == 3:
            tail = {0: [1, 2, 1], 1: [1], 2: [1, 2]}[steps % 3]
            return [1, 2, 3] * ((steps - len(tail)) // 3) + tail
        return [1, 2] * (steps // 2 - 1) + [1, 1] if steps % 2 == 0 else [1, 2] * (steps // 2) + [1]
    base = [1, 2, 3] if order == 3 else [1, 2]
    return (base * steps)[:steps]


def ref_singlestep(sig, y0, m, v, order, solver_type, algorithm, lof=True):
    n = len(sig) - 1
    orders = _order_list(order, n, lof)
    if sig[-1] == 0:
        orders[-1] = 1
    kind = "x0" if algorithm == "dpmsolver++" else "eps"
    start = {}

    def update(i, x, mo):
        o = orders[i]
        if o == 1:
            start["x"] = x
        xs = start["x"]
        a_t, s_t, l_t = _vp(sig[i + 1])
        a_s, s_s, l_s = _vp(sig[i - o + 1])
        h = l_t - l_s
        if kind == "x0":
            e = 0.0 if sig[i + 1] == 0 else np.exp(-h)
            c0 = -a_t * (e - 1.0)
            if o == 1:
                return (s_t / s_s) * xs + c0 * mo[-1]
            lin, quad = a_t * ((e - 1.0) / h + 1.0), a_t * ((e - 1.0 + h) / h**2 - 0.5)
            lead = (s_t / s_s) * xs + c0 * mo[-o]
        else:
            c0 = -(a_t * s_s / a_s - s_t)  # -sigma_t (e^h - 1), finite at sigma_t = 0
            if o == 1:
                return (a_t / a_s) * xs + c0 * mo[-1]
            lin, quad = -s_t * ((np.exp(h) - 1.0) / h - 1.0), s_t * ((np.exp(h) - 1.0 - h) / h**2 - 0.5)
            lead = (a_t / a_s) * xs + c0 * mo[-o]
        if o == 2:
            r0 = (_vp(sig[i])[2] - l_s) / h
            d1 = (mo[-1] - mo[-2]) / r0
            if solver_type == "midpoint":
                return lead + 0.5 * c0 * d1
            return lead + lin * d1
        r0, r1 = (_vp(sig[i])[2] - l_s) / h, (_vp(sig[i - 1])[2] - l_s) / h
        d1_0, d1_1 = (mo[-2] - mo[-3]) / r1, (mo[-1] - mo[-3]) / r0
        if solver_type == "midpoint":
            return lead + lin * d1_1
        d1 = (r0 * d1_0 - r1 * d1_1) / (r0 - r1)
        d2 = 2.0 * (d1_1 - d1_0) / (r0 - r1)
        return lead + lin * d1 - quad * d2

    return _run_ref(sig, y0, m, v, kind, update)


def _ab(e):
    k = min(len(e), 4)
    w = [[1], [3, -1], [23, -16, 5], [55, -59, 37, -9]][k - 1]
    return sum(c * e[-1 - j] for j, c in enumerate(w)) / [1, 2, 12, 24][k - 1]


def ref_ipndm(sig, y0, m, v):
    def update(i, x, e):
        a, s, _ = _vp(sig[i])
        a1, s1, _ = _vp(sig[i + 1])
        ets = _ab(e)
        return a1 * (x - s * ets) / a + s1 * ets

    return _run_ref(sig, y0, m, v, "eps", update)


def _pndm_prev(x, s, s_prev, eps):
    """diffusers' PNDMScheduler._get_prev_sample (alpha_prod = alpha^2)."""
    at, ap = _vp(s)[0] ** 2, _vp(s_prev)[0] ** 2
    denom = at * (1 - ap) ** 0.5 + (at * (1 - at) * ap) ** 0.5
    return (ap / at) ** 0.5 * x - (ap - at) * eps / denom


def ref_pndm(sig, y0, m, v):
    x = _vp(sig[0])[0] * y0
    ets = []
    for i in range(len(sig) - 1):
        e = _model(x / _vp(sig[i])[0], sig[i], m, v, "eps")
        ets.append(e)
        if i == 0 and sig[1] > 0:
            xe = _pndm_prev(x, sig[0], sig[1], e)
            e2 = _model(xe / _vp(sig[1])[0], sig[1], m, v, "eps")
            x = _pndm_prev(x, sig[0], sig[1], 0.5 * (e + e2))
        else:
            x = _pndm_prev(x, sig[i], sig[i + 1], _ab(ets))
    return x / _vp(sig[-1])[0]


# (name, sampler, reference, step counts, slow): 8 steps everywhere; the singlestep group tails
# (N % 3 and N % 2, with and without lower_order_final) get 7 and 9 steps too
LINEAR = [
    ("deis_1", S.DEIS(order=1), lambda *a: ref_deis(*a, 1), (8,), True),
    ("deis_2", S.DEIS(order=2), lambda *a: ref_deis(*a, 2), (8,), True),
    ("deis_3", S.DEIS(order=3), lambda *a: ref_deis(*a, 3), (8,), True),
    ("deis_3_lof", S.DEIS(order=3, lower_order_final=True), lambda *a: ref_deis(*a, 3, True), (8,), False),
    ("dpmpp_2m", S.DPMSolverPP(order=2), lambda *a: ref_dpmpp_2m(*a, "midpoint"), (8,), True),
    ("dpmpp_2m_heun", S.DPMSolverPP(order=2, solver_type="heun"), lambda *a: ref_dpmpp_2m(*a, "heun"), (8,), False),
    ("ipndm", S.IPNDM(), ref_ipndm, (8,), False),
    ("pndm", S.PNDM(), ref_pndm, (8,), False),
] + [
    (f"{alg}_{o}s_{st}_lof{lof}",
     S.DPMSolverSinglestep(order=o, solver_type=st, algorithm_type=alg, lower_order_final=lof),
     lambda *a, o=o, st=st, alg=alg, lof=lof: ref_singlestep(*a, o, st, alg, lof),
     (7, 8, 9) if alg == "dpmsolver++" and lof else (8,),
     not (alg == "dpmsolver++" and lof and (o, st) in ((2, "midpoint"), (3, "heun"))))
    for alg in ("dpmsolver++", "dpmsolver") for st in ("midpoint", "heun") for o in (2, 3)
    for lof in (True, False)
]


@pytest.mark.parametrize("name,sampler,ref,ns", [
    pytest.param(*c[:4], marks=[pytest.mark.slow] if c[4] else [], id=c[0]) for c in LINEAR])
def test_linear_map_matches_numpy_reference(x64, name, sampler, ref, ns):
    """Karras grids ending at 0 and at 0.05."""
    rng = np.random.default_rng(4)
    m, v = rng.normal(size=3), np.exp(rng.uniform(-1.5, 1.0, size=3))
    oracle = js.oracles.Exact(js.targets.Gaussian(jnp.asarray(m), jnp.asarray(v)))
    for n in ns:
        for sig in (js.schedules.karras(n, 0.05, 30.0), js.schedules.karras(n + 1, 0.05, 30.0, append_zero=False)):
            y0 = 30.0 * rng.normal(size=(2, 3))
            out = np.asarray(js.sample(oracle, sampler, sig, jax.random.key(0), x_init=jnp.asarray(y0)).x)
            want = np.stack([ref(np.asarray(sig), y, m, v) for y in y0])
            np.testing.assert_allclose(out, want, rtol=1e-10, atol=1e-10, err_msg=f"{name}, {len(sig) - 1} steps")


@pytest.mark.parametrize("solver_type", ["midpoint", "heun"])
def test_sde_dpmpp_2m_matches_numpy_with_the_same_noise(x64, solver_type):
    rng = np.random.default_rng(5)
    m, v = rng.normal(size=3), np.exp(rng.uniform(-1.5, 1.0, size=3))
    oracle = js.oracles.Exact(js.targets.Gaussian(jnp.asarray(m), jnp.asarray(v)))
    key = jax.random.key(9)
    sampler = S.DPMSolverPPMultistepSDE(order=2, solver_type=solver_type)
    for sig in (js.schedules.karras(6, 0.05, 30.0), js.schedules.karras(7, 0.05, 30.0, append_zero=False)):
        y0 = 30.0 * rng.normal(size=(2, 3))
        out = np.asarray(js.sample(oracle, sampler, sig, key, x_init=jnp.asarray(y0)).x)
        for c in range(2):
            sk = stream(chain_key(key, c), SAMPLER)
            z = [np.asarray(jax.random.normal(jax.random.fold_in(sk, i), (3,), jnp.float64)) for i in range(len(sig) - 1)]
            want = ref_dpmpp_2m(np.asarray(sig), y0[c], m, v, solver_type, noises=z)
            np.testing.assert_allclose(out[c], want, rtol=1e-10, atol=1e-10)
            # the noise matters: a run without it differs by far more than the tolerance
            assert np.max(np.abs(want - ref_dpmpp_2m(np.asarray(sig), y0[c], m, v, solver_type, noises=[0 * zz for zz in z]))) > 1e-3


# ----------------------------------------------------------------- orders (Gaussian closed form)
ORDERS = [
    ("deis_2", S.DEIS(order=2), 2, (16, 32, 64), True),
    ("deis_3", S.DEIS(order=3), 3, (32, 64, 128), True),
    ("dpmpp_2m_heun", S.DPMSolverPP(order=2, solver_type="heun"), 2, (32, 64, 128), True),
    ("dpmpp_2s", S.DPMSolverSinglestep(order=2), 2, (16, 32, 64), False),
    ("dpmpp_2s_heun", S.DPMSolverSinglestep(order=2, solver_type="heun"), 2, (16, 32, 64), True),
    # order 3 needs full groups (N % 3 == 0, no lower-order tail: an order-1 last step is O(h^2))
    ("dpmpp_3s", S.DPMSolverSinglestep(order=3, lower_order_final=False), 3, (24, 48, 96), True),
    ("dpmpp_3s_heun", S.DPMSolverSinglestep(order=3, solver_type="heun", lower_order_final=False), 3, (48, 96, 192), False),
    ("dpm_3s_heun", S.DPMSolverSinglestep(order=3, solver_type="heun", algorithm_type="dpmsolver",
                                          lower_order_final=False), 3, (24, 48, 96), True),
    ("dpm_2s_heun", S.DPMSolverSinglestep(order=2, solver_type="heun", algorithm_type="dpmsolver"), 2, (16, 32, 64), True),
    # fixed equal-step Adams-Bashforth weights on a geometric grid: order 2
    ("ipndm", S.IPNDM(), 2, (32, 64, 128), True),
    ("pndm", S.PNDM(), 2, (32, 64, 128), False),
]


@pytest.mark.parametrize("name,sampler,order,ns", [
    pytest.param(*c[:4], marks=[pytest.mark.slow] if c[4] else [], id=c[0]) for c in ORDERS])
def test_deterministic_order(x64, name, sampler, order, ns):
    m, v = _targets()["diagonal"]
    errs = [_affine_w2(sampler, n, m, v) for n in ns]
    slope = _slope(ns, errs)
    assert abs(-slope - order) <= 0.3, f"{name}: slope {slope:.2f}, errors {errs}"


@pytest.mark.slow
def test_sde_dpmpp_2m_weak_order(x64):
    """Weak order in law on the Gaussian closed form (moments, 8192 chains x 64 coordinates).
    No theorem is claimed for the 2M SDE step; measured slopes 2.2-2.5 (midpoint), theory 2 asserted."""
    sampler = S.DPMSolverPPMultistepSDE(order=2, solver_type="midpoint")
    res = [_moment_error(sampler, n, 8192, jax.random.key(1)) for n in (4, 8, 16)]
    errs = [e for e, _ in res]
    for e, se in res:
        assert e > 8 * se, f"error {e:.2e} too close to the Monte-Carlo floor {se:.2e}"
    slope = _slope((4, 8, 16), errs)
    assert abs(-slope - 2) <= 0.4, f"slope {slope:.2f}, errors {errs}"


# ----------------------------------------------------------------- available everywhere
@pytest.mark.slow
def test_demo_sweep_and_exact_lab_run_the_new_samplers(tmp_path, capsys):
    import json

    from jscore.cli import main
    from jscore.sweeps import load_spec

    assert set(NEW) <= set(S.CATALOGUE)
    rc = main(["demo", "--dim", "4", "--num-samples", "16", "--budgets", "8", "--samplers", ",".join(NEW),
               "--out", str(tmp_path / "demo"), "--quiet", "--no-plot"])
    assert rc == 0
    rows = {r["sampler"]: r for r in json.loads((tmp_path / "demo" / "demo.json").read_text())["rows"]}
    assert set(rows) == set(NEW)
    assert all(0 < r["queries"] <= 8 for r in rows.values())
    assert rows["pndm"]["queries"] == 8 and rows["pndm"]["steps"] == 7  # Q = N + 1

    toml = tmp_path / "s.toml"
    toml.write_text(f'name = "diffusers"\nsamplers = {json.dumps(NEW)}\ndims = "4"\nseeds = "0-3"\n'
                    'chunk = 4\nsteps = "5"\nmetrics = ["kl"]\n')
    res = js.sweep(load_spec(str(toml)), out=str(tmp_path / "sweep"), quiet=True, plot=False)
    cost = {r["cell"]["sampler"]: r["queries_per_chain"] for r in res.rows}
    assert cost == {name: 6 if name == "pndm" else 5 for name in NEW}

    rc = main(["lowerbound", "exact", "--dims", "12", "--rates", "0.3", "--ks", "2", "--chains", "8",
               "--offsets", "1", "--samplers", "deis_3,dpmpp_3s,sde_dpmpp_2m,pndm", "--oracles", "exact",
               "--experiment", "success", "--out", str(tmp_path / "lab")])
    assert rc == 0
    assert "decoder success vs K" in capsys.readouterr().out


@pytest.mark.parametrize("bad", [
    lambda: S.DEIS(order=4), lambda: S.DPMSolverSinglestep(order=4),
    lambda: S.DPMSolverSinglestep(solver_type="bh2"), lambda: S.DPMSolverSinglestep(algorithm_type="sde"),
    lambda: S.DPMSolverPPMultistepSDE(order=4), lambda: S.DPMSolverPPMultistepSDE(solver_type="x"),
    lambda: S.DPMSolverPP(solver_type="logrho"),
])
def test_bad_options_raise(bad):
    with pytest.raises(ValueError):
        bad()


def test_singlestep_order_lists():
    from jscore.samplers.dpm_singlestep import singlestep_orders

    for order in (2, 3):
        for n in range(1, 13):
            for lof in (True, False):
                assert singlestep_orders(order, n, lof) == _order_list(order, n, lof), (order, n, lof)
