"""``js.sweep``: run a sweep spec to completion, resumably, and consolidate its results."""

from __future__ import annotations

import dataclasses
import datetime
import glob
import json
import math
import os
import stat

import numpy as np

from ..env import barrier
from . import analysis as _analysis
from . import store as _store
from .engine import Runner, Task, environment, probe_grid_padding, validate
from .spec import EXPERIMENTS, SweepSpec, experiment_of, load_spec, spec_from_dict


@dataclasses.dataclass
class SweepResult:
    """What :func:`sweep` returns (also written under ``out``).

    ``rows``: every row (dicts); ``evals``: one record per (cell, d, num_steps) over all seeds;
    ``qstar``: per (cell, d) Q* with CIs; ``slopes``: per cell log-log slope of Q*(d) with CIs;
    ``num_compilations``/``compile_seconds``/``run_seconds``: this process's totals (all processes
    summed when read from ``summary.json``); ``files``: paths written.
    """

    out: str
    spec: SweepSpec
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


# ----------------------------------------------------------------------------- cache


def default_cache_dir() -> str:
    base = os.environ.get("JSCORE_CACHE_DIR")
    if base:
        return base
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "jscore", "xla")


def setup_compilation_cache(path: str | None = "default") -> str | None:
    """Turn on JAX's persistent compilation cache in a private directory (mode 0700).

    JAX treats the cache as trusted code, so a directory that others can write is refused.
    ``path=None`` leaves the cache as it is. Returns the directory used.
    """
    import jax

    try:
        from jax.experimental.compilation_cache.compilation_cache import reset_cache
    except ImportError:  # pragma: no cover - older/newer layouts: the setting applies at first use
        reset_cache = None
    if path is None:
        return None
    if path == "default":
        path = default_cache_dir()
    path = os.path.abspath(os.path.expanduser(path))
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.stat(path)
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise ValueError(f"compilation cache {path!r} belongs to another user; pick a private directory.")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ValueError(
            f"compilation cache {path!r} is writable by others (mode {oct(st.st_mode & 0o777)}); "
            f"JAX runs what it finds there. Run `chmod 700 {path}` or pick another directory."
        )
    if jax.config.jax_compilation_cache_dir != path:
        jax.config.update("jax_compilation_cache_dir", path)
        if reset_cache is not None:
            reset_cache()
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 1)
    return path


# ----------------------------------------------------------------------------- helpers


def _as_spec(spec):
    """A registered experiment's spec from a spec, a dict of its fields (``experiment`` key: which
    one, default ``"samplers"``) or a TOML path."""
    if isinstance(spec, dict):
        name = spec.get("experiment", "samplers")
        if name not in EXPERIMENTS:
            raise ValueError(f"Unknown experiment {name!r}; use one of {', '.join(map(repr, EXPERIMENTS))}.")
        return EXPERIMENTS[name].from_dict(spec)
    if isinstance(spec, (str, os.PathLike)):
        return load_spec(os.fspath(spec))
    experiment_of(spec)  # raises TypeError naming the registered spec types
    return spec


def _prepare_out(out: str, spec: SweepSpec, overwrite: bool, resume) -> None:
    _store.row_store(out).open(spec.config_hash, {"spec": spec.to_json()}, resume=resume, overwrite=overwrite)


def _summary(per: dict) -> dict:
    s = {}
    for k in ("queries", "levels", "rounds"):
        v = np.asarray(per[k], np.int64)
        s[f"{k}_mean"], s[f"{k}_min"], s[f"{k}_max"], s[f"{k}_total"] = (
            float(v.mean()), int(v.min()), int(v.max()), int(v.sum())
        )
    from ..results import Status

    for st in Status:
        s[f"status_{st.name}"] = int(np.sum(np.asarray(per["status"]) == st.value))
    return s


def _progress(total, quiet):
    if quiet:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="chunk", desc="sweep", dynamic_ncols=True, leave=True)


# ----------------------------------------------------------------------------- main entry


