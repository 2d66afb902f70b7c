"""The levels and schedule-certificate labs as configs (option fields, generated flags, TOML) and
the levels lab as a unit experiment: the same numbers as levels_vs_queries, workers=2 equals
workers=1, a resumed run equals an uninterrupted one."""

from __future__ import annotations

import argparse
import dataclasses

import jax
import pytest

from jscore.lowerbound import levels as lv
from jscore.sweeps.certificate import ScheduleLab
from jscore.sweeps.levels_lab import LevelsLab
from jscore.sweeps.protocol import add_config_flags, config_from_args, run_experiment
from jscore.sweeps.spec import load_spec

TINY = dict(d=100, levels=(2,), per_level=(1,), single_level_queries=(2,), samplers=("pc",),
            n_points=2, n_reps=2, n_xi=50, seed=3)


def _parse(cls, argv):
    p = argparse.ArgumentParser()
    add_config_flags(p, cls)
    return config_from_args(cls, p.parse_args(argv))


@pytest.mark.parametrize("cls, changes", [
    (LevelsLab, dict(TINY, eps="1/sqrt(d)", panel_levels=(2,), cells="panels")),
    (ScheduleLab, dict(schedule="edm", steps=7, dim=300.0, eps=0.01, scale_max=1.5, search=False,
                       max_queries=9)),
])
def test_toml_round_trip(tmp_path, cls, changes):
    cfg = cls(**changes)
    path = tmp_path / "c.toml"
    path.write_text(cfg.to_toml())
    assert load_spec(str(path)) == cfg
    assert cls() != cfg


def test_flags_give_the_config_and_name_the_flag_on_bad_values():
    cfg = _parse(LevelsLab, ["--dim", "100", "--levels", "2", "--per-level", "1",
                             "--single", "2", "--samplers", "pc", "--points", "2", "--reps", "2",
                             "--n-xi", "50", "--seed", "3"])
    assert cfg == LevelsLab(**TINY)
    assert _parse(ScheduleLab, ["--no-search", "--scale-min", "0.1", "--steps", "7"]) == \
        ScheduleLab(search=False, scale_min=0.1, steps=7)
    with pytest.raises(ValueError, match="--levels"):
        _parse(LevelsLab, ["--levels", "2,x"])
    with pytest.raises(ValueError, match="--dim"):
        _parse(LevelsLab, ["--dim", "100.5"])
    with pytest.raises(ValueError, match="eps"):
        _parse(LevelsLab, ["--eps", "1/q"])
    with pytest.raises(ValueError, match="--scale-max"):
        _parse(ScheduleLab, ["--scale-max", "big"])
    with pytest.raises(ValueError, match="--steps"):
        ScheduleLab(steps=1)
    with pytest.raises(SystemExit):  # argparse: "argument --points: invalid int value"
        _parse(LevelsLab, ["--points", "x"])


def test_function_defaults_are_the_config_defaults():
    import inspect

    from jscore.lowerbound.schedule_certificate import schedule_certificate

    sig = inspect.signature(lv.levels_vs_queries).parameters
    for f in dataclasses.fields(lv.LevelsConfig):
        if f.name in sig and f.name not in ("d", "eps", "panel_levels", "panel_per_level"):
            assert sig[f.name].default == f.default, f.name
    sig = inspect.signature(schedule_certificate).parameters
    c = ScheduleLab()
    assert (sig["n_scales"].default, sig["n_points"].default, sig["n_reps"].default,
            sig["k_cap"].default, sig["sampler"].default) == (c.scales, c.points, c.reps,
                                                              c.k_cap, c.sampler)


@pytest.fixture(scope="module")
def direct():
    cfg = LevelsLab(**TINY)
    with jax.enable_x64(True):
        return lv.levels_vs_queries(cfg.d, **cfg.kwargs())


def _strip(res):
    return [{k: v for k, v in c.items() if k != "seconds"} for c in res["cells"]]


