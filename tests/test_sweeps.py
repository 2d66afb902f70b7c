"""Sweeps: spec parsing and validation, padded == unpadded, compile counts, the closed-form KL,
Q* analysis, sharded == unsharded, two processes == one, resume after SIGKILL, CLI."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import subprocess
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jscore as js
from helpers import free_address, run_processes
from jscore.sweeps import analysis, engine, store
from jscore.sweeps.spec import SweepSpec, load_spec, parse_int_list, spec_to_toml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A private persistent-cache directory for this module; JAX's settings are restored after."""
    from jax.experimental.compilation_cache import compilation_cache as cc

    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")
    saved = {n: getattr(jax.config, n) for n in names}
    d = tmp_path_factory.mktemp("xla-cache")
    os.chmod(d, 0o700)
    yield str(d)
    for n, v in saved.items():
        jax.config.update(n, v)
    cc.reset_cache()


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["JAX_PLATFORMS"] = "cpu"
    env.update(extra)
    return env


# ----------------------------------------------------------------------------- parsing


def test_parse_int_list_grammar():
    assert parse_int_list("0-3,7,10-12") == [0, 1, 2, 3, 7, 10, 11, 12]
    assert parse_int_list("16-100:pow2") == [16, 32, 64]
    assert parse_int_list("3-70:pow2") == [4, 8, 16, 32, 64]
    assert parse_int_list("16-4096:x4") == [16, 64, 256, 1024, 4096]
    assert parse_int_list("0-20:+5") == [0, 5, 10, 15, 20]
    assert parse_int_list([1, "4-5"]) == [1, 4, 5]
    assert parse_int_list(7) == [7]
    assert parse_int_list("0-4095")[-1] == 4095


@pytest.mark.parametrize(
    "text, match",
    [
        ("10-2", "backwards"),
        ("1-x", "not an integer"),
        ("17-31:pow2", "no power of two"),
        ("5-9:x1", "factor"),
        ("1-9:cube", "unknown modifier"),
        ("0-3,2", "listed twice"),
        ("1,,2", "empty item"),
        ("-3", "not an integer|>= 0"),
    ],
)
def test_parse_int_list_errors(text, match):
    with pytest.raises(ValueError, match=match):
        parse_int_list(text, "seeds")


# ----------------------------------------------------------------------------- validation


def _spec(**kw):
    base = dict(samplers=["euler"], dims="4,8", seeds="0-7", chunk=8, steps="4", metrics=["kl"])
    base.update(kw)
    return SweepSpec(**base)


@pytest.mark.parametrize(
    "kw, err, match",
    [
        (dict(samplers=["nope"]), ValueError, "Unknown sampler 'nope'"),
        (dict(oracles=["magic"]), ValueError, "Unknown oracle 'magic'"),
        (dict(targets=["cauchy"]), ValueError, "Unknown target 'cauchy'"),
        (dict(schedules=["linear"]), ValueError, "Unknown schedule 'linear'"),
        (dict(schedules=["karras:sigma_min=5,sigma_max=1"]), ValueError, "sigma_min"),
        (dict(schedules=["karras:bogus=1"]), TypeError, "Bad options"),
        (dict(metrics=["fid"]), ValueError, "Unknown metric 'fid'"),
        (dict(samplers=["euler_ancestral"], metrics=["kl_affine"]), ValueError, "deterministic sampler"),
        (dict(metrics=["mode_tv"]), ValueError, "mixture target"),
        (dict(targets=["gmm:k=3"], metrics=["kl"]), ValueError, "needs a Gaussian target"),
        (dict(samplers=["heun:s_churn=40"], grid_mode="pow2"), ValueError, "depends on the grid"),
        (dict(samplers=["heun:bogus=1"]), TypeError, "Bad options"),
        (dict(targets=["gaussian:var=-1"]), ValueError, "var"),
        (dict(dims="0,4"), ValueError, "dims"),
        (dict(steps="0,4"), ValueError, "steps"),
        (dict(steps=None), ValueError, "Nothing to run"),
        (dict(qstar={"metric": "kl", "target": -1}), ValueError, "positive error level"),
        (dict(qstar={"metric": "kl", "target": 0.1, "steps": "8-4"}), ValueError, "backwards|bracket"),
        (dict(qstar={"metric": "kl", "target": 0.1, "how": 1}), ValueError, "unknown keys"),
        (dict(chunk=0), ValueError, "chunk"),
        (dict(dims_mode="always"), ValueError, "dims_mode"),
    ],
)
def test_validation_errors(kw, err, match):
    with pytest.raises(err, match=match):
        engine.validate(_spec(**kw))


def test_noisy_oracle_resolved_by_name():
    spec = _spec(oracles=["noisy:eps=0.1"])
    if hasattr(js.oracles, "Noisy"):
        plan = engine.validate(spec)
        assert all(not plan.padded[k] for k in plan.padded)  # not mask-aware: one compile per d
    else:
        with pytest.raises(ValueError, match="Noisy is missing"):
            engine.validate(spec)


