"""jscore.fit.loglog_slope: closed forms, an independent bootstrap, and coverage under known noise."""

import math

import numpy as np
import pytest

from jscore.fit import SlopeFit, loglog_slope

Z975 = 1.959963984540054  # standard normal 97.5% quantile


def test_exact_power_law_gives_closed_form_and_a_collapsed_pairs_interval():
    d = np.array([16.0, 64.0, 256.0, 1024.0, 4096.0])
    fit = loglog_slope(d, 3.0 * d**0.37, n_boot=500)
    assert isinstance(fit, SlopeFit)
    np.testing.assert_allclose(fit.slope, 0.37, rtol=1e-12)
    np.testing.assert_allclose(math.exp(fit.intercept), 3.0, rtol=1e-12)
    # every non-degenerate pairs resample lies on the same line
    np.testing.assert_allclose([fit.ci_low, fit.ci_high], [0.37, 0.37], rtol=1e-10)
    assert fit.method == "pairs" and fit.n == 5 and 0 < fit.n_boot <= 500
    assert "pairs bootstrap" in fit.covers and "not Monte-Carlo error" in fit.covers
    rec = fit.to_dict()
    assert rec["slope"] == fit.slope and rec["slope_ci_covers"] == fit.covers and rec["num_points"] == 5


def test_pairs_interval_equals_an_independent_polyfit_bootstrap():
    rng = np.random.default_rng(3)
    d = np.geomspace(10, 5000, 7)
    y = 2.0 * d**0.5 * np.exp(0.2 * rng.standard_normal(d.size))
    fit = loglog_slope(d, y, n_boot=300, seed=11, level=0.9)
    lx, ly = np.log(d), np.log(y)
    idx = np.random.default_rng(11).integers(0, d.size, (300, d.size))
    boots = [np.polyfit(lx[i], ly[i], 1)[0] for i in idx if np.ptp(lx[i]) > 0]
    np.testing.assert_allclose(fit.slope, np.polyfit(lx, ly, 1)[0], rtol=1e-10)
    np.testing.assert_allclose([fit.ci_low, fit.ci_high], np.quantile(boots, [0.05, 0.95]), rtol=1e-9)
    assert fit.n_boot == len(boots) and fit.level == 0.9


def test_pairs_plus_noise_equals_an_independent_bootstrap():
    d = np.array([100.0, 400.0, 1600.0, 6400.0])
    y = np.array([5.0, 9.0, 21.0, 39.0])
    se = np.array([0.1, 0.05, 0.2, 0.1])
    fit = loglog_slope(d, y, log_se=se, n_boot=200, seed=5)
    rng = np.random.default_rng(5)
    idx = rng.integers(0, 4, (200, 4))
    z = rng.standard_normal((200, 4))
    lx, ly = np.log(d), np.log(y)
    boots = [np.polyfit(lx[i], ly[i] + se[i] * zz, 1)[0] for i, zz in zip(idx, z) if np.ptp(lx[i]) > 0]
    np.testing.assert_allclose([fit.ci_low, fit.ci_high], np.quantile(boots, [0.025, 0.975]), rtol=1e-9)
    assert fit.method == "pairs+noise" and "Monte-Carlo error" in fit.covers


def test_two_points_with_log_se_match_the_gaussian_closed_form():
    d, y, se = np.array([100.0, 1600.0]), np.array([7.0, 30.0]), np.array([0.05, 0.08])
    fit = loglog_slope(d, y, log_se=se, n_boot=20000, seed=0)
    dx = math.log(16.0)
    b = math.log(30.0 / 7.0) / dx
    sb = math.hypot(0.05, 0.08) / dx
    # SE of a 2.5% sample quantile of a normal: sqrt(p(1-p)/B) / phi(z) * sb
    q_se = math.sqrt(0.025 * 0.975 / 20000) / (math.exp(-Z975**2 / 2) / math.sqrt(2 * math.pi)) * sb
    np.testing.assert_allclose(fit.slope, b, rtol=1e-12)
    assert abs(fit.ci_low - (b - Z975 * sb)) < 4 * q_se
    assert abs(fit.ci_high - (b + Z975 * sb)) < 4 * q_se
    assert fit.method == "noise" and "not scatter across points" in fit.covers


