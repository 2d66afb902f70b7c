"""The experiment protocol: a frozen config, keyed units, ``run_unit``, ``consolidate``.

An experiment is a frozen dataclass that subclasses :class:`UnitExperiment`:

- its **fields** are the configuration, each declared with :func:`option` (default, help text,
  command-line flag): the one place a default lives. TOML in (:meth:`UnitExperiment.from_dict`,
  ``experiment = "<name>"``), TOML out (:meth:`UnitExperiment.to_toml`, ``--print-config``), and
  command-line flags generated from the fields (:func:`add_config_flags`,
  :func:`config_from_args`); ``__post_init__`` validates (``ValueError``/``TypeError`` naming the
  field, the value and the fix) before anything is written;
- :meth:`~UnitExperiment.units` lists its **units**, the resumable pieces, as JSON values (a
  dimension, a ``[name, d]`` pair, ...);
- :meth:`~UnitExperiment.run_unit` computes one unit's row (a JSON-able dict) from the config
  alone, so a unit's row does not depend on which process, thread or device ran it, nor on the
  order;
- :meth:`~UnitExperiment.consolidate` turns the rows (in the order of ``units()``) into the
  result: tables, fits, figures, written into the run folder.

:func:`run_experiment` is the one driver. Rows go to ``OUT/units-p<i>.jsonl`` through
:class:`jscore.store.RowStore` (fsynced, keyed by unit, a ``config.json`` with the config hash;
resume / overwrite / refuse; a torn last line is repaired). Units are shared out by index over the
processes of a ``jax.distributed`` run (unit ``i`` to process ``i % process_count``) and, within
a process, over ``workers`` threads, one local device each where there are several (XLA releases
the GIL, so two threads use two CPU cores); the processes meet at barriers of jax's multi-host
utilities. Every process returns the same result; only process 0 writes the consolidated files.
Because a row depends on the config and the unit only, the result equals a one-process,
one-thread run bitwise.

Register a new experiment with :func:`register_unit_experiment`; ``js.sweep(config)`` and
``jscore sweep CONFIG.toml`` then run it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, ClassVar

from ..config import REQUIRED, _meta, option, toml_dumps  # noqa: F401  (option re-exported)
from ..env import barrier
from ..store import RowStore, config_hash

def _plain(value):
    """A field value as TOML/JSON data: tuples to lists (recursively)."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class UnitExperiment:
    """Base of an experiment config (a frozen dataclass subclass; see the module docstring).

    Subclasses set ``experiment`` (the TOML name) and define ``units``, ``run_unit`` and
    ``consolidate``; they usually have a ``name`` field (the default run folder is
    ``jscore-sweep-<name>``).
    """

    experiment: ClassVar[str] = ""
    #: the rows files are ``<store_stem>-p<i>.jsonl``
    store_stem: ClassVar[str] = "units"
    #: whether ``jscore sweep`` generates a flag per field (:func:`add_config_flags`)
    config_flags: ClassVar[bool] = True
    #: the result file an older, unstored version of this experiment's command wrote: a folder
    #: holding it without ``config.json`` is refused (it cannot be resumed) unless ``overwrite``
    result_file: ClassVar[str] = ""
    #: whether one unit spreads its work over all the run's local devices (``run_unit`` reads
    #: them from :func:`unit_devices`); otherwise each worker thread runs on one local device
    shards_over_devices: ClassVar[bool] = False

    # ------------------------------------------------------------------ the protocol
    def units(self) -> list:
        """The resumable pieces, as JSON values, in the order results are consolidated (for an
        adaptive experiment: the first units, see :meth:`next_units`)."""
        raise NotImplementedError

    def next_units(self, rows: dict) -> list:
        """The units needed given ``rows`` (``{unit_key(unit): row}`` of every unit finished so
        far). Default: :meth:`units`. An adaptive experiment (a search whose next evaluation
        depends on earlier rows, such as a bisection) returns every unit it has settled on so
        far, finished or not; :func:`run_experiment` runs the unfinished ones and asks again,
        until every unit returned is finished. The answer must depend on the config and
        ``rows`` only, so every process settles on the same units."""
        return self.units()

    def unit_of(self, row: dict):
        """The unit a stored row belongs to (default: its ``"unit"`` entry, added by the
        driver)."""
        return row["unit"]

    def preflight(self):
        """What ``js.sweep(config, dry_run=True)`` returns, after the checks that need more than
        the fields (names, memory, ...; :func:`run_experiment` calls it before writing
        anything): by default the config itself (its :meth:`describe` is the plan in words)."""
        return self

    def store_payload(self) -> dict:
        """What ``config.json`` records beside the config hash."""
        return {"experiment": self.experiment, "config": self.to_dict()}

    def run_unit(self, unit, *, log=print) -> dict:
        """The row of one unit (a JSON-able dict); may depend on the config and ``unit`` only."""
        raise NotImplementedError

    def consolidate(self, rows: list[dict], out: str | None, *, plot: bool = True, log=print,
                    stats: dict | None = None):
        """The result from ``rows`` (one per finished unit, in ``units()`` order). Write files
        into ``out`` unless it is None; ``stats``: the driver's counts (compilations, seconds,
        processes, workers)."""
        raise NotImplementedError

    def describe(self) -> str:
        """The plan in words (``--dry-run``)."""
        units = self.units()
        fields = ", ".join(f"{k} = {v!r}" for k, v in self.to_dict().items())
        return f"{self.experiment} experiment: {len(units)} units; {fields}"

    # ------------------------------------------------------------------ config as data
    def replace(self, **changes):
        """A copy with fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The fields as plain data (tuples as lists; ``None`` values left out, as TOML has no
        null)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None}

    def to_toml(self) -> str:
        """The config as TOML that :meth:`from_dict` (and ``jscore sweep FILE``) reads back to an
        equal config."""
        return toml_dumps({"experiment": self.experiment, **self.to_dict()},
                          f"jscore {self.experiment} experiment ({type(self).__name__}); run it "
                          "with `jscore sweep THIS_FILE`")

    @classmethod
    def from_dict(cls, data: dict):
        """The config from a TOML table (``experiment`` may be present and must match); unknown
        keys raise ``ValueError`` naming the known ones."""
        data = dict(data)
        exp = data.pop("experiment", cls.experiment)
        if exp != cls.experiment:
            raise ValueError(f"experiment = {exp!r} is not the {cls.experiment!r} experiment.")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"Unknown {cls.experiment} keys {unknown}; known: {known}.")
        return cls(**data)

    def identity(self) -> dict:
        """What defines the rows: the experiment's name and every field with ``identity=True``."""
        return {"experiment": self.experiment,
                **{f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)
                   if _meta(f)["identity"]}}

    @property
    def config_hash(self) -> str:
        return config_hash(self.identity())


