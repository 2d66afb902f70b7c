"""Files and figures of the levels experiment (docs/experiments/levels.md): the experiment-layer
half of :mod:`jscore.lowerbound.levels`, which computes :func:`~jscore.lowerbound.levels.levels_vs_queries`
and returns plain dicts. :func:`plot_levels` (moved here from ``jscore.lowerbound.levels``) draws
them; :func:`write_levels` writes a run's ``levels.json``, ``table.txt`` and figure."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
import time

from .. import plot as jp
from ..config import option
from ..lowerbound.levels import LevelsConfig, format_levels_table
from ..store import atomic_write, json_default
from .protocol import ExperimentResult, UnitExperiment

_WIDTHS: dict = {}
_WIDTHS_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True)
class LevelsLab(LevelsConfig, UnitExperiment):
    """The levels experiment as a unit experiment (``experiment = "levels"``, ``jscore sweep
    FILE``; the flags of ``jscore lowerbound levels``): the fields of
    :class:`~jscore.lowerbound.levels.LevelsConfig` and a run folder ``name``.

    Units: ``["cell", sampler, L, m]`` per cell, ``["single", Q]`` per SingleLevel control and
    ``["ideal"]``; each cell uses the same lattice and chain keys (``fold_in(key(seed), 3)``) as
    :func:`~jscore.lowerbound.levels.levels_vs_queries`, so its numbers are the same.
    :meth:`consolidate` writes ``levels.json``, ``table.txt`` and the figure (:func:`write_levels`).
    """

    experiment = "levels"
    result_file = "levels.json"  # what the command wrote before it resumed
    name: str = option("levels", "run folder suffix (jscore sweep: jscore-sweep-NAME)",
                       cli=False, identity=False)

    def units(self) -> list:
        plan = self.plan()
        out = [["cell", name, L, m] for name in plan["samplers"]
               for m in sorted({m for _, m in plan["todo"]})
               for L in sorted(L for L, mm in plan["todo"] if mm == m)]
        out += [["single", Q] for Q in plan["single"]]
        return out + ([["ideal"]] if self.ideal else [])

    def _width(self, plan) -> float:
        from ..lowerbound.levels import levels_width

        key = (self.config_hash, )
        with _WIDTHS_LOCK:
            if key in _WIDTHS:
                return _WIDTHS[key]
        w = levels_width(plan)
        with _WIDTHS_LOCK:
            _WIDTHS[key] = w
        return w

    def run_unit(self, unit, *, log=print) -> dict:
        import jax

        from ..lowerbound.levels import levels_cell, levels_ideal

        with jax.enable_x64(True):
            plan = self.plan()
            width = self._width(plan)
            if unit[0] == "ideal":
                return {"ideal": levels_ideal(plan), "width": width}
            name, L, m = ("single_level", 1, unit[1]) if unit[0] == "single" else unit[1:]
            cell = levels_cell(plan, width, name, L, m, log)
        return {"cell": json.loads(json.dumps(cell, default=json_default)), "width": width}

    def consolidate(self, rows, out, *, plot=True, log=print, stats=None):
        from ..lowerbound.levels import levels_result

        import jax

        with jax.enable_x64(True):
            plan = self.plan()
        cells = [r["cell"] for r in rows if "cell" in r]
        ideal = [r["ideal"] for r in rows if "ideal" in r]
        width = rows[0]["width"] if rows else float("nan")
        res = levels_result(plan, width, cells, ideal[0] if ideal else [],
                            (stats or {}).get("seconds", 0.0))
        files = []
        if out is not None:
            files = write_levels(res, out) if plot else write_levels(res, out, plot=False)
        return ExperimentResult(out=out, config=self, rows=rows, results=res, files=files,
                                text=format_levels_table(res) + "\n",
                                complete=len(rows) == len(self.units()))


def write_levels(res, out_dir, *, plot: bool = True) -> list[str]:
    """Write one :func:`~jscore.lowerbound.levels.levels_vs_queries` result into ``out_dir``
    (created): ``levels.json``, ``table.txt`` (:func:`~jscore.lowerbound.levels.format_levels_table`)
    and ``levels_vs_queries.png``/``.pdf`` (:func:`plot_levels`), atomically. Returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, "levels.json"), os.path.join(out_dir, "table.txt")]
    atomic_write(paths[0], json.dumps(res, indent=1, default=json_default))
    atomic_write(paths[1], format_levels_table(res) + "\n")
    if not plot:
        return paths
    return paths + plot_levels([res], os.path.join(out_dir, "levels_vs_queries.png"))


