"""Distinct noise levels against queries (jscore.lowerbound.levels, docs/experiments/levels.md).

At small d, on the same draws for every cell (common random numbers): P(some answer informative)
at a fixed number of levels L does not move with the queries per level once the chain is in
equilibrium at its levels, rises with L, and at equal total queries the level-rich schedule
wins; SingleLevel's success does not depend on its number of queries. The standard errors are
over the replicates (independently shifted lattices); differences use the paired per-replicate
differences (the cells share lattice and chain keys) and, as a cross-check, the combined s.e.
"""

import math

import jax
import numpy as np
import pytest

from jscore.lowerbound import levels as lv
from jscore.lowerbound.trajectory import reference_run
from jscore.schedules import geometric

D = 400


@pytest.fixture(scope="module")
def res():
    """Predictor-corrector at d = 400: (L, m) = (2, 1), (2, 4), (2, 16), (16, 1)."""
    with jax.enable_x64(True):
        return lv.levels_vs_queries(D, levels=(2, 16), per_level=(1, 4, 16), samplers=("pc",),
                                    single_level_queries=(), cells="panels", panel_levels=(2,),
                                    panel_per_level=(1,), n_points=8, n_reps=8, seed=1,
                                    ideal=False)


@pytest.fixture(scope="module")
def res_single():
    """The SingleLevel control at d = 400 with Q = 1 and 16 queries."""
    with jax.enable_x64(True):
        return lv.levels_vs_queries(D, levels=(1,), per_level=(1,), samplers=(),
                                    single_level_queries=(1, 16), n_points=8, n_reps=8, seed=1,
                                    ideal=False)


def _cell(res, name, L, m):
    (c,) = [c for c in res["cells"] if c["sampler"] == name and c["L"] == L and c["m"] == m]
    return c


def _diff(a, b, side="p_lower"):
    """(mean difference a - b, paired s.e., combined s.e.)."""
    x = np.asarray(a[side + "_reps"]) - np.asarray(b[side + "_reps"])
    paired = x.std(ddof=1) / math.sqrt(x.size)
    combined = math.hypot(a[side + "_se"], b[side + "_se"])
    return float(x.mean()), float(paired), float(combined)


@pytest.mark.parametrize("side", ["p_lower", "p_upper"])
def test_flat_in_queries_at_fixed_levels(res, side):
    # L = 2: m = 4 and m = 16 correctors per level (10 and 34 queries per chain) agree
    a, b = _cell(res, "pc", 2, 16), _cell(res, "pc", 2, 4)
    assert 0.02 < b[side] < 0.6  # not trivially 0 or 1
    mean, paired, combined = _diff(a, b, side)
    assert abs(mean) <= 3 * max(combined, 1e-3), (mean, combined)
    assert abs(mean) <= 3 * max(paired, 1e-3) + 0.02, (mean, paired)


@pytest.mark.parametrize("side", ["p_lower", "p_upper"])
def test_rising_in_levels(res, side):
    lo, hi = _cell(res, "pc", 2, 1), _cell(res, "pc", 16, 1)
    mean, paired, combined = _diff(hi, lo, side)
    assert mean > 3 * combined and mean > 3 * paired and mean > 0.3, (mean, combined, paired)


def test_levels_beat_queries_at_equal_budget(res):
    # 16 levels x 2 queries (32) against 2 levels x 17 queries (34): levels win
    many_levels, many_queries = _cell(res, "pc", 16, 1), _cell(res, "pc", 2, 16)
    assert many_levels["queries"] <= many_queries["queries"]
    mean, paired, combined = _diff(many_levels, many_queries)
    assert mean > 3 * combined and mean > 0.3, (mean, combined)


@pytest.mark.slow
def test_single_level_flat_in_queries(res_single):
    res = res_single
    a, b = _cell(res, "single_level", 1, 16), _cell(res, "single_level", 1, 1)
    assert a["distinct_levels"] == b["distinct_levels"] == 1
    assert a["queries"] == 16 and b["queries"] == 1
    assert 0.0 < b["p_lower"] < 0.5
    for side in ("p_lower", "p_upper"):
        mean, paired, combined = _diff(a, b, side)
        assert abs(mean) <= 3 * max(combined, 1e-3), (side, mean, combined)