# ----------------------------------------------------------------------------- CLI flags
def _flag_type(f: dataclasses.Field):
    """argparse ``type`` of a field: ``int``/``float`` for numeric defaults, else the text as
    given (the config's ``__post_init__`` parses lists, rules and names, with its own errors)."""
    d = f.default
    if isinstance(d, bool):
        return None
    if isinstance(d, int):
        return int
    if isinstance(d, float):
        return float
    return str


def _show(value) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return str(value)


def add_config_flags(parser: argparse.ArgumentParser, cls, *, skip=(), raw: bool = False) -> list[str]:
    """Add one flag per field of the config class ``cls`` (``--field-name``, or the field's
    ``flag`` and ``aliases``), help and default from the field; returns the field names added.

    A flag that is not given leaves the config's default (``argparse.SUPPRESS``), so
    :func:`config_from_args` replaces only what the user typed. Booleans get ``--x`` /
    ``--no-x``. Values other than numbers reach the config as text (``--dims 100,1000``), which
    its ``__post_init__`` parses. ``skip``: field names to leave out, and flags the parser has
    already are skipped; ``raw=True`` keeps numbers as text too (:func:`config_from_args`
    converts them), for a parser shared by several experiments.
    """
    names = []
    taken = {s for a in parser._actions for s in a.option_strings}
    group = parser.add_argument_group(f"{cls.experiment or cls.__name__} configuration "
                                      f"(fields of {cls.__name__}; also settable in TOML)")
    for f in dataclasses.fields(cls):
        md = _meta(f)
        flags = [md["flag"] or "--" + f.name.replace("_", "-"), *md["aliases"]]
        if not md["cli"] or f.name in skip or taken.intersection(flags):
            continue
        shown = "required" if f.default is REQUIRED else _show(f.default)
        help_text = f"{md['help']} (default: {shown})".lstrip() if f.default is not None \
            else md["help"]
        kw = dict(dest=f.name, default=argparse.SUPPRESS, help=help_text)
        if isinstance(f.default, bool):
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = str if raw else _flag_type(f)
            if md["metavar"]:
                kw["metavar"] = md["metavar"]
        group.add_argument(*flags, **kw)
        names.append(f.name)
    return names


