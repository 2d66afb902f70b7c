"""Any sampler and any schedule family in the lower-bound scaling sweep (jscore.lowerbound.scaling,
grids, general): bitwise continuity of the geometric path, the hidden scale as a per-chain
log-shift, full-vector against scalar agreement, validation, and a user-defined sampler through
``scaling()``."""

from __future__ import annotations

import math
import os

import jax
import numpy as np
import pytest

import jscore as js
from jscore.lowerbound import scaling as sc
from jscore.lowerbound.general import FullVectorDraws
from jscore.lowerbound.grids import SIGMA_MAX, SIGMA_MIN, SamplerDraws, geometric_levels
from jscore.lowerbound.schedule_families import family
from test_lowerbound_general import MyEuler  # the same user-written Euler

D = 400
EPS = 1.0 / D
WIDTH = 3.26 * math.sqrt(math.log(D / EPS) / D)  # the measured w sqrt(d/ln(d/eps)) ~ 3.26


class TwoStepEuler(MyEuler):
    """A user's sampler with no scalar reduction (Euler written from the formula in
    test_lowerbound_general; a subclass has no registered reduction)."""


# Recorded on the code before schedules and grids.py existed (commit fa0c33e), float64:
# sc._sampler_row(name, 400.0, 1/400, 2.0, WIDTH, key(3), 16, 3, 128, 0.15, 0.45, 4.0).
BEFORE = {
    "euler": (["0x1.5fd547a4c4dc0p+2", "0x1.70a1ed5e77798p+2", "0x1.660138bd8bfaap+2"],
              ["0x1.72c33c9ac5f7cp+2", "0x1.7f3993acb5e8ep+2", "0x1.6d59e8116b9f0p+2"],
              "0x1.9000000000000p+0", 4),
    "heun": (["0x1.31b7b661a712cp+2", "0x1.3cb32f6397c87p+2", "0x1.2ca9bf60b62ddp+2"],
             ["0x1.488b479c2a184p+2", "0x1.3f0d4a0b2115cp+2", "0x1.39e1182038d99p+2"],
             "0x1.9000000000000p+0", 4),
}


@pytest.mark.parametrize("name", ["euler", pytest.param("heun", marks=pytest.mark.slow)])
@pytest.mark.parametrize("schedule", [None, "geometric"])
def test_geometric_rows_bitwise_unchanged(name, schedule):
    kw = {} if schedule is None else {"schedule": schedule}
    with jax.enable_x64(True):
        r = sc._sampler_row(name, 400.0, EPS, 2.0, WIDTH, jax.random.key(3), 16, 3, 128, 0.15,
                            0.45, 4.0, **kw)
    lo, hi, lev, n_eval = BEFORE[name]
    assert [x.hex() for x in r["kstar_lo_reps"]] == lo
    assert [x.hex() for x in r["kstar_hi_reps"]] == hi
    assert r["levels_in_band"].hex() == lev and r["evaluations"] == n_eval
    assert r["schedule"] == "geometric" and r["path"] == "scalar"
    # the worst case over the hidden scale (here: the grid's phase) needs at least as many levels
    assert r["kstar_worst_hi"] >= min(r["kstar_hi_reps"]) - 1.0


def test_hidden_scale_is_a_per_chain_log_shift():
    """A fixed family: every chain runs G exp(-s), s = log h - log sigma_c(R), log h stratified
    log-uniform on [SIGMA_MIN, SIGMA_MAX] (one point per 1/n of v in every replicate)."""
    n, R, K = 16, 3, 12
    with jax.enable_x64(True):
        dr = SamplerDraws("euler", D, EPS, 2.0, WIDTH, key=jax.random.key(1), n_points=n,
                          n_reps=R, schedule="karras:7")
        geo = SamplerDraws("euler", D, EPS, 2.0, WIDTH, key=jax.random.key(1), n_points=n,
                           n_reps=R)
    G = family("karras:7").grid(K, SIGMA_MIN, SIGMA_MAX)
    grids = dr.point_grids(K)
    log_c = -0.5 * np.log(np.expm1(2.0 * dr.log_m / D))  # log sigma_c at the effective rate
    np.testing.assert_allclose(np.log(grids) + dr.hidden_shift()[:, None],
                               np.broadcast_to(np.log(G), grids.shape), atol=1e-12)
    np.testing.assert_allclose(dr.hidden_shift(), dr.log_hidden_scale() - log_c, atol=1e-12)
    lh = dr.log_hidden_scale().reshape(R, n)
    assert np.all((lh >= math.log(SIGMA_MIN)) & (lh < math.log(SIGMA_MAX)))
    u = (lh - math.log(SIGMA_MIN)) / math.log(SIGMA_MAX / SIGMA_MIN)
    for row in u:  # stratified: exactly one point in each of the n cells of [0, 1)
        assert sorted(np.floor(row * n).astype(int)) == list(range(n))
    # the geometric path keeps today's grid: K levels sigma_max exp(-(k + u) Delta_K)
    np.testing.assert_array_equal(geo.point_grids(K), geometric_levels(K, geo.offsets(K)))


