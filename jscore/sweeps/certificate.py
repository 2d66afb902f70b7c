"""Files and figure of a schedule certificate (docs/experiments/schedules.md): the experiment-layer
half of :mod:`jscore.lowerbound.schedule_certificate`, whose
:func:`~jscore.lowerbound.schedule_certificate.schedule_certificate` returns a plain dict.
:func:`plot_certificate` moved here from ``jscore.lowerbound.schedule_certificate``;
:func:`write_certificate` writes the JSON, text and PNG files of one result."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from .. import plot as jp
from ..config import option
from ..lowerbound.schedule_certificate import ScheduleCertificateConfig, format_certificate
from ..store import atomic_write
from .protocol import ExperimentResult, UnitExperiment


@dataclasses.dataclass(frozen=True)
class ScheduleLab(ScheduleCertificateConfig, UnitExperiment):
    """The schedule certificate as a one-unit experiment (``experiment = "schedule"`` in TOML,
    ``jscore sweep FILE``; the flags of ``jscore lowerbound schedule``): the fields of
    :class:`~jscore.lowerbound.schedule_certificate.ScheduleCertificateConfig` and a run folder
    ``name``. Its one unit is the certificate; :meth:`consolidate` writes ``certificate.json``,
    ``certificate.txt`` and ``certificate.png`` (:func:`write_certificate`)."""

    experiment = "schedule"
    result_file = "certificate.json"  # what the command wrote before it resumed
    name: str = option("schedule", "run folder suffix (jscore sweep: jscore-sweep-NAME)",
                       cli=False, identity=False)

    def units(self) -> list:
        return ["certificate"]

    def run_unit(self, unit, *, log=print) -> dict:
        return {"result": json.loads(json.dumps(self.run_timed()))}

    def run_timed(self) -> dict:
        """:meth:`run` with ``timing``: the wall seconds, XLA compilations and compile seconds
        of the computation and the load average when it ended."""
        import time

        from ..compiles import CompileCounter

        t0 = time.perf_counter()
        with CompileCounter() as cc:
            res = self.run()
        res["timing"] = dict(wall_s=time.perf_counter() - t0, **cc.as_dict(),
                             loadavg=list(os.getloadavg()) if hasattr(os, "getloadavg") else None)
        return res

    def consolidate(self, rows, out, *, plot=True, log=print, stats=None):
        res = rows[0]["result"] if rows else None
        files = []
        if res is not None and out is not None:
            files = write_certificate(res, out=out) if plot else write_certificate(
                res, out=None, json_path=os.path.join(out, "certificate.json"))
        text = format_certificate(res) + "\n" if res is not None else ""
        return ExperimentResult(out=out, config=self, rows=rows, results=res or {}, files=files,
                                text=text, complete=res is not None)


def write_certificate(res, *, out=None, json_path=None, png_path=None, log=None) -> list[str]:
    """Write one certificate ``res``: into the folder ``out`` (``certificate.json``,
    ``certificate.txt``, :func:`~jscore.lowerbound.schedule_certificate.format_certificate`'s
    table, and ``certificate.png``), and to ``json_path`` and ``png_path``; all atomically.
    ``log(kind, path)`` is called after each file. Returns the paths written, in that order."""
    targets = []
    if out:
        targets += [("json", os.path.join(out, "certificate.json")),
                    ("txt", os.path.join(out, "certificate.txt")),
                    ("png", os.path.join(out, "certificate.png"))]
    if json_path:
        targets.append(("json", json_path))
    if png_path:
        targets.append(("png", png_path))
    for kind, path in targets:
        if kind == "json":
            atomic_write(path, json.dumps(res, indent=1))
        elif kind == "txt":
            atomic_write(path, format_certificate(res) + "\n")
        else:
            plot_certificate(res, path)
        if log is not None:
            log(kind, path)
    return [path for _, path in targets]


def plot_certificate(res, path):
    """PNG (and PDF) of a certificate: P (both sides) against the hidden scale (log x) with the
    grid's levels as a rug and the average and worst marked; with ``steps_curve``, a second panel
    of the average and worst P against K with the 1/2 crossing. Returns the PNG path."""
    curve = res.get("steps_curve")
    with jp.style():
        fig, axes = jp.figure(ncols=2 if curve else 1, size=(5.0, 3.6))
        ax = axes[0]
        x = np.exp(np.asarray(res["cell_log_h"]))
        for i, side in enumerate(("upper", "lower")):
            r = res[side]
            kw = jp.series(i)
            ax.errorbar(x, r["per_scale"], yerr=r["per_scale_se"], color=kw["color"],
                        marker=kw["marker"], ms=3, lw=1, label=f"P {side} side")
            ax.axhline(r["average"], color=kw["color"], ls="--", lw=0.8,
                       label=f"average ({side}) {r['average']:.2f}")
            ax.plot([r["worst_sigma"]], [r["worst"]], "v", color=kw["color"], ms=8, mfc="none",
                    label=f"worst cell ({side}) {r['worst']:.2f}")
        ax.set_xscale("log")
        lev = np.asarray(res["grid"])
        ax.plot(lev, np.full(lev.size, -0.04), "|", color="k", ms=8, label="grid levels")
        h_lo, h_hi = res.get("scale_min", lev.min()), res.get("scale_max", lev.max())
        for a, b in ((lev.min(), h_lo), (h_hi, lev.max())):
            if b > a:
                ax.axvspan(a, b, color="0.9", lw=0, zorder=0)
        ax.text(0.99, 0.5, "grey: outside the\nhidden-scale range", transform=ax.transAxes,
                ha="right", va="center", fontsize=6, color="0.4")
        ax.set_ylim(-0.08, 1.05)
        ax.set_xlabel(r"hidden critical scale $\sigma_c$")
        ax.set_ylabel("P(some answer informative)")
        ax.set_title(f"{res['schedule']}, K = {res['K']}, {res['sampler']}, d = {res['d']:.0f}",
                     fontsize=9)
        ax.legend(fontsize=6, loc="best")
        if curve:
            ax = axes[1]
            ks = np.array([int(k) for k in curve])
            for i, (agg, side) in enumerate([("average", "upper"), ("average", "lower"),
                                             ("worst", "upper"), ("worst", "lower")]):
                y = [curve[k][f"{agg}_{side}"] for k in curve]
                ax.plot(ks, y, **{**jp.series(i), "ms": 3}, label=f"{agg}, {side} side")
            ax.axhline(0.5, color="0.5", lw=0.8)
            st = res["steps_to_half"]
            for agg, ls in (("average", ":"), ("worst", "-.")):
                for k in st[agg]:
                    if k is not None:
                        ax.axvline(k, color="0.3", ls=ls, lw=0.8)
            ax.axvline(res["K"], color="k", lw=1.2, label=f"K = {res['K']}")
            ax.set_xscale("log")
            ax.set_xlabel("steps K of the family")
            ax.set_ylabel("P(some answer informative)")
            ax.set_title("steps to P = 1/2 (vertical lines; estimates)", fontsize=9)
            ax.legend(fontsize=6, loc="best")
        return jp.save(fig, path, formats=("png",))[0]


__all__ = ["ScheduleLab", "plot_certificate", "write_certificate"]