def config_flag_names(cls) -> dict:
    """``{field name: flag}`` of the generated flags of ``cls``."""
    return {f.name: _meta(f)["flag"] or "--" + f.name.replace("_", "-")
            for f in dataclasses.fields(cls) if _meta(f)["cli"]}


def config_from_args(cls, args: argparse.Namespace, base=None):
    """The config ``base`` (default ``cls()``) with the fields given on the command line
    replaced, validated by the config itself (text for a numeric field is converted here, with
    a ``ValueError`` naming the flag)."""
    given = {}
    for f in dataclasses.fields(cls):
        if not hasattr(args, f.name):
            continue
        v, typ = getattr(args, f.name), _flag_type(f)
        if isinstance(v, str) and typ in (int, float):
            try:
                v = typ(v)
            except ValueError:
                flag = config_flag_names(cls).get(f.name, f.name)
                raise ValueError(f"{flag}: invalid {typ.__name__} value {v!r}.") from None
        given[f.name] = v
    if base is None:
        return cls(**given)
    return dataclasses.replace(base, **given) if given else base


# ----------------------------------------------------------------------------- the driver
def unit_key(unit) -> str:
    """The store key of a unit (a JSON value): its canonical JSON text."""
    return json.dumps(unit, sort_keys=True)


_unit_context = threading.local()


def unit_devices() -> list:
    """Inside :meth:`UnitExperiment.run_unit`: the local devices the unit may use (all the run's
    local devices for an experiment with ``shards_over_devices``, else the worker's one device);
    elsewhere ``jax.local_devices()``."""
    import jax

    return list(getattr(_unit_context, "devices", None) or jax.local_devices())


def _workers_and_devices(workers, devices, shards: bool):
    import jax

    local = jax.local_devices()
    if devices is not None:
        if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
            raise ValueError(f"`devices` must be an int >= 1, got {devices!r}.")
        if devices > len(local):
            raise ValueError(
                f"`devices={devices}` but this process has {len(local)} local device(s); on CPU, "
                "more come from XLA_FLAGS=--xla_force_host_platform_device_count=N.")
        local = local[:devices]
    if workers is None:
        one = min(2, os.cpu_count() or 1)
        workers = (1 if shards else len(local)) if len(local) > 1 else one
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"`workers` must be an int >= 1 (threads running units), got {workers!r}.")
    return workers, local


