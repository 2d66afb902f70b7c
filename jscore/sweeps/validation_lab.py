"""Files of the exact-codebook validation of the informative-probability formula
(``benchmarks/lowerbound_validation.py``): the rows of
:func:`jscore.lowerbound.validation.compare` as ``validation.csv``, ``validation.json`` and the
overlay figure ``validation.png`` (exact fraction against the formula, one panel per d).
"""

from __future__ import annotations

import os

from ..lowerbound.validation import summarize
from ..store import write_csv, write_json


def write_results(all_rows, out_dir, extra=None):
    """CSV + JSON + PNG overlay (exact vs formula, one panel per d) under ``out_dir``."""
    flat = [r for rows in all_rows for r in rows]
    write_csv(os.path.join(out_dir, "validation.csv"), flat)
    summary = [summarize(rows) for rows in all_rows]
    write_json(os.path.join(out_dir, "validation.json"),
               dict(summary=summary, rows=flat, **(extra or {})))
    plot_validation(all_rows, summary, os.path.join(out_dir, "validation.png"))
    return summary


def plot_validation(all_rows, summary, path):
    """Exact informative fraction (+-2 SE) against the formula, one panel per d (PNG and PDF)."""
    from ..plot import figure, save, style

    with style():
        fig, axes = figure(len(all_rows), size=(3.4, 3.0))
        for ax, rows, sm in zip(axes, all_rows, summary):
            x = [r["ratio"] for r in rows]
            ax.errorbar(x, [r["exact"] for r in rows], yerr=[2 * r["exact_se"] for r in rows],
                        fmt="ko", ms=3, label="exact codebook ($\\pm$2 SE)")
            ax.plot(x, [r["formula"] for r in rows], "C0-",
                    label=f"formula (max dev {sm['max_dev']:.3f})")
            ax.plot(x, [r["formula_old"] for r in rows], "C3--", marker="s", ms=3,
                    label=f"0/1 guard (max dev {sm['max_dev_old']:.3f})")
            ax.set_xscale("log")
            ax.set_xlabel(r"$\sigma/\sigma_c$")
            ax.set_title(f"$d$ = {sm['d']}, $R$ = {sm['rate']}, $M$ = {sm['M']}")
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=6.5)
        axes[0].set_ylabel("informative fraction")
        save(fig, path)


__all__ = ["plot_validation", "write_results"]
