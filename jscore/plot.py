"""Figures for sweeps (matplotlib, drawn on ``matplotlib.figure.Figure``: no GUI backend needed).

- :func:`qstar_vs_dim`: Q*(d) per cell on log-log axes with bootstrap CIs and fitted slopes;
- :func:`error_vs_queries`: the error metric against queries per chain, one line per (cell, d);
- :func:`histograms`: per-chain queries, distinct levels and adaptive rounds;
- :func:`sweep_figures`: all three for a :class:`jscore.sweeps.SweepResult`, saved as PNG.
"""

from __future__ import annotations

import os
from collections import defaultdict

import numpy as np


def _figure(ncols=1, size=(6.4, 4.4)):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1]), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, np.atleast_1d(axes)


def _label(cell: dict) -> str:
    return f"{cell['sampler']} / {cell['schedule'].split(':')[0]} / {cell['oracle']}"


def qstar_vs_dim(qtable, slopes=(), ax=None, key: str = "qstar_interp"):
    """Q*(d) with CI bars per cell and the fitted line ``Q* ~ d^slope``; returns the axes."""
    if ax is None:
        _, axes = _figure()
        ax = axes[0]
    groups = defaultdict(list)
    for r in qtable:
        groups[r["cell_id"]].append(r)
    fits = {s["cell_id"]: s for s in slopes if s.get("of") == key}
    for i, (cid, rs) in enumerate(sorted(groups.items())):
        rs = sorted(rs, key=lambda r: r["dim"])
        rs = [r for r in rs if np.isfinite(r[key]) and r[key] > 0]
        if not rs:
            continue
        d = np.array([r["dim"] for r in rs], float)
        q = np.array([r[key] for r in rs], float)
        lo = np.array([r.get(f"{key}_ci_low", np.nan) for r in rs], float)
        hi = np.array([r.get(f"{key}_ci_high", np.nan) for r in rs], float)
        yerr = np.vstack([np.clip(q - lo, 0, None), np.clip(hi - q, 0, None)])
        yerr = np.where(np.isfinite(yerr), yerr, 0.0)
        color = f"C{i % 10}"
        lab = _label(rs[0]["cell"])
        f = fits.get(cid)
        if f is not None and np.isfinite(f["slope"]):
            lab += f": slope {f['slope']:.2f} [{f['slope_ci_low']:.2f}, {f['slope_ci_high']:.2f}]"
            xs = np.geomspace(d.min(), d.max(), 50)
            ax.plot(xs, np.exp(f["intercept"]) * xs ** f["slope"], "--", color=color, lw=1)
        ax.errorbar(d, q, yerr=yerr, fmt="o", color=color, label=lab, capsize=3)
    _log_axes(ax)
    ax.set_xlabel("dimension d")
    ax.set_ylabel("Q* (queries per chain)")
    if qtable:
        r0 = qtable[0]
        ax.set_title(f"queries to reach {r0['metric']} <= {r0['target']:g}")
    return ax


def error_vs_queries(evals, metric: str, ax=None, target: float | None = None):
    """Error ``metric`` against queries per chain for every (cell, d); returns the axes."""
    if ax is None:
        _, axes = _figure()
        ax = axes[0]
    groups = defaultdict(list)
    for e in evals:
        if metric in e:
            groups[(e["cell_id"], e["dim"])].append(e)
    cells = sorted({k[0] for k in groups})
    dims = sorted({k[1] for k in groups})
    for (cid, d), es in sorted(groups.items()):
        es = sorted(es, key=lambda e: e["queries"])
        es = [e for e in es if np.isfinite(e[metric]) and e[metric] > 0]
        if not es:
            continue
        q = [e["queries"] for e in es]
        v = [e[metric] for e in es]
        alpha = 0.35 + 0.65 * (dims.index(d) + 1) / len(dims)
        ax.plot(q, v, "o-", ms=3, color=f"C{cells.index(cid) % 10}", alpha=alpha,
                label=f"{_label(es[0]['cell'])} d={d}")
    if target is not None:
        ax.axhline(target, color="k", ls=":", lw=1)
    _log_axes(ax)
    ax.set_xlabel("queries per chain")
    ax.set_ylabel(metric)
    return ax


def histograms(rows, axes=None):
    """Histograms of per-chain queries, levels and rounds over all rows, one colour per sampler."""
    if axes is None:
        _, axes = _figure(3, size=(4.2, 3.6))
    per = defaultdict(lambda: defaultdict(list))
    for r in rows:
        for k in ("queries", "levels", "rounds"):
            per[r["cell"]["sampler"]][k] += r["per_seed"][k]
    for ax, k in zip(axes, ("queries", "levels", "rounds")):
        for i, (s, vals) in enumerate(sorted(per.items())):
            v = np.asarray(vals[k])
            # at least two edges, also when every chain made the same count
            bins = np.unique(np.geomspace(max(v.min(), 1), max(v.max(), v.min() + 1, 2), 30).round())
            ax.hist(v, bins=bins, alpha=0.5, color=f"C{i % 10}", label=s)
        ax.set_xscale("log")
        ax.set_xlabel(k + " per chain")
        ax.set_ylabel("chains")
    axes[0].legend(fontsize=7)
    return axes


def sweep_figures(res, out_dir: str) -> list[str]:
    """Save ``qstar.png`` (if a Q* search ran), ``error_vs_queries.png`` and ``histograms.png``."""
    paths = []
    spec = res.spec
    if res.qstar:
        fig, axes = _figure()
        qstar_vs_dim(res.qstar, res.slopes, ax=axes[0])
        paths.append(_save(fig, os.path.join(out_dir, "qstar.png")))
    # a sweep may have no error metric (e.g. adversary cells: counts and oracle statistics only)
    metric = spec.qstar.metric if spec.qstar is not None else (spec.metrics or (None,))[0]
    if res.evals and metric is not None:
        fig, axes = _figure()
        error_vs_queries(res.evals, metric, ax=axes[0], target=spec.qstar.target if spec.qstar else None)
        paths.append(_save(fig, os.path.join(out_dir, "error_vs_queries.png")))
    if res.rows:
        fig, axes = _figure(3, size=(4.2, 3.6))
        histograms(res.rows, axes=axes)
        paths.append(_save(fig, os.path.join(out_dir, "histograms.png")))
    return paths


def _log_axes(ax):
    """Log scales where the axes hold positive data (an empty plot keeps linear axes)."""
    if ax.has_data():
        ax.set_xscale("log")
        ax.set_yscale("log")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)


def _save(fig, path):
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)
    return path


__all__ = ["qstar_vs_dim", "error_vs_queries", "histograms", "sweep_figures"]
