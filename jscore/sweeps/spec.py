"""Sweep specifications: what to run, parsed from TOML or built in Python, validated before compute.

A sweep is the product ``targets x oracles x samplers x schedules`` (one *cell* per combination),
run at every dimension in ``dims`` on every seed in ``seeds``, at a ladder of query budgets
(``budgets``) and/or with a search for the smallest budget reaching an error (``qstar``).

Component strings use ``name:key=value,key=value`` (``"noisy:eps=0.01"``, ``"heun:s_churn=40"``,
``"karras:sigma_min=0.002,sigma_max=80"``); TOML tables ``{name = "noisy", eps = 0.01}`` are
equivalent. Integer lists use ``0-63,100,200-299`` plus ``a-b:pow2`` (powers of two in [a, b]),
``a-b:xK`` (a, aK, aK^2, ... <= b) and ``a-b:+K`` (step K).

Every mistake (unknown names, bad ranges, impossible combinations such as the ``kl_affine`` metric
with a stochastic sampler) raises ``ValueError``/``TypeError`` from :func:`validate`, before any
compilation.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import tomllib
from dataclasses import dataclass

from .._checks import parse_scalar
from ..config import toml_dumps
from .protocol import EXPERIMENTS, Experiment, UnitExperiment, experiment_of, register_experiment

# ----------------------------------------------------------------------------- integer lists


def _parse_int(tok: str, what: str, text: str) -> int:
    try:
        return int(tok)
    except ValueError:
        raise ValueError(
            f"`{what}`: {tok!r} in {text!r} is not an integer; use the grammar "
            "'0-63,100,200-299', 'a-b:pow2', 'a-b:xK' or 'a-b:+K'."
        ) from None


def parse_int_list(text, what: str = "list", *, allow_duplicates: bool = False) -> list[int]:
    """Parse ``"0-63,100,200-299"``, ``"16-65536:pow2"``, ``"16-4096:x4"``, ``"0-100:+10"``.

    Also accepts an int or a list of ints/strings. Returns the values in order of appearance;
    duplicates raise ``ValueError`` unless ``allow_duplicates``. Negative values are rejected.
    """
    if isinstance(text, bool):
        raise TypeError(f"`{what}` must be an int list, got {text!r}.")
    if isinstance(text, numbers.Integral):
        items = [str(int(text))]
    elif isinstance(text, (list, tuple, range)):
        out: list[int] = []
        for t in text:
            out += parse_int_list(t, what, allow_duplicates=True)
        items = None
    elif isinstance(text, str):
        items = [t.strip() for t in text.split(",")]
    else:
        raise TypeError(f"`{what}` must be a string like '0-63,100' or a list of ints, got {text!r}.")
    if items is not None:
        if not items or any(t == "" for t in items):
            raise ValueError(f"`{what}` = {text!r} has an empty item; e.g. '0-63,100,200-299'.")
        out = []
        for item in items:
            rng, _, mod = item.partition(":")
            if "-" in rng.lstrip("-"):
                a_s, b_s = rng.split("-", 1)
                a, b = _parse_int(a_s, what, text), _parse_int(b_s, what, text)
                if a > b:
                    raise ValueError(f"`{what}`: range {item!r} runs backwards ({a} > {b}); write '{b}-{a}'.")
            else:
                if mod:
                    raise ValueError(f"`{what}`: {item!r} has a modifier but no range 'a-b'.")
                a = b = _parse_int(rng, what, text)
            if a < 0:
                raise ValueError(f"`{what}`: values must be >= 0, got {a} in {text!r}.")
            if not mod:
                out += list(range(a, b + 1))
            elif mod == "pow2":
                vals = [2**k for k in range(0, 63) if a <= 2**k <= b]
                if not vals:
                    raise ValueError(f"`{what}`: {item!r} contains no power of two.")
                out += vals
            elif mod.startswith("x"):
                k = _parse_int(mod[1:], what, text)
                if k < 2 or a < 1:
                    raise ValueError(f"`{what}`: {item!r} needs a factor K >= 2 and a start >= 1.")
                v = a
                while v <= b:
                    out.append(v)
                    v *= k
            elif mod.startswith("+"):
                k = _parse_int(mod[1:], what, text)
                if k < 1:
                    raise ValueError(f"`{what}`: step in {item!r} must be >= 1.")
                out += list(range(a, b + 1, k))
            else:
                raise ValueError(
                    f"`{what}`: unknown modifier {mod!r} in {item!r}; use ':pow2', ':xK' or ':+K'."
                )
    if not out:
        raise ValueError(f"`{what}` is empty.")
    if not allow_duplicates:
        seen = set()
        for v in out:
            if v in seen:
                raise ValueError(f"`{what}`: {v} is listed twice in {text!r}.")
            seen.add(v)
    return out


# ----------------------------------------------------------------------------- components


@dataclass(frozen=True)
class Component:
    """A named target, oracle, sampler or schedule with keyword parameters."""

    name: str
    params: tuple = ()

    @classmethod
    def parse(cls, obj, what: str) -> "Component":
        """Parse ``"name:key=value,..."`` or a table ``{name = ..., key = value}`` (``what`` names the field in errors)."""
        if isinstance(obj, Component):
            return obj
        if isinstance(obj, str):
            name, _, rest = obj.partition(":")
            params = {}
            if rest.strip():
                for kv in rest.split(","):
                    k, eq, v = kv.partition("=")
                    if not eq or not k.strip():
                        raise ValueError(
                            f"`{what}`: cannot read {kv!r} in {obj!r}; write 'name:key=value,key=value'."
                        )
                    params[k.strip()] = parse_scalar(v)
            return cls(name.strip().lower(), tuple(sorted(params.items())))
        if isinstance(obj, dict):
            if "name" not in obj:
                raise ValueError(f"`{what}`: the table {obj!r} needs a `name` key.")
            params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in obj.items() if k != "name"}
            for k, v in params.items():
                if isinstance(v, list):
                    params[k] = tuple(v)
            return cls(str(obj["name"]).lower(), tuple(sorted(params.items())))
        raise TypeError(f"`{what}` entries must be strings 'name:k=v' or tables, got {obj!r}.")

    @property
    def kwargs(self) -> dict:
        """The options as a dict (tuples back to lists), ready to pass to the factory."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.params}

    @property
    def label(self) -> str:
        """The canonical ``name:key=value,...`` string (options sorted)."""
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in self.params)

    def to_json(self) -> dict:
        """``{"name": ..., **options}`` (the TOML table form)."""
        return {"name": self.name, **self.kwargs}