def test_noise_interval_covers_the_true_slope_at_the_nominal_rate():
    rng = np.random.default_rng(1)
    d, se, reps = np.array([100.0, 1600.0]), np.array([0.1, 0.1]), 400
    hits = 0
    for r in range(reps):
        y = 4.0 * d**0.45 * np.exp(se * rng.standard_normal(2))
        f = loglog_slope(d, y, log_se=se, n_boot=1000, seed=r)
        hits += f.ci_low <= 0.45 <= f.ci_high
    assert abs(hits / reps - 0.95) < 3 * math.sqrt(0.95 * 0.05 / reps) + 0.01


def test_pairs_interval_coverage_under_known_gaussian_scatter():
    # pairs bootstrap is asymptotically exact; at n = 30 its percentile interval undercovers by ~1 point
    rng = np.random.default_rng(2)
    d, reps = np.geomspace(10, 1e4, 30), 300
    hits = 0
    for r in range(reps):
        y = d**0.5 * np.exp(0.3 * rng.standard_normal(d.size))
        f = loglog_slope(d, y, n_boot=1000, seed=r)
        hits += f.ci_low <= 0.5 <= f.ci_high
    assert abs(hits / reps - 0.95) < 3 * math.sqrt(0.95 * 0.05 / reps) + 0.02


def test_degenerate_inputs_say_there_is_no_interval():
    f = loglog_slope([100.0, 400.0], [3.0, 6.0])
    np.testing.assert_allclose(f.slope, 0.5, rtol=1e-12)
    assert f.method == "none" and math.isnan(f.ci_low) and math.isnan(f.ci_high)
    f = loglog_slope([100.0, 400.0, 800.0], [3.0, math.nan, 0.0])  # only one finite pair left
    assert f.n == 1 and math.isnan(f.slope) and f.method == "none"
    f = loglog_slope([], [])
    assert f.n == 0 and math.isnan(f.slope)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x=[1, 2, 3], y=[1, 2]), "same length"),
        (dict(x=[1, 2, 3], y=[1, 2, 3], level=1.5), "level"),
        (dict(x=[1, 2, 3], y=[1, 2, 3], n_boot=0), "n_boot"),
        (dict(x=[1, 2, 3], y=[1, 2, 3], log_se=[0.1, -1.0, 0.1]), "log_se"),
        (dict(x=[1, 2, 3], y=[1, 2, 3], log_se=[0.1, 0.1]), "log_se"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, match):
    x, y = kwargs.pop("x"), kwargs.pop("y")
    with pytest.raises(ValueError, match=match):
        loglog_slope(x, y, **kwargs)


def test_sweep_slopes_use_the_seed_bootstrap_spread_as_log_se():
    from jscore.sweeps import analysis

    rng = np.random.default_rng(0)
    dims, q = [100, 1600], [10.0, 40.0]
    boots = [qq * np.exp(0.1 * rng.standard_normal(4000)) for qq in q]
    qtable = [{"cell_id": 0, "cell": "c", "dim": d, "flag": "ok", "qstar_interp": qq, "_boot_qstar_interp": b}
              for d, qq, b in zip(dims, q, boots)]
    (s,) = analysis.slopes(qtable, n_boot=20000)
    se = [np.log(b).std(ddof=1) for b in boots]
    sb = math.hypot(*se) / math.log(16.0)
    np.testing.assert_allclose(s["slope"], 0.5, rtol=1e-12)
    assert s["slope_ci_method"] == "noise" and s["slope_ci_covers"].startswith("Gaussian Monte-Carlo")
    np.testing.assert_allclose([s["slope_ci_low"], s["slope_ci_high"]], [0.5 - Z975 * sb, 0.5 + Z975 * sb],
                               atol=0.08 * sb)
    assert s["dims"] == dims and s["num_points"] == 2