def test_bucket_mode_needs_mask_aware_oracle():
    js.sweeps.register_oracle("plain_test", lambda t: js.oracles.Exact(t), bucketable=False)
    try:
        with pytest.raises(ValueError, match="not registered as bucketable"):
            engine.validate(_spec(oracles=["plain_test"], dims_mode="bucket"))
        plan = engine.validate(_spec(oracles=["plain_test"], dims="5,6,7"))
        assert not any(plan.padded.values())
    finally:
        del js.sweeps.registry.ORACLES["plain_test"]


def test_toml_equals_dataclass(tmp_path):
    text = """
name = "t"
samplers = ["euler", "heun"]
targets = [{name = "gaussian", mean = 0.5, var = 2.0}]
schedules = ["karras:sigma_min=0.01,sigma_max=20"]
dims = "16-64:pow2"
seeds = "0-9"
budgets = [4, 9]
metrics = ["kl_affine"]
qstar = {metric = "kl_affine", target = 0.1, search = "ladder"}
"""
    p = tmp_path / "s.toml"
    p.write_text(text)
    a = load_spec(str(p))
    b = SweepSpec(
        name="t",
        samplers=["euler", "heun"],
        targets=["gaussian:mean=0.5,var=2.0"],
        schedules=[{"name": "karras", "sigma_min": 0.01, "sigma_max": 20}],
        dims=[16, 32, 64],
        seeds=range(10),
        budgets=[4, 9],
        metrics="kl_affine",
        qstar={"metric": "kl_affine", "target": 0.1, "search": "ladder"},
    )
    assert a == b and a.config_hash == b.config_hash
    assert load_spec(spec_to_toml(a)) == a
    with pytest.raises(ValueError, match="Unknown sweep keys"):
        load_spec(text + "\nsamplerz = 1\n")
    plan = engine.validate(a)
    heun = [c for c in plan.cells if c.sampler.name == "heun"][0]
    assert plan.ladders[heun.id] == (2, 5)  # Heun: Q = 2N - 1 <= budget
    assert plan.ladders[plan.cells[0].id] == (4, 9)


def test_toml_writer_keeps_nan_and_quotes_keys():
    """Regression: the hand-written TOML writer turned nan into -inf and left keys unquoted."""
    import tomllib

    from jscore.sweeps.spec import toml_dumps

    text = toml_dumps({"x": float("nan"), "big": float("inf"), "neg": -float("inf"), "a b": 1, "k.v": "q\"uote",
                       "skip": None, "t": {"inner key": [1, 2], "none": None}}, "a comment")
    back = tomllib.loads(text)
    assert text.startswith("# a comment\n")
    assert math.isnan(back["x"]) and back["big"] == math.inf and back["neg"] == -math.inf
    assert back["a b"] == 1 and back["k.v"] == 'q"uote' and "skip" not in back
    assert back["t"] == {"inner key": [1, 2]}
    spec = SweepSpec(name='odd "name" \u00e9', samplers=["euler"], targets=["gaussian"], dims="4", seeds="0-1",
                     budgets=[4], metrics=["kl"])
    assert load_spec(spec_to_toml(spec)) == spec


def test_heun_with_churn_is_not_grid_padded():
    plan = engine.validate(_spec(samplers=["heun:s_churn=10", "heun"], steps="3,5,9", metrics=["kl"]))
    modes = {c.sampler.label: plan.grid_mode[c.id] for c in plan.cells}
    assert modes["heun:s_churn=10"] == "exact"
    assert modes["heun"] != "exact"


# ----------------------------------------------------------------------------- padding


def test_prefix_stable_normal():
    key = jax.random.key(11)
    for d, dp in [(5, 8), (33, 64)]:
        assert js.sweeps.padding.prefix_stable_normal(key, d, dp)


def _kernel_run(target, sampler, d, n, length, num_seeds=6, masked=True):
    spec = _spec(targets=[target], samplers=[sampler], dims=str(d), dims_mode="bucket" if masked else "exact",
                 metrics=["mode_tv"] if target.startswith("gmm") else ["kl"])
    plan = engine.validate(spec)
    task = engine.Task(plan, plan.cells[0], d)
    runner = engine.Runner(1)
    key = jax.random.key(spec.key)
    grid = task.grid(n, length)
    out, _, _ = runner.run(task.target_p, task.oracle, task.cell.sampler_obj, key, np.arange(num_seeds), grid,
                           task.cell.cost(n), d, masked=task.masked, stat_names=task.stat_names, return_x=True)
    ref = js.sample(js.oracles.Exact(task.target), task.cell.sampler_obj, js.schedules.karras(n), key,
                    num_samples=num_seeds)
    return task, out, ref