def run_experiment(config: UnitExperiment, *, out: str | None = None, resume="auto",
                   overwrite: bool = False, quiet: bool = False, plot: bool = True, log=None,
                   workers: int | None = None, devices: int | None = None, dry_run: bool = False):
    """Run ``config``'s missing units into ``out`` (default ``jscore-sweep-<name>``) and return
    ``config.consolidate(rows, ...)``.

    - ``resume``: ``"auto"`` continues rows of the same config hash, ``True`` requires them,
      ``False`` refuses them; ``overwrite=True`` discards them first; rows of another config raise
      ``ValueError`` naming ``--overwrite``.
    - Rounds: the driver asks :meth:`~UnitExperiment.next_units` for the units needed, runs the
      unfinished ones, and asks again until none is unfinished (one round for an experiment with
      a fixed unit list; one round per bisection step for an adaptive one).
    - ``workers``: threads running units in this process (default: one per local device when
      there are several, else ``min(2, cpu_count)``; one thread when the experiment
      ``shards_over_devices`` on several devices); worker ``w`` places its work on local device
      ``w % n`` unless the experiment shards over all of them (``devices``: use only the first
      ``devices`` local devices).
    - Multi-process (after ``jax.distributed.initialize``): in each round process ``i`` runs the
      unfinished units with index ``% process_count == i`` into ``<stem>-p<i>.jsonl``; after a
      barrier every process reads all rows, so all settle on the same next units; only process 0
      writes the result files. ``stats["per_process"]`` holds every process's counts.
    - ``log``: a callable for progress lines (default: ``print`` to stderr unless ``quiet``); the
      lines of one unit are logged together when it finishes. The last line gives the
      compilations and compile seconds (:class:`jscore.compiles.CompileCounter`).
    - ``dry_run``: return ``config.describe()`` without computing or writing.
    """
    import sys

    import jax

    from ..compiles import CompileCounter

    if not isinstance(config, UnitExperiment):
        raise TypeError(f"run_experiment: `config` must be a UnitExperiment, got {type(config).__name__}.")
    if dry_run:
        return config.describe()
    workers, local = _workers_and_devices(workers, devices, config.shards_over_devices)
    config.preflight()  # every check that needs more than the fields, before anything is written
    if log is None:
        def log(msg):
            if not quiet:
                print(msg, file=sys.stderr, flush=True)

    out = os.fspath(out or f"jscore-sweep-{getattr(config, 'name', config.experiment)}")
    if not overwrite:
        refuse_unstored_folder(out, config)
    pid, nproc = jax.process_index(), jax.process_count()
    h = config.config_hash
    store = RowStore(out, key=lambda row: unit_key(config.unit_of(row)), part=f"p{pid}",
                     stem=config.store_stem, what=f"{config.experiment} experiment")
    payload = config.store_payload()
    if pid == 0:
        store.open(h, payload, resume=resume, overwrite=overwrite)
    barrier(f"jscore-{config.experiment}-open-{h}")
    if pid != 0:
        store.open(h, payload, resume="auto")

    t0 = time.time()
    try:
        with CompileCounter() as compiles:
            order, ran, rounds = _run_rounds(config, store, workers, local, log, pid, nproc, h)
    finally:
        store.close()
    rows = [order[k] for k in order if order[k] is not None]
    stats = dict(units=len(order), units_run_here=ran, rounds=rounds, processes=nproc,
                 process_index=pid, workers=workers, seconds=time.time() - t0,
                 **compiles.as_dict())
    stats["per_process"] = _gather_stats(stats, nproc)
    log(f"{ran} units run here in {stats['seconds']:.0f} s ({workers} worker"
        f"{'s' if workers > 1 else ''}, {nproc} process{'es' if nproc > 1 else ''}"
        f"{f', {rounds} rounds' if rounds > 1 else ''}); {compiles.summary()}")
    return config.consolidate(rows, out if pid == 0 else None, plot=plot and pid == 0, log=log,
                              stats=stats)


def refuse_unstored_folder(out, config) -> None:
    """``ValueError`` when ``out`` holds ``config.result_file`` but no store (``config.json``):
    the results of an older version of the command, which cannot be resumed."""
    marker = config.result_file
    if not marker or not os.path.exists(os.path.join(out, marker)):
        return
    if not os.path.exists(os.path.join(out, "config.json")):
        raise ValueError(
            f"{out!r} holds a {marker} of an older {config.experiment} run (no config.json, no "
            f"{config.store_stem}-p<i>.jsonl): it cannot be resumed. Choose another output "
            "folder (--out), move it away, or pass --overwrite (overwrite=True) to recompute "
            "into it.")


