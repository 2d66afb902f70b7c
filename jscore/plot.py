"""Figures (matplotlib, drawn on ``matplotlib.figure.Figure``: no GUI backend needed).

One style for every figure jscore makes:

- [`style`][jscore.plot.style]: a context manager with the house rc settings (mathtext labels,
  sizes for a one-column figure, light grid, no top/right spines);
- [`figure`][jscore.plot.figure]: a constrained-layout figure with ``ncols`` axes;
- [`series`][jscore.plot.series]: colour, marker and line style of the ``i``-th series (no two of
  the first 100 share colour and marker);
- [`legend_outside`][jscore.plot.legend_outside]: the legend to the right of the axes, off the data;
- [`log_scale`][jscore.plot.log_scale]: a log axis only where every value is positive;
- [`save`][jscore.plot.save]: PNG (150 dpi) and PDF next to each other, written atomically.

Sweep figures built on them:

- :func:`qstar_vs_dim`: Q*(d) per cell on log-log axes with bootstrap CIs and fitted slopes;
- :func:`error_vs_queries`: the error metric against queries per chain, one line per (cell, d);
- :func:`histograms`: per-chain queries, distinct levels and adaptive rounds;
- :func:`sweep_figures`: all three for a :class:`jscore.sweeps.SweepResult`, saved as PNG.
"""

from __future__ import annotations

import os
from collections import defaultdict

import numpy as np

from .store import atomic_write

import contextlib

RC = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.3,
    "lines.markersize": 4.5,
    "errorbar.capsize": 2.5,
    "legend.frameon": False,
    "mathtext.fontset": "dejavusans",
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,
}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1.5, 1, 1.5, 1, 1.5)), (0, (8, 2)))


@contextlib.contextmanager
def style():
    """Context manager: the house rc settings ``RC`` (create and save figures inside it)."""
    import matplotlib

    with matplotlib.rc_context(RC):
        yield


