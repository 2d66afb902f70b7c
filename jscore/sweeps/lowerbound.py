"""The lower-bound sweep as a sweep spec: the default configuration of ``jscore sweep``.

:class:`LowerBoundSweep` holds the arguments of :func:`jscore.lowerbound.scaling` (the sqrt(d)
experiment of docs/construction.md §6 and §8: window width, window count ``N(d)``, ``K*(d)`` per
sampler family with random log-offsets, the optimal adaptive searcher and the two controls, for
d = 1e2 ... 1e6 without a codebook). ``js.sweep(LowerBoundSweep(...), out=...)`` runs it
resumably; in TOML it is a file with ``experiment = "lowerbound"``. Every sampler row carries
``kstar_lo`` and ``kstar_hi`` (the levels at which the upper and the lower side of P(some answer
is informative) reach 1/2; a necessary condition for success, not success) with Monte-Carlo
intervals over independent replicates (docs/certified_bound.md)::

    experiment = "lowerbound"
    dims = [100, 400, 1600, 6400, 25600, 102400, 409600, 1000000]
    samplers = ["euler", "euler_ancestral", "heun"]
    eps = "1/d"
    schedule = "geometric"   # or "karras:7", "edm", "vp_linear", "cosine", "uniform"

Every field has the default of :func:`jscore.lowerbound.scaling`; unknown keys raise.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import time

from ..lowerbound.grids import resolve_schedule
from ..lowerbound.scaling import (
    DEFAULT_DIMS,
    DEFAULT_SAMPLERS,
    check_samplers,
    eps_value,
    format_table,
    scaling,
)
from ..store import atomic_write
from .spec import parse_int_list, toml_dumps

EXPERIMENT = "lowerbound"


@dataclasses.dataclass(frozen=True)
class LowerBoundSweep:
    """Spec of the codebook-free sqrt(d) sweep (see :func:`jscore.lowerbound.scaling`).

    ``dims``: dimensions (ints >= 2, any order, no repeats; the parse grammar of
    :func:`parse_int_list` is accepted); ``samplers``: sampler names: the scalar-form ones
    (``euler``, ``ddim``, ``euler_ancestral``, ``euler_maruyama``, ``heun``, ``dpmpp_2m``,
    ``randomized_midpoint``) or any catalogue name with options (``"heun:s_churn=40"``,
    ``"unipc"``: the full-vector path where there is no scalar reduction; a data-dependent one
    needs ``max_queries``); ``schedule``: the level family (``"geometric"`` with a random
    log-offset, ``"karras:7"``, ``"edm"``, ``"vp_linear"``, ``"cosine"``, ``"uniform"``) and
    ``n_scales`` the hidden-scale positions of the worst case; ``p`` >= 1 and ``eps`` (``"1/d"``, ``"1/sqrt(d)"``, ``"1/d^2"`` or a
    positive number) define the accuracy; ``rate`` is the rate of the window table and
    ``[rate_lo, rate_hi]`` with ``n_rates`` points the rate grid of ``N``, ``K*`` and the
    searcher; ``n_xi`` reference-norm draws per profile; ``n_offsets`` (log-offset, rate) points
    of each replicate's shifted lattice and ``n_reps`` independent replicates (the Monte-Carlo
    interval of ``K*_lo`` and ``K*_hi``); ``k_max`` the largest K tried; ``robustness`` adds the
    p x eps grid.
    """

    name: str = "lowerbound-sqrt-d"
    dims: tuple = DEFAULT_DIMS
    samplers: tuple = DEFAULT_SAMPLERS
    p: float = 2.0
    eps: str | float = "1/d"
    rate: float = 0.3
    rate_lo: float = 0.15
    rate_hi: float = 0.45
    n_rates: int = 9
    n_xi: int = 1000
    n_offsets: int = 64
    n_reps: int = 8
    k_max: int = 1024
    schedule: str = "geometric"
    n_scales: int = 8
    max_queries: int | None = None
    robustness: bool = False
    seed: int = 0

    def __post_init__(self):
        dims = tuple(parse_int_list(self.dims, "dims"))
        if min(dims) < 2:
            raise ValueError(f"`dims` must all be >= 2, got {min(dims)}.")
        object.__setattr__(self, "dims", dims)
        samplers = (self.samplers,) if isinstance(self.samplers, str) else tuple(self.samplers)
        if not samplers:
            raise ValueError("`samplers` is empty; name at least one, e.g. ['euler'].")
        for s in samplers:
            if not isinstance(s, str):
                raise TypeError(f"`samplers` must be names (strings), got {s!r}.")
        check_samplers(samplers, self.max_queries)  # ValueError naming the problem
        object.__setattr__(self, "samplers", samplers)
        if not isinstance(self.schedule, str):
            raise TypeError(f"`schedule` must be a family spec string such as 'karras:7', got "
                            f"{self.schedule!r}.")
        resolve_schedule(self.schedule)  # ValueError naming the known families
        if isinstance(self.eps, bool) or not isinstance(self.eps, (str, numbers.Real)):
            raise TypeError(f"`eps` must be a rule string or a number, got {self.eps!r}.")
        if isinstance(self.eps, str):
            eps_value(100.0, self.eps)
        elif not (0 < self.eps < 1):
            raise ValueError(f"`eps` must lie in (0, 1), got {self.eps}.")
        for f in ("p", "rate", "rate_lo", "rate_hi"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise TypeError(f"`{f}` must be a finite number, got {v!r}.")
            object.__setattr__(self, f, float(v))
        if self.p < 1:
            raise ValueError(f"`p` must be >= 1 (an L^p accuracy), got {self.p}.")
        if not (0 < self.rate_lo <= self.rate <= self.rate_hi < math.log(2) + 1):
            raise ValueError("rates must satisfy 0 < rate_lo <= rate <= rate_hi, got "
                             f"{self.rate_lo}, {self.rate}, {self.rate_hi}.")
        for f, lo in (("n_rates", 2), ("n_xi", 10), ("n_offsets", 1), ("n_reps", 2),
                      ("k_max", 2), ("seed", 0), ("n_scales", 1)):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
                raise ValueError(f"`{f}` must be an int >= {lo}, got {v!r}.")
        if not isinstance(self.robustness, bool):
            raise TypeError(f"`robustness` must be true or false, got {self.robustness!r}.")

    def kwargs(self) -> dict:
        """Keyword arguments of :func:`jscore.lowerbound.scaling`."""
        d = dataclasses.asdict(self)
        d.pop("name")
        d["dims"], d["samplers"] = list(self.dims), list(self.samplers)
        return d

    def replace(self, **kw) -> "LowerBoundSweep":
        """A copy with fields replaced (validated again)."""
        return dataclasses.replace(self, **kw)

    def to_toml(self) -> str:
        """The spec as TOML that :func:`jscore.sweeps.load_spec` reads back to an equal spec."""
        return toml_dumps({"experiment": EXPERIMENT, **dataclasses.asdict(self)},
                          "jscore lower-bound sweep (see the docs page 'Lower-bound sweep')")

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
                "resume per dimension.")


def lowerbound_from_dict(data: dict) -> LowerBoundSweep:
    """A :class:`LowerBoundSweep` from a dict (TOML keys), rejecting unknown keys."""
    data = dict(data)
    exp = data.pop("experiment", EXPERIMENT)
    if exp != EXPERIMENT:
        raise ValueError(f"experiment = {exp!r} is not the lower-bound sweep ({EXPERIMENT!r}).")
    fields = {f.name for f in dataclasses.fields(LowerBoundSweep)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ValueError(f"Unknown lower-bound sweep keys {unknown}; known: {sorted(fields)}.")
    return LowerBoundSweep(**data)


@dataclasses.dataclass
class LowerBoundSweepResult:
    """What ``js.sweep(LowerBoundSweep(...))`` returns: ``results`` is the dict of
    :func:`jscore.lowerbound.scaling` (``rows`` per d, ``fits`` with slopes and CIs), ``files`` the
    paths written under ``out``."""

    out: str
    spec: LowerBoundSweep
    results: dict
    files: list
    complete: bool = True

    @property
    def rows(self) -> list:
        return self.results["rows"]

    def table(self) -> str:
        return format_table(self.results)


def run_lowerbound(spec: LowerBoundSweep, *, out=None, resume="auto", overwrite=False,
                   quiet=False, plot=True, log=None) -> LowerBoundSweepResult:
    """Run ``spec`` into ``out`` (default ``jscore-sweep-<name>``); see :func:`jscore.sweep`."""
    out = out or f"jscore-sweep-{spec.name}"
    bar = None
    if log is None:
        import sys

        from tqdm.auto import tqdm

        per_d = 1 + len(spec.samplers)  # the window/N/K*ideal part, then one per sampler
        bar = tqdm(total=len(spec.dims) * per_d, desc="lower-bound sweep", unit="part",
                   disable=quiet, file=sys.stderr)

        def log(msg):
            if quiet:
                return
            bar.write(msg, file=sys.stderr)
            if msg.startswith("d="):  # a dimension's first part, or all of it read back from disk
                bar.update(per_d if "finished earlier" in msg else 1)
            elif msg.startswith("    ") and "K*=" in msg:  # one sampler of this dimension
                bar.update(1)

    t0 = time.time()
    try:
        results = scaling(**spec.kwargs(), out_dir=out, resume=resume, overwrite=overwrite,
                          plot=plot, log=log)
    finally:
        if bar is not None:
            bar.close()
    atomic_write(os.path.join(out, "table.txt"), format_table(results) + "\n")
    files = [os.path.join(out, f) for f in ("scaling.json", "scaling.csv", "scaling.png",
                                            "scaling.pdf", "table.txt")]
    log(f"lower-bound sweep finished in {time.time() - t0:.0f} s")
    return LowerBoundSweepResult(out=out, spec=spec, results=results,
                                 files=[f for f in files if os.path.exists(f)])


__all__ = ["LowerBoundSweep", "LowerBoundSweepResult", "lowerbound_from_dict", "run_lowerbound"]