def _components(value, what: str) -> tuple:
    if value is None:
        raise ValueError(f"`{what}` must list at least one entry.")
    if isinstance(value, (str, dict, Component)):
        value = [value]
    comps = tuple(Component.parse(v, what) for v in value)
    if not comps:
        raise ValueError(f"`{what}` must list at least one entry.")
    labels = [c.label for c in comps]
    dup = {x for x in labels if labels.count(x) > 1}
    if dup:
        raise ValueError(f"`{what}` lists {sorted(dup)} more than once.")
    return comps


@dataclass(frozen=True)
class QStarSpec:
    """Search for Q*: the smallest query budget whose error ``metric`` is <= ``target``.

    ``search = "bisect"`` bisects over step counts in ``steps`` = ``[lo, hi]`` (both ends are
    evaluated first; Q* is censored if ``lo`` already passes or ``hi`` fails); ``"ladder"`` uses
    the sweep's ``budgets``/``steps`` ladder. Errors are assumed to decrease with the budget.
    """

    metric: str
    target: float
    search: str = "bisect"
    steps: tuple = (1, 1024)

    @classmethod
    def parse(cls, obj) -> "QStarSpec | None":
        """Build from a table ``{metric, target, search, steps}`` (``None`` passes through)."""
        if obj is None or isinstance(obj, QStarSpec):
            return obj
        if not isinstance(obj, dict):
            raise TypeError(f"`qstar` must be a table {{metric=..., target=...}}, got {obj!r}.")
        unknown = set(obj) - {"metric", "target", "search", "steps"}
        if unknown:
            raise ValueError(f"`qstar` has unknown keys {sorted(unknown)}; allowed: metric, target, search, steps.")
        if "metric" not in obj or "target" not in obj:
            raise ValueError("`qstar` needs `metric` (e.g. 'kl') and `target` (an error level, e.g. 0.05).")
        steps = obj.get("steps", (1, 1024))
        if isinstance(steps, str):
            steps = tuple(int(s) for s in steps.split("-")) if "-" in steps else (int(steps),)
        return cls(str(obj["metric"]), float(obj["target"]), str(obj.get("search", "bisect")), tuple(steps))