def test_worst_over_scales_at_most_average():
    """min over hidden-scale bins of the bin means <= the overall mean (equal-size bins), and
    the two sides stay ordered."""
    with jax.enable_x64(True):
        dr = SamplerDraws("euler", D, EPS, 2.0, WIDTH, key=jax.random.key(2), n_points=16,
                          n_reps=2, schedule="vp_linear")
        lo, hi, _ = dr(8)
        w_lo, w_hi, b = sc.worst_over_scales(dr, 8, 8)
        i_lo, i_hi, _ = sc.worst_over_scales(dr, 8, 8, skip_top=True)
        blo, bhi = sc.scale_bins(dr, 8, 8)
    assert np.all(lo <= hi + 1e-12)
    assert w_lo <= lo.mean() + 1e-12 and w_hi <= hi.mean() + 1e-12
    assert 0 <= b < 8
    # equal bins: the bin means average to the overall mean; without the top bin, no lower
    np.testing.assert_allclose(blo.mean(), lo.mean(), rtol=1e-12)
    assert np.all(blo <= bhi + 1e-12)
    assert (w_lo, w_hi) == (blo.min(), bhi.min()) and (i_lo, i_hi) == (blo[:-1].min(), bhi[:-1].min())
    with pytest.raises(ValueError, match="n_scales"):
        sc.worst_over_scales(dr, 8, 64)


