"""The exact-codebook lab as an experiment of the unit protocol (jscore.sweeps.exact_lab.ExactLab):
TOML round trip, generated flags, threads equal to one worker bitwise, a killed run resumed equal
to an uninterrupted one, ``jscore sweep exact.toml`` equal to ``jscore lowerbound exact``."""

import argparse
import csv
import json
import tomllib

import numpy as np
import pytest

from jscore.cli import main
from jscore.lowerbound import exact_experiments as E
from jscore.lowerbound import validation as V
from jscore.sweeps import EXPERIMENTS, load_spec
from jscore.sweeps import exact_lab
from jscore.sweeps.exact_lab import ExactLab
from jscore.sweeps.protocol import add_config_flags, config_from_args, run_experiment

# The shapes of tests/test_exact_cli.py's TINY run (d = 12, R = 0.3, 16 chains, K = 2), so the
# compiled sampler and TV pass are shared within one pytest worker.
TINY = dict(experiments="tv,success", dims="12", rates="0.3", ks="2", chains=16, offsets=1,
            samplers="euler", oracles="exact,reference", tv="12,0.3", tv_ratios="1.0,1.25",
            tv_points=64)


def _values(rows):
    """Rows without the timing column (the only field that depends on the run)."""
    def clean(r):
        if "rows" in r:
            return {"unit": r["unit"], "rows": [clean(x) for x in r["rows"]]}
        return {k: v for k, v in r.items() if k != "seconds"}
    return [clean(r) for r in rows]