def test_padded_equals_unpadded_gaussian_heun():
    """d=5 padded to 8, and N=3 steps inside a grid of 8: bitwise equal to js.sample at d=5."""
    task, out, ref = _kernel_run("gaussian:mean=0.5,var=2.0", "heun", 5, 3, 8)
    assert task.masked and task.d_pad == 8
    np.testing.assert_array_equal(out["x"][:, :5], np.asarray(ref.x))
    np.testing.assert_array_equal(out["x"][:, 5:], 0.0)
    for k in ("queries", "levels", "rounds"):
        np.testing.assert_array_equal(out[k], np.asarray(getattr(ref.stats, k)))
    np.testing.assert_array_equal(out["queries"], 5)  # Heun: 2N - 1
    np.testing.assert_array_equal(out["status"], 0)


def test_padded_equals_unpadded_mixture_stochastic():
    """A mixture (dot products over d_pad) and a stochastic sampler: equal to rounding."""
    task, out, ref = _kernel_run("gmm:k=3,radius=3.0,std=0.7", "euler_ancestral", 5, 4, 8)
    assert task.masked and task.target_p.means.shape == (3, 8)
    np.testing.assert_allclose(out["x"][:, :5], np.asarray(ref.x), rtol=1e-5, atol=1e-6)
    for k in ("queries", "levels", "rounds"):
        np.testing.assert_array_equal(out[k], np.asarray(getattr(ref.stats, k)))
    # nearest-mode statistic uses valid coordinates only
    t = task.target
    d2 = ((np.asarray(ref.x)[:, None, :] - np.asarray(t.means)[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(out["mode"], d2.argmin(1))


# ----------------------------------------------------------------------------- a small sweep


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory, cache_dir):
    out = str(tmp_path_factory.mktemp("small") / "out")
    spec = SweepSpec(
        name="small",
        samplers=["euler"],
        targets=["gaussian:mean=0.3,var=1.5"],
        schedules=["karras:sigma_min=0.01,sigma_max=10"],
        dims="3-14",  # 12 dimensions in 3 buckets (4, 8, 16)
        seeds="0-9",
        chunk=8,  # two chunks, the last one padded
        steps="2,4,8",
        metrics=["kl_affine", "kl"],
        qstar={"metric": "kl_affine", "target": 0.05, "search": "ladder"},
        bootstrap=50,
    )
    before = engine.ENGINE_STATS["compilations"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):  # the progress bar
        res = js.sweep(spec, out=out, quiet=False, cache_dir=cache_dir)
    res.progress_text = err.getvalue()
    return spec, res, engine.ENGINE_STATS["compilations"] - before


def test_compile_count_at_most_buckets(small_sweep):
    spec, res, compiled = small_sweep
    buckets = {js.sweeps.next_pow2(d) for d in spec.dims}
    assert len(spec.dims) == 12 and len(buckets) == 3
    # the engine's kernels, one per bucket at most; res.num_compilations counts every XLA
    # compilation of the run (jax.monitoring: the kernels plus small eager programs)
    assert 1 <= compiled <= len(buckets)
    assert compiled <= res.num_compilations


def test_rows_complete_and_unique(small_sweep):
    spec, res, _ = small_sweep
    keys = [store.row_key(r) for r in res.rows]
    assert len(keys) == len(set(keys)) == 12 * 3 * 2
    r = res.rows[0]
    for k in ("versions", "device", "config", "compile_seconds", "run_seconds", "x64", "eqx_on_error"):
        assert k in r
    assert set(r["versions"]) >= {"jscore", "jax", "jaxlib", "equinox"}
    seeds = sorted(s for row in res.rows if row["dim"] == 3 and row["num_steps"] == 2 for s in row["per_seed"]["seed"])
    assert seeds == list(range(10))
    for name in ("results.csv", "evals.csv", "qstar.csv", "slopes.csv", "summary.json", "qstar.png",
                 "error_vs_queries.png", "histograms.png"):
        assert os.path.getsize(os.path.join(res.out, name)) > 0


def test_qstar_csv_keeps_the_target_and_the_threshold_apart(small_sweep):
    """Regression: the Q* threshold used to overwrite the cell's ``target`` column of qstar.csv."""
    from jscore.store import read_dataframe

    _, res, _ = small_sweep
    for df in (read_dataframe(res.out, table="qstar"), read_dataframe(os.path.join(res.out, "qstar.csv"))):
        assert set(df["target"]) == {res.rows[0]["cell"]["target"]}
        assert str(df["target"].iloc[0]).startswith("gaussian")
        assert set(df["metric_target"]) == {0.05} and set(df["metric"]) == {"kl_affine"}


def _euler_affine_A(grid, var):
    a = 1.0
    for s, sn in zip(grid[:-1], grid[1:]):
        r = sn / s
        a *= r + (1.0 - r) * var / (var + s * s)
    return a


def test_kl_affine_is_the_closed_form(small_sweep):
    """Euler on N(m, s^2 I) is x -> m + A (x_T - m); KL of N((1-A) m, A^2 sigma0^2) vs N(m, s^2)."""
    spec, res, _ = small_sweep
    m, var = 0.3, 1.5
    for e in res.evals:
        grid = np.asarray(js.schedules.karras(e["num_steps"], sigma_min=0.01, sigma_max=10.0), np.float64)
        a = _euler_affine_A(grid, var)
        d = e["dim"]
        w = a * a * grid[0] ** 2 / var
        kl = 0.5 * d * (w - 1 - math.log(w)) + a * a * d * m * m / (2 * var)
        np.testing.assert_allclose(e["kl_affine"], kl, rtol=2e-3)
        assert e["queries"] == e["num_steps"] and e["failures"] == 0


def test_qstar_and_slopes_from_the_sweep(small_sweep):
    spec, res, _ = small_sweep
    for q in res.qstar:
        es = sorted((e for e in res.evals if e["dim"] == q["dim"]), key=lambda e: e["queries"])
        passing = [e["queries"] for e in es if e["kl_affine"] <= 0.05]
        if passing:
            assert q["qstar"] == passing[0] and q["flag"] in ("ok", "censored_low")
            assert q["qstar_ci_low"] <= q["qstar"] <= q["qstar_ci_high"]  # deterministic: all equal
        else:
            assert q["flag"] == "not_reached" and math.isnan(q["qstar"])


# ----------------------------------------------------------------------------- analysis (host only)


def test_first_pass_interpolation_is_exact_for_power_laws():
    costs = np.array([2.0, 4.0, 8.0, 16.0, 32.0])
    c, p = 50.0, 2.0
    vals = (c / costs**p)[:, None]
    target = 0.3
    q, qi, flag = analysis._first_pass(costs, vals, target)
    expected = (c / target) ** (1 / p)  # 12.9...
    assert q[0] == 16.0 and flag[0] == "ok"
    np.testing.assert_allclose(qi[0], expected, rtol=1e-12)
    q, qi, flag = analysis._first_pass(costs, vals, 1e3)
    assert flag[0] == "censored_low" and q[0] == 2.0
    q, qi, flag = analysis._first_pass(costs, vals, 1e-9)
    assert flag[0] == "not_reached" and np.isnan(q[0])


# ----------------------------------------------------------------------------- store


def test_torn_row_is_repaired_and_ignored(tmp_path):
    path = str(tmp_path / "rows-p0.jsonl")
    row = {"cell_id": "c000", "dim": 4, "num_steps": 2, "chunk": 0, "v": 1.5}
    with store.RowWriter(path) as w:
        w.append(row)
        w.append({**row, "chunk": 1})
    with open(path, "ab") as f:
        f.write(b'{"cell_id": "c000", "dim": 4, "num_st')  # killed mid-write
    assert [r["chunk"] for r in store.read_rows(str(tmp_path))] == [0, 1]
    with store.RowWriter(path) as w:  # reopening cuts the torn tail
        w.append({**row, "chunk": 2})
        w.append({**row, "chunk": 1})  # a duplicate key is dropped on read
    assert [r["chunk"] for r in store.read_rows(str(tmp_path))] == [0, 1, 2]
    with open(path) as f:
        assert all(json.loads(line) for line in f)


def test_compilation_cache_must_be_private(tmp_path):
    d = tmp_path / "shared"
    d.mkdir()
    os.chmod(d, 0o777)
    with pytest.raises(ValueError, match="writable by others"):
        js.sweeps.setup_compilation_cache(str(d))


# ----------------------------------------------------------------------------- CLI


def test_cli_dry_run_and_errors(capsys, tmp_path):
    from jscore.cli import main

    assert main(["sweep", "gaussian-steps-vs-d", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "compilations" in text and "euler" in text and "heun" in text
    assert main(["sweep", "gaussian-steps-vs-d", "--print-config"]) == 0
    assert load_spec(capsys.readouterr().out) == js.sweeps.gaussian_steps_spec()
    # the default (no config) is the lower-bound sweep
    assert main(["sweep", "--dry-run"]) == 0
    assert "lower-bound sweep" in capsys.readouterr().out
    assert main(["sweep", "--print-config"]) == 0
    assert load_spec(capsys.readouterr().out) == js.sweeps.default_spec()
    assert main(["sweep", "--seeds", "0-3"]) == 2
    err = capsys.readouterr().err
    assert "--seeds do not apply to the lowerbound experiment" in err and "accepts --dims" in err
    bad = tmp_path / "bad.toml"
    bad.write_text('samplers = ["euler"]\ndims = "8-4"\nsteps = [2]\n')
    assert main(["sweep", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "backwards" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- devices, processes, crashes

_SHARD_SCRIPT = r"""
import json, sys, jax, numpy as np
import jscore as js
assert len(jax.local_devices()) == 4, jax.local_devices()
spec = js.sweeps.SweepSpec(samplers=["euler_ancestral"], dims="6,8", seeds="0-9", chunk=5, steps="3",
                           metrics=["kl"], name="shard")
out = {}
for ndev in (1, 4):
    res = js.sweep(spec, out=sys.argv[1] + f"/d{ndev}", devices=ndev, quiet=True, plot=False,
                   cache_dir=sys.argv[2])
    out[ndev] = {json.dumps(js.sweeps.store.row_key(r)): r["per_seed"] for r in res.rows}
    assert res.rows[0]["device"]["num_devices"] == ndev
assert out[1].keys() == out[4].keys() and len(out[1]) == 4
for k in out[1]:
    assert out[1][k] == out[4][k], k
print("SHARDED-OK")
"""


def test_sharded_equals_unsharded(tmp_path, cache_dir):
    env = _env(XLA_FLAGS="--xla_force_host_platform_device_count=4")
    p = subprocess.run([sys.executable, "-c", _SHARD_SCRIPT, str(tmp_path), cache_dir], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "SHARDED-OK" in p.stdout


_CFG = """
name = "{name}"
samplers = {samplers}
dims = "{dims}"
seeds = "{seeds}"
chunk = {chunk}
steps = "{steps}"
metrics = ["kl"]
"""


def _per_seed_by_key(rows):
    return {store.row_key(r): r["per_seed"] for r in rows}


def test_two_processes_equal_one(tmp_path, cache_dir):
    cfg = tmp_path / "two.toml"
    cfg.write_text(_CFG.format(name="two", samplers='["heun"]', dims="4,8", seeds="0-7", chunk=4,
                               steps="3,6"))
    out = tmp_path / "mp"
    cmd = [sys.executable, "-m", "jscore.cli.sweep", str(cfg), "--out", str(out), "--quiet", "--no-plot",
           "--cache-dir", cache_dir, "--coordinator", free_address(), "--num-processes", "2"]
    run_processes([cmd + ["--process-id", str(i)] for i in range(2)], env=_env())
    part = [store.read_rows_file(str(out / f"rows-p{i}.jsonl")) for i in range(2)]
    k0, k1 = ({store.row_key(r) for r in rows} for rows in part)
    assert k0 and k1 and not (k0 & k1)  # disjoint shards, both did work
    assert {r["device"]["num_processes"] for rows in part for r in rows} == {2}
    res = js.sweep(load_spec(str(cfg)), out=str(tmp_path / "one"), quiet=True, plot=False, cache_dir=cache_dir)
    merged = _per_seed_by_key(store.read_rows(str(out)))
    assert merged == _per_seed_by_key(res.rows) and len(merged) == 2 * 2 * 2
    assert os.path.exists(out / "evals.csv")  # process 0 consolidated after both finished
    assert not list(out.glob("*.done"))  # synchronised by jax's barriers, not marker files


def test_resume_after_sigkill(tmp_path, cache_dir):
    cfg = tmp_path / "kill.toml"
    cfg.write_text(_CFG.format(name="kill", samplers='["euler"]', dims="4", seeds="0-59", chunk=4,
                               steps="2,3,4"))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "jscore.cli.sweep", str(cfg), "--out", str(out), "--quiet", "--no-plot",
           "--cache-dir", cache_dir]
    rows_file = out / "rows-p0.jsonl"
    total = 3 * 15
    err = open(tmp_path / "killed.err", "wb")
    p = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=err)
    t0 = time.time()
    try:
        while time.time() - t0 < 120:
            n = rows_file.read_bytes().count(b"\n") if rows_file.exists() else 0
            if n >= 10 or p.poll() is not None:
                break
            time.sleep(0.002)
        os.kill(p.pid, signal.SIGKILL)
    finally:
        p.wait(timeout=30)
        err.close()
    n_before = rows_file.read_bytes().count(b"\n")
    assert 0 < n_before < total, f"kill landed outside the run ({n_before} rows)"
    p2 = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)  # the same command
    assert p2.returncode == 0, p2.stderr[-3000:]
    lines = rows_file.read_bytes().split(b"\n")
    rows = [json.loads(x) for x in lines if x]
    keys = [store.row_key(r) for r in rows]
    assert len(keys) == len(set(keys)) == total  # nothing lost, nothing duplicated
    ref = js.sweep(load_spec(str(cfg)), out=str(tmp_path / "ref"), quiet=True, plot=False, cache_dir=cache_dir)
    assert _per_seed_by_key(rows) == _per_seed_by_key(ref.rows)


@pytest.mark.slow
def test_default_sweep_slopes(tmp_path, cache_dir):
    """The embedded steps-to-error sweep: log-log slopes of Q*(d) are 1/2 (Euler) and 1/4 (second order)."""
    res = js.sweep(js.sweeps.gaussian_steps_spec(), out=str(tmp_path / "default"), quiet=True,
                   cache_dir=cache_dir)
    expected = {"euler": 0.5, "heun": 0.25, "dpm_solver_pp": 0.25, "dpmpp_2m": 0.25}
    fits = [s for s in res.slopes if s["of"] == "qstar_interp" and s["cell"] is not None]
    assert len(fits) == len(res.spec.samplers)
    for s in fits:
        name = s["cell"]["sampler"].split(":")[0]
        want = expected.get(name, 0.25)
        assert abs(s["slope"] - want) < 0.1, (name, s["slope"])
    assert os.path.exists(os.path.join(res.out, "qstar.png"))


class _GridLengthEuler(js.samplers.AbstractFixedStepSampler):
    """Test-only: an Euler step stretched by 1 + 1/N, so it depends on the grid length."""

    @property
    def is_stochastic(self):
        return False

    def num_queries(self, num_steps, ends_at_zero):
        return num_steps

    def init(self, sigmas, x):
        return None

    def step(self, oracle, i, sigmas, x, state, ostate, ledger, key):
        from jscore.counting import charged_query

        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        score, ostate, ledger = charged_query(oracle, x, sigma, ostate, ledger)
        stretch = 1.0 + 1.0 / (sigmas.shape[0] - 1)
        return x + stretch * (sigma_next - sigma) * (-sigma * score), state, ostate, ledger


class _RenamedEuler(js.samplers.Euler):
    pass


def test_unknown_samplers_are_probed_before_grid_padding(tmp_path, cache_dir):
    from jscore.samplers import catalogue

    catalogue.CATALOGUE["test_gridlen"] = _GridLengthEuler
    catalogue.CATALOGUE["test_renamed"] = _RenamedEuler
    try:
        spec = SweepSpec(samplers=["test_gridlen", "test_renamed"], dims="3", seeds="0-3", chunk=4,
                         steps="3,4", metrics=["kl"], name="probe")
        plan = engine.validate(spec)
        assert {plan.grid_mode[c.id] for c in plan.cells} == {"probe:max"}
        before = engine.ENGINE_STATS["probes"]
        res = js.sweep(spec, out=str(tmp_path / "probe"), quiet=True, plot=False, cache_dir=cache_dir)
        assert engine.ENGINE_STATS["probes"] - before == 2
        lengths = {(r["cell"]["sampler"], r["num_steps"]): r["grid_length"] for r in res.rows}
        assert lengths == {("test_gridlen", 3): 3, ("test_gridlen", 4): 4,
                           ("test_renamed", 3): 4, ("test_renamed", 4): 4}
        # grid lengths 3 and 4 per sampler: the probe's kernels are the sweep's kernels
        assert res.num_compilations == 4
        target = js.targets.Gaussian.isotropic(3)
        for r in res.rows:
            if r["cell"]["sampler"] != "test_gridlen":
                continue
            ref = js.sample(js.oracles.Exact(target), _GridLengthEuler(), js.schedules.karras(r["num_steps"]),
                            jax.random.key(0), num_samples=4)
            u2 = (np.asarray(ref.x, np.float64) ** 2).sum(1)
            np.testing.assert_allclose(r["per_seed"]["u2"], u2, rtol=1e-5)
    finally:
        del catalogue.CATALOGUE["test_gridlen"], catalogue.CATALOGUE["test_renamed"]


def test_pooled_kl_agrees_with_closed_form(small_sweep):
    """The moment-fit ``kl`` estimates the same KL as ``kl_affine`` (isotropic output law here):
    within 5 delta-method standard errors plus its O(1/n) bias."""
    from helpers import assert_within_se

    spec, res, _ = small_sweep
    for e in res.evals:
        f, d = e["_feats"], e["dim"]
        n = f["u1"].shape[0]
        N = n * d
        delta = f["u1"].sum() / N
        v = f["u2"].sum() / N - delta**2
        se = math.sqrt((0.5 * d * (1 - 1 / v)) ** 2 * 2 * v * v / N + (d * delta) ** 2 * v / N)
        assert_within_se(e["kl"], e["kl_affine"], se + 1.0 / n, k=5, what=f"kl at d={d} N={e['num_steps']}")


def test_progress_bar_reports_queries_per_second(small_sweep):
    text = small_sweep[1].progress_text
    # one line per unit, numbered by the driver: 12 dims x 3 steps x 2 chunks
    lines = [ln for ln in text.splitlines() if "queries/s" in ln]
    assert len(lines) == 72 and any(ln.startswith("[72/72] sweep c000 euler d=") for ln in lines)


def test_existing_results_of_another_config_are_refused(small_sweep, cache_dir):
    spec, res, _ = small_sweep
    other = spec.replace(seeds="0-10")
    before = engine.ENGINE_STATS["compilations"]
    with pytest.raises(ValueError, match="another samplers experiment configuration"):
        js.sweep(other, out=res.out, quiet=True, cache_dir=cache_dir)
    with pytest.raises(ValueError, match="already holds rows"):
        js.sweep(spec, out=res.out, quiet=True, resume=False, cache_dir=cache_dir)
    assert engine.ENGINE_STATS["compilations"] == before
    again = js.sweep(spec, out=res.out, quiet=True, plot=False, cache_dir=cache_dir)  # complete: a no-op
    assert again.num_compilations == 0 and len(again.rows) == len(res.rows)
    np.testing.assert_array_equal([q["qstar_interp"] for q in again.qstar], [q["qstar_interp"] for q in res.qstar])
    # analysis-only options do not change the configuration
    assert spec.replace(bootstrap=7, ci=0.9).config_hash == spec.config_hash


def test_nonfinite_metric_statistics_count_as_failures(tmp_path, cache_dir):
    """eps = 1e30 overflows the float32 per-chain KL statistics: those chains are failures and the
    metric is inf, never a NaN row reported with 0 failures."""
    spec = SweepSpec(samplers=["euler"], oracles=["noisy:eps=1e30"], dims="3", seeds="0-3", chunk=4,
                     steps="3", metrics=["kl"], name="huge-eps")
    res = js.sweep(spec, out=str(tmp_path / "huge"), quiet=True, plot=False, cache_dir=cache_dir)
    u2 = np.concatenate([np.asarray(r["per_seed"]["u2"], np.float64) for r in res.rows])
    bad = int((~np.isfinite(u2)).sum())
    assert bad > 0  # the premise: float32 statistics overflow at this eps
    (ev,) = analysis.evaluations(res.rows, ["kl"])
    assert ev["nonfinite_metric_chains"] == bad and ev["failures"] >= bad
    assert ev["kl"] == float("inf")


# ----------------------------------------------------------------------------- learned and adversary oracles


def _tiny_toml(targets, oracles, dims, metrics, steps=4):
    return (f"name = 'byo'\ntargets = {targets}\noracles = {oracles}\nsamplers = ['euler']\n"
            f"schedules = ['karras']\ndims = '{dims}'\nseeds = '0-3'\nsteps = '{steps}'\nmetrics = {metrics}\n")


def test_network_oracle_from_checkpoint_and_factory(tmp_path, monkeypatch, cache_dir):
    models = {d: js.nets.DenoiserMLP(d, width=8, depth=1, key=jax.random.key(d)) for d in (3, 5)}
    for d, m in models.items():  # zero last layer at init: perturb so the network is not Gaussian
        m = eqx.tree_at(lambda t: t.proj_out.bias, m, 0.3 * jnp.ones(d))
        models[d] = m
        (tmp_path / f"d{d}").mkdir()
        js.nets.save(tmp_path / f"d{d}" / "model.eqx", m)
    (tmp_path / "byo_factory.py").write_text(
        "import jax, jscore as js\n"
        "def make(dim, width=8):\n"
        "    return js.nets.DenoiserMLP(dim, width=width, depth=1, key=jax.random.key(100 + dim))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ckpt = str(tmp_path / "d{d}" / "model.eqx")
    oracles = ("[{name = 'network', checkpoint = '" + ckpt + "'}, "
               "{name = 'network', factory = 'byo_factory:make', width = 8}]")
    res = js.sweep(load_spec(_tiny_toml("['gaussian']", oracles, "3,5", "['kl']")),
                   out=str(tmp_path / "out"), quiet=True, cache_dir=cache_dir)
    assert len(res.evals) == 4
    for e in res.evals:
        d = e["dim"]
        model = (models[d] if "checkpoint" in e["cell"]["oracle"]
                 else js.nets.DenoiserMLP(d, width=8, depth=1, key=jax.random.key(100 + d)))
        ref = js.sample(js.oracles.Network(model), js.samplers.Euler(), js.schedules.karras(4),
                        jax.random.key(0), num_samples=4)
        x = np.asarray(ref.x, np.float64)  # target N(0, I): u1 = sum x, u2 = sum x^2 per chain
        np.testing.assert_allclose(e["_feats"]["u1"], x.sum(1), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(e["_feats"]["u2"], (x * x).sum(1), rtol=1e-5)
    with pytest.raises(ValueError, match="dimension 3 but the cell has d = 4"):
        engine.validate(load_spec(_tiny_toml("['gaussian']", "[{name = 'network', checkpoint = '"
                                             + str(tmp_path / "d3" / "model.eqx") + "'}]", "4", "['kl']")))
    # a `jscore train --out` directory works as well as its model file
    from jscore.sweeps import registry

    o = registry.network_oracle(js.targets.Gaussian.isotropic(5), checkpoint=str(tmp_path / "d{d}"))
    x = jnp.linspace(-1.0, 1.0, 5)
    np.testing.assert_array_equal(o.query(x, 0.3, None)[0], js.oracles.Network(models[5]).query(x, 0.3, None)[0])
    with pytest.raises(ValueError, match="exactly one of"):
        engine.validate(load_spec(_tiny_toml("['gaussian']", "['network']", "4", "['kl']")))
    with pytest.raises(ValueError, match="cannot import factory"):
        engine.validate(load_spec(_tiny_toml("['gaussian']", "[{name = 'network', factory = 'no_such_mod:f'}]",
                                             "4", "['kl']")))


def test_adversary_and_reference_oracles_in_a_sweep(tmp_path, cache_dir):
    toml = _tiny_toml("['sphere_codebook:rate=0.3']", "['adversary:eps=0.5', 'reference']", "6", "[]", steps=6)
    res = js.sweep(load_spec(toml), out=str(tmp_path / "out"), quiet=True, cache_dir=cache_dir)
    cb = js.targets.SphereCodebook.random(jax.random.key(0), 6, 0.3, 1.0)
    grid = js.schedules.karras(6)
    refs = {"adversary:eps=0.5": js.oracles.LRAdversary(cb, 0.5), "reference": js.oracles.Reference(cb.reference)}
    for row in res.rows:
        r = js.sample(refs[row["cell"]["oracle"]], js.samplers.Euler(), grid, jax.random.key(0), num_samples=4)
        for k in ("informative", "first_informative", "informative_count"):
            assert row["per_seed"]["oracle." + k] == np.asarray(getattr(r.stats, k)).astype(int).tolist()
        assert row["per_seed"]["queries"] == [6] * 4
    with pytest.raises(TypeError, match="SphereCodebook"):
        engine.validate(load_spec(_tiny_toml("['gaussian']", "['adversary:eps=0.5']", "6", "[]")))


def test_experiment_registry_runs_a_user_experiment_through_js_sweep_and_load_spec(tmp_path):
    """An experiment is a registered (spec type, from_dict, run): js.sweep and load_spec dispatch
    through the registry only, for the built-in ones and for a user's."""
    import dataclasses

    from jscore.sweeps import EXPERIMENTS, experiment_of, register_experiment

    @dataclasses.dataclass(frozen=True)
    class Tiny:
        n: int = 3
        name: str = "tiny"

    calls = []

    def run(spec, *, out, **kw):
        calls.append((spec, out, kw["dry_run"]))
        return sum(range(spec.n))

    try:
        register_experiment("tiny", lambda d: Tiny(n=int(d.get("n", 3))), spec_type=Tiny, run=run)
        assert experiment_of(Tiny()).name == "tiny"
        assert js.sweep(Tiny(4), out=str(tmp_path)) == 6 and calls[-1] == (Tiny(4), str(tmp_path), False)
        assert js.sweep({"experiment": "tiny", "n": 5}) == 10
        assert load_spec('experiment = "tiny"\nn = 2\n') == Tiny(2)
    finally:
        EXPERIMENTS.pop("tiny", None)
    assert experiment_of(js.sweeps.default_spec()).name == "lowerbound"
    assert experiment_of(js.sweeps.gaussian_steps_spec()).name == "samplers"
    with pytest.raises(TypeError, match="registered experiment"):
        js.sweep(Tiny())
    with pytest.raises(ValueError, match="Unknown experiment 'tiny'"):
        js.sweep({"experiment": "tiny"})


def test_qstar_bisection_runs_in_rounds_like_a_sequential_bisection(tmp_path, cache_dir):
    """The Q* bisection advances one evaluation per driver round for every (cell, d) at once; the step
    counts it evaluates are exactly those of a sequential geometric bisection over the measured
    errors (replayed here), Q* is its answer, and two threads give the same rows as one."""
    spec = SweepSpec(name="bisect", samplers=["euler", "heun"], dims="4,16", seeds="0-7", chunk=4,
                     metrics=["kl_affine"], bootstrap=20,
                     qstar={"metric": "kl_affine", "target": 0.05, "search": "bisect", "steps": "2-64"})
    one = js.sweep(spec, out=str(tmp_path / "one"), quiet=True, plot=False, cache_dir=cache_dir,
                   workers=1)
    two = js.sweep(spec, out=str(tmp_path / "two"), quiet=True, plot=False, cache_dir=cache_dir,
                   workers=2)
    assert _per_seed_by_key(one.rows) == _per_seed_by_key(two.rows)
    err = {(e["cell_id"], e["dim"], e["num_steps"]): e["kl_affine"] for e in one.evals}
    qstar = {(q["cell_id"], q["dim"]): q["qstar"] for q in one.qstar}
    longest = 0
    for cell_id, d in qstar:
        lo, hi, path = 2, 64, [2, 64]
        assert err[(cell_id, d, lo)] > 0.05 and err[(cell_id, d, hi)] <= 0.05  # bracketed
        while hi - lo > 1:
            mid = min(max(int(round(math.sqrt(lo * hi))), lo + 1), hi - 1)
            path.append(mid)
            lo, hi = (lo, mid) if err[(cell_id, d, mid)] <= 0.05 else (mid, hi)
        assert sorted(n for c, dd, n in err if (c, dd) == (cell_id, d)) == sorted(path)
        at_hi = next(r for r in one.rows if (r["cell_id"], r["dim"], r["num_steps"]) == (cell_id, d, hi))
        assert qstar[(cell_id, d)] == at_hi["queries_per_chain"]
        longest = max(longest, len(path))  # one evaluation per round: lo, hi, then each midpoint
    summary = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert summary["rounds"] == longest
    # rows written before the protocol (no "unit" entry) are found by their fields: resumed as is
    rows_file = tmp_path / "one" / "rows-p0.jsonl"
    old = [{k: v for k, v in json.loads(x).items() if k != "unit"} for x in rows_file.read_text().splitlines()]
    rows_file.write_text("".join(json.dumps(r) + "\n" for r in old))
    again = js.sweep(spec, out=str(tmp_path / "one"), quiet=True, plot=False, cache_dir=cache_dir)
    assert len(rows_file.read_text().splitlines()) == len(old)  # nothing recomputed
    assert {(q["cell_id"], q["dim"]): q["qstar"] for q in again.qstar} == qstar
