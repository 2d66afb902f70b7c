"""The exact-lab bracket check (issue 14, item 3): the informative fraction measured on an explicit
random codebook lies in [lower, upper] of the per-query formula, up to its Monte-Carlo error,
over sigma/sigma_c in [0.4, 3] (docs/experiments/validation.md)."""

import csv
import math
from statistics import NormalDist

import jax
import numpy as np
import pytest

from jscore.lowerbound import validation as V


def test_bonferroni_tolerance():
    for m in (1, 8, 16):
        want = NormalDist().inv_cdf(1 - 0.05 / (2 * m))
        assert V.bracket_tolerance(m) == pytest.approx(want, rel=1e-10)
    assert V.bracket_tolerance(16) == pytest.approx(2.955, abs=1e-3)
    with pytest.raises(ValueError, match="num_points"):
        V.bracket_tolerance(0)


def test_bracket_check_distances(monkeypatch):
    """outside_se is the distance to the nearer side in SEs, 0 inside; the summary takes the
    worst point and compares it with the Bonferroni threshold."""
    sides = {0.5: (0.40, 0.60, 0.5), 1.0: (1.0, 1.0, 1.0), 2.0: (0.20, 0.25, 0.22)}
    monkeypatch.setattr(V, "bracket_sides", lambda r, *a: sides[r["ratio"]])
    rows = [dict(d=40, rate=0.25, M=22027, n=1000, ratio=0.5, exact=0.35, exact_se=0.01),
            dict(d=40, rate=0.25, M=22027, n=1000, ratio=1.0, exact=1.0, exact_se=0.001),
            dict(d=40, rate=0.25, M=22027, n=1000, ratio=2.0, exact=0.28, exact_se=0.02)]
    out = V.bracket_check(rows)
    assert [r["side"] for r in out] == ["below", "inside", "above"]
    assert [r["outside_se"] for r in out] == pytest.approx([5.0, 0.0, 1.5])
    s = V.bracket_summary(out)
    assert s["max_outside_se"] == pytest.approx(5.0) and s["at_ratio"] == 0.5
    assert s["outside"] == 2 and s["points"] == 3 and not s["passed"]
    assert s["tolerance_se"] == pytest.approx(NormalDist().inv_cdf(1 - 0.05 / 6))


def _check(rows, d):
    s = V.bracket_summary(rows)
    assert s["passed"], (s, [(r["ratio"], r["exact"], r["lower"], r["upper"]) for r in rows])
    # the check is not vacuous: some points are strictly between 0 and 1, and the bracket is
    # narrow on average (it is not [0, 1])
    assert any(0.05 < r["exact"] < 0.95 for r in rows)
    assert np.mean([r["upper"] - r["lower"] for r in rows]) < 0.35
    for r in rows:
        assert 0.0 <= r["lower"] <= r["upper"] <= 1.0, r
    return s


def test_exact_fraction_in_bracket_d40(x64):
    """d = 40, R = 0.25 (M = 22 027), eps = 0.05, p = 2, 1500 reference points at each of 9
    sigma/sigma_c in [0.4, 3]: every point within the Bonferroni tolerance (2.77 SE) of
    [lower, upper]."""
    ratios = [0.4, 0.5, 0.55, 0.6, 0.85, 1.6, 2.1, 2.5, 3.0]
    rows = V.bracket_check(V.exact_informative_fraction(40, 0.25, ratios, 1500, seed=3))
    _check(rows, 40)


def test_bracket_experiment_resumes(tmp_path, monkeypatch):
    """The bracket experiment of the lab (one unit per (d, ratio)): files written, a rerun
    computes nothing, another n adds units to the same folder; the unit is the bracket check
    of exact_informative_fraction at the ratio's point seed."""
    from jscore.sweeps.exact_lab import ExactLab
    from jscore.sweeps.protocol import run_experiment

    cfg = ExactLab(experiments="bracket", bracket_dims="16", bracket_rate=0.3,
                   bracket_ratios="0.6,2.0", bracket_points=200)
    res = run_experiment(cfg, out=str(tmp_path), quiet=True, workers=1)
    (s,) = res.results["bracket_summary"]
    assert s["d"] == 16 and s["points"] == 2
    for f in ("bracket.csv", "bracket_summary.csv", "bracket.png", "bracket.pdf"):
        assert (tmp_path / f).stat().st_size > 0, f
    # the second unit is the check at ratio index 1 (point seed of (16, 1)) on the seed-16 codebook
    row = res.results["bracket"][1]
    with jax.enable_x64(True):
        (want,) = V.bracket_check(V.exact_informative_fraction(16, 0.3, [2.0], 200, 16,
                                                               indices=[1]))
    assert row["point_seed"] == V.point_seed(16, 1) and row["exact"] == want["exact"]
    assert row["lower"] == pytest.approx(want["lower"], rel=1e-12)
    calls = []
    orig = V.exact_informative_fraction
    monkeypatch.setattr(V, "exact_informative_fraction",
                        lambda *a, **k: calls.append(1) or orig(*a, **k))
    res2 = run_experiment(cfg, out=str(tmp_path), quiet=True, workers=1, plot=False)
    assert not calls and res2.results["bracket_summary"] == res.results["bracket_summary"]
    res3 = run_experiment(cfg.replace(bracket_ratios="0.6", bracket_points=100), out=str(tmp_path),
                          quiet=True, workers=1, plot=False)
    assert len(calls) == 1 and res3.results["bracket_summary"][0]["n"] == 100
    with open(tmp_path / "bracket_summary.csv") as f:
        assert [(r["n"], r["points"]) for r in csv.DictReader(f)] == [("100", "1")]


@pytest.mark.slow
def test_exact_fraction_in_bracket_d56(x64):
    """d = 56, R = 0.25 (M = 1 202 605), 1000 points at 8 sigma/sigma_c in [0.4, 3]."""
    ratios = [0.4, 0.5, 0.55, 0.6, 0.7, 1.9, 2.3, 3.0]
    rows = V.bracket_check(V.exact_informative_fraction(56, 0.25, ratios, 1000, seed=5))
    _check(rows, 56)
    assert math.isfinite(V.bracket_summary(rows)["max_outside_se"])