def _csv(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


def test_toml_round_trip_and_parsing():
    cfg = ExactLab(**TINY, bracket_ratios="0.6,2", seed=3)
    assert cfg.dims == (12,) and cfg.tv == (12, 0.3) and isinstance(cfg.tv[0], int)
    assert cfg.experiments == ("tv", "success") and cfg.oracles == ("exact", "reference")
    assert cfg.bracket_ratios == (0.6, 2.0)
    data = tomllib.loads(cfg.to_toml())
    assert data["experiment"] == "exact" and data["tv"] == [12, 0.3]
    assert ExactLab.from_dict(data) == cfg
    assert "bracket_ratios" not in ExactLab().to_dict()  # None: the 16 default ratios
    assert ExactLab(experiments="all").experiments == exact_lab.EXPERIMENTS
    # every setting a row depends on is in its unit: one hash for every configuration
    assert ExactLab().config_hash == cfg.config_hash
    assert exact_lab.BRACKET_RATIOS == V.BRACKET_RATIOS
    n = ExactLab().units()
    assert len(n) == 43 + 16 + 12 + 4 * 5 * 8 * 4 * 3 + 5  # audit, bracket, tv, success, search
    assert len({json.dumps(u, sort_keys=True) for u in n}) == len(n)


def test_units_carry_the_settings_of_their_rows():
    cfg = ExactLab(**TINY)
    (tv1, tv2, s1, s2) = cfg.units()
    assert tv1 == ["tv", dict(d=12, rate=0.3, ratio=1.0, n=64, seed=0)] and tv2[1]["ratio"] == 1.25
    assert s1[0] == "success" and (s1[1]["oracle"], s2[1]["oracle"]) == ("exact", "reference")
    assert s1[1]["chains"] == 16 and s1[1]["sigma_max"] == 20.0
    # the audit grid is computed without drawing the codebook, equal to audit_grid's
    from jscore.lowerbound.audit import audit_grid

    cb = E.audit_codebook(12, 0.3, 0)
    np.testing.assert_array_equal(E.audit_sigmas(12, 0.3, 5, (0.02, 20.0)),
                                  audit_grid(cb, 5, include=(0.02, 20.0)))
    audit = ExactLab(experiments="audit", audit_dim=12, audit_rate=0.3, audit_sigmas=5).units()
    assert [u[1]["sigma_index"] for u in audit] == list(range(7))


@pytest.mark.parametrize("flags, match", [
    (["--chains", "0"], "--chains must be an integer >= 1, got 0 \\(field `chains`\\)"),
    (["--dims", "12,x"], "--dims expects comma-separated integers, got '12,x'"),
    (["--tv", "12,0.3,8"], "--tv takes pairs"),
    (["--experiment", "tv,nope"], "unknown --experiment \\['nope'\\]"),
    (["--eps", "nan"], "--eps must be a finite number"),
])
def test_bad_flag_values_name_the_flag(flags, match):
    p = argparse.ArgumentParser()
    add_config_flags(p, ExactLab)
    with pytest.raises(ValueError, match=match):
        config_from_args(ExactLab, p.parse_args(flags))
    with pytest.raises(SystemExit):  # argparse: "argument --chains: invalid int value: 'x'"
        p.parse_args(["--chains", "x"])


def test_threads_equal_one_worker_and_match_the_unit_functions(tmp_path):
    cfg = ExactLab(**TINY)
    one = run_experiment(cfg, out=str(tmp_path / "w1"), quiet=True, workers=1, plot=False)
    exact_lab.clear_cache()
    two = run_experiment(cfg, out=str(tmp_path / "w2"), quiet=True, workers=2, plot=False)
    assert one.complete and two.complete and len(one.rows) == 4
    assert _values(two.rows) == _values(one.rows)  # bitwise, in units() order
    for name in ("tv.csv", "success_units.csv", "success_d12.csv"):
        assert _csv(tmp_path / "w2" / name) == _csv(tmp_path / "w1" / name), name
    # the rows are the unit functions' own (an independent call, fresh codebook)
    want = E.tv_unit(12, 0.3, 1.25, 64, 0)
    got = one.results["tv"][1]
    assert {k: got[k] for k in want if k != "seconds"} == \
        {k: v for k, v in want.items() if k != "seconds"}
    assert "decoder success vs K" in one.table() and "TV(P_sigma, Q_sigma) vs Phi" in one.table()


def test_killed_run_resumes_to_the_uninterrupted_rows(tmp_path, monkeypatch):
    cfg = ExactLab(**TINY)
    full = run_experiment(cfg, out=str(tmp_path / "full"), quiet=True, workers=1, plot=False)
    real = E.success_unit
    calls = []

    def killed(*a, **k):
        calls.append(a[2])
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real(*a, **k)

    monkeypatch.setattr(E, "success_unit", killed)
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, out=str(out), quiet=True, workers=1)
    kept = [json.loads(line)["unit"][0] for line in
            (out / "units-p0.jsonl").read_text().splitlines()]
    assert kept == ["tv", "tv", "success"]  # finished units are on disk
    monkeypatch.setattr(E, "success_unit", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    calls.clear()
    res = run_experiment(cfg, out=str(out), quiet=True, workers=1, plot=False)
    assert calls == ["reference"]  # only the unit in progress is computed again
    assert _values(res.rows) == _values(full.rows)
    for name in ("tv.csv", "success_units.csv", "success_d12.csv"):
        assert _csv(out / name) == _csv(tmp_path / "full" / name), name


def test_jscore_sweep_toml_equals_lowerbound_exact(tmp_path, capsys):
    assert "exact" in EXPERIMENTS
    argv = ["--experiment", "tv", "--tv", "12,0.3", "--tv-ratios", "1.0,1.25",
            "--tv-points", "64"]
    assert main(["lowerbound", "exact", *argv, "--print-config"]) == 0
    toml = tmp_path / "exact.toml"
    toml.write_text(capsys.readouterr().out)
    assert load_spec(str(toml)) == ExactLab(experiments="tv", tv="12,0.3", tv_ratios="1.0,1.25",
                                            tv_points=64)
    assert main(["lowerbound", "exact", *argv, "--out", str(tmp_path / "cli")]) == 0
    cli_text = capsys.readouterr().out
    assert main(["sweep", str(toml), "--out", str(tmp_path / "sweep"), "--no-cache",
                 "--tv-points", "64"]) == 0
    sweep_text = capsys.readouterr().out
    assert _csv(tmp_path / "sweep" / "tv.csv") == _csv(tmp_path / "cli" / "tv.csv")
    table = cli_text[:cli_text.index("results:")]
    assert table.startswith("TV(P_sigma, Q_sigma) vs Phi") and table.strip() in sweep_text
    assert (tmp_path / "cli" / "tv.png").stat().st_size > 5_000
    assert main(["sweep", str(toml), "--dry-run"]) == 0  # the plan, nothing run
    assert capsys.readouterr().out.startswith("exact experiment: 2 units (tv 2)")
    # a field given as a flag of `jscore sweep` replaces the file's value
    assert main(["sweep", str(toml), "--out", str(tmp_path / "bad"), "--tv-points", "0"]) != 0
    assert "--tv-points must be an integer >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # checked before anything is written


_TWO_PROCESSES = """
import sys, json
import jax
jax.distributed.initialize(coordinator_address=sys.argv[2], num_processes=2,
                           process_id=int(sys.argv[3]))
from jscore.sweeps.exact_lab import ExactLab
from jscore.sweeps.protocol import run_experiment
cfg = ExactLab(experiments="tv", tv="12,0.3,10,0.25", tv_ratios="1.0,1.25", tv_points=64)
res = run_experiment(cfg, out=sys.argv[1], quiet=True, workers=1)
print(json.dumps({"tv": [[r["d"], r["ratio"], r["tv"], r["phi"]] for r in res.results["tv"]],
                  "here": res.results["stats"]["units_run_here"], "wrote": bool(res.files)}))
"""


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    """Two jax.distributed processes share the units (2 each) and give the one-process rows;
    only process 0 writes the files."""
    import sys

    from helpers import free_address, run_processes

    addr, out = free_address(), str(tmp_path / "mp")
    outs = run_processes([[sys.executable, "-c", _TWO_PROCESSES, out, addr, str(i)]
                          for i in range(2)], timeout=300)
    got = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    cfg = ExactLab(experiments="tv", tv="12,0.3,10,0.25", tv_ratios="1.0,1.25", tv_points=64)
    one = run_experiment(cfg, out=str(tmp_path / "one"), quiet=True, workers=1)
    want = [[r["d"], r["ratio"], r["tv"], r["phi"]] for r in one.results["tv"]]
    assert got[0]["tv"] == want and got[1]["tv"] == want
    assert [g["here"] for g in got] == [2, 2] and got[0]["wrote"] and not got[1]["wrote"]
    assert _csv(tmp_path / "mp" / "tv.csv") == _csv(tmp_path / "one" / "tv.csv")
