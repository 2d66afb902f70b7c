"""Q*(d): the smallest query budget reaching a target error, bootstrap CIs and log-log slopes.

From the rows of a sweep, :func:`evaluations` aggregates every ``(cell, d, num_steps)`` over all
its seed chunks; :func:`qstar_table` finds, per ``(cell, d)``, the first evaluated budget whose
error is <= the target (``qstar``; the evaluated step counts are a ladder or a bisection path) and a
log-log interpolation between that budget and the previous one (``qstar_interp``, which removes the
rounding to whole steps). Confidence intervals resample seeds (paired across budgets: the same
resampled seeds at every budget). :func:`slopes` fits ``log Q* = a + b log d`` per cell with
:func:`jscore.fit.loglog_slope`; ``slope_ci_covers`` in each row says what its interval covers.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from ..fit import loglog_slope
from .measures import evaluate, get_measure, host_features
from ..results import Status

_META = ("seed", "queries", "levels", "rounds", "status")


def evaluations(rows: list[dict], metrics) -> list[dict]:
    """One record per ``(cell, d, num_steps)`` with metrics over all seeds and count summaries."""
    groups = defaultdict(list)
    for r in rows:
        groups[(r["cell_id"], r["dim"], r["num_steps"])].append(r)
    out = []
    for (cid, dim, n), rs in sorted(groups.items()):
        rs.sort(key=lambda r: r["chunk"])
        per = {k: np.concatenate([np.asarray(r["per_seed"][k]) for r in rs]) for k in rs[0]["per_seed"]}
        info = dict(rs[0]["target_info"])
        if "weights" in info:
            info["weights"] = np.asarray(info["weights"], np.float64)
        stats = {k: v for k, v in per.items() if k not in _META and not k.startswith("oracle.")}
        feats = host_features(stats, info)
        ok = per["status"] == int(Status.success)
        # a chain whose metric statistics over- or underflowed (e.g. eps = 1e30) is a failure too,
        # never a silent NaN in the table
        stat_ok = np.ones_like(ok)
        for v in stats.values():
            v = np.asarray(v)
            if v.ndim >= 1 and v.shape[0] == ok.shape[0] and np.issubdtype(v.dtype, np.floating):
                stat_ok &= np.all(np.isfinite(v.reshape(v.shape[0], -1)), axis=1)
        ok = ok & stat_ok
        rec = {
            "cell_id": cid,
            "cell": rs[0]["cell"],
            "dim": dim,
            "num_steps": n,
            "queries": int(per["queries"].max()),
            "num_seeds": int(per["seed"].shape[0]),
            "num_chunks": len(rs),
            "queries_mean": float(per["queries"].mean()),
            "levels_mean": float(per["levels"].mean()),
            "rounds_mean": float(per["rounds"].mean()),
            "failures": int((~ok).sum()),
            "nonfinite_metric_chains": int((~stat_ok).sum()),
            "compile_seconds": float(sum(r["compile_seconds"] for r in rs)),
            "run_seconds": float(sum(r["run_seconds"] for r in rs)),
            "_feats": feats,
            "_info": info,
            "_seeds": per["seed"],
            "_ok": ok,
        }
        for m in metrics:
            if all(s in feats for s in get_measure(m).stats):
                v = float(evaluate(m, feats, info)) if ok.all() else float("inf")
                rec[m] = v if math.isfinite(v) else float("inf")
        out.append(rec)
    return out


def _first_pass(costs, vals, target):
    """Q* (first cost with val <= target), its interpolation, and a flag; vectorised over columns."""
    vals = np.where(np.isfinite(vals), vals, np.inf)
    passed = vals <= target
    any_pass = passed.any(0)
    j = np.argmax(passed, 0)
    q = np.where(any_pass, costs[j], np.nan)
    jm = np.maximum(j - 1, 0)
    lo_c, hi_c = costs[jm], costs[j]
    cols = np.arange(vals.shape[1])
    lo_v, hi_v = vals[jm, cols], vals[j, cols]
    tiny = 1e-300
    with np.errstate(all="ignore"):
        frac = (np.log(target) - np.log(np.maximum(lo_v, tiny))) / (
            np.log(np.maximum(hi_v, tiny)) - np.log(np.maximum(lo_v, tiny))
        )
        frac = np.where(np.isfinite(frac), np.clip(frac, 0.0, 1.0), 1.0)
        qi = np.exp(np.log(lo_c) + frac * (np.log(hi_c) - np.log(lo_c)))
    qi = np.where(j > 0, qi, q)
    qi = np.where(any_pass, qi, np.nan)
    flag = np.where(~any_pass, "not_reached", np.where(j == 0, "censored_low", "ok"))
    return q, qi, flag


def qstar_table(evals: list[dict], metric: str, target: float, *, bootstrap: int = 1000, ci: float = 0.95,
                seed: int = 0) -> list[dict]:
    """Per ``(cell, d)``: Q*, its interpolation, bootstrap CIs, and the bootstrap replicates.

    ``metric_target`` is the threshold ``target`` on ``metric`` (the cell's target distribution
    stays in ``cell``).
    """
    groups = defaultdict(list)
    for e in evals:
        if metric in e:
            groups[(e["cell_id"], e["dim"])].append(e)
    rng = np.random.default_rng(seed)
    alpha = (1.0 - ci) / 2.0
    out = []
    for (cid, dim), es in sorted(groups.items()):
        es.sort(key=lambda e: e["queries"])
        # pair budgets on the same seeds: keep the evaluations with the fullest seed set (an
        # interrupted multi-process run may have budgets with missing chunks)
        full = max(es, key=lambda e: e["num_seeds"])
        es = [e for e in es if np.array_equal(e["_seeds"], full["_seeds"])]
        n = full["num_seeds"]
        costs = np.array([e["queries"] for e in es], np.float64)
        vals = np.array([[e[metric]] for e in es], np.float64)
        q, qi, flag = _first_pass(costs, vals, target)
        rec = {
            "cell_id": cid,
            "cell": es[0]["cell"],
            "dim": dim,
            "metric": metric,
            "metric_target": target,  # not "target": flattened rows also carry the cell's target
            "qstar": float(q[0]),
            "qstar_interp": float(qi[0]),
            "flag": str(flag[0]),
            "num_budgets": len(es),
            "num_seeds": n,
        }
        if bootstrap > 0:
            idx = rng.integers(0, n, size=(bootstrap, n))
            bvals = np.stack([
                np.asarray(evaluate(metric, e["_feats"], e["_info"], idx), np.float64)
                if e["_ok"].all() else np.full(bootstrap, np.inf)
                for e in es
            ])
            bq, bqi, _ = _first_pass(costs, bvals, target)
            for name, arr in (("qstar", bq), ("qstar_interp", bqi)):
                fin = arr[np.isfinite(arr)]
                lo, hi = (np.quantile(fin, [alpha, 1 - alpha]) if fin.size else (np.nan, np.nan))
                rec[f"{name}_ci_low"], rec[f"{name}_ci_high"] = float(lo), float(hi)
            rec["_boot_qstar"], rec["_boot_qstar_interp"] = bq, bqi
        out.append(rec)
    return out


def slopes(qtable: list[dict], *, ci: float = 0.95, key: str = "qstar_interp", n_boot: int = 2000,
           seed: int = 0) -> list[dict]:
    """Per cell: log-log slope of ``key`` (Q* or its interpolation) against d, with a bootstrap CI.

    The interval is :func:`jscore.fit.loglog_slope` with ``log_se`` the standard deviation of
    ``log key`` over the seed-bootstrap replicates of :func:`qstar_table` (when every point has
    two or more finite replicates): it covers the scatter across the measured d (pairs, from three
    d on) and the Monte-Carlo error of each Q*(d) from the finite seeds; ``slope_ci_covers`` says
    which, per row. Not model error (a log factor in Q*(d)).
    """
    groups = defaultdict(list)
    for r in qtable:
        groups[r["cell_id"]].append(r)
    out = []
    for cid, rs in sorted(groups.items()):
        rs = sorted((r for r in rs if r["flag"] == "ok" and np.isfinite(r[key])), key=lambda r: r["dim"])
        dims = np.array([r["dim"] for r in rs], np.float64)
        qs = np.array([r[key] for r in rs], np.float64)
        log_se = []
        for r in rs:
            b = np.asarray(r.get("_boot_" + key, []), np.float64)
            b = np.log(b[np.isfinite(b) & (b > 0)])
            log_se.append(float(b.std(ddof=1)) if b.size >= 2 else math.nan)
        log_se = np.array(log_se) if rs and np.all(np.isfinite(log_se)) else None
        fit = loglog_slope(dims, qs, log_se=log_se, n_boot=n_boot, seed=seed, level=ci)
        out.append({"cell_id": cid, "cell": (rs[0]["cell"] if rs else None), "of": key, **fit.to_dict(),
                    "dims": [int(d) for d in dims]})
    return out


def public(records: list[dict]) -> list[dict]:
    """Drop private (``_``-prefixed) fields for tables and JSON."""
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in records]


__all__ = ["evaluations", "qstar_table", "slopes", "public"]