def figure(ncols: int = 1, size=(4.6, 3.4), nrows: int = 1):
    """``(fig, axes)``: a constrained-layout ``Figure`` with ``nrows x ncols`` axes (flat array);
    ``size`` is per axes in inches. Call inside :func:`style` so the rc settings apply."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols)
    return fig, np.atleast_1d(axes).ravel()


def series(i: int) -> dict:
    """Keyword arguments (``color``, ``marker``, ``linestyle``) of the ``i``-th series: colours
    (period 10) and markers are distinct for the first 10, line styles for the first 6; the marker
    shifts by one per round of colours, so no two of the first 100 share colour and marker."""
    return {"color": f"C{i % 10}", "marker": MARKERS[(i + i // 10) % len(MARKERS)],
            "linestyle": LINESTYLES[i % len(LINESTYLES)]}


def legend_outside(ax, **kw):
    """Put the legend of ``ax`` to the right of the axes (off the data); returns it or None."""
    if not ax.get_legend_handles_labels()[0]:
        return None
    kw = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0, **kw}
    return ax.legend(**kw)


def log_scale(ax, axis: str, values) -> bool:
    """Set a log scale on ``axis`` (``"x"`` or ``"y"``) if every finite value is > 0; otherwise keep
    it linear (a log-type axis never shows zero or negative values). Returns whether it is log."""
    if axis not in ("x", "y"):
        raise ValueError(f"`axis` must be 'x' or 'y', got {axis!r}.")
    v = np.asarray(values, float).ravel()
    v = v[np.isfinite(v)]
    ok = v.size > 0 and bool(np.all(v > 0))
    if ok:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    return ok


def save(fig, path, formats=("png", "pdf"), dpi: int = 150) -> list[str]:
    """Write ``fig`` as ``path`` with each suffix in ``formats`` (``path``'s own suffix is
    replaced), atomically; returns the paths written, in ``formats`` order."""
    root, _ = os.path.splitext(os.fspath(path))
    out = []
    for ext in formats:
        out.append(atomic_write(f"{root}.{ext}", lambda f, ext=ext: fig.savefig(f, dpi=dpi, format=ext)))
    return out


def _label(cell: dict, width: int = 28) -> str:
    """``sampler / schedule / oracle``; a long oracle spec (e.g. a checkpoint path) is shortened,
    so that the legend beside the axes never squeezes them away."""
    oracle = cell["oracle"]
    if len(oracle) > width:
        oracle = oracle[: width - 3] + "..."
    return f"{cell['sampler']} / {cell['schedule'].split(':')[0]} / {oracle}"


def qstar_vs_dim(qtable, slopes=(), ax=None, key: str = "qstar_interp"):
    """Q*(d) with CI bars per cell and the fitted line ``Q* ~ d^slope``; returns the axes."""
    if ax is None:
        _, axes = figure(size=(5.2, 3.6))
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
        st = series(i)
        color = st["color"]
        lab = _label(rs[0]["cell"])
        f = fits.get(cid)
        if f is not None and np.isfinite(f["slope"]):
            lab += f": slope {f['slope']:.2f} [{f['slope_ci_low']:.2f}, {f['slope_ci_high']:.2f}]"
            xs = np.geomspace(d.min(), d.max(), 50)
            ax.plot(xs, np.exp(f["intercept"]) * xs ** f["slope"], "--", color=color, lw=1)
        ax.errorbar(d, q, yerr=yerr, fmt=st["marker"], color=color, label=lab)
    _log_axes(ax)
    ax.set_xlabel("dimension $d$")
    ax.set_ylabel("$Q^*(d)$ (score queries per chain)")
    if qtable:
        r0 = qtable[0]
        ax.set_title(f"queries to reach {r0['metric']} <= {r0['metric_target']:g}")
    return ax


def error_vs_queries(evals, metric: str, ax=None, target: float | None = None):
    """Error ``metric`` against queries per chain for every (cell, d); returns the axes."""
    if ax is None:
        _, axes = figure(size=(5.2, 3.6))
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
        st = series(cells.index(cid))
        ax.plot(q, v, ms=3, alpha=alpha, label=f"{_label(es[0]['cell'])}, $d$ = {d}", **st)
    if target is not None:
        ax.axhline(target, color="k", ls=":", lw=1)
    _log_axes(ax)
    ax.set_xlabel("score queries per chain")
    ax.set_ylabel(metric.replace("_", " "))
    return ax


def histograms(rows, axes=None):
    """Histograms of per-chain queries, levels and rounds over all rows, one colour per sampler."""
    if axes is None:
        _, axes = figure(3, size=(3.4, 2.8))
    per = defaultdict(lambda: defaultdict(list))
    for r in rows:
        for k in ("queries", "levels", "rounds"):
            per[r["cell"]["sampler"]][k] += r["per_seed"][k]
    for ax, k in zip(axes, ("queries", "levels", "rounds")):
        for i, (s, vals) in enumerate(sorted(per.items())):
            v = np.asarray(vals[k])
            # at least two edges, also when every chain made the same count
            bins = np.unique(np.geomspace(max(v.min(), 1), max(v.max(), v.min() + 1, 2), 30).round())
            ax.hist(v, bins=bins, alpha=0.6, color=f"C{i % 10}", label=s, histtype="step",
                    linestyle=LINESTYLES[i % len(LINESTYLES)], linewidth=1.3)
        log_scale(ax, "x", [max(1, x) for vals in per.values() for x in vals[k]])
        ax.set_xlabel(("distinct noise levels" if k == "levels" else k) + " per chain")
        ax.set_ylabel("chains")
    legend_outside(axes[-1])
    return axes


def sweep_figures(res, out_dir: str) -> list[str]:
    """Save ``qstar``  (if a Q* search ran), ``error_vs_queries`` and ``histograms`` as PNG and PDF
    in the house :func:`style`; returns the PNG paths."""
    with style():
        return _sweep_figures(res, out_dir)


def _sweep_figures(res, out_dir):
    paths = []
    spec = res.spec
    if res.qstar:
        fig, axes = figure(size=(5.2, 3.6))
        qstar_vs_dim(res.qstar, res.slopes, ax=axes[0])
        paths.append(_save(fig, os.path.join(out_dir, "qstar.png")))
    # a sweep may have no error metric (e.g. adversary cells: counts and oracle statistics only)
    metric = spec.qstar.metric if spec.qstar is not None else (spec.metrics or (None,))[0]
    if res.evals and metric is not None:
        fig, axes = figure(size=(5.2, 3.6))
        error_vs_queries(res.evals, metric, ax=axes[0], target=spec.qstar.target if spec.qstar else None)
        paths.append(_save(fig, os.path.join(out_dir, "error_vs_queries.png")))
    if res.rows:
        fig, axes = figure(3, size=(3.4, 2.8))
        histograms(res.rows, axes=axes)
        paths.append(_save(fig, os.path.join(out_dir, "histograms.png")))
    return paths


def _log_axes(ax):
    """Log scales where the axes hold positive data (an empty plot keeps linear axes)."""
    if ax.has_data():
        ax.set_xscale("log")
        ax.set_yscale("log")
    legend_outside(ax)


def _save(fig, path):
    """PNG and PDF of ``fig``; returns the PNG path."""
    return save(fig, path)[0]


__all__ = ["style", "figure", "series", "legend_outside", "log_scale", "save", "qstar_vs_dim",
           "error_vs_queries", "histograms", "sweep_figures"]
