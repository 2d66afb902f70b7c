"""The experiment layer of the levels, rounds and schedule labs (jscore.sweeps.levels_lab,
rounds_lab, certificate): what they write is what the computation returned."""

import csv
import json
import math

import jax
import numpy as np
import pytest

import jscore as js
from jscore.lowerbound.levels import format_levels_table
from jscore.lowerbound.rounds import summarize_search
from jscore.lowerbound.schedule_certificate import format_certificate
from jscore.sweeps.certificate import write_certificate
from jscore.sweeps.levels_lab import write_levels
from jscore.sweeps.rounds_lab import run_rounds

PNG = b"\x89PNG\r\n\x1a\n"


def _levels_result():
    """A synthetic levels_vs_queries result (the fields the table and the figure read)."""
    rng = np.random.default_rng(0)
    cells = []
    for name, L, m in [("pc", 2, 1), ("pc", 4, 1), ("pc", 4, 2), ("single_level", 1, 3)]:
        lo = float(rng.uniform(0, 0.5))
        cells.append(dict(sampler=name, L=L, m=m, queries=L * (m + 1) if name == "pc" else m,
                          distinct_levels=L, levels_in_band=0.5, p_lower=lo, p_lower_se=0.01,
                          p_upper=lo + 0.1, p_upper_se=0.02, p_lower_reps=[lo, lo],
                          p_upper_reps=[lo + 0.1] * 2, seconds=0.1))
    config = dict(d=200, levels=[2, 4], per_level=[1, 2], samplers=["pc"], panel_levels=[4],
                  panel_per_level=[1], eps=1 / 200, p=2.0, n_reps=2, n_points=2)
    ideal = [[2, 1, 0.1, 0.2], [4, 1, 0.2, 0.3], [4, 2, 0.3, 0.4], [1, 3, 0.05, 0.1]]
    return dict(config=config, width=0.1, cells=cells, ideal=ideal, elapsed_s=1.0)


def test_write_levels_files_hold_the_result(tmp_path):
    res = _levels_result()
    paths = write_levels(res, tmp_path / "new")
    names = [p.rsplit("/", 1)[-1] for p in paths]
    assert names == ["levels.json", "table.txt", "levels_vs_queries.png", "levels_vs_queries.pdf"]
    assert json.loads((tmp_path / "new" / "levels.json").read_text()) == res
    assert (tmp_path / "new" / "table.txt").read_text() == format_levels_table(res) + "\n"
    assert (tmp_path / "new" / "levels_vs_queries.png").read_bytes()[:8] == PNG
    assert (tmp_path / "new" / "levels_vs_queries.pdf").read_bytes()[:5] == b"%PDF-"


def _certificate():
    """A synthetic schedule_certificate result with a steps curve (two panels)."""
    J = 4

    def side(o):
        return dict(per_scale=list(np.linspace(0.1, 0.9, J) + o), per_scale_se=[0.02] * J,
                    average=0.5 + o, average_se=0.01, worst=0.1 + o, worst_se=0.02,
                    worst_sigma=0.05)

    curve = {str(k): dict(average_lower=v, average_upper=v + 0.1, worst_lower=v - 0.1,
                          worst_upper=v) for k, v in ((4, 0.3), (8, 0.55), (16, 0.8))}
    return dict(schedule="karras", K=8, d=400.0, sampler="heun", path="scalar", eps=1 / 400,
                sparsest_gap=0.9, sparsest_sigma=1.0, cell_log_h=list(np.linspace(-3, 0, J)),
                upper=side(0.05), lower=side(0.0), grid=list(np.geomspace(20, 0.02, 8)),
                scale_min=0.02, scale_max=2.0, steps_curve=curve, k_cap=64,
                steps_to_half=dict(average=[6, 8], worst=[12, None]))


