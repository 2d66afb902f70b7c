"""The lower-bound sweep as an experiment of the unit protocol: one config (ScalingConfig) behind
the lab, js.sweep, TOML and both command lines; units = dimensions; resume from the units files;
rows that do not depend on threads or processes."""

import dataclasses
import inspect
import json
import os
import sys
import textwrap

import pytest

import jscore as js
from jscore.lowerbound import scaling as sc
from jscore.lowerbound.scaling_config import ScalingConfig
from jscore.sweeps import LowerBoundSweep, load_spec
from jscore.sweeps import lowerbound as lbs
from jscore.sweeps.protocol import run_experiment

# a small configuration: one sampler, a coarse rate grid, few norm draws
SMALL = dict(samplers=("euler",), n_xi=100, n_rates=3, n_offsets=4, n_reps=3, k_max=64)
# the configuration whose d = 100 row was recorded before (test_lowerbound_families, fa0c33e)
TINY = dict(samplers=("euler",), n_xi=50, n_offsets=4, n_reps=2, k_max=64)
TINY_FLAGS = ["--samplers", "euler", "--n-xi", "50", "--offsets", "4", "--reps", "2",
              "--k-max", "64"]


def _text(rows) -> str:
    """Rows as JSON text: equal text = bitwise-equal numbers (NaN included)."""
    return json.dumps(rows, sort_keys=True)


# ----------------------------------------------------------------------------- one config
def test_default_spec_is_the_lower_bound_sweep():
    spec = js.sweeps.default_spec()
    assert isinstance(spec, LowerBoundSweep) and isinstance(spec, ScalingConfig)
    assert spec.dims[0] == 100 and spec.dims[-1] == 10**6 and spec.eps == "1/d" and spec.p == 2.0
    assert load_spec(spec.to_toml()) == spec
    assert load_spec('experiment = "lowerbound"\ndims = "100-10000:x10"\n').dims == (100, 1000, 10000)
    assert js.sweeps.experiment_of(spec).name == "lowerbound"


def test_one_place_for_the_defaults():
    """The lab's scaling(), the experiment and the CLI read the defaults from ScalingConfig."""
    import argparse

    from jscore.cli import lowerbound as cli
    from jscore.sweeps.protocol import config_from_args

    lab = ScalingConfig()
    exp = LowerBoundSweep()
    assert {f.name: getattr(exp, f.name) for f in dataclasses.fields(lab)} == dataclasses.asdict(lab)
    params = inspect.signature(sc.scaling).parameters
    assert list(params) == ["config", "log", "fields"]  # no second copy of the defaults
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["lowerbound", "scale"])
    assert config_from_args(LowerBoundSweep, args) == exp and args.out == "jscore-lowerbound"
    # rows are per d: neither dims nor the robustness unit nor the name is part of the identity
    assert exp.config_hash == exp.replace(dims=(100,), robustness=True, name="x").config_hash
    assert exp.config_hash != exp.replace(n_reps=4).config_hash
    assert exp.units() == list(exp.dims) and exp.replace(robustness=True).units()[-1] == "robustness"


@pytest.mark.parametrize(
    "kw, err, match",
    [
        (dict(dims=(1, 100)), ValueError, ">= 2"),
        (dict(dims=(100, 100)), ValueError, "twice"),
        (dict(dims=(100.5,)), ValueError, "whole numbers"),
        (dict(dims="100,x"), ValueError, "comma-separated"),
        (dict(samplers=("rk4",)), ValueError, "rk4"),
        (dict(samplers=()), ValueError, "empty"),
        (dict(p=0.5), ValueError, "`p` must be >= 1"),
        (dict(eps="1/e"), ValueError, "eps rule"),
        (dict(eps=2.0), ValueError, "eps"),
        (dict(rate_lo=0.4, rate=0.3), ValueError, "rate_lo <= rate"),
        (dict(n_rates=1), ValueError, "n_rates"),
        (dict(n_reps=1), ValueError, "`n_reps` must be an int >= 2, got 1"),
        (dict(max_queries="many"), ValueError, "max_queries"),
        (dict(robustness="yes"), TypeError, "robustness"),
    ],
)
def test_config_errors(kw, err, match):
    with pytest.raises(err, match=match):
        ScalingConfig(**kw)
    with pytest.raises(err, match=match):
        LowerBoundSweep(**kw)