def _se_diff(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return math.hypot(a.std(ddof=1), b.std(ddof=1)) / math.sqrt(a.size)


def test_full_vector_matches_scalar_on_karras():
    """Euler on Karras rho = 7 levels against the hidden scale: the full-vector path (real
    d-vectors) and the scalar reduction (the same lattice, independent chain draws of the same
    law) agree within 4 standard errors on both sides."""
    with jax.enable_x64(True):
        key = jax.random.key(5)
        kw = dict(key=key, n_points=16, n_reps=6, schedule="karras:7")
        full = FullVectorDraws(js.samplers.Euler(), D, EPS, 2.0, WIDTH, **kw)
        scal = SamplerDraws("euler", D, EPS, 2.0, WIDTH, **kw)
        K = 8
        f, s = full(K), scal(K)
    assert np.all(f[0] <= f[1] + 1e-12)
    for side in (0, 1):
        assert 0.05 < f[side].mean() < 0.95  # not a saturated comparison
        se = _se_diff(f[side], s[side])
        assert se > 0
        assert abs(f[side].mean() - s[side].mean()) < 4.0 * se, (side, f[side], s[side])


def test_validation_before_any_file(tmp_path):
    out = tmp_path / "never"
    cases = [
        (dict(schedule="karras:x"), ValueError, "karras"),
        (dict(schedule="bogus"), ValueError, "bogus"),
        (dict(schedule="user:20,10,1"), ValueError, "fixed number of levels"),
        (dict(schedule=3), TypeError, "schedule"),
        (dict(samplers=["no_such_sampler"]), ValueError, "no_such_sampler"),
        (dict(samplers=["heun:bogus=1"]), TypeError, "bogus"),
        (dict(samplers=["adaptive"]), ValueError, "max_queries"),
        (dict(samplers=["euler"], n_scales=0), ValueError, "n_scales"),
    ]
    from jscore.sweeps import LowerBoundSweep

    for kw, exc, word in cases:
        kw = {"samplers": ["euler"], **kw}
        with pytest.raises(exc, match=word):
            sc.scaling(dims=(100,), log=lambda m: None, **kw)
        with pytest.raises(exc, match=word):  # the experiment: refused before any file
            js.sweep(LowerBoundSweep(dims=(100,), **kw), out=str(out), cache_dir=None)
        assert not os.path.exists(out)

    assert LowerBoundSweep(samplers=("unipc", "heun:s_churn=40"), schedule="cosine").schedule \
        == "cosine"
    with pytest.raises(ValueError, match="bogus"):
        LowerBoundSweep(schedule="bogus")
    with pytest.raises(TypeError, match="schedule"):
        LowerBoundSweep(schedule=7)
    with pytest.raises(ValueError, match="max_queries"):
        LowerBoundSweep(samplers=("adaptive",))
    s = LowerBoundSweep(samplers=("adaptive",), max_queries=64, schedule="karras:5")
    from jscore.sweeps import load_spec

    p = tmp_path / "lb.toml"
    p.write_text(s.to_toml())
    assert load_spec(str(p)) == s


@pytest.mark.parametrize("argv, flag", [
    (["--schedule", "bogus"], "--schedule"),
    (["--schedule", "user:20,10,1"], "--schedule"),
    (["--samplers", "no_such_sampler"], "--samplers"),
    (["--samplers", "adaptive"], "--max-queries"),
    (["--scales", "0"], "--scales"),
])
def test_cli_rejects_bad_schedule_and_samplers(argv, flag, tmp_path, capsys):
    from jscore.cli import main

    out = tmp_path / "never"
    try:
        rc = main(["lowerbound", "scale", "--dims", "100", "--out", str(out), *argv])
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert flag in err.strip().splitlines()[-1], err
    assert not os.path.exists(out)


def test_make_draws_picks_the_path():
    """Plain scalar names keep their reduction; a registered type with options too; a user's
    sampler and a catalogue sampler without a reduction take the full-vector path (no compute)."""
    kw = dict(key=jax.random.key(0), n_points=4, n_reps=2, schedule="cosine")
    with jax.enable_x64(True):
        assert type(sc.make_draws("euler", D, EPS, 2.0, WIDTH, **kw)) is SamplerDraws
        h = sc.make_draws("heun:s_churn=1.0", D, EPS, 2.0, WIDTH, **kw)
        assert type(h) is SamplerDraws and dict(h.spec.params)["s_churn"] == 1.0
        for s in (TwoStepEuler(), "unipc"):
            f = sc.make_draws(s, D, EPS, 2.0, WIDTH, **kw)
            assert isinstance(f, FullVectorDraws) and f.family is not None
    assert sc.sampler_labels(["euler", TwoStepEuler(), TwoStepEuler()]) == [
        "euler", "TwoStepEuler", "TwoStepEuler#2"]


def test_cli_names_keep_options():
    from jscore.lowerbound.scaling_config import split_names

    assert split_names("euler, heun:s_churn=40,s_noise=1.0,unipc") == [
        "euler", "heun:s_churn=40,s_noise=1.0", "unipc"]


@pytest.fixture(scope="module")
def tiny_run():
    """One tiny sweep: d = 100, Karras rho = 7 levels, the scalar Euler, a user-defined sampler
    (full-vector path) and a catalogue name with options."""
    return sc.scaling(dims=(100,), samplers=("euler", TwoStepEuler(), "heun:s_noise=1.0"),
                      schedule="karras:7", n_rates=3, n_xi=50, n_offsets=4, n_reps=3, k_max=64,
                      n_scales=4, log=lambda m: None)


@pytest.mark.slow
def test_any_sampler_any_schedule_through_scaling(tiny_run):
    res = tiny_run
    assert res["config"]["samplers"] == ["euler", "TwoStepEuler", "heun:s_noise=1.0"]
    assert res["config"]["schedule"] == "karras:7"
    row = res["rows"][0]["samplers"]
    assert row["TwoStepEuler"]["path"] == "full_vector"
    assert row["euler"]["path"] == "scalar" and row["heun:s_noise=1.0"]["path"] == "scalar"
    for lab, x in row.items():
        lo, hi = np.asarray(x["kstar_lo_reps"]), np.asarray(x["kstar_hi_reps"])
        assert np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)), lab
        assert np.all(lo <= hi + 1e-9), lab  # per replicate: upper side first
        assert x["schedule"] == "karras:7"
        assert math.isfinite(x["kstar_worst_inner_hi"])
        assert SIGMA_MIN < x["worst_sigma"] < SIGMA_MAX
        # the worst case needs at least the average's levels; dropping a position cannot raise it
        assert x["kstar_worst_inner_hi"] >= min(x["kstar_hi_reps"]) - 1.0
        if math.isfinite(x["kstar_worst_hi"]):
            assert x["kstar_worst_inner_hi"] <= x["kstar_worst_hi"] + 1.0
        assert len(x["lower_per_scale_at_kstar"]) == 4
    # the user's Euler and the scalar Euler: the same law, independent draws
    a, b = row["TwoStepEuler"], row["euler"]
    for side in ("lo", "hi"):
        se = _se_diff(a[f"kstar_{side}_reps"], b[f"kstar_{side}_reps"])
        assert abs(a[f"kstar_{side}"] - b[f"kstar_{side}"]) < 4.0 * se + 1.0
    from jscore.sweeps.lowerbound import format_table

    assert "worst case over the hidden scale" in format_table(res)


@pytest.mark.slow
def test_small_scaling_run_bitwise_unchanged():
    """A whole default-schedule scaling() run reproduces the numbers recorded before (fa0c33e)."""
    r = sc.scaling(dims=(100,), samplers=("euler",), n_xi=50, n_offsets=4, n_reps=2, k_max=64,
                   log=lambda m: None)
    x = r["rows"][0]["samplers"]["euler"]
    assert x["kstar_lo_reps"] == [2.863571995173623, 2.7664623077584567]
    assert x["kstar_hi_reps"] == [3.114806735905218, 2.9568709530981616]
    assert r["rows"][0]["kstar_ideal"] == 3.1479342284505094
