"""The lower-bound sweep as the default of ``jscore sweep``: spec, TOML, CLI, resume."""

import json
import math

import pytest

import jscore as js
from jscore.sweeps import LowerBoundSweep, load_spec

# a small configuration: one sampler, a coarse rate grid, few norm draws
SMALL = dict(samplers=("euler",), n_xi=100, n_rates=3, n_offsets=4, n_reps=3, k_max=64)


def test_default_spec_is_the_lower_bound_sweep():
    spec = js.sweeps.default_spec()
    assert isinstance(spec, LowerBoundSweep)
    assert spec.dims[0] == 100 and spec.dims[-1] == 10**6 and spec.eps == "1/d" and spec.p == 2.0
    assert load_spec(spec.to_toml()) == spec
    assert load_spec('experiment = "lowerbound"\ndims = "100-10000:x10"\n').dims == (100, 1000, 10000)


@pytest.mark.parametrize(
    "kw, err, match",
    [
        (dict(dims=(1, 100)), ValueError, ">= 2"),
        (dict(dims=(100, 100)), ValueError, "twice"),
        (dict(samplers=("rk4",)), ValueError, "rk4"),
        (dict(samplers=()), ValueError, "empty"),
        (dict(p=0.5), ValueError, "p"),
        (dict(eps="1/e"), ValueError, "eps rule"),
        (dict(eps=2.0), ValueError, "eps"),
        (dict(rate_lo=0.4, rate=0.3), ValueError, "rate_lo <= rate"),
        (dict(n_rates=1), ValueError, "n_rates"),
        (dict(robustness="yes"), TypeError, "robustness"),
    ],
)
def test_spec_errors(kw, err, match):
    with pytest.raises(err, match=match):
        LowerBoundSweep(**kw)


def test_unknown_keys_and_experiments():
    with pytest.raises(ValueError, match="Unknown lower-bound sweep keys"):
        load_spec('experiment = "lowerbound"\nseeds = "0-3"\n')
    with pytest.raises(ValueError, match="Unknown experiment"):
        load_spec('experiment = "upperbound"\n')


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


def test_resume_reads_finished_dimensions(tmp_path, monkeypatch, capfd):
    """Dimensions already in scaling.json (same configuration) are read back, never recomputed;
    another configuration or resume=False is refused. (The real run: the slow test below.)"""
    from jscore.lowerbound import scaling as sc

    out = tmp_path / "lb"
    out.mkdir()
    spec = LowerBoundSweep(dims=(400, 1600), **SMALL)
    config = dict(spec.kwargs(), sigma_min=sc.SIGMA_MIN, sigma_max=sc.SIGMA_MAX, device="x", jax="y")
    config["dims"] = [400.0]  # dims are not part of the identity: rows are per d
    del config["robustness"]  # nor is the end-of-run robustness grid
    rows = [_fake_row(400), _fake_row(1600)]
    (out / "scaling.json").write_text(json.dumps({"config": config, "rows": rows}))

    def must_not_run(*a, **k):
        raise AssertionError("a finished dimension was recomputed")

    monkeypatch.setattr(sc, "window_edges", must_not_run)
    res = js.sweep(spec, out=str(out), cache_dir=None, plot=False)
    assert res.rows == rows
    assert capfd.readouterr().err.count("finished earlier") == 2
    assert (out / "scaling.csv").read_text().count("\n") == 3 and (out / "table.txt").exists()
    assert res.results["fits"]["kstar_lo_euler"][0] == pytest.approx(0.0)  # both rows say 6.1
    assert res.results["fits_mc"]["kstar_hi_euler"][0] == pytest.approx(0.0)
    assert "6.1 ..    6.3" in res.table()
    with pytest.raises(ValueError, match="different configuration"):
        js.sweep(spec.replace(p=1.0), out=str(out), cache_dir=None, plot=False)
    with pytest.raises(ValueError, match="already holds results"):
        js.sweep(spec, out=str(out), cache_dir=None, plot=False, resume=False)
    with pytest.raises(ValueError, match="no earlier results"):
        js.sweep(spec, out=str(tmp_path / "empty"), cache_dir=None, plot=False, resume=True)


@pytest.mark.slow
def test_run_resume_and_refusal(tmp_path, capfd):
    """A finished dimension is read back, not recomputed; another configuration is refused."""
    out = str(tmp_path / "lb")
    spec = LowerBoundSweep(dims=(400,), **SMALL)
    first = js.sweep(spec, out=out, cache_dir=None, plot=False)
    row = first.rows[0]
    e = row["samplers"]["euler"]
    assert row["d"] == 400 and row["N"] > 0 and len(e["kstar_lo_reps"]) == 3
    assert e["kstar_lo"] <= e["kstar_hi"] and all(
        a <= b for a, b in zip(e["kstar_lo_reps"], e["kstar_hi_reps"]))
    assert 0 < e["kstar_lo_mc"] < 0.2 * e["kstar_lo"]
    curve = [e["success_curve"][k] for k in sorted(e["success_curve"], key=int)]
    assert all(lo <= hi for lo, hi in curve)  # lower side <= upper side at every K
    assert row["exact_control_success"] == 1.0 and row["exact_control_queries"] == 2.0
    w_hi, w_lo = row["window_hi_side"], row["window_lo_side"]
    assert w_hi[0] <= row["lower"] <= w_lo[0] < 0 < w_lo[1] <= row["upper"] <= w_hi[1]
    assert math.isfinite(row["w_norm"]) and row["lower"] < 0 < row["upper"]
    with open(f"{out}/scaling.json") as fh:
        assert json.load(fh)["rows"][0]["kstar_ideal"] == row["kstar_ideal"]
    capfd.readouterr()
    again = js.sweep(spec, out=out, cache_dir=None, plot=False)
    assert "finished earlier" in capfd.readouterr().err
    assert again.rows[0] == json.loads(json.dumps(row))
    assert "K* euler" in again.table() and "MC 95% CI (replicates)" in again.table()
    with pytest.raises(ValueError, match="different configuration"):
        js.sweep(spec.replace(p=1.0), out=out, cache_dir=None, plot=False)
    with pytest.raises(ValueError, match="already holds results"):
        js.sweep(spec, out=out, cache_dir=None, plot=False, resume=False)