def sweep(
    spec,
    out: str | None = None,
    *,
    devices: int | None = None,
    quiet: bool = False,
    resume="auto",
    overwrite: bool = False,
    cache_dir: str | None = "default",
    distributed: dict | None = None,
    plot: bool = True,
    dry_run: bool = False,
    workers: int | None = None,
):
    """Run a sweep: every cell at every d and seed chunk, resumable, then Q*(d) and slopes.

    **Arguments:**
    - ``spec``: a :class:`SweepSpec`, a dict of its fields, or a TOML path; or a
      :class:`~jscore.sweeps.lowerbound.LowerBoundSweep` (the sqrt(d) lower-bound sweep, an
      experiment of the unit protocol run by :func:`jscore.sweeps.protocol.run_experiment`,
      resumable per dimension; it returns a ``LowerBoundSweepResult``).
    - ``out``: results directory (default ``jscore-sweep-<name>``): ``rows-p<i>.jsonl`` (one fsynced
      row per unit), ``results.csv``, ``evals.csv``, ``qstar.csv``, ``slopes.csv``,
      ``summary.json`` and PNG figures.
    - ``devices``: local devices to shard seeds over (default: all).
    - ``resume``: ``"auto"`` (continue rows of the same config; default), ``True`` (require them) or
      ``False`` (refuse existing rows). ``overwrite=True`` discards existing rows first.
    - ``cache_dir``: persistent compilation cache (``"default"``: ``~/.cache/jscore/xla``; ``None``:
      leave JAX's setting alone).
    - ``distributed``: ``dict(coordinator_address=..., num_processes=..., process_id=...)`` to call
      ``jax.distributed.initialize`` (must happen before any other JAX work in the process);
      process i runs the tasks ``(cell, d)`` with index ``% num_processes == i`` into its own
      ``rows-p<i>.jsonl``. The processes meet at two barriers of jax's multi-host utilities (no
      marker files): after process 0 has prepared the folder, and after every process has written
      its rows; process 0 then consolidates and returns the full result, the others return one
      with ``complete=False`` and no tables.
    - ``dry_run``: validate and return the :class:`Plan` (``plan.describe()``) without computing.
    - ``workers``: threads running units per process, for experiments of the unit protocol
      (:func:`jscore.sweeps.protocol.run_experiment`; default: one per local device, at least 2
      on a multi-core CPU); results do not depend on it.

    **Returns:** a :class:`SweepResult` (or the :class:`Plan` for ``dry_run``).

    **Raises:** ``ValueError``/``TypeError`` for bad specs, before any compilation.
    """
    import jax

    if distributed:
        jax.distributed.initialize(**distributed)
    spec = _as_spec(spec)
    extra = {} if workers is None else {"workers": workers}
    return experiment_of(spec).run(spec, out=out, devices=devices, quiet=quiet, resume=resume,
                                   overwrite=overwrite, cache_dir=cache_dir, plot=plot,
                                   dry_run=dry_run, **extra)


def run_sampler_sweep(spec: SweepSpec, *, out=None, devices=None, quiet=False, resume="auto",
                      overwrite=False, cache_dir="default", plot=True, dry_run=False):
    """The ``"samplers"`` experiment's run (see :func:`sweep`)."""
    import jax

    plan = validate(spec)
    if dry_run:
        return plan
    setup_compilation_cache(cache_dir)
    out = out or f"jscore-sweep-{spec.name}"
    pid, nproc = jax.process_index(), jax.process_count()
    if pid == 0:
        _prepare_out(out, spec, overwrite, resume)
    barrier(f"jscore-sweep-config-{spec.config_hash}")  # process 0 has (re)written it
    if pid != 0:
        _prepare_out(out, spec, False, resume)

    runner = Runner(devices)
    tasks = [(cell, d) for cell in plan.cells for d in spec.dims]
    mine = [t for i, t in enumerate(tasks) if i % nproc == pid]
    key = jax.random.key(spec.key)
    plan, probed = _settle_probes(plan, runner, mine, key)
    state = _run_tasks(plan, runner, mine, key, out, pid, quiet)
    stats = {
        "process_index": pid,
        "num_compilations": runner.num_compilations,
        "compile_seconds": runner.compile_seconds,
        "run_seconds": state["run_seconds"],
        "queries": state["queries"],
        "probes": len(probed),
    }
    _store.atomic_write(os.path.join(out, f"stats-p{pid}.json"), json.dumps(stats))
    barrier(f"jscore-sweep-rows-{spec.config_hash}")  # every process's rows are on disk
    if pid != 0:
        return SweepResult(out, spec, [], [], [], [], runner.num_compilations, runner.compile_seconds,
                           state["run_seconds"], [], complete=False)
    return consolidate(out, spec, plot=plot)


