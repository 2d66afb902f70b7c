"""``jscore lowerbound exact`` (issue 5): files, resume, bad arguments, section-8 controls (the
command runs the ExactLab experiment of jscore.sweeps.exact_lab; tests/test_exact_lab.py tests
the experiment itself)."""

import csv
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jscore as js
from jscore.cli import main
from jscore.lowerbound import exact_experiments as E
from jscore.store import CsvRows

# d = 12, R = 0.3: M = 37, decoder false-alarm rate M S_12(0.9) = 5e-4 per chain. The control test
# below uses the same shapes (16 chains, 3-point grid), so it reuses the compiled sampler.
TINY = ["lowerbound", "exact", "--dims", "12", "--rates", "0.3", "--ks", "2", "--chains", "16",
        "--offsets", "1", "--samplers", "euler", "--oracles", "exact,reference",
        "--tv", "12,0.3", "--tv-ratios", "1.0", "--tv-points", "64", "--searches", "8",
        "--audit-dim", "12", "--audit-rate", "0.3", "--audit-ps", "2", "--audit-sigmas", "2",
        "--audit-points", "64", "--experiment", "tv,success"]


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_exact_cli_writes_resumes_and_recomputes_only_missing_units(tmp_path, capsys,
                                                                    monkeypatch):
    out = tmp_path / "lab"
    assert main(TINY + ["--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "decoder success vs K" in text and "TV(P_sigma, Q_sigma) vs Phi" in text
    for name in ["tv", "success_d12"]:
        assert (out / f"{name}.png").stat().st_size > 5_000, name
    units = _rows(out / "success_units.csv")
    assert len(units) == 2 and {u["oracle"] for u in units} == {"exact", "reference"}
    by = {u["oracle"]: u for u in units}
    assert float(by["reference"]["success"]) == 0.0 and float(by["reference"]["informative"]) == 0
    assert float(by["exact"]["levels_mean"]) == 2.0 and float(by["exact"]["queries_mean"]) == 2.0
    summary = _rows(out / "success_d12.csv")
    assert [(r["oracle"], r["K"]) for r in summary] == [("exact", "2"), ("reference", "2")]
    (tv,) = _rows(out / "tv.csv")
    assert 0.0 < float(tv["tv"]) < 1.0 and float(tv["ratio"]) == 1.0
    assert (out / "run.log").read_text().count("lowerbound exact:") == 1

    # rerun: every unit is already on disk, so nothing may be computed again
    def boom(*a, **k):
        raise AssertionError("a completed unit was recomputed")

    for name in ["sample", "tv_planted"]:
        monkeypatch.setattr(E, name, boom)
    assert main(TINY + ["--out", str(out)]) == 0
    assert len(_rows(out / "success_units.csv")) == 2

    # an interrupted run: drop the last success unit from the store (units-p0.jsonl, one row
    # per unit); the rerun computes exactly that one
    store = out / "units-p0.jsonl"
    lines = store.read_text().splitlines(keepends=True)
    assert len(lines) == 3  # 1 tv + 2 success units, in the order they finished
    # (2 worker threads: the success units may finish in either order)
    last = max(i for i, line in enumerate(lines) if '"success"' in line)
    dropped = json.loads(lines[last])["unit"][1]["oracle"]
    store.write_text("".join(lines[:last] + lines[last + 1:]))
    monkeypatch.undo()
    calls = []
    real = E.sample

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(E, "sample", counting)
    assert main(TINY + ["--out", str(out), "--experiment", "success"]) == 0
    assert len(calls) == 1
    again = {u["oracle"]: u for u in _rows(out / "success_units.csv")}
    assert sorted(again) == ["exact", "reference"]
    kept = "reference" if dropped == "exact" else "exact"
    assert again[kept] == by[kept]  # read back from the store, timing included
    # the recomputed unit: the same numbers (same seed, same program), only its timing is new
    assert ({k: v for k, v in again[dropped].items() if k != "seconds"}
            == {k: v for k, v in by[dropped].items() if k != "seconds"})


@pytest.mark.parametrize("extra, match", [
    (["--experiment", "tv,nope"], "unknown --experiment"),
    (["--oracles", "truth"], "unknown --oracles"),
    (["--chains", "0"], "--chains must be an integer >= 1"),
    (["--ks", "0,2"], "--ks must be integers >= 1"),
    (["--rates", "-0.1"], "--rates must be positive"),
    (["--eps", "0"], "--eps must be > 0"),
    (["--p", "0.5"], "--p and --audit-ps must be >= 1"),
    (["--sigma-min", "30"], "sigma-min"),
    (["--tv", "8"], "--tv takes pairs"),
    (["--dims", "200", "--rates", "0.3"], "--max-codewords"),
    (["--samplers", "nope"], "Unknown sampler 'nope'"),
])
def test_exact_cli_bad_arguments(tmp_path, extra, match):
    from jscore.cli import build_parser
    from jscore.cli.lowerbound import run_exact

    args = build_parser().parse_args(TINY + ["--out", str(tmp_path / "x")] + extra)
    with pytest.raises(ValueError, match=match):
        run_exact(args)
    assert not (tmp_path / "x").exists()  # nothing written before the arguments are checked


def test_resumable_csv_rejects_other_columns(tmp_path):
    path = tmp_path / "t.csv"
    book = CsvRows(path, ["a", "b", "v"], ["a", "b"])
    book.append(dict(a=1, b=0.25, v=3.0))
    again = CsvRows(path, ["a", "b", "v"], ["a", "b"])
    assert again.done(a=1, b=0.25) and not again.done(a=1, b=0.5)
    book.append(dict(a=1, b=0.25, v=3.0))  # a duplicate (two runs on one folder) counts once
    with open(path, "a") as f:
        f.write("2,0.5,")  # an interrupted write: partial line, no value, no newline
    again = CsvRows(path, ["a", "b", "v"], ["a", "b"])
    assert len(again.rows) == 1 and not again.done(a=2, b=0.5)
    again.append(dict(a=2, b=0.5, v=4.0))
    last = CsvRows(path, ["a", "b", "v"], ["a", "b"])
    assert [r["v"] for r in last.rows] == ["3.0", "4.0"] and last.done(a=2, b=0.5)
    with pytest.raises(ValueError, match="has columns"):
        CsvRows(path, ["a", "c", "v"], ["a", "c"])


def test_controls_exact_and_reference_oracles():
    """Section 8.6 / 11.7 with the schedule {20, 0.02, 0}: the exact oracle's low-noise Tweedie step
    lands on a codeword (decoder success ~ 1); the reference oracle never decodes (success 0)."""
    cb = js.targets.SphereCodebook.random(jax.random.key(3), 12, 0.3)  # M = 37
    assert js.lowerbound.metrics.decoder_false_alarm(12, cb.num_codewords, 0.9) < 1e-3
    grid = jnp.asarray([20.0, 0.02, 0.0])
    n = 16
    res = js.sample(js.oracles.Exact(cb), js.samplers.Euler(), grid, jax.random.key(4),
                    num_samples=n)
    dec = js.lowerbound.decode(cb, res.x)
    assert np.all(np.asarray(res.stats.queries) == 2) and np.all(np.asarray(res.stats.levels) == 2)
    # spec 11.7: 0.995-1.00 (the argmax of <x, y_j> at sigma = 0.02 is a codeword, cosine ~ 1)
    assert np.all(np.asarray(dec.index) != -1) and float(np.min(dec.cosine)) > 0.99
    ref = js.sample(js.oracles.Reference(cb.reference), js.samplers.Euler(), grid,
                    jax.random.key(4), num_samples=n)
    dr = js.lowerbound.decode(cb, ref.x)
    assert np.all(np.asarray(dr.index) == -1)
    assert 0.3 < float(np.median(dr.cosine)) < 0.9  # ~ t_1, the best cosine of a blind point


@pytest.mark.slow
def test_exact_cli_audit_and_adversary(tmp_path, capsys):
    """The audit, the searcher and the adversary path of ``lowerbound exact`` (slow: three more
    compilations)."""
    out = tmp_path / "lab"
    argv = [a for a in TINY if a != "tv,success"]
    argv[argv.index("--experiment") + 1:argv.index("--experiment") + 1] = ["audit,success,search"]
    argv[argv.index("--oracles") + 1] = "adversary"
    assert main(argv + ["--out", str(out)]) == 0
    assert "audit" in capsys.readouterr().out
    audit = _rows(out / "audit.csv")
    assert len(audit) == 4  # 2 log-spaced sigmas + sigma_min, sigma_max
    assert all(r["passed"] == "True" for r in audit)
    (summary,) = _rows(out / "audit_summary.csv")
    assert summary["passed"] == "True" and float(summary["max_upper_over_eps"]) <= 1.0
    (unit,) = _rows(out / "success_units.csv")
    assert unit["oracle"] == "adversary" and 0.0 <= float(unit["informative"]) <= 1.0
    assert (out / "audit.png").stat().st_size > 5_000
    (search,) = _rows(out / "search.csv")
    # one centre: the searcher asks it and then makes the final query (or gives up after 1)
    assert float(search["num_centres"]) == 1 and 1.0 <= float(search["mean_queries"]) <= 2.0
    assert (out / "search.png").stat().st_size > 5_000


@pytest.mark.slow
def test_audit_all_p_equals_library_audit():
    """One shared pass per sigma gives exactly the per-(eps, p) statistics of ``audit``."""
    cb = js.targets.SphereCodebook.random(jax.random.key(0), 12, 0.3)
    key = jax.random.key(5)
    for s in [0.3, 2.5, 4.0]:
        rows = E.audit_all_p(cb, [0.05, 0.01], [1.0, 2.0], s, 2000, key)
        for r in rows:
            ref = js.lowerbound.audit(js.oracles.LRAdversary(cb, r["eps"], r["p"]), cb, [s],
                                      n=2000, key=key, log=False)
            for k in ["lp_error", "upper", "max_error", "informative", "lambda_hat", "eta_hat",
                      "bound"]:
                np.testing.assert_allclose(r[k], getattr(ref, k)[0], rtol=2e-5, atol=1e-7,
                                           err_msg=f"{k} at sigma={s}, {r['eps']}, {r['p']}")

