"""The summary statistics of benchmarks/learned_scores.py (no training: fast)."""

import importlib.util
import math
import pathlib

import numpy as np
import pytest
import scipy.stats

_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "learned_scores.py"
_spec = importlib.util.spec_from_file_location("learned_scores", _PATH)
LS = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(LS)


def _prof(eps, lo, hi, norm=2.0):
    return [{"sigma": 1.0, "eps": e, "lo": a, "hi": b, "score_norm": norm} for e, a, b in
            zip(eps, lo, hi)]


@pytest.mark.parametrize("n", [2, 3, 5])
def test_seed_summary_is_the_student_t_interval(n):
    rng = np.random.default_rng(n)
    e = rng.uniform(1.0, 2.0, n)
    per_seed = [_prof([v], [v - 0.1 * (k + 1)], [v + 0.1 * (k + 1)]) for k, v in enumerate(e)]
    (row,) = LS.seed_summary(per_seed)
    half = scipy.stats.t.ppf(0.975, n - 1) * e.std(ddof=1) / math.sqrt(n)
    assert row["mean"] == pytest.approx(e.mean())
    assert row["lo"] == pytest.approx(e.mean() - half, rel=1e-4)
    assert row["hi"] == pytest.approx(e.mean() + half, rel=1e-4)
    assert row["mc_halfwidth_max"] == pytest.approx(0.1 * n)
    assert row["relative"] == pytest.approx(e.mean() / 2.0)
    assert row["per_seed"] == pytest.approx(list(e))


def test_first_pass_log_linear_and_qstar_interval():
    # rED halves per doubling of Q: 0.08, 0.04, 0.02, 0.01 at Q = 4, 8, 16, 32
    qs, vals = [4, 8, 16, 32], [0.08, 0.04, 0.02, 0.01]
    assert LS.first_pass(qs, vals, 0.02) == pytest.approx(16.0)
    # threshold 0.03 lies half-way in value from 0.04 to 0.02: Q = 8 * 2^0.5 (log-linear)
    assert LS.first_pass(qs, vals, 0.03) == pytest.approx(8 * 2 ** 0.5)
    assert LS.first_pass(qs, vals, 0.001) is None
    assert LS.first_pass(qs, vals, 0.5) == 4.0
    curve = [{"queries": q, "red": v, "se": 0.005} for q, v in zip(qs, vals)]
    q = LS.qstar(curve, 0.02)
    assert q["lo"] <= q["qstar"] <= q["hi"]
    assert q["lo"] == pytest.approx(LS.first_pass(qs, [v - 0.01 for v in vals], 0.02))


def test_qstar_flags_a_first_pass_that_does_not_stay_below():
    qs = [4, 8, 16, 32]
    rising = [{"queries": q, "red": v, "se": 0.001} for q, v in zip(qs, [0.015, 0.05, 0.03, 0.025])]
    q = LS.qstar(rising, 0.02)
    assert q["qstar"] == 4.0 and q["stays_below"] is False
    falling = [{"queries": q, "red": v, "se": 0.001} for q, v in zip(qs, [0.08, 0.04, 0.02, 0.01])]
    assert LS.qstar(falling, 0.02)["stays_below"] is True
    assert LS.qstar(falling, 0.001)["stays_below"] is False  # never reached