SEARCHES = ("bisect", "ladder")
DIMS_MODES = ("auto", "bucket", "exact")
GRID_MODES = ("auto", "pow2", "max", "exact")


@dataclass(frozen=True)
class SweepSpec(UnitExperiment):
    """A sweep: cells = targets x oracles x samplers x schedules, at every d and seed; the
    ``"samplers"`` experiment of the unit protocol (units, rounds and rows:
    :mod:`jscore.sweeps.sampler_sweep`).

    **Fields:**
    - ``targets``, ``oracles``, ``samplers``, ``schedules``: component strings or tables.
    - ``dims``: dimensions, e.g. ``"16-65536:pow2"``; ``seeds``: e.g. ``"0-4095"`` (seed i uses
      ``fold_in(jax.random.key(key), i)``, as ``js.sample`` does for chain i).
    - ``budgets``: query budgets (each becomes the largest step count N whose exact cost fits);
      or ``steps``: step counts directly. Either, both or neither (then ``qstar`` must search).
    - ``metrics``: error metrics computed per seed chunk (see :mod:`jscore.sweeps.measures`).
    - ``qstar``: optional :class:`QStarSpec`.
    - ``chunk``: seeds per compiled call (bounds memory; rows are written per chunk).
    - ``dims_mode``: ``"auto"`` (pad to powers of two with masks when it saves compilations and
      the waste is cheaper than compiling), ``"bucket"`` or ``"exact"`` (one compile per d).
    - ``grid_mode``: padding of step counts inside one compiled grid length: ``"auto"``,
      ``"pow2"``, ``"max"`` (one grid length per sampler: the largest) or ``"exact"``.
    - ``bootstrap``: resamples for confidence intervals; ``ci``: their level.
    """

    samplers: tuple
    dims: tuple
    seeds: tuple = tuple(range(64))
    targets: tuple = (Component("gaussian"),)
    oracles: tuple = (Component("exact"),)
    schedules: tuple = (Component("karras"),)
    budgets: tuple | None = None
    steps: tuple | None = None
    metrics: tuple = ("kl",)
    qstar: QStarSpec | None = None
    chunk: int = 256
    key: int = 0
    dims_mode: str = "auto"
    grid_mode: str = "auto"
    bootstrap: int = 1000
    ci: float = 0.95
    name: str = "sweep"

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("targets", _components(self.targets, "targets"))
        set_("oracles", _components(self.oracles, "oracles"))
        set_("samplers", _components(self.samplers, "samplers"))
        set_("schedules", _components(self.schedules, "schedules"))
        dims = tuple(sorted(set(parse_int_list(self.dims, "dims"))))
        if dims[0] < 1:
            raise ValueError(f"`dims` must be >= 1, got {dims[0]}.")
        set_("dims", dims)
        set_("seeds", tuple(parse_int_list(self.seeds, "seeds")))
        if max(self.seeds) >= 2**32:
            raise ValueError("`seeds` must be < 2**32 (they are folded into the key as uint32).")
        for nm in ("budgets", "steps"):
            v = getattr(self, nm)
            if v is not None:
                vals = tuple(sorted(set(parse_int_list(v, nm))))
                if vals[0] < 1:
                    raise ValueError(f"`{nm}` must be >= 1, got {vals[0]}.")
                set_(nm, vals)
        if isinstance(self.metrics, str):
            set_("metrics", (self.metrics,))
        set_("metrics", tuple(str(m) for m in self.metrics))
        set_("qstar", QStarSpec.parse(self.qstar if not isinstance(self.qstar, dict) else dict(self.qstar)))
        for nm in ("chunk", "key", "bootstrap"):
            v = getattr(self, nm)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError(f"`{nm}` must be an int, got {v!r}.")
        if self.chunk < 1:
            raise ValueError(f"`chunk` must be >= 1, got {self.chunk}.")
        if self.bootstrap < 0:
            raise ValueError(f"`bootstrap` must be >= 0, got {self.bootstrap}.")
        if not (0 < float(self.ci) < 1):
            raise ValueError(f"`ci` must lie in (0, 1), got {self.ci}.")
        if self.dims_mode not in DIMS_MODES:
            raise ValueError(f"Unknown `dims_mode`={self.dims_mode!r}; choose one of {DIMS_MODES}.")
        if self.grid_mode not in GRID_MODES:
            raise ValueError(f"Unknown `grid_mode`={self.grid_mode!r}; choose one of {GRID_MODES}.")
        q = self.qstar
        if q is not None:
            if q.search not in SEARCHES:
                raise ValueError(f"Unknown `qstar.search`={q.search!r}; choose one of {SEARCHES}.")
            if not (q.target > 0 and math.isfinite(q.target)):
                raise ValueError(f"`qstar.target` must be a positive error level, got {q.target}.")
            if q.search == "bisect":
                if len(q.steps) != 2 or not (1 <= q.steps[0] < q.steps[1]):
                    raise ValueError(
                        f"`qstar.steps` must be a bracket 'lo-hi' of step counts with 1 <= lo < hi, got {q.steps}."
                    )
            elif self.budgets is None and self.steps is None:
                raise ValueError("`qstar.search = 'ladder'` needs `budgets` or `steps` in the sweep.")
            if q.metric not in self.metrics:
                set_("metrics", self.metrics + (q.metric,))
        if self.budgets is None and self.steps is None and q is None:
            raise ValueError(
                "Nothing to run: give `budgets` (query budgets), `steps` (step counts) or a "
                "`qstar` table (a search for the budget reaching a target error)."
            )

    # ------------------------------------------------------------------ serialisation
    def to_json(self) -> dict:
        """The spec as plain JSON types (what ``config.json`` stores and the config hash covers)."""
        d = {
            "name": self.name,
            "targets": [c.to_json() for c in self.targets],
            "oracles": [c.to_json() for c in self.oracles],
            "samplers": [c.to_json() for c in self.samplers],
            "schedules": [c.to_json() for c in self.schedules],
            "dims": list(self.dims),
            "seeds": _compress(self.seeds),
            "budgets": None if self.budgets is None else list(self.budgets),
            "steps": None if self.steps is None else list(self.steps),
            "metrics": list(self.metrics),
            "qstar": None if self.qstar is None else dataclasses.asdict(self.qstar),
            "chunk": self.chunk,
            "key": self.key,
            "dims_mode": self.dims_mode,
            "grid_mode": self.grid_mode,
            "bootstrap": self.bootstrap,
            "ci": self.ci,
        }
        if d["qstar"] is not None:
            d["qstar"]["steps"] = list(d["qstar"]["steps"])
        return d


    def to_toml(self) -> str:
        """The spec as TOML that :func:`load_spec` reads back to an equal spec (:func:`spec_to_toml`)."""
        return spec_to_toml(self)

    # ------------------------------------------------------------------ the unit protocol
    experiment = "samplers"
    store_stem = "rows"  # rows-p<i>.jsonl, as before the protocol: old run folders resume
    config_flags = False  # nested component tables: TOML, plus the --dims/--seeds/--chunk overrides
    shards_over_devices = True  # a unit shards its seed chunk over every local device

    def to_dict(self) -> dict:
        return self.to_json()

    def identity(self) -> dict:
        """What the rows depend on (the config hash's input): the spec less the analysis-only
        ``bootstrap`` and ``ci``."""
        return {k: v for k, v in self.to_json().items() if k not in ("bootstrap", "ci")}

    def store_payload(self) -> dict:
        return {"spec": self.to_json()}

    @classmethod
    def from_dict(cls, data: dict) -> "SweepSpec":
        """The spec from a TOML table (an ``experiment = "samplers"`` key is allowed)."""
        data = dict(data)
        exp = data.pop("experiment", cls.experiment)
        if exp != cls.experiment:
            raise ValueError(f"experiment = {exp!r} is not the {cls.experiment!r} experiment.")
        return spec_from_dict(data)

    def preflight(self):
        """The validated :class:`~jscore.sweeps.engine.Plan` (``plan.describe()``)."""
        from .sampler_sweep import plan_of

        return plan_of(self)

    def describe(self) -> str:
        return self.preflight().describe()

    def units(self) -> list:
        """The first units ``[cell_id, d, num_steps, chunk]``: the ladders and the first
        bisection ends."""
        return self.next_units({})

    def next_units(self, rows: dict) -> list:
        from .sampler_sweep import next_units

        return next_units(self, rows)

    def unit_of(self, row: dict):
        from .sampler_sweep import row_unit

        return row_unit(row)

    def run_unit(self, unit, *, log=print) -> dict:
        from .sampler_sweep import run_unit

        return run_unit(self, unit, log=log)

    def consolidate(self, rows, out, *, plot=True, log=print, stats=None):
        from .sampler_sweep import consolidate

        return consolidate(self, rows, out, plot=plot, stats=stats)