@pytest.mark.slow  # ~40 s on a loaded 2-core machine (compiles of four runs)
def test_levels_experiment_equals_levels_vs_queries_across_workers_and_resume(tmp_path, direct):
    cfg = LevelsLab(**TINY)
    assert cfg.units() == [["cell", "pc", 2, 1], ["single", 2], ["ideal"]]
    one = run_experiment(cfg, out=str(tmp_path / "w1"), workers=1, quiet=True, plot=False)
    assert _strip(one.results) == _strip(direct)
    assert one.results["ideal"] == direct["ideal"] and one.results["width"] == direct["width"]
    two = run_experiment(cfg, out=str(tmp_path / "w2"), workers=2, quiet=True, plot=False)
    assert _strip(two.results) == _strip(one.results)
    # a run interrupted after two units, then resumed
    part = tmp_path / "part"
    rows = (tmp_path / "w1" / "units-p0.jsonl").read_text().splitlines()
    part.mkdir()
    (part / "config.json").write_text((tmp_path / "w1" / "config.json").read_text())
    (part / "units-p0.jsonl").write_text("\n".join(rows[:2]) + "\n")
    lines = []
    res = run_experiment(cfg, out=str(part), workers=1, log=lines.append, plot=False)
    assert any("2 of 3 units finished earlier" in m for m in lines)
    assert _strip(res.results) == _strip(one.results)
    assert (part / "levels.json").exists() and (part / "table.txt").read_text() == \
        lv.format_levels_table(one.results) + "\n"


def test_rounds_config_toml_flags_and_errors():
    import tomllib

    from jscore.sweeps.rounds_lab import DEFAULT_CONFIGS, RoundsConfig

    cfg = RoundsConfig(configs=((8, 1), (16, 2)), audit_config=(8, 2), audit_ps=(2.0,), seed=4)
    assert RoundsConfig.from_dict(tomllib.loads(cfg.to_toml())) == cfg
    assert RoundsConfig().configs == DEFAULT_CONFIGS and RoundsConfig().audit_config == (24, 2)
    assert _parse(RoundsConfig, ["--configs", "8,1,16,2", "--audit-config", "8,2",
                                 "--audit-ps", "2", "--seed", "4"]) == cfg
    with pytest.raises(ValueError, match="--configs.*multiple"):
        _parse(RoundsConfig, ["--configs", "25,2"])
    with pytest.raises(ValueError, match="--sampler-configs.*pairs"):
        _parse(RoundsConfig, ["--sampler-configs", "24,2,24"])
    with pytest.raises(ValueError, match="scale_ratio"):
        RoundsConfig(scale_ratio=1.5)
    with pytest.raises(ValueError, match="--rates"):
        _parse(RoundsConfig, ["--rates", "0.3,a"])


def test_schedule_experiment_is_the_certificate(tmp_path):
    import json

    cfg = ScheduleLab(schedule="karras", steps=6, dim=400.0, sampler="euler", scales=4, points=2,
                      reps=2, search=False, seed=1)
    res = run_experiment(cfg, out=str(tmp_path / "s"), workers=1, quiet=True, plot=False)
    timing = res.results["timing"]  # of the computation: wall, compilations, load
    assert timing["wall_s"] > 0 and timing["compilations"] >= 0 and len(timing["loadavg"]) == 3
    assert {k: v for k, v in res.results.items() if k != "timing"} == json.loads(json.dumps(cfg.run()))
    assert json.loads((tmp_path / "s" / "certificate.json").read_text()) == res.results
    again = run_experiment(cfg, out=str(tmp_path / "s"), workers=1, quiet=True, plot=False)
    assert again.results == res.results and again.text == res.text  # read back, not rerun


@pytest.mark.slow  # ~40 s on a loaded 2-core machine
def test_rounds_experiment_equals_run_rounds_across_workers_and_resume(tmp_path):
    import json

    from jscore.sweeps.rounds_lab import RoundsLab, run_rounds

    cfg = RoundsLab(configs=((8, 1),), audit_config=(8, 2), audit_points=50, audit_ps=(2.0,),
                    searches=2, chains=2, sampler_configs=((8, 2),), levels_per_stage=(2,))
    assert cfg.units() == [["audit"], ["search", 8, 1], ["samplers", 8, 2]]
    with jax.enable_x64(True):
        direct = run_rounds(str(tmp_path / "direct"), cfg, log=lambda m: None)
    two = run_experiment(cfg, out=str(tmp_path / "w2"), workers=2, quiet=True, plot=False)
    def strip(r):
        return {k: v for k, v in json.loads(json.dumps(r)).items() if k != "elapsed_s"}
    assert strip(two.results) == strip(direct)
    for stem in ("audit", "search", "samplers", "sampler_chains", "windows"):
        assert (tmp_path / "w2" / f"{stem}.csv").read_text() == \
            (tmp_path / "direct" / f"{stem}.csv").read_text(), stem
    part = tmp_path / "part"
    part.mkdir()
    rows = (tmp_path / "w2" / "units-p0.jsonl").read_text().splitlines()
    (part / "config.json").write_text((tmp_path / "w2" / "config.json").read_text())
    (part / "units-p0.jsonl").write_text(rows[0] + "\n")
    res = run_experiment(cfg, out=str(part), workers=1, quiet=True, plot=False)
    assert strip(res.results) == strip(direct)