def test_sides_ordered_and_counts(res):
    for c in res["cells"]:
        assert all(lo <= hi + 1e-12 for lo, hi in zip(c["p_lower_reps"], c["p_upper_reps"]))
        assert len(c["p_lower_reps"]) == 8
        assert c["queries"] == lv.queries_per_chain(c["sampler"], c["L"], c["m"])
        assert c["distinct_levels"] == c["L"]
    assert _cell(res, "pc", 16, 1)["queries"] == 16 * 2
    assert len(res["cells"]) == 4


@pytest.mark.parametrize("name,L,m,expected", [
    ("annealed_langevin", 3, 2, 3 * 2 + 1),
    ("pc", 4, 1, 4 * 2),
    ("single_level", 1, 5, 5),
])
def test_query_counts_measured(name, L, m, expected):
    """Counts from a real run (recorded queries), against the documented counts, and the number
    of distinct levels among the recorded queries."""
    assert lv.queries_per_chain(name, L, m) == expected
    sampler = lv.make_sampler(name, m)
    sig = geometric(L, 0.05, 5.0)  # L positive levels, then 0
    assert sig.shape == (L + 1,)
    with jax.enable_x64(True):
        traj, r = reference_run(sampler, sig, jax.random.key(0), 32, 3)
    count = np.asarray(r.stats.query_count)
    assert np.all(count == expected), count
    levels = {float(s) for s in np.asarray(traj.sigma)[np.asarray(traj.valid)]}
    assert len(levels) == (1 if name == "single_level" else L)


@pytest.mark.parametrize("kwargs,name", [
    (dict(levels=(0, 2)), "levels"),
    (dict(levels=()), "levels"),
    (dict(per_level=(1.5,)), "per_level"),
    (dict(samplers=("euler",)), "samplers"),
    (dict(samplers="pc"), "samplers"),
    (dict(single_level_queries=(0,)), "single_level_queries"),
    (dict(cells="all"), "cells"),
    (dict(n_reps=1), "n_reps"),
    (dict(n_points=0), "n_points"),
    (dict(eps=-1.0), "eps"),
    (dict(p=0.5), "p"),
    (dict(cells="panels", panel_levels=(3,)), "panel_levels"),
])
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        lv.levels_vs_queries(D, **kwargs)


@pytest.mark.parametrize("d", [1.5, 1, True, "400"])
def test_bad_dimension(d):
    with pytest.raises(ValueError, match="`d`"):
        lv.levels_vs_queries(d)


def test_unknown_sampler_name():
    with pytest.raises(ValueError, match="`samplers`"):
        lv.make_sampler("heun", 2)


@pytest.mark.parametrize("argv,flag", [
    (["--reps", "1"], "reps"),
    (["--samplers", "euler"], "samplers"),
    (["--dim", "100.5"], "dim"),
    (["--eps", "-1"], "eps"),
])
def test_cli_bad_arguments(argv, flag, tmp_path, capsys):
    from jscore.cli import main

    rc = main(["lowerbound", "levels", *argv, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "error" in err and flag in err, err
    assert not (tmp_path / "o" / "levels.json").exists()


@pytest.mark.slow
def test_cli_runs(tmp_path, capsys):
    import json

    from jscore.cli import main

    out = tmp_path / "o"
    rc = main(["lowerbound", "levels", "--dim", "200", "--levels", "2,4", "--per-level", "1",
               "--single", "1", "--samplers", "pc", "--points", "2", "--reps", "2",
               "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "P lower" in text and "single_level" in text
    res = json.loads((out / "levels.json").read_text())
    assert [(c["sampler"], c["L"], c["m"], c["queries"]) for c in res["cells"]] == [
        ("pc", 2, 1, 4), ("pc", 4, 1, 8), ("single_level", 1, 1, 1)]
    assert (out / "levels_vs_queries.png").stat().st_size > 1000
    assert (out / "table.txt").exists()
    ideal = {(L, m): (lo, up) for L, m, lo, up in res["ideal"]}
    assert set(ideal) == {(2, 1), (4, 1), (1, 1)}
    assert all(0 <= lo <= up <= 1 for lo, up in ideal.values())
    assert ideal[(1, 1)][0] < ideal[(2, 1)][0] < ideal[(4, 1)][0]  # more levels, more windows