def _run_rounds(config, store, workers, local, log, pid, nproc, h):
    """The driver's rounds (see :func:`run_experiment`). Returns ``(order, ran, rounds)``:
    ``{unit key: row or None}`` of every unit asked for, in the order first asked; the number of
    units run in this process; the number of rounds that ran units."""
    known = {store.key(r): r for r in store.rows()}
    order: dict = {}
    lock = threading.Lock()
    ran = rounds = 0
    while True:
        wanted = list(config.next_units(known))
        keys = [unit_key(u) for u in wanted]
        if len(set(keys)) != len(keys):
            raise ValueError(f"{type(config).__name__}.next_units() lists a unit twice: {wanted}.")
        for k in keys:
            order.setdefault(k, None)
        pending = [u for u, k in zip(wanted, keys) if k not in known]
        if rounds == 0 and len(wanted) > len(pending):
            log(f"{len(wanted) - len(pending)} of {len(wanted)} units finished earlier (read from "
                f"{store.directory})")
        if not pending:
            break
        mine = pending[pid::nproc]
        new = _run_units(config, mine, store, lock, workers, local, log, first_alone=ran == 0)
        ran += len(mine)
        barrier(f"jscore-{config.experiment}-round{rounds}-{h}")
        rounds += 1
        if nproc > 1:  # the other processes' rows of this round
            known = {store.key(r): r for r in store.rows()}
        else:
            known.update((store.key(r), r) for r in new)
    for k in order:
        order[k] = known.get(k)
    return order, ran, rounds


def _gather_stats(stats: dict, nproc: int) -> list:
    """Every process's units run, compilations, compile and wall seconds (an all-gather of jax's
    multi-host utilities; this process's alone in a single process)."""
    names = ("units_run_here", "compilations", "compile_s", "seconds")
    mine = [float(stats.get(n, 0.0)) for n in names]
    if nproc == 1:
        rows = [mine]
    else:
        import numpy as np
        from jax.experimental import multihost_utils

        rows = np.asarray(multihost_utils.process_allgather(np.asarray(mine))).reshape(nproc, -1)
        rows = rows.tolist()
    return [{"process_index": i, **{n: (int(v) if n in ("units_run_here", "compilations") else v)
                                    for n, v in zip(names, r)}} for i, r in enumerate(rows)]


def _run_units(config, units, store, lock, workers, local, log, *, first_alone=False) -> list:
    """Run ``units`` on ``workers`` threads; each finished row is appended (under ``lock``) and
    its buffered log lines printed together, the first numbered ``[k/len(units)]``. Returns the
    rows. ``first_alone``: run the first unit before starting the others (the run's first unit:
    the programs the units share then compile once, with every core, instead of once per thread
    at the same time)."""
    import jax

    if not units:
        return []
    finished = [0]

    def one(i_unit):
        i, unit = i_unit
        lines = []
        if config.shards_over_devices:
            _unit_context.devices = list(local)
            row = config.run_unit(unit, log=lines.append)
        else:
            device = local[i % workers % len(local)]
            _unit_context.devices = [device]
            with jax.default_device(device):
                row = config.run_unit(unit, log=lines.append)
        if not isinstance(row, dict):
            raise TypeError(f"{type(config).__name__}.run_unit must return a dict, got "
                            f"{type(row).__name__}.")
        row = {**row, "unit": unit}
        with lock:
            store.append(row)
            finished[0] += 1
            for j, line in enumerate(lines):
                log(f"[{finished[0]}/{len(units)}] {line}" if j == 0 else line)
        return row

    if workers == 1 or len(units) == 1:
        return [one(item) for item in enumerate(units)]
    items = list(enumerate(units))
    done = [one(items.pop(0))] if first_alone else []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="jscore-unit") as pool:
        return done + list(pool.map(one, items))  # re-raises a unit's error here


# ----------------------------------------------------------------------------- the registry
@dataclasses.dataclass(frozen=True)
class Experiment:
    """One kind of experiment that :func:`jscore.sweep` and ``jscore sweep`` run.

    - ``name``: its ``experiment = "<name>"`` in TOML; ``spec_type``: its frozen config class
      (with ``name``, ``replace(**fields)`` and ``to_toml()``).
    - ``from_dict(data)``: the spec from a TOML table (``data`` may still hold ``experiment``).
    - ``run(spec, *, out, devices, quiet, resume, overwrite, cache_dir, plot, dry_run)``: run it
      resumably into ``out`` and return its result (``dry_run``: validate and return the plan).
    - ``cli_overrides``: the ``jscore sweep`` override flags it accepts (``"dims"``, ``"seeds"``,
      ``"chunk"``); ``legend``: text printed before its result table.
    """

    name: str
    spec_type: type
    from_dict: Callable
    run: Callable | None = None
    cli_overrides: tuple = ("dims",)
    legend: str = ""