def _settle_probes(plan, runner, mine, key):
    """The plan with every ``"probe:<mode>"`` grid mode settled before the run: ``<mode>`` where
    padding the grid to that length is bitwise harmless for the cell (one probe on its first task
    of this process, :func:`~jscore.sweeps.engine.probe_grid_padding`), else ``"exact"``. Returns
    ``(plan, {cell_id: probe passed})``; the input plan is not modified."""
    modes, probed = dict(plan.grid_mode), {}
    chunk0 = plan.chunks()[0]
    for cell, d in mine:
        if not modes[cell.id].startswith("probe:"):
            continue
        n0 = min(plan.ladders[cell.id] or (plan.spec.qstar.steps[0],))
        L = plan.grid_length(cell, n0, d)
        L = n0 + 1 if L == n0 else L
        seeds = list(chunk0) + [chunk0[-1]] * (runner.padded_chunk(plan.spec.chunk) - len(chunk0))
        probed[cell.id] = probe_grid_padding(runner, Task(plan, cell, d), key, seeds, n0, L)
        modes[cell.id] = modes[cell.id].split(":", 1)[1] if probed[cell.id] else "exact"
    return dataclasses.replace(plan, grid_mode=modes), probed


def _run_tasks(plan, runner, mine, key, out, pid, quiet) -> dict:
    """Run this process's ``(cell, d)`` tasks: each step count of the cell's ladder (then the Q*
    bisection) on every seed chunk, skipping units already in ``out``, one fsynced row per unit
    into ``rows-p<pid>.jsonl``. Returns ``{"queries", "run_seconds"}`` of the units run here."""
    spec, chunks = plan.spec, plan.chunks()
    existing = {_store.row_key(r): r for r in _store.read_rows(out)}
    env = environment(runner)
    bar = _progress(sum(plan.evaluations_per_task(c) for c, _ in mine) * len(chunks), quiet)
    state = {"queries": 0, "run_seconds": 0.0}
    writer = _store.row_store(out, pid)

    def evaluate(n, task):
        cell, d = task.cell, task.d
        rows = []
        L = plan.grid_length(cell, n, d)
        grid = task.grid(n, L)
        for ci, seeds in enumerate(chunks):
            k = (cell.id, d, n, ci)
            if k not in existing:
                row = existing[k] = _run_unit(runner, plan, task, n, L, grid, ci, seeds, key, env)
                writer.append(row)
                state["queries"] += row["summary"]["queries_total"]
                state["run_seconds"] += row["run_seconds"]
                if bar is not None:
                    bar.set_postfix_str(f"{cell.sampler.label} d={d} N={n} "
                                        f"{state['queries'] / max(state['run_seconds'], 1e-9):.3g} "
                                        "queries/s", refresh=False)
            rows.append(existing[k])
            if bar is not None:
                bar.update(1)
        return rows

    try:
        for cell, d in mine:
            task = Task(plan, cell, d)
            for n in plan.ladders[cell.id]:
                evaluate(n, task)
            q = spec.qstar
            if q is not None and q.search == "bisect":
                _bisect(lambda n, task=task: evaluate(n, task), q, spec.metrics)
    finally:
        writer.close()
        if bar is not None:
            bar.close()
    return state


def _bisect(evaluate, q, metrics):
    """Geometric bisection over step counts in ``q.steps`` for the first N with error <= target."""

    def err(n):
        ev = _analysis.evaluations(evaluate(n), [q.metric])
        return ev[0].get(q.metric, float("inf"))

    lo, hi = q.steps
    if err(lo) <= q.target:
        return lo
    if err(hi) > q.target:
        return None
    while hi - lo > 1:
        mid = int(round(math.sqrt(lo * hi)))
        mid = min(max(mid, lo + 1), hi - 1)
        if err(mid) <= q.target:
            hi = mid
        else:
            lo = mid
    return hi


