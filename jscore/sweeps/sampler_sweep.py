"""The sampler x target x oracle sweep as an experiment of the unit protocol.

:class:`~jscore.sweeps.SweepSpec` is an :class:`~jscore.sweeps.protocol.UnitExperiment`; its
protocol methods call the functions here, and :func:`jscore.sweeps.protocol.run_experiment`
runs it like every other experiment (one store, one driver, the same resume and multi-process
rules).

- **Units** ``[cell_id, d, num_steps, chunk]``: one seed chunk of one cell at one dimension and
  step count; each unit is one row of ``rows-p<i>.jsonl`` (the key of the rows of earlier
  versions, so their run folders resume).
- **Rounds**: :func:`next_units` lists the units of every cell's step ladder and, for a Q*
  bisection, the step counts the bisection has settled on given the rows finished so far (its
  first two ends, then one midpoint per round). The bisection of each (cell, d) advances one step
  per round, all (cell, d) in parallel, and depends on rows only, so every process settles on the
  same units and the rows equal a one-process run bitwise.
- **Grid padding**: a cell whose grid mode is ``"probe:<mode>"`` (a sampler not known to ignore
  the grid length) is probed once per process, on its first dimension and first chunk
  (:func:`~jscore.sweeps.engine.probe_grid_padding`), before its first unit runs: a function of
  the spec alone.
- **Devices**: a unit shards its seed chunk over all the run's local devices
  (``shards_over_devices``); compiled kernels are kept per process and device set
  (:class:`~jscore.sweeps.engine.Runner`).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import math
import os
import threading
from collections import OrderedDict

import numpy as np

from . import analysis as _analysis
from . import measures as _measures
from . import store as _store
from .engine import Runner, Task, environment, probe_grid_padding, validate
from .protocol import unit_devices, unit_key


@dataclasses.dataclass
class SweepResult:
    """What ``js.sweep(SweepSpec(...))`` returns (also written under ``out``).

    ``rows``: every row (dicts); ``evals``: one record per (cell, d, num_steps) over all seeds;
    ``qstar``: per (cell, d) Q* with CIs; ``slopes``: per cell log-log slope of Q*(d) with CIs;
    ``num_compilations``/``compile_seconds``: XLA compilations and their seconds in this run,
    all processes summed (:class:`jscore.compiles.CompileCounter`); ``run_seconds``: seconds in
    the compiled calls of every row; ``files``: paths written (none in a process other than 0).
    """

    out: str | None
    spec: object
    rows: list
    evals: list
    qstar: list
    slopes: list
    num_compilations: int
    compile_seconds: float
    run_seconds: float
    files: list
    complete: bool = True

    def table(self) -> str:
        """Plain-text Q*(d) table with slopes (or the error ladder); what ``table.txt`` holds."""
        return format_table(self)


# ----------------------------------------------------------------------------- per-process state
@functools.lru_cache(maxsize=16)
def plan_of(spec):
    """``validate(spec)``, once per spec and process (the plan depends on the spec and the
    backend only)."""
    return validate(spec)


class _Session:
    """What the units of one spec share in this process: the plan, the kernels (a
    :class:`Runner` on the run's devices), the tasks, the settled grid modes and the
    environment fields of the rows."""

    def __init__(self, spec, devices):
        import jax

        self.spec = spec
        self.plan = plan_of(spec)
        self.runner = Runner(devices=devices)
        self.key = jax.random.key(spec.key)
        self.env = environment(self.runner)
        self.cells = {c.id: c for c in self.plan.cells}
        self._tasks: dict = {}
        self._modes: dict = {}
        self._lock = threading.Lock()

    def task(self, cell, d) -> Task:
        with self._lock:
            if (cell.id, d) not in self._tasks:
                self._tasks[(cell.id, d)] = Task(self.plan, cell, d)
            return self._tasks[(cell.id, d)]

    def grid_mode(self, cell) -> str:
        """The cell's grid mode with ``"probe:<mode>"`` settled by one probe."""
        mode = self.plan.grid_mode[cell.id]
        if not mode.startswith("probe:"):
            return mode
        with self._lock:
            if cell.id not in self._modes:
                self._modes[cell.id] = self._probe(cell, mode.split(":", 1)[1])
            return self._modes[cell.id]

    def _probe(self, cell, mode) -> str:
        plan, spec = self.plan, self.spec
        d = spec.dims[0]
        task = Task(plan, cell, d)
        n0 = min(plan.ladders[cell.id] or (spec.qstar.steps[0],))
        L = plan.grid_length(cell, n0, d, mode)
        L = n0 + 1 if L == n0 else L
        chunk0 = plan.chunks()[0]
        seeds = list(chunk0) + [chunk0[-1]] * (self.runner.padded_chunk(spec.chunk) - len(chunk0))
        return mode if probe_grid_padding(self.runner, task, self.key, seeds, n0, L) else "exact"


_SESSIONS: OrderedDict = OrderedDict()
_SESSIONS_LOCK = threading.Lock()
_MAX_SESSIONS = 4


def session(spec) -> _Session:
    """The :class:`_Session` of ``spec`` on the current unit's devices (kept for the last few
    specs of the process, so a resumed or repeated run reuses its kernels)."""
    devices = unit_devices()
    k = (spec, tuple(d.id for d in devices))
    with _SESSIONS_LOCK:
        s = _SESSIONS.get(k)
        if s is None:
            s = _SESSIONS[k] = _Session(spec, devices)
            while len(_SESSIONS) > _MAX_SESSIONS:
                _SESSIONS.popitem(last=False)
        _SESSIONS.move_to_end(k)
        return s


# ----------------------------------------------------------------------------- units and rounds
def row_unit(row: dict) -> list:
    """The unit of a stored row: ``[cell_id, dim, num_steps, chunk]``."""
    return [row["cell_id"], int(row["dim"]), int(row["num_steps"]), int(row["chunk"])]


def next_units(spec, rows: dict) -> list:
    """Every unit settled on given ``rows`` (``{unit_key: row}``): each cell's ladder at every d
    and chunk, then the Q* bisection's step counts as far as the finished rows take it."""
    plan = plan_of(spec)
    n_chunks = len(plan.chunks())
    q = spec.qstar
    units, seen = [], set()

    def add(u):
        k = unit_key(u)
        if k not in seen:
            seen.add(k)
            units.append(u)

    for cell in plan.cells:
        for d in spec.dims:
            for n in plan.ladders[cell.id]:
                for ci in range(n_chunks):
                    add([cell.id, d, n, ci])
            if q is not None and q.search == "bisect":
                for u in _bisection_units(spec, cell.id, d, rows, n_chunks):
                    add(u)
    return units


_ERRORS: dict = {}  # (spec, cell_id, d, n) -> the bisection metric over all chunks (rows are final)


def _bisection_units(spec, cell_id, d, rows, n_chunks) -> list:
    """The units of the geometric bisection over step counts ``q.steps`` for the first N with
    error <= ``q.target`` (both ends first; censored when ``lo`` passes or ``hi`` fails), as far
    as the finished ``rows`` settle it."""
    q = spec.qstar
    asked = []

    def err(n):
        us = [[cell_id, d, n, ci] for ci in range(n_chunks)]
        asked.extend(us)
        k = (spec, cell_id, d, n)
        if k not in _ERRORS:
            got = [rows.get(unit_key(u)) for u in us]
            if any(r is None for r in got):
                return None
            if len(_ERRORS) > 100_000:
                _ERRORS.clear()
            _ERRORS[k] = _analysis.evaluations(got, [q.metric])[0].get(q.metric, math.inf)
        return _ERRORS[k]

    lo, hi = q.steps
    e = err(lo)
    if e is None or e <= q.target:
        return asked
    e = err(hi)
    if e is None or e > q.target:
        return asked
    while hi - lo > 1:
        mid = min(max(int(round(math.sqrt(lo * hi))), lo + 1), hi - 1)
        e = err(mid)
        if e is None:
            return asked
        if e <= q.target:
            hi = mid
        else:
            lo = mid
    return asked


def run_unit(spec, unit, *, log=print) -> dict:
    """The row of unit ``[cell_id, d, n, chunk]``: the chunk's chains, their per-seed counts and
    statistics, summaries, metrics and the environment."""
    cell_id, d, n, ci = unit
    s = session(spec)
    plan, runner, cell = s.plan, s.runner, s.cells[cell_id]
    task = s.task(cell, int(d))
    L = plan.grid_length(cell, n, d, s.grid_mode(cell))
    grid = task.grid(n, L)
    seeds = plan.chunks()[ci]
    cp = runner.padded_chunk(spec.chunk)
    seeds_p = list(seeds) + [seeds[-1]] * (cp - len(seeds))
    budget = cell.cost(n)
    out, compile_s, run_s = runner.run(
        task.target_p, task.oracle, cell.sampler_obj, s.key, seeds_p, grid, budget, task.d,
        masked=task.masked, stat_names=task.stat_names,
    )
    m = len(seeds)
    per = {"seed": [int(x) for x in seeds]}
    for k, v in out.items():
        v = np.asarray(v)[:m]
        integral = np.issubdtype(v.dtype, np.integer) or v.dtype == bool
        per[k] = v.astype(np.int64).tolist() if integral else v.astype(np.float64).tolist()
    info = _measures.target_info(task.target, task.d, float(grid[0]))
    row = {
        "schema": 1, "config_hash": spec.config_hash, "sweep": spec.name, "cell_id": cell.id,
        "cell": cell.labels, "dim": task.d, "dim_padded": task.d_pad, "num_steps": int(n),
        "grid_length": int(L), "queries_per_chain": int(budget), "sigma_max": float(grid[0]),
        "chunk": ci, "seed_first": int(seeds[0]), "seed_last": int(seeds[-1]), "num_seeds": m,
        "per_seed": per, "summary": _summary(per),
        "target_info": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in info.items()},
        "compile_seconds": compile_s, "run_seconds": run_s,
        "queries_per_second": float(np.sum(per["queries"]) / max(run_s, 1e-12)),
        **s.env,
        "config": spec.to_json(),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    feats = _measures.host_features({k: np.asarray(per[k]) for k in task.stat_names}, info)
    ok = np.asarray(per["status"]) == 0
    row["metrics"] = {name: (float(_measures.evaluate(name, feats, info)) if ok.all() else math.inf)
                      for name in spec.metrics}
    log(f"sweep {cell.id} {cell.sampler.label} d={task.d} N={n} chunk {ci}: "
        f"{row['queries_per_second']:.3g} queries/s"
        + (f" (compiled in {compile_s:.1f} s)" if compile_s else ""))
    return row


def _summary(per: dict) -> dict:
    from ..results import Status

    s = {}
    for k in ("queries", "levels", "rounds"):
        v = np.asarray(per[k], np.int64)
        s[f"{k}_mean"], s[f"{k}_min"], s[f"{k}_max"], s[f"{k}_total"] = (
            float(v.mean()), int(v.min()), int(v.max()), int(v.sum()))
    for st in Status:
        s[f"status_{st.name}"] = int(np.sum(np.asarray(per["status"]) == st.value))
    return s


# ----------------------------------------------------------------------------- consolidation
def consolidate(spec, rows: list, out: str | None, *, plot: bool = True, stats: dict | None = None
                ) -> SweepResult:
    """The evaluations, Q* table and slopes of ``rows``; into ``out`` (unless None)
    ``results.csv``, ``evals.csv``, ``qstar.csv``, ``slopes.csv`` (and ``.parquet`` twins with
    pyarrow), ``summary.json``, ``table.txt`` and figures. ``stats``: the driver's counts."""
    evals = _analysis.evaluations(rows, spec.metrics)
    qtab, slp = [], []
    if spec.qstar is not None and evals:
        q = spec.qstar
        qtab = _analysis.qstar_table(evals, q.metric, q.target, bootstrap=spec.bootstrap, ci=spec.ci)
        slp = (_analysis.slopes(qtab, ci=spec.ci, key="qstar_interp")
               + _analysis.slopes(qtab, ci=spec.ci, key="qstar"))
    per_process = list((stats or {}).get("per_process", []))
    summary = {
        "config_hash": spec.config_hash,
        "num_rows": len(rows),
        "num_compilations": sum(p["compilations"] for p in per_process),
        "compile_seconds": sum(p["compile_s"] for p in per_process),
        "run_seconds": float(sum(r.get("run_seconds", 0.0) for r in rows)),
        "processes": per_process,
        "rounds": (stats or {}).get("rounds"),
        "qstar": _analysis.public(qtab),
        "slopes": slp,
    }
    if rows:
        summary.update({k: rows[0][k] for k in ("versions", "device", "x64", "eqx_on_error")})
    res = SweepResult(out, spec, rows, evals, qtab, slp, summary["num_compilations"],
                      summary["compile_seconds"], summary["run_seconds"], [])
    if out is None:
        return res
    join = os.path.join
    files = res.files
    files += _store.write_table(join(out, "results"), [_store.flatten_row(r) for r in rows])
    files += _store.write_table(join(out, "evals"), [_flat(e) for e in _analysis.public(evals)])
    if qtab:
        files += _store.write_table(join(out, "qstar"), [_flat(r) for r in _analysis.public(qtab)])
        files += _store.write_table(join(out, "slopes"), [_flat(r) for r in slp])
    import json

    files.append(_store.atomic_write(join(out, "summary.json"),
                                     json.dumps(summary, indent=2, default=_store.json_default)))
    if plot and rows:
        from .. import plot as _plot

        files += _plot.sweep_figures(res, out)
    files.append(_store.atomic_write(join(out, "table.txt"), format_table(res) + "\n"))
    return res


def _flat(rec: dict) -> dict:
    out = {}
    for k, v in rec.items():
        if k == "cell" and isinstance(v, dict):
            out.update(v)
        else:
            out[k] = v
    return out


def format_table(res: SweepResult) -> str:
    """Plain-text Q*(d) table and slopes (or the error ladder when there is no Q* search)."""
    lines = []
    if res.qstar:
        q = res.spec.qstar
        lines.append(f"Q*(d): smallest query budget with {q.metric} <= {q.target} ({res.spec.ci:.0%} bootstrap CI)")
        lines.append(f"{'cell':<6}{'sampler':<16}{'d':>8}{'Q*':>8}{'Q*interp':>10}{'CI':>22}  flag")
        for r in res.qstar:
            ci = f"[{r.get('qstar_interp_ci_low', float('nan')):.1f}, {r.get('qstar_interp_ci_high', float('nan')):.1f}]"
            lines.append(
                f"{r['cell_id']:<6}{r['cell']['sampler']:<16}{r['dim']:>8}{r['qstar']:>8.0f}"
                f"{r['qstar_interp']:>10.1f}{ci:>22}  {r['flag']}"
            )
        lines.append("slopes of log Q* against log d:")
        for s in res.slopes:
            if s["cell"] is None:
                continue
            lines.append(
                f"  {s['cell_id']} {s['cell']['sampler']:<16} {s['of']:<13} slope {s['slope']:.3f} "
                f"CI [{s['slope_ci_low']:.3f}, {s['slope_ci_high']:.3f}] over d={s['dims'][:1]}..{s['dims'][-1:]}"
            )
    else:
        ms = res.spec.metrics
        lines.append(f"{'cell':<6}{'sampler':<16}{'d':>8}{'N':>6}{'Q':>6}" + "".join(f"{m:>14}" for m in ms))
        for e in res.evals:
            lines.append(
                f"{e['cell_id']:<6}{e['cell']['sampler']:<16}{e['dim']:>8}{e['num_steps']:>6}{e['queries']:>6}"
                + "".join(f"{e.get(m, float('nan')):>14.4g}" for m in ms)
            )
    lines.append(
        f"compilations: {res.num_compilations} ({res.compile_seconds:.1f} s); run {res.run_seconds:.1f} s; "
        f"rows: {len(res.rows)}"
    )
    return "\n".join(lines)


__all__ = ["SweepResult", "consolidate", "format_table", "next_units", "plan_of", "row_unit",
           "run_unit", "session"]