#: ``experiment = "<name>"`` -> its :class:`Experiment`. Experiments defined in modules above this
#: one register here (``jscore.sweeps`` registers ``"samplers"`` and ``"lowerbound"``), so this
#: module never imports them.
EXPERIMENTS: dict = {}


def register_experiment(name: str, from_dict, *, spec_type: type | None = None, run=None,
                        cli_overrides=("dims",), legend: str = "") -> Experiment:
    """Register an :class:`Experiment`: :func:`load_spec` builds ``experiment = name`` files with
    ``from_dict(data)``, and :func:`jscore.sweep` runs specs of ``spec_type`` with ``run``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_experiment: name must be a non-empty string, got {name!r}")
    if not callable(from_dict):
        raise TypeError(f"register_experiment: from_dict must be callable, got {from_dict!r}")
    if run is not None and not callable(run):
        raise TypeError(f"register_experiment: run must be callable or None, got {run!r}")
    entry = Experiment(name, spec_type, from_dict, run, tuple(cli_overrides), legend)
    EXPERIMENTS[name] = entry
    return entry


def experiment_of(spec) -> Experiment:
    """The registered :class:`Experiment` whose ``spec_type`` ``spec`` is an instance of (the
    most derived one); ``TypeError`` naming the registered types otherwise."""
    for cls in type(spec).__mro__:
        for entry in EXPERIMENTS.values():
            if entry.spec_type is cls:
                return entry
    known = ", ".join(f"{e.spec_type.__name__} ({e.name})" for e in EXPERIMENTS.values() if e.spec_type)
    raise TypeError(f"`spec` must be a sweep spec of a registered experiment ({known}), a dict of "
                    f"its fields or a TOML path; got {type(spec).__name__}.")




def register_unit_experiment(cls, *, legend: str = "", cli_overrides=("dims",)):
    """Register the :class:`UnitExperiment` subclass ``cls`` under ``cls.experiment``, so
    ``js.sweep(cls(...))``, TOML files with ``experiment = "<name>"`` and ``jscore sweep`` run it
    through :func:`run_experiment`."""
    if not (isinstance(cls, type) and issubclass(cls, UnitExperiment)) or not cls.experiment:
        raise TypeError(f"register_unit_experiment: {cls!r} must be a UnitExperiment subclass "
                        "with a non-empty `experiment` name.")

    def run(spec, *, out=None, devices=None, quiet=False, resume="auto", overwrite=False,
            cache_dir="default", plot=True, dry_run=False, workers=None):
        from ..compiles import setup_compilation_cache

        if dry_run:  # validated; its describe() is the plan in words
            return spec.preflight()
        setup_compilation_cache(cache_dir)
        return run_experiment(spec, out=out, resume=resume, overwrite=overwrite, quiet=quiet,
                              plot=plot, workers=workers, devices=devices)

    return register_experiment(cls.experiment, cls.from_dict, spec_type=cls, run=run,
                               cli_overrides=tuple(cli_overrides), legend=legend)


@dataclasses.dataclass
class ExperimentResult:
    """A generic result of :meth:`UnitExperiment.consolidate`: ``out`` (None where this process
    wrote nothing), ``config``, ``rows`` (one per unit), ``results`` (the consolidated data),
    ``files`` written, ``text`` (the table printed by ``jscore sweep``), ``complete``."""

    out: str | None
    config: Any
    rows: list
    results: dict
    files: list
    text: str = ""
    complete: bool = True

    def table(self) -> str:
        return self.text


__all__ = [
    "EXPERIMENTS",
    "Experiment",
    "REQUIRED",
    "ExperimentResult",
    "UnitExperiment",
    "add_config_flags",
    "config_flag_names",
    "config_from_args",
    "experiment_of",
    "option",
    "register_experiment",
    "register_unit_experiment",
    "run_experiment",
    "unit_devices",
    "unit_key",
]