def test_config_parses_text_as_the_flags_give_it():
    c = LowerBoundSweep(dims="1e2,1e4", samplers="euler,heun:s_churn=40,s_noise=1.0",
                        eps="1e-4", max_queries="64")
    assert c.dims == (100, 10000) and c.samplers == ("euler", "heun:s_churn=40,s_noise=1.0")
    assert c.eps == 1e-4 and c.max_queries == 64
    assert c.config_hash == LowerBoundSweep(dims=(100,), samplers=c.samplers, eps=1e-4,
                                            max_queries=64).config_hash
    with pytest.raises(TypeError, match="names"):  # TOML has no sampler instances
        LowerBoundSweep(samplers=(js.samplers.Euler(),))
    assert ScalingConfig(samplers=(js.samplers.Euler(),)).labels == ["Euler"]  # the lab takes them


def test_unknown_keys_and_experiments():
    with pytest.raises(ValueError, match="Unknown lowerbound keys \\['seeds'\\]"):
        load_spec('experiment = "lowerbound"\nseeds = "0-3"\n')
    with pytest.raises(ValueError, match="Unknown experiment"):
        load_spec('experiment = "upperbound"\n')


def test_the_lab_writes_no_files():
    for kw in (dict(out_dir="x"), dict(plot=False), dict(resume=True)):
        with pytest.raises(TypeError, match=r"js\.sweep\(js\.sweeps\.LowerBoundSweep"):
            sc.scaling(dims=(100,), **kw)
    with pytest.raises(TypeError, match="ScalingConfig"):
        sc.scaling({"dims": (100,)})


# ----------------------------------------------------------------------------- resume (no compute)
def _fake_row(d):
    """A row with every field the sweep writes (values arbitrary but plausible)."""
    return dict(d=float(d), eps=1.0 / d, lower=-0.3, upper=0.26, width=0.56, w_sqrt_d=11.2,
                w_norm=3.29, N=1.16, window_lo_side=[-0.3, 0.25], window_hi_side=[-0.32, 0.27],
                kstar_ideal=5.8, kstar_ideal_lo=5.6, kstar_ideal_hi=6.0, searcher_queries=2.0,
                searcher_windows=3, exact_control_success=1.0, exact_control_queries=2.0,
                reference_control_log10=-40.0, profile_R=0.3,
                profile_ls=[-1.0, 0.0, 1.0], profile_vals=[0.0, 1.0, 0.0],
                profile_lo=[0.0, 1.0, 0.0], profile_hi=[0.0, 1.0, 0.1],
                samplers={"euler": dict(kstar_lo=6.1, kstar_hi=6.3, kstar_lo_mc=0.1,
                                        kstar_hi_mc=0.1, kstar_lo_reps=[6.0, 6.2],
                                        kstar_hi_reps=[6.2, 6.4], n_points=4, n_reps=2,
                                        evaluations=3, success_curve={"4": [0.3, 0.4]},
                                        levels_in_band=1.9)})