def _run_unit(runner, plan, task, n, L, grid, ci, seeds, key, env) -> dict:
    spec, cell = plan.spec, task.cell
    cp = runner.padded_chunk(spec.chunk)
    seeds_p = list(seeds) + [seeds[-1]] * (cp - len(seeds))
    budget = cell.cost(n)
    out, compile_s, run_s = runner.run(
        task.target_p, task.oracle, cell.sampler_obj, key, seeds_p, grid, budget, task.d,
        masked=task.masked, stat_names=task.stat_names,
    )
    m = len(seeds)
    per = {"seed": [int(s) for s in seeds]}
    for k, v in out.items():
        v = np.asarray(v)[:m]
        per[k] = v.astype(np.int64).tolist() if np.issubdtype(v.dtype, np.integer) or v.dtype == bool else v.astype(np.float64).tolist()
    from . import measures as _m

    info = _m.target_info(task.target, task.d, float(grid[0]))
    row = {
        "schema": 1,
        "config_hash": spec.config_hash,
        "sweep": spec.name,
        "cell_id": cell.id,
        "cell": cell.labels,
        "dim": task.d,
        "dim_padded": task.d_pad,
        "num_steps": int(n),
        "grid_length": int(L),
        "queries_per_chain": int(budget),
        "sigma_max": float(grid[0]),
        "chunk": ci,
        "seed_first": int(seeds[0]),
        "seed_last": int(seeds[-1]),
        "num_seeds": m,
        "per_seed": per,
        "summary": _summary(per),
        "target_info": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in info.items()},
        "compile_seconds": compile_s,
        "run_seconds": run_s,
        "queries_per_second": float(np.sum(per["queries"]) / max(run_s, 1e-12)),
        **env,
        "config": spec.to_json(),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    feats = _m.host_features({k: np.asarray(per[k]) for k in task.stat_names}, info)
    ok = np.asarray(per["status"]) == 0
    row["metrics"] = {
        name: (float(_m.evaluate(name, feats, info)) if ok.all() else float("inf"))
        for name in spec.metrics
    }
    return row


# ----------------------------------------------------------------------------- consolidation


def consolidate(out: str, spec: SweepSpec | None = None, *, plot: bool = True) -> SweepResult:
    """Read all rows under ``out`` and write ``results.csv``, ``evals.csv``, ``qstar.csv``,
    ``slopes.csv``, ``summary.json`` (and ``.parquet`` twins with pyarrow) plus figures."""
    if spec is None:
        with open(os.path.join(out, "config.json")) as f:
            spec = spec_from_dict(json.load(f)["spec"])
    rows = _store.read_rows(out)
    files = []
    files += _store.write_table(os.path.join(out, "results"), [_store.flatten_row(r) for r in rows])
    evals = _analysis.evaluations(rows, spec.metrics)
    files += _store.write_table(os.path.join(out, "evals"), [_flat(e) for e in _analysis.public(evals)])
    qtab, slp = [], []
    if spec.qstar is not None and evals:
        q = spec.qstar
        qtab = _analysis.qstar_table(evals, q.metric, q.target, bootstrap=spec.bootstrap, ci=spec.ci)
        slp = _analysis.slopes(qtab, ci=spec.ci, key="qstar_interp") + _analysis.slopes(qtab, ci=spec.ci, key="qstar")
        files += _store.write_table(os.path.join(out, "qstar"), [_flat(r) for r in _analysis.public(qtab)])
        files += _store.write_table(os.path.join(out, "slopes"), [_flat(r) for r in slp])
    pstats = []
    for p in sorted(glob.glob(os.path.join(out, "stats-p*.json"))):
        with open(p) as f:
            pstats.append(json.load(f))
    summary = {
        "config_hash": spec.config_hash,
        "num_rows": len(rows),
        "num_compilations": sum(s["num_compilations"] for s in pstats),
        "compile_seconds": sum(s["compile_seconds"] for s in pstats),
        "run_seconds": sum(s["run_seconds"] for s in pstats),
        "processes": pstats,
        "qstar": _analysis.public(qtab),
        "slopes": slp,
    }
    if rows:
        summary.update({k: rows[0][k] for k in ("versions", "device", "x64", "eqx_on_error")})
    p = os.path.join(out, "summary.json")
    _store.atomic_write(p, json.dumps(summary, indent=2, default=_store.json_default))
    files.append(p)
    res = SweepResult(out, spec, rows, evals, qtab, slp, summary["num_compilations"], summary["compile_seconds"],
                      summary["run_seconds"], files)
    if plot and rows:
        from .. import plot as _plot

        files += _plot.sweep_figures(res, out)
    _store.atomic_write(os.path.join(out, "table.txt"), format_table(res) + "\n")
    files.append(os.path.join(out, "table.txt"))
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


__all__ = ["sweep", "consolidate", "SweepResult", "setup_compilation_cache", "default_cache_dir", "format_table"]
