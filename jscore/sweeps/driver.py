"""``js.sweep``: run any registered experiment (a :class:`~jscore.sweeps.SweepSpec`, a
:class:`~jscore.sweeps.LowerBoundSweep`, a lab, ...) to completion through the one driver
(:func:`jscore.sweeps.protocol.run_experiment`), resumably, and consolidate its results."""

from __future__ import annotations

import json
import os

from ..compiles import default_cache_dir, setup_compilation_cache  # noqa: F401  (re-exported)
from . import store as _store
from .protocol import EXPERIMENTS, experiment_of
from .sampler_sweep import SweepResult, format_table  # noqa: F401  (re-exported)
from .spec import load_spec, spec_from_dict


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
      ``jax.distributed.initialize`` (must happen before any other JAX work in the process). Every
      experiment runs through :func:`jscore.sweeps.protocol.run_experiment`: in each round
      process i runs the unfinished units with index ``% num_processes == i`` into its own
      ``<stem>-p<i>.jsonl``, and the processes meet at barriers of jax's multi-host utilities (no
      marker files); process 0 writes the consolidated files, the others return the same result
      without writing (``files`` empty).
    - ``dry_run``: validate and return the plan without computing: the sampler sweep's
      :class:`~jscore.sweeps.engine.Plan`, or the config of another experiment (``describe()``
      gives it in words).
    - ``workers``: threads running units per process (default: one per local device, or
      ``min(2, cpu_count)`` on one device; one thread for a sampler sweep on several devices,
      whose units shard over all of them); results do not depend on it.

    **Returns:** the experiment's result: a :class:`SweepResult` for a :class:`SweepSpec` (or the
    plan for ``dry_run``).

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


def consolidate(out: str, spec=None, *, plot: bool = True) -> SweepResult:
    """Consolidate the sampler sweep in ``out`` again from its rows (``spec``: default the one in
    its ``config.json``): ``results.csv``, ``evals.csv``, ``qstar.csv``, ``slopes.csv``,
    ``summary.json`` (compilation counts zero: nothing is compiled here), ``table.txt`` and the
    figures."""
    if spec is None:
        with open(os.path.join(out, "config.json")) as f:
            spec = spec_from_dict(json.load(f)["spec"])
    return spec.consolidate(_store.read_rows(out), out, plot=plot)


__all__ = ["sweep", "consolidate", "SweepResult", "setup_compilation_cache", "default_cache_dir", "format_table"]