def test_resume_from_the_units_files(tmp_path, monkeypatch):
    """Finished units are read back, never recomputed; new dimensions (and the robustness unit)
    compute only themselves; another configuration or resume=False is refused; an old folder
    with only a scaling.json is refused, naming --overwrite."""
    calls = []

    def fake_row(config, d, *, log=print):
        calls.append(d)
        return {**_fake_row(d), "samplers": {}}

    def fake_sampler(config, d, label, width, kstar_ideal, *, log=print):
        assert (width, kstar_ideal) == (0.56, 5.8)  # the inputs come from the dimension's row
        calls.append((d, label))
        return _fake_row(d)["samplers"][label]

    def fake_robustness(config, *, log=print):
        calls.append("robustness")
        return {"robustness": [dict(p=2.0, eps="1/d", dims=[1600], w_norm=[3.3])]}

    monkeypatch.setattr(lbs, "dimension_row", fake_row)
    monkeypatch.setattr(lbs, "sampler_row", fake_sampler)
    monkeypatch.setattr(lbs, "robustness_row", fake_robustness)
    out = tmp_path / "lb"
    spec = LowerBoundSweep(dims=(400, 1600), **SMALL)
    kw = dict(out=str(out), cache_dir=None, quiet=True, workers=1)
    res = js.sweep(spec, plot=False, **kw)
    # two rounds: the dimensions, then each dimension's samplers (largest d first)
    assert calls == [400, 1600, (1600, "euler"), (400, "euler")]
    assert res.rows == [_fake_row(400), _fake_row(1600)] and res.complete
    assert sorted(os.listdir(out)) == ["config.json", "scaling.csv", "scaling.json",
                                       "scaling.parquet", "table.txt", "units-p0.jsonl"]
    assert (out / "scaling.csv").read_text().count("\n") == 3
    from jscore.store import read_dataframe

    table = read_dataframe(out, table="scaling")  # the parquet copy of scaling.csv
    assert table["d"].tolist() == [400, 1600]
    assert table.equals(read_dataframe(out / "scaling.csv"))
    units = read_dataframe(out)  # no results table: the stored unit rows, one per unit run
    assert len(units) == len(calls)
    assert sorted(units["d"].dropna()) == [400.0, 1600.0]  # the dimension units
    assert units["sampler.kstar_lo"].dropna().tolist() == [6.1, 6.1]  # the sampler units
    assert json.loads((out / "scaling.json").read_text())["rows"] == res.rows
    assert res.results["fits"]["kstar_lo_euler"][0] == pytest.approx(0.0)  # both rows say 6.1
    assert res.results["fits_mc"]["kstar_hi_euler"][0] == pytest.approx(0.0)
    assert "6.1 ..    6.3" in res.table() and (out / "table.txt").read_text() == res.table() + "\n"
    assert res.results["compile"]["compilations"] >= 0 and res.results["run"]["workers"] == 1
    calls.clear()
    more = js.sweep(spec.replace(dims=(400, 1600, 6400), robustness=True), plot=True, **kw)
    assert calls == [6400, "robustness", (6400, "euler")]
    assert [r["d"] for r in more.rows] == [400.0, 1600.0, 6400.0]
    assert more.results["robustness"][0]["w_norm"] == [3.3]
    assert (out / "scaling.png").exists() and (out / "scaling.pdf").exists()
    calls.clear()
    again = js.sweep(spec.replace(dims=(1600, 400)), plot=False, **kw)
    assert calls == [] and [r["d"] for r in again.rows] == [1600.0, 400.0]  # in dims order
    with pytest.raises(ValueError, match="another lowerbound experiment configuration"):
        js.sweep(spec.replace(p=1.0), **kw)
    with pytest.raises(ValueError, match="already holds rows"):
        js.sweep(spec, resume=False, **kw)
    with pytest.raises(ValueError, match="no rows"):
        js.sweep(spec, resume=True, **{**kw, "out": str(tmp_path / "empty")})
    # a folder of the old layout: only scaling.json
    old = tmp_path / "old"
    old.mkdir()
    (old / "scaling.json").write_text(json.dumps({"config": {}, "rows": [_fake_row(400)]}))
    with pytest.raises(ValueError, match="older lowerbound run.*--overwrite"):
        js.sweep(spec, **{**kw, "out": str(old)})
    calls.clear()
    js.sweep(spec, overwrite=True, plot=False, **{**kw, "out": str(old)})
    assert calls == [400, 1600, (1600, "euler"), (400, "euler")]
    assert (old / "units-p0.jsonl").exists()


# ----------------------------------------------------------------------------- real rows
@pytest.fixture(scope="module")
def tiny_one(tmp_path_factory):
    """d = 100, 400 of the TINY configuration on one worker."""
    out = tmp_path_factory.mktemp("lb") / "w1"
    return run_experiment(LowerBoundSweep(dims=(100, 400), **TINY), out=str(out), quiet=True,
                          workers=1, plot=False)


def test_rows_are_the_recorded_numbers_and_the_labs(tiny_one):
    x = tiny_one.rows[0]["samplers"]["euler"]
    assert x["kstar_lo_reps"] == [2.863571995173623, 2.7664623077584567]  # recorded at fa0c33e
    assert x["kstar_hi_reps"] == [3.114806735905218, 2.9568709530981616]
    assert tiny_one.rows[0]["kstar_ideal"] == 3.1479342284505094
    import jax

    with jax.default_device(jax.local_devices()[0]):  # as the driver runs it: the same compiles
        lab = sc.scaling(ScalingConfig(dims=(100, 400), **TINY), log=lambda m: None)
    assert _text(json.loads(json.dumps(lab["rows"]))) == _text(tiny_one.rows)
    assert _text(lab["fits"]) == _text(json.loads(json.dumps(tiny_one.results["fits"])))


def test_two_workers_equal_one_bitwise(tiny_one, tmp_path):
    two = run_experiment(LowerBoundSweep(dims=(100, 400), **TINY), out=str(tmp_path / "w2"),
                         quiet=True, workers=2, plot=False)
    assert two.results["run"]["workers"] == 2
    assert _text(two.rows) == _text(tiny_one.rows)