def _compress(vals) -> str:
    """Inverse of :func:`parse_int_list` for plain ranges: ``[0,1,2,5]`` -> ``"0-2,5"``."""
    parts, start, prev = [], None, None
    for v in vals:
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            parts.append(f"{start}-{prev}" if prev != start else f"{start}")
            start = prev = v
    parts.append(f"{start}-{prev}" if prev != start else f"{start}")
    return ",".join(parts)


_FIELDS = {f.name for f in dataclasses.fields(SweepSpec)}


def spec_from_dict(d: dict) -> SweepSpec:
    """Build a :class:`SweepSpec` from a dict (as read from TOML); unknown keys raise."""
    d = dict(d)
    unknown = set(d) - _FIELDS
    if unknown:
        raise ValueError(
            f"Unknown sweep keys {sorted(unknown)}; allowed: {', '.join(sorted(_FIELDS))}."
        )
    if "samplers" not in d or "dims" not in d:
        raise ValueError("A sweep needs at least `samplers` and `dims`.")
    return SweepSpec(**d)


def load_spec(path_or_text):
    """Read a TOML sweep file (a path, or TOML text containing a newline).

    Returns a :class:`SweepSpec`, or a :class:`~jscore.sweeps.lowerbound.LowerBoundSweep` when the
    file says ``experiment = "lowerbound"``.
    """
    text = str(path_or_text)
    if "\n" not in text and "=" not in text:
        try:
            with open(text, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ValueError(f"Sweep config {text!r} does not exist.") from None
        except OSError as e:  # a directory, unreadable, ...
            raise ValueError(f"Sweep config {text!r} cannot be read ({e.strerror or e}); pass a "
                             "TOML file or a built-in name.") from None
    else:
        data = tomllib.loads(text)
    # allow a [sweep] table or top-level keys
    if set(data) == {"sweep"}:
        data = data["sweep"]
    experiment = data.get("experiment", "samplers")
    if experiment not in EXPERIMENTS:
        known = ", ".join(repr(k) for k in EXPERIMENTS)
        raise ValueError(f"Unknown experiment {experiment!r}; use one of {known} ('samplers', the default: "
                         "a sampler x target x oracle sweep; 'lowerbound': the sqrt(d) sweep).")
    return EXPERIMENTS[experiment].from_dict(data)


__all__ = [
    "Component",
    "EXPERIMENTS",
    "Experiment",
    "QStarSpec",
    "SweepSpec",
    "load_spec",
    "parse_int_list",
    "experiment_of",
    "register_experiment",
    "spec_from_dict",
    "toml_dumps",
]


def spec_to_toml(spec: SweepSpec) -> str:
    """The spec as a TOML document that :func:`load_spec` reads back to an equal spec."""
    d = spec.to_json()
    for k in ("targets", "oracles", "samplers", "schedules"):
        d[k] = [c.label for c in getattr(spec, k)]
    return toml_dumps(d, f"jscore sweep spec (config hash {spec.config_hash})")
