"""The lower-bound sweep as an experiment of the unit protocol: the default of ``jscore sweep``.

:class:`LowerBoundSweep` is the lab's :class:`~jscore.lowerbound.scaling_config.ScalingConfig`
(the sqrt(d) experiment of docs/construction.md §6 and §8: window width, window count ``N(d)``,
``K*(d)`` per sampler family with random log-offsets, the optimal adaptive searcher and the two
controls, for d = 1e2 ... 1e6 without a codebook) as a
:class:`~jscore.sweeps.protocol.UnitExperiment`. Its units come in two rounds: first the
dimensions (the sampler-independent row, :func:`jscore.lowerbound.scaling.dimension_row`; plus
``"robustness"`` when ``robustness = true``), then one unit per (d, sampler)
(:func:`jscore.lowerbound.scaling.sampler_row`, whose inputs, the window width and the ideal K*,
come from the dimension's row), so the work of the costly large dimensions is shared by every
worker. :meth:`~LowerBoundSweep.consolidate` puts each dimension's rows together as
:func:`jscore.lowerbound.scaling.scaling_row` would, adds the fits and writes ``scaling.json``,
``scaling.csv``/``.parquet``, ``scaling.png``/``.pdf`` and ``table.txt``.
``js.sweep(LowerBoundSweep(...), out=...)`` (or :func:`~jscore.sweeps.protocol.run_experiment`)
runs it resumably (rows in ``units-p<i>.jsonl``;
``dims`` is not part of the identity, so adding dimensions to a finished run computes only the
new ones), over threads, local devices and ``jax.distributed`` processes with the same rows. In
TOML it is a file with ``experiment = "lowerbound"``::

    experiment = "lowerbound"
    dims = [100, 400, 1600, 6400, 25600, 102400, 409600, 1000000]
    samplers = ["euler", "euler_ancestral", "heun"]
    eps = "1/d"
    schedule = "geometric"   # or "karras:7", "edm", "vp_linear", "cosine", "uniform"

Every sampler row carries ``kstar_lo`` and ``kstar_hi`` (the levels at which the upper and the
lower side of P(some answer is informative) reach 1/2; a necessary condition for success, not
success) with Monte-Carlo intervals over independent replicates (docs/certified_bound.md).
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from ..config import option
from ..lowerbound.scaling import (
    ScalingConfig,
    dimension_row,
    fit_results,
    robustness_row,
    run_config,
    sampler_row,
)
from ..store import atomic_write, write_json, write_table
from .protocol import UnitExperiment, register_unit_experiment, unit_key

EXPERIMENT = "lowerbound"
ROBUSTNESS = "robustness"  # the unit of the p x eps grid
SAMPLER = "sampler"  # ["sampler", d, label, width, kstar_ideal]: one sampler's K* at one d


@dataclasses.dataclass(frozen=True)
class LowerBoundSweep(ScalingConfig, UnitExperiment):
    """The sqrt(d) sweep as an experiment (fields: those of
    :class:`~jscore.lowerbound.scaling_config.ScalingConfig`, plus ``name``, the run folder's
    suffix). ``dims`` also takes the range grammar of :func:`jscore.sweeps.parse_int_list`
    (``"100-10000:x10"``); ``samplers`` must be names (TOML has no sampler instances)."""

    experiment = EXPERIMENT
    result_file = "scaling.json"
    name: str = option("lowerbound-sqrt-d", "run name (default folder jscore-sweep-<name>)",
                       identity=False)

    def __post_init__(self):
        from .spec import parse_int_list

        if isinstance(self.dims, str):
            try:
                object.__setattr__(self, "dims", tuple(parse_int_list(self.dims, "dims")))
            except (ValueError, TypeError):
                pass  # numbers such as 1e2,1e4: ScalingConfig parses them (or names the problem)
        samplers = (self.samplers,) if isinstance(self.samplers, str) else self.samplers
        for s in samplers if isinstance(samplers, (list, tuple)) else (samplers,):
            if not isinstance(s, str):
                raise TypeError(f"`samplers` must be names (strings) in a LowerBoundSweep, got "
                                f"{s!r}; run sampler instances with js.lowerbound.scaling(...).")
        super().__post_init__()
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"`name` must be a non-empty string, got {self.name!r}.")

    # ------------------------------------------------------------------ the protocol
    def units(self) -> list:
        """The first round: the dimensions (ints: each its sampler-independent row), then
        ``"robustness"`` when ``robustness`` is set."""
        return list(self.dims) + ([ROBUSTNESS] if self.robustness else [])

    def next_units(self, rows: dict) -> list:
        """:meth:`units`, then, once dimension d's row is in, one unit ``["sampler", d, label,
        width, kstar_ideal]`` per sampler (the row's window width and ideal K* are its inputs),
        largest d first (the longest units start first). A row of an earlier version that
        holds its samplers (one unit per dimension) needs no sampler units."""
        units = self.units()
        for d in sorted(self.dims, reverse=True):
            row = rows.get(unit_key(d))
            if row is not None:
                units += [[SAMPLER, d, label, row["width"], row["kstar_ideal"]]
                          for label in self.labels if label not in row["samplers"]]
        return units

    def run_unit(self, unit, *, log=print) -> dict:
        """Dimension ``unit``'s row (:func:`~jscore.lowerbound.scaling.dimension_row`), a
        sampler's (:func:`~jscore.lowerbound.scaling.sampler_row`), or the robustness grid's
        (:func:`~jscore.lowerbound.scaling.robustness_row`)."""
        if unit == ROBUSTNESS:
            return robustness_row(self, log=log)
        if isinstance(unit, list):
            _, d, label, width, kstar_ideal = unit
            return {"sampler": sampler_row(self, d, label, width, kstar_ideal, log=log)}
        return dimension_row(self, unit, log=log)

    def _dimension_rows(self, rows) -> list:
        """One full row per finished dimension, in ``dims`` order: the dimension unit's row with
        the sampler units' rows under ``samplers`` (a dimension missing a sampler is left out)."""
        by_d = {r["unit"]: {k: v for k, v in r.items() if k != "unit"} for r in rows
                if isinstance(r.get("unit"), int)}
        for r in rows:
            if isinstance(r.get("unit"), list) and r["unit"][1] in by_d:
                by_d[r["unit"][1]]["samplers"][r["unit"][2]] = r["sampler"]
        return [by_d[d] for d in self.dims
                if d in by_d and all(lab in by_d[d]["samplers"] for lab in self.labels)]

    def consolidate(self, rows, out, *, plot=True, log=print, stats=None):
        """The fits of the dimension rows and, into ``out``, ``scaling.json`` (the results dict),
        ``scaling.csv`` and ``scaling.parquet`` (one record per d), ``table.txt`` and
        ``scaling.png``/``.pdf``."""
        stats = dict(stats or {})
        dim_rows = self._dimension_rows(rows)
        results = {"config": run_config(self), "rows": dim_rows}
        rob = [r for r in rows if r.get("unit") == ROBUSTNESS]
        if rob:
            results["robustness"] = rob[0]["robustness"]
        if dim_rows:
            results.update(fit_results(dim_rows, self.labels))
        results["elapsed_s"] = stats.get("seconds", math.nan)
        results["compile"] = {k: stats[k] for k in ("compilations", "compile_s", "trace_s")
                              if k in stats}
        results["run"] = {k: v for k, v in stats.items() if k not in results["compile"]}
        complete = len(dim_rows) == len(self.dims) and (bool(rob) or not self.robustness)
        files = []
        if out is not None:
            files.append(write_json(os.path.join(out, "scaling.json"), results))
            if dim_rows:
                files += _write_tables(results, out, self.labels)
                files.append(atomic_write(os.path.join(out, "table.txt"),
                                          format_table(results) + "\n"))
                if plot:
                    try:
                        files += list(_figure(results, os.path.join(out, "scaling.png")))
                    except Exception as e:  # pragma: no cover - plotting is best effort
                        log(f"figure failed: {e}")
        return LowerBoundSweepResult(out=out, config=self, results=results, files=files,
                                     complete=complete)

    def describe(self) -> str:
        """The plan in words (``jscore sweep --dry-run``)."""
        return (f"lower-bound sweep {self.name!r}: {len(self.dims)} dimensions "
                f"({', '.join(str(d) for d in self.dims)}), samplers "
                f"{', '.join(self.samplers)} against the reference oracle (scalar form where "
                f"there is a reduction, else full vectors; plus the ideal reference-typical "
                f"family), {self.schedule} levels, p = {self.p:g}, eps = {self.eps}, "
                f"rates [{self.rate_lo:g}, {self.rate_hi:g}] x {self.n_rates}, "
                f"{self.n_reps} replicates x {self.n_offsets} (log-offset, rate) points, "
                f"K <= {self.k_max}"
                + (", robustness grid" if self.robustness else "")
                + ". Cost per step is O(1) in d in scalar form, O(d) on full vectors; results "
                "resume per dimension (units-p<i>.jsonl).")


@dataclasses.dataclass
class LowerBoundSweepResult:
    """What ``js.sweep(LowerBoundSweep(...))`` returns: ``results`` is the dict of
    :func:`jscore.lowerbound.scaling` (``rows`` per d, ``fits`` with slopes and CIs,
    ``compile``: compilations and compile seconds of this run, ``run``: the driver's counts),
    ``files`` the paths written under ``out`` (None in a process that wrote nothing),
    ``complete`` whether every unit has its row."""

    out: str | None
    config: LowerBoundSweep
    results: dict
    files: list
    complete: bool = True

    @property
    def spec(self) -> LowerBoundSweep:
        return self.config

    @property
    def rows(self) -> list:
        """One row per finished dimension, in the order of ``dims``."""
        return self.results["rows"]

    def table(self) -> str:
        return format_table(self.results)


def _write_tables(results, out_dir, samplers) -> list:
    """``scaling.csv`` and ``scaling.parquet``: one record per d (the dimension row's scalars,
    the window's two sides, and per sampler its K* band, MC half-widths and worst case)."""
    cols = ["d", "eps", "lower", "upper", "width", "w_sqrt_d", "w_norm", "N", "kstar_ideal",
            "kstar_ideal_lo", "kstar_ideal_hi", "searcher_queries", "searcher_windows",
            "exact_control_success", "exact_control_queries", "reference_control_log10"]
    per = ["kstar_lo", "kstar_lo_mc", "kstar_hi", "kstar_hi_mc", "levels_in_band",
           "kstar_worst_lo", "kstar_worst_hi", "kstar_worst_inner_lo", "kstar_worst_inner_hi"]
    names = (cols + ["lower_lo_side", "upper_lo_side", "lower_hi_side", "upper_hi_side"]
             + [f"{c}_{s}" for s in samplers for c in per])
    records = [dict(zip(names, [r[c] for c in cols] + list(r["window_lo_side"])
                        + list(r["window_hi_side"])
                        + [r["samplers"][s].get(c, math.nan) for s in samplers for c in per]))
               for r in results["rows"]]
    return write_table(os.path.join(out_dir, "scaling"), records)


LEGEND = """columns (one row per dimension d; eps = 1/d, p = 2 unless configured):
  window        edges of the window of informative noise levels in log(sigma/sigma_c), R = 0.3
                (default estimate); w_norm = width * sqrt(d / ln(d/eps)), flat in d
  N             number of disjoint windows over the rate range (the sqrt(d) count)
  K*ideal       geometric levels at which P(some answer is informative) reaches 1/2 for fresh
                reference-typical queries at every level: lo .. hi
  K* <sampler>  the same for the sampler's own trajectory: K*_lo (the upper side reaches 1/2) ..
                K*_hi (the lower side reaches 1/2), +- MC 95% CI (replicates), in % of K*.
                An informative answer is necessary for success: K* is a necessary condition,
                not the level count at which the sampler succeeds
  K*_worst      the least K at which the minimum over the hidden-scale positions (the grid's phase
                for geometric levels, the critical scale in [0.02, 20] for a fixed family) of
                the upper .. lower side reaches 1/2: an estimate biased low by MC error
                ('inner': without the position next to sigma_max; nan: never for K <= k_max)
  exact         the exact oracle, measured through js.sample: fraction decoded / queries
slopes: log-log slope against d; [across-d bootstrap CI of the slope] and {MC 95% CI (replicates)}."""


def format_table(results) -> str:
    """A plain-text table of the sweep (one line per d), then the slopes with both intervals."""
    samplers = results["config"]["samplers"]
    head = (f"{'d':>9} {'window':>17} {'w_norm':>6} {'N':>6} {'K*ideal':>13} {'exact':>7}"
            + "".join(f" {('K* ' + s)[:24]:>24}" for s in samplers))
    lines = [head]
    for r in results["rows"]:
        cells = []
        for s in samplers:
            x = r["samplers"][s]
            pct = 100 * max(x["kstar_lo_mc"] / x["kstar_lo"], x["kstar_hi_mc"] / x["kstar_hi"]) \
                if x["kstar_lo"] > 0 and x["kstar_hi"] > 0 else math.nan
            cells.append(f" {x['kstar_lo']:>8.1f} ..{x['kstar_hi']:>7.1f} +-{pct:>3.1f}%")
        lines.append(
            f"{r['d']:>9.0f} [{r['lower']:+.4f},{r['upper']:+.4f}] {r['w_norm']:>6.3f} "
            f"{r['N']:>6.2f} {r['kstar_ideal_lo']:>5.1f} ..{r['kstar_ideal_hi']:>5.1f} "
            f"{r['exact_control_success']:>4.2f}/{r['exact_control_queries']:.0f}"
            + "".join(f"{c:>25}" for c in cells))
    worst = [(r["d"], s, r["samplers"][s]) for r in results["rows"] for s in samplers
             if "kstar_worst_hi" in r["samplers"][s]]
    if worst:
        sched = results["config"].get("schedule", "geometric")
        where = ("phase of the grid within one log-step" if sched == "geometric"
                 else "hidden critical scale in [sigma_min, sigma_max]")
        lines.append(f"worst case over the hidden scale ({sched} levels; minimum over "
                     f"{worst[0][2]['n_scales']} positions of the {where}; an estimate biased low "
                     "by MC error, no interval): K*_worst lo .. hi")
        if sched != "geometric":
            lines.append("  (nan: some position never reaches 1/2 for K <= k_max; 'inner': "
                         "without the top position, next to sigma_max)")
        for d, s, x in worst:
            at = (f"  worst inner at sigma_c ~ {x['worst_sigma']:.3g}"
                  if math.isfinite(x.get("worst_sigma", math.nan)) else "")
            inner = (f"  inner {x['kstar_worst_inner_lo']:>7.1f} .. "
                     f"{x['kstar_worst_inner_hi']:>7.1f}" if sched != "geometric" else "")
            lines.append(f"  {d:>9.0f} {s:<24s} {x['kstar_worst_lo']:>7.1f} .. "
                         f"{x['kstar_worst_hi']:>7.1f}{inner}  (average {x['kstar_lo']:.1f} .. "
                         f"{x['kstar_hi']:.1f}){at}")
    if "fits" in results:
        lines.append("log-log slopes [across-d bootstrap CI of the slope] {MC 95% CI (replicates)}:")
        mc = results.get("fits_mc", {})
        for k, v in results["fits"].items():
            extra = ""
            if k in mc:
                extra = f"  {{{mc[k][1]:.3f}, {mc[k][2]:.3f}}}"
            ci = (f"[{v[1]:.3f}, {v[2]:.3f}]" if np.isfinite(v[1]) and np.isfinite(v[2])
                  else "[no CI: fewer than 3 dimensions]")
            lines.append(f"  {k:<28s} {v[0]:.3f} {ci}{extra}")
    return "\n".join(lines)


def plot(results, path):
    """Figure through :mod:`jscore.plot` (PNG and PDF): the K* band (K*_lo .. K*_hi) per sampler
    with MC 95% error bars and N(d) (left); the window profile, both sides as a band, collapsed
    in ``sqrt(d/ln(d/eps)) log(sigma/sigma_c)`` (right). Returns the paths written."""
    from .. import plot as jplot

    rows = results["rows"]
    ds = np.array([r["d"] for r in rows])
    fits = results.get("fits", {})
    with jplot.style():
        fig, (ax1, ax2) = jplot.figure(2, size=(4.8, 3.6))
        f = fits.get("N", (math.nan,) * 3)
        ax1.plot(ds, [r["N"] for r in rows], color="k", marker="^", ls="-", ms=3,
                 label=rf"$N(d)$: slope {f[0]:.2f} [{f[1]:.2f}, {f[2]:.2f}]")
        lo_i = np.array([r["kstar_ideal_lo"] for r in rows])
        hi_i = np.array([r["kstar_ideal_hi"] for r in rows])
        ax1.fill_between(ds, lo_i, hi_i, color="0.5", alpha=0.3, lw=0,
                         label=r"$K^*$ ideal (fresh typical queries)")
        for i, s in enumerate(results["config"]["samplers"]):
            st = jplot.series(i)
            c = st["color"]
            x = [r["samplers"][s] for r in rows]
            lo = np.array([v["kstar_lo"] for v in x])
            hi = np.array([v["kstar_hi"] for v in x])
            elo = np.array([v["kstar_lo_mc"] for v in x])
            ehi = np.array([v["kstar_hi_mc"] for v in x])
            fl = fits.get(f"kstar_lo_{s}", (math.nan,) * 3)
            fh = fits.get(f"kstar_hi_{s}", (math.nan,) * 3)
            ax1.fill_between(ds, lo, hi, color=c, alpha=0.25, lw=0)
            ax1.errorbar(ds, lo, yerr=elo, color=c, marker=st["marker"], ls="none", ms=3)
            ax1.errorbar(ds, hi, yerr=ehi, color=c, marker=st["marker"], ls="none", ms=3,
                         mfc="none",
                         label=rf"$K^*$ {s}: slopes {fl[0]:.3f} / {fh[0]:.3f}")
        ax1.plot(ds, 0.3 * np.sqrt(ds), "k:", lw=1, label=r"$\propto\sqrt{d}$")
        jplot.log_scale(ax1, "x", ds)
        ax1.set_yscale("log")
        ax1.set_xlabel(r"dimension $d$")
        ax1.set_ylabel(r"levels $K^*_{\mathrm{lo}}..K^*_{\mathrm{hi}}$;  windows $N$")
        ax1.set_title(r"$K^*$: $P(\mathrm{some\ answer\ informative}) = 1/2$"
                      "\n(a necessary condition for success, not success)")
        jplot.legend_outside(ax1, title="band: lower..upper side;\nbars: MC 95% CI (replicates);"
                             "\nslopes of $K^*_{\\mathrm{lo}}$ / $K^*_{\\mathrm{hi}}$")
        for j, r in enumerate(rows):
            st = jplot.series(j)
            x = np.asarray(r["profile_ls"]) * math.sqrt(r["d"] / math.log(r["d"] / r["eps"]))
            ax2.fill_between(x, r.get("profile_lo", r["profile_vals"]),
                             r.get("profile_hi", r["profile_vals"]), color=st["color"],
                             alpha=0.2, lw=0)
            ax2.plot(x, r["profile_vals"], color=st["color"], lw=1, label=rf"$d = {r['d']:.0f}$")
        ax2.set_xlabel(r"$\sqrt{d/\ln(d/\varepsilon)}\;\log(\sigma/\sigma_c)$")
        ax2.set_ylabel(r"$\bar\pi_d(\sigma)$")
        ax2.set_xlim(-6, 6)
        ax2.set_title(rf"window profile ($R = {rows[0]['profile_R']:.2f}$):"
                      "\nestimate, band lower..upper side")
        jplot.legend_outside(ax2)
        return jplot.save(fig, path)


_figure = plot  # consolidate's `plot` argument shadows the function


def register():
    """Register the ``"lowerbound"`` experiment (``js.sweep``, TOML, ``jscore sweep``)."""
    return register_unit_experiment(LowerBoundSweep, legend=LEGEND)


__all__ = ["LEGEND", "LowerBoundSweep", "LowerBoundSweepResult", "format_table", "plot",
           "register"]