_TWO_PROCESSES = textwrap.dedent("""
    import sys, json
    import jax
    jax.distributed.initialize(coordinator_address=sys.argv[2], num_processes=2,
                               process_id=int(sys.argv[3]))
    from jscore.sweeps import LowerBoundSweep
    from jscore.sweeps.protocol import run_experiment
    cfg = LowerBoundSweep.from_dict(json.loads(sys.argv[4]))
    res = run_experiment(cfg, out=sys.argv[1], quiet=True, workers=1, plot=False)
    print(json.dumps({"rows": res.rows, "here": res.results["run"]["units_run_here"],
                      "wrote": bool(res.files)}, sort_keys=True))
""")


@pytest.mark.slow  # two processes compiling ~80 programs each: 27 s at load 1, 131 s at load 6-9
def test_two_processes_equal_one(tiny_one, tmp_path):
    from helpers import free_address, run_processes

    out, addr = str(tmp_path / "mp"), free_address()
    cfg = json.dumps(LowerBoundSweep(dims=(100, 400), **TINY).to_dict())
    outs = run_processes([[sys.executable, "-c", _TWO_PROCESSES, out, addr, str(i), cfg]
                          for i in range(2)], timeout=400)
    got = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    # round 1: d = 100 on process 0, d = 400 on process 1; round 2: a sampler unit each
    assert [g["here"] for g in got] == [2, 2]
    assert _text(got[0]["rows"]) == _text(tiny_one.rows) == _text(got[1]["rows"])
    assert got[0]["wrote"] and not got[1]["wrote"]  # only process 0 writes the result files
    assert {"units-p0.jsonl", "units-p1.jsonl", "scaling.json"} <= set(os.listdir(out))


# ----------------------------------------------------------------------------- command lines
def test_sweep_print_config_round_trip(capsys):
    from jscore.cli import main

    assert main(["sweep", "--dims", "100,400", "--n-reps", "2", *TINY_FLAGS[:6],
                 "--print-config"]) == 0
    text = capsys.readouterr().out
    assert load_spec(text) == LowerBoundSweep(dims=(100, 400), samplers=("euler",), n_xi=50,
                                              n_offsets=4, n_reps=2)
    assert main(["lowerbound", "scale", "--dims", "100,400", "--n-reps", "2", *TINY_FLAGS[:6],
                 "--print-config"]) == 0
    assert capsys.readouterr().out == text  # one config behind both commands
    assert main(["sweep", "--dims", "100,400", "--dry-run"]) == 0
    assert "2 dimensions (100, 400)" in capsys.readouterr().out


def test_lowerbound_scale_runs_through_the_experiment(tiny_one, tmp_path, capsys):
    from jscore.cli import main

    out = tmp_path / "cli"
    assert main(["lowerbound", "scale", "--dims", "100,400", *TINY_FLAGS, "--out", str(out),
                 "--no-plot", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(lbs.LEGEND) and tiny_one.table() in printed
    rows = [json.loads(line) for line in (out / "units-p0.jsonl").read_text().splitlines()]
    assert [r["unit"] for r in rows[:2]] == [100, 400]  # then one unit per (d, sampler)
    assert [r["unit"][:3] for r in rows[2:]] == [["sampler", 400, "euler"], ["sampler", 100, "euler"]]
    assert _text(LowerBoundSweep(dims=(100, 400), **TINY)._dimension_rows(rows)) == _text(tiny_one.rows)
    assert (out / "table.txt").read_text() == tiny_one.table() + "\n"


@pytest.mark.parametrize("argv, flag", [
    (["lowerbound", "scale", "--reps", "1"], "--reps"),
    (["lowerbound", "scale", "--offsets", "0"], "--offsets"),
    (["lowerbound", "scale", "--dims", "100,x"], "--dims"),
    (["lowerbound", "scale", "--eps", "2"], "--eps"),
    (["lowerbound", "scale", "--reps", "x"], "--reps"),
    (["sweep", "--n-reps", "1"], "--n-reps"),
    (["sweep", "--n-reps", "x"], "--n-reps"),
])
def test_bad_values_name_the_flag(argv, flag, tmp_path, capsys):
    from jscore.cli import main

    out = tmp_path / "never"
    try:
        rc = main([*argv, "--out", str(out)])
    except SystemExit as e:  # argparse's own type errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert flag in err.strip().splitlines()[-1], err
    assert not os.path.exists(out)