def plot_levels(results, path) -> list[str]:
    """Two panels per dimension in ``results`` (a list of
    :func:`~jscore.lowerbound.levels.levels_vs_queries` dicts):
    success against total queries per chain at fixed ``L`` (the panel levels; ``SingleLevel`` as
    ``L = 1``), and success against ``L`` at fixed ``m`` (the panel ``m``). Filled markers: lower
    side with +-1 s.e.; open markers, dashed: upper side; grey: the ideal family's two sides.
    Writes ``path`` as PNG and PDF (:func:`jscore.plot.save`); returns the paths."""
    results = list(results) if isinstance(results, (list, tuple)) else [results]
    with jp.style():
        fig, axes = jp.figure(ncols=2, nrows=len(results), size=(4.8, 3.5))
        axes = axes.reshape(len(results), 2)
        for row, res in zip(axes, results):
            _panels(row, res)
        return jp.save(fig, path)


_LABEL = {"annealed_langevin": "annealed Langevin", "pc": "predictor-corrector",
          "single_level": "SingleLevel (L = 1)"}


def _dtext(d) -> str:
    e = int(round(math.log10(d)))
    return f"1e{e}" if 10 ** e == d else f"{d:g}"


def _errbar(ax, x, c_lo, se, c_hi, style, label):
    ax.errorbar(x, c_lo, yerr=se, color=style["color"], marker=style["marker"], ms=4,
                linestyle="-", capsize=2, label=label)
    ax.plot(x, c_hi, color=style["color"], marker=style["marker"], mfc="none", ms=4,
            linestyle="--", lw=0.8)


def _cell_lines(ax, x, cells, style, label):
    """The cells' lower side with +-1 s.e. (filled) and upper side (open) against ``x``."""
    _errbar(ax, x, [c["p_lower"] for c in cells], [c["p_lower_se"] for c in cells],
            [c["p_upper"] for c in cells], style, label)


def _group_lines(ax, cells, samplers, group, value, xkey, i):
    """One line per sampler through its cells with ``c[group] == value``, against ``c[xkey]``;
    series styles from ``i`` on. Returns the next style index."""
    for name in samplers:
        cs = sorted((c for c in cells if c["sampler"] == name and c[group] == value),
                    key=lambda c: c[xkey])
        if cs:
            _cell_lines(ax, [c[xkey] for c in cs], cs, jp.series(i),
                        f"{_LABEL[name]}, {group} = {value}")
        i += 1
    return i


def _panels(row, res):
    cfg, cells = res["config"], res["cells"]
    ideal = {(r[0], r[1]): (r[2], r[3]) for r in res.get("ideal", [])}
    ax_q, ax_l = row
    i = 0
    for L in cfg["panel_levels"]:
        i = _group_lines(ax_q, cells, cfg["samplers"], "L", L, "queries", i)
        ms = [m for m in cfg["per_level"] if (L, m) in ideal]
        if ms:
            ax_q.fill_between([L * m for m in ms], [ideal[(L, m)][0] for m in ms],
                              [ideal[(L, m)][1] for m in ms], color="0.6", alpha=0.25, lw=0,
                              label=f"ideal, L = {L} (m fresh points per level)")
    cs = sorted((c for c in cells if c["sampler"] == "single_level"), key=lambda c: c["m"])
    if cs:
        _cell_lines(ax_q, [c["queries"] for c in cs], cs, jp.series(i), _LABEL["single_level"])
        i += 1
        qs = [c["m"] for c in cs if (1, c["m"]) in ideal]
        if qs:
            ax_q.fill_between(qs, [ideal[(1, q)][0] for q in qs], [ideal[(1, q)][1] for q in qs],
                              color="C3", alpha=0.15, lw=0, label="ideal, L = 1")
    ax_q.set_xscale("log")
    ax_q.set_xlabel("queries per chain")
    ax_q.set_ylabel("P(some answer informative)")
    ax_q.set_title(f"d = {_dtext(cfg['d'])}: fixed number of levels L", fontsize=9)
    ax_q.set_ylim(-0.02, 1.02)
    jp.legend_outside(ax_q, fontsize=7)
    j = 0
    for m in cfg["panel_per_level"]:
        j = _group_lines(ax_l, cells, cfg["samplers"], "m", m, "L", j)
        Ls = [L for L in cfg["levels"] if (L, m) in ideal]
        if Ls:
            ax_l.fill_between(Ls, [ideal[(L, m)][0] for L in Ls], [ideal[(L, m)][1] for L in Ls],
                              color="0.6", alpha=0.25, lw=0, label=f"ideal, m = {m} fresh points")
    ax_l.set_xscale("log", base=2)
    ax_l.set_xlabel("distinct levels L")
    ax_l.set_ylabel("P(some answer informative)")
    ax_l.set_title(f"d = {_dtext(cfg['d'])}: fixed queries per level m", fontsize=9)
    ax_l.set_ylim(-0.02, 1.02)
    jp.legend_outside(ax_l, fontsize=7)


__all__ = ["LevelsLab", "plot_levels", "write_levels"]