def test_write_certificate_targets_and_contents(tmp_path):
    res, seen = _certificate(), []
    (tmp_path / "cert").mkdir()
    paths = write_certificate(res, out=str(tmp_path / "cert"), json_path=str(tmp_path / "x.json"),
                              png_path=str(tmp_path / "x.png"),
                              log=lambda kind, path: seen.append((kind, path)))
    assert [k for k, _ in seen] == ["json", "txt", "png", "json", "png"]
    assert paths == [p for _, p in seen]
    for p in (tmp_path / "cert" / "certificate.json", tmp_path / "x.json"):
        assert json.loads(p.read_text()) == res
    text = (tmp_path / "cert" / "certificate.txt").read_text()
    assert text == format_certificate(res) + "\n" and "> 64 (lower side)" in text
    for p in (tmp_path / "cert" / "certificate.png", tmp_path / "x.png"):
        assert p.read_bytes()[:8] == PNG
    assert write_certificate(res) == []  # no target: nothing written


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_run_rounds_files_hold_the_measured_rows(tmp_path, monkeypatch):
    """The driver alone (the measurements replaced by stubs that return numbered rows): every
    CSV holds exactly the rows measured, each (d, L) gets its own instance and key, and
    rounds.json is the returned dict."""
    import jscore.sweeps.rounds_lab as lab

    calls = []

    def audit(adv, grid, ps, n, key, log):
        calls.append(("audit", adv.nested.dim, adv.nested.num_stages, n))
        return [dict(sigma=float(s), stage=i % 2, p=2.0, eps=0.05, lp_error=0.01, upper=0.02 + i,
                     passed=True) for i, s in enumerate(grid[:3])]

    def profiles(adv, grid, n, key):
        return [dict(stage=l, sigma=float(s), prefix_informative=float(l == 0))
                for l in range(2) for s in grid[:2]]

    def search(adv, n, key, mode):
        nc = adv.nested
        calls.append(("search", nc.dim, nc.num_stages, mode, n))
        return [dict(mode=mode, L=nc.num_stages, d=nc.dim, windows=3, search=t, decoded_stages=1,
                     rounds_first=t + 1, queries_first=3 * (t + 1), rounds_all=t + 2,
                     queries_all=3 * (t + 2), rounds_total=9, queries_total=27) for t in range(n)]

    def samplers(adv, smp, lps, n, key):
        nc = adv.nested
        calls.append(("samplers", nc.dim, nc.num_stages, tuple(smp), n))
        return ([dict(sampler=name, L=nc.num_stages, d=nc.dim, success=1.0, rounds=4.0,
                      queries=4.0) for name in smp],
                [dict(sampler=name, chain=c, d=nc.dim) for name in smp for c in range(n)])

    for name, fn in (("nested_audit", audit), ("stage_profiles", profiles),
                     ("search_rounds", search), ("sampler_rounds", samplers)):
        monkeypatch.setattr(lab, name, fn)
    out = tmp_path / "rounds"
    with jax.enable_x64(True):
        res = run_rounds(str(out), configs=((8, 1), (8, 2)), audit_config=(8, 2), audit_points=7,
                         searches=3, chains=2, sampler_configs=((8, 2),),
                         samplers={"euler": js.samplers.Euler()}, log=lambda m: None)
    assert calls == [("audit", 8, 2, 7)] + [
        ("search", 8, L, mode, 3) for L in (1, 2) for mode in ("parallel", "sequential")] + [
        ("samplers", 8, 2, ("euler",), 2)]
    search_rows = _csv(out / "search.csv")
    assert len(search_rows) == 2 * 2 * 3
    assert [(r["mode"], int(r["L"]), int(r["search"])) for r in search_rows] == [
        (mode, L, t) for L in (1, 2) for mode in ("parallel", "sequential") for t in range(3)]
    assert len(_csv(out / "audit.csv")) == 3 and len(_csv(out / "profiles.csv")) == 4
    assert len(_csv(out / "sampler_chains.csv")) == 2 and len(_csv(out / "samplers.csv")) == 1
    assert [int(r["stage"]) for r in _csv(out / "windows.csv")] == [0, 1]
    assert len(_csv(out / "search_summary.csv")) == len(res["search_summary"]) == 4
    back = json.loads((out / "rounds.json").read_text())
    assert back == json.loads(json.dumps(res))
    assert res["audit_summary"][-1]["stage"] == "all" and res["windows"][0]["lo"] < math.inf
    assert (out / "rounds.png").read_bytes()[:8] == PNG


@pytest.mark.slow
def test_run_rounds_writes_what_it_returns(tmp_path):
    """A tiny real run (d = 8; about 12 s alone on 2 cores, 40 s on a loaded machine): every
    file is written, rounds.json is the returned dict, the CSVs hold the rows the summaries were
    made from, and Euler's rounds equal its queries (one per step)."""
    out = tmp_path / "rounds"
    with jax.enable_x64(True):
        res = run_rounds(str(out), configs=((8, 1),), audit_config=(8, 2), audit_points=200,
                         ps=(2.0,), searches=2, chains=2, sampler_configs=((8, 2),),
                         samplers={"euler": js.samplers.Euler()}, levels_per_stage=(2,),
                         log=lambda m: None)
    for name in ("audit", "audit_summary", "profiles", "windows", "search", "search_summary",
                 "samplers", "sampler_chains"):
        assert (out / f"{name}.csv").stat().st_size > 0, name
    assert (out / "rounds.png").read_bytes()[:8] == PNG and (out / "rounds.pdf").exists()
    back = json.loads((out / "rounds.json").read_text())
    assert back.keys() == res.keys() and back["search_summary"] == res["search_summary"]
    search = [{k: int(v) if k not in ("mode",) else v for k, v in r.items()}
              for r in _csv(out / "search.csv")]
    assert len(search) == 2 * 2  # two searches per mode
    assert summarize_search(search) == res["search_summary"]
    (row,) = res["samplers"]
    assert row["rounds"] == row["queries"] == row["K"] and row["n"] == 2
    chains = _csv(out / "sampler_chains.csv")
    assert [int(c["queries"]) for c in chains] == [row["K"]] * 2
    assert math.isclose(np.mean([int(c["rounds"]) for c in chains]), row["rounds"])


def test_run_rounds_needs_float64(tmp_path):
    with jax.enable_x64(False):
        with pytest.raises(ValueError, match="float64"):
            run_rounds(str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()
