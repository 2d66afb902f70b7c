"""The configuration of the sqrt(d) scaling sweep: :class:`ScalingConfig`, the one place its
defaults, help texts and checks live.

:func:`jscore.lowerbound.scaling` builds one from its keyword arguments and computes in memory;
the experiment layer's :class:`jscore.sweeps.LowerBoundSweep` subclasses it (TOML, ``jscore
sweep`` and ``jscore lowerbound scale`` flags are generated from these fields). Every check
raises ``ValueError``/``TypeError`` naming the field, the value and a fix, before any compute.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

from ..config import option
from .general import has_scalar_reduction, resolve_sampler
from .grids import resolve_schedule
from .scalar import scalar_spec

DEFAULT_DIMS = (100, 400, 1600, 6400, 25600, 102400, 409600, 1000000)
DEFAULT_SAMPLERS = ("euler", "euler_ancestral", "heun")
ALL_SAMPLERS = (
    "euler",
    "euler_ancestral",
    "euler_maruyama",
    "heun",
    "dpmpp_2m",
    "randomized_midpoint",
)


def eps_value(d: float, rule) -> float:
    """``eps`` at dimension ``d`` from a rule (``"1/d"``, ``"1/sqrt(d)"``, ``"1/d^2"``), a number,
    or a number written as text (``"1e-4"``, ``"1/12288"``; spaces ignored)."""
    if isinstance(rule, (int, float)):
        return float(rule)
    rules = {"1/d": 1.0 / d, "1/sqrt(d)": d**-0.5, "1/d^2": d**-2.0, "1/d^1/2": d**-0.5}
    text = str(rule).replace(" ", "")
    if text in rules:
        return rules[text]
    num, slash, den = text.partition("/")
    try:
        return float(num) / float(den) if slash else float(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"Unknown eps rule {rule!r}; use one of {', '.join(rules)} or a number "
                         "(e.g. 1e-4 or 1/12288).") from None


def _plain_scalar_name(sampler) -> bool:
    """A name of the scalar table of :func:`~jscore.lowerbound.scalar.scalar_spec` (no options)."""
    if not isinstance(sampler, str) or ":" in sampler:
        return False
    try:
        scalar_spec(sampler)
    except ValueError:
        return False
    return True


def sampler_labels(samplers) -> list:
    """Result keys of ``samplers``: names as given, an instance by its class name (``#i`` added
    when two coincide)."""
    out = []
    for i, s in enumerate(samplers):
        lab = s.strip() if isinstance(s, str) else type(s).__name__
        out.append(lab if lab not in out else f"{lab}#{i}")
    return out


def check_samplers(samplers, max_queries=None):
    """Validate ``samplers`` before any compute: plain scalar names, catalogue names (with
    ``name:key=value`` options) or ``AbstractSampler`` instances; a data-dependent sampler
    without a scalar reduction needs ``max_queries``. Raises ValueError/TypeError."""
    if isinstance(samplers, str) or not len(samplers):
        raise ValueError(f"`samplers` must be a non-empty list of sampler names or instances, got "
                         f"{samplers!r}; e.g. ['euler', 'heun'].")
    if max_queries is not None and (isinstance(max_queries, bool) or not isinstance(
            max_queries, (int, np.integer)) or max_queries < 1):
        raise ValueError(f"`max_queries` must be None or an int >= 1, got {max_queries!r}.")
    for s in samplers:
        if _plain_scalar_name(s):
            continue
        try:
            inst = resolve_sampler(s)
        except (ValueError, TypeError) as e:
            raise type(e)(f"`samplers` entry {s!r}: {e}") from None
        if has_scalar_reduction(inst):
            continue
        caps = [inst.query_capacity(8, z) for z in (True, False)]
        if None in caps and max_queries is None:
            raise ValueError(f"sampler {s!r} makes a data-dependent number of queries and has no "
                             "scalar reduction: pass `max_queries` (--max-queries), the cap on "
                             "queries per chain.")


def split_names(text: str) -> list:
    """Comma-separated sampler names; ``name:key=value,key=value`` keeps its options together (an
    item with ``=`` and no ``:`` continues the previous name's options)."""
    out = []
    for v in (v.strip() for v in str(text).split(",")):
        if not v:
            continue
        if out and "=" in v and ":" not in v and ":" in out[-1]:
            out[-1] += "," + v
        else:
            out.append(v)
    return out


def _dims(value) -> tuple:
    """``dims`` as a tuple of ints: numbers (whole, ``1e2`` allowed) or comma-separated text."""
    if isinstance(value, str):
        try:
            value = [float(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"`dims` = {value!r} is not a comma-separated list of numbers; e.g. "
                             "dims = '100,1000,1e4'.") from None
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = [value]
    try:
        items = list(value)
    except TypeError:
        raise TypeError(f"`dims` must be a list of dimensions, got {value!r}; e.g. "
                        "dims = (100, 1000).") from None
    bad = [d for d in items if isinstance(d, bool) or not isinstance(d, numbers.Real)
           or not math.isfinite(d) or d != int(d) or not 2 <= d < 2**32]
    if not items or bad:
        raise ValueError(f"`dims` must be whole numbers >= 2 and < 2^32 (the PRNG stream of d is "
                         f"fold_in(key, d)), got {list(items) if not bad else bad}; e.g. "
                         "dims = (100, 1000, 10000).")
    dims = tuple(int(d) for d in items)
    twice = sorted({d for d in dims if dims.count(d) > 1})
    if twice:
        raise ValueError(f"`dims` lists {twice} twice (rows are per dimension); give each "
                         "dimension once.")
    return dims


def _set(obj, name, value):
    object.__setattr__(obj, name, value)


@dataclasses.dataclass(frozen=True)
class ScalingConfig:
    """Configuration of the codebook-free sqrt(d) sweep (:func:`jscore.lowerbound.scaling`).

    ``dims``: dimensions d (whole numbers in [2, 2^32), any order, no repeats); ``samplers``: the
    scalar-form names (``euler``, ``ddim``, ``euler_ancestral``, ``euler_maruyama``, ``heun``,
    ``dpmpp_2m``, ``randomized_midpoint``), catalogue names with options (``"heun:s_churn=40"``,
    ``"unipc"``: full vectors where there is no scalar reduction) or, in the lab only,
    ``AbstractSampler`` instances; ``schedule`` the level family and ``n_scales`` the hidden-scale
    positions of the worst case; ``p`` and ``eps`` the oracle's accuracy; ``rate`` the rate of the
    window table, ``[rate_lo, rate_hi]`` with ``n_rates`` points the rate grid of ``N``, ``K*`` and
    the searcher; ``n_xi`` reference-norm draws per profile; ``n_offsets`` (log-offset, rate)
    points of each replicate's lattice and ``n_reps`` replicates (the Monte-Carlo interval of
    ``K*``); ``k_max`` the largest K tried; ``robustness`` adds the p x eps window grid.
    """

    dims: tuple = option(DEFAULT_DIMS, "dimensions d, comma-separated (1e2 allowed)",
                         identity=False)
    samplers: tuple = option(
        DEFAULT_SAMPLERS, "sampler names: the scalar forms euler, ddim, euler_ancestral, "
        "euler_maruyama, heun, dpmpp_2m, randomized_midpoint, or any catalogue name with options "
        "(heun:s_churn=40, unipc, dpmpp_3m; full vectors where there is no scalar reduction)")
    p: float = option(2.0, "L^p exponent of the oracle's accuracy (>= 1)")
    eps: str | float = option("1/d", "accuracy rule: 1/d, 1/sqrt(d), 1/d^2 or a number in (0, 1)")
    rate: float = option(0.3, "hidden rate R of the window table")
    rate_lo: float = option(0.15, "lowest hidden rate of the grid")
    rate_hi: float = option(0.45, "highest hidden rate of the grid")
    n_rates: int = option(9, "rate grid size for N, K* and the searcher (>= 2)")
    n_xi: int = option(1000, "reference-norm draws per profile (>= 10)")
    n_offsets: int = option(64, "(log-offset, rate) points per replicate lattice (x2-x4 at small K)",
                            aliases=("--offsets",))
    n_reps: int = option(8, "independent replicates (randomly shifted lattices): the MC interval "
                         "of K* (>= 2)", aliases=("--reps",))
    k_max: int = option(1024, "largest number of levels tried (>= 2)")
    schedule: str = option(
        "geometric", "level family: geometric (random log-offset), karras[:rho], edm, vp_linear, "
        "cosine[:s], uniform; a fixed grid against a hidden scale log-uniform on [0.02, 20]")
    n_scales: int = option(8, "hidden-scale positions of the worst case K*_worst (>= 1)",
                           aliases=("--scales",))
    max_queries: int | None = option(None, "cap on queries per chain (data-dependent samplers on "
                                     "full vectors; default: none)", metavar="N")
    robustness: bool = option(False, "also the p x eps robustness grid of the window width",
                              identity=False)
    seed: int = option(0, "seed of norms, offsets and chains")

    def __post_init__(self):
        _set(self, "dims", _dims(self.dims))
        samplers = self.samplers
        if isinstance(samplers, str):
            samplers = split_names(samplers)
        samplers = tuple(samplers) if isinstance(samplers, (list, tuple)) else (samplers,)
        if not samplers:
            raise ValueError("`samplers` is empty; name at least one, e.g. samplers = ['euler'].")
        mq = self.max_queries
        if isinstance(mq, str):
            try:
                mq = int(mq)
            except ValueError:
                raise ValueError(f"`max_queries` must be an int >= 1, got {mq!r}; e.g. "
                                 "max_queries = 64.") from None
            _set(self, "max_queries", mq)
        check_samplers(samplers, mq)  # ValueError/TypeError naming the sampler
        _set(self, "samplers", samplers)
        if not isinstance(self.schedule, str):
            raise TypeError(f"`schedule` must be a family spec string such as 'karras:7', got "
                            f"{self.schedule!r}.")
        resolve_schedule(self.schedule)  # ValueError naming the known families
        self._check_eps()
        for f in ("p", "rate", "rate_lo", "rate_hi"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise TypeError(f"`{f}` must be a finite number, got {v!r}.")
            _set(self, f, float(v))
        if self.p < 1:
            raise ValueError(f"`p` must be >= 1 (an L^p accuracy), got {self.p}; e.g. p = 2.")
        if not (0 < self.rate_lo <= self.rate <= self.rate_hi < math.log(2) + 1):
            raise ValueError("`rate_lo`, `rate`, `rate_hi` must satisfy 0 < rate_lo <= rate <= "
                             f"rate_hi < 1 + ln 2, got {self.rate_lo:g}, {self.rate:g}, "
                             f"{self.rate_hi:g}; e.g. 0.15, 0.3, 0.45.")
        for f, lo in (("n_rates", 2), ("n_xi", 10), ("n_offsets", 1), ("n_reps", 2),
                      ("k_max", 2), ("seed", 0), ("n_scales", 1)):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
                raise ValueError(f"`{f}` must be an int >= {lo}, got {v!r}.")
            _set(self, f, int(v))
        if not isinstance(self.robustness, bool):
            raise TypeError(f"`robustness` must be true or false, got {self.robustness!r}.")

    def _check_eps(self):
        eps = self.eps
        if isinstance(eps, bool) or not isinstance(eps, (str, numbers.Real)):
            raise TypeError(f"`eps` must be a rule string or a number, got {eps!r}; e.g. "
                            "eps = '1/d' or 1e-4.")
        if isinstance(eps, str):
            try:
                eps = float(eps)  # a number written as text: the number (one config hash)
            except ValueError:
                try:
                    eps_value(100.0, eps)
                except ValueError as e:  # name the field and the rules
                    raise ValueError(f"`eps`: {e}") from None
                return
        if not (math.isfinite(eps) and 0 < eps < 1):
            raise ValueError(f"`eps` must lie in (0, 1), got {eps}; e.g. eps = 1e-4 or '1/d'.")
        _set(self, "eps", float(eps))

    @property
    def labels(self) -> list:
        """Result keys of the samplers (:func:`sampler_labels`)."""
        return sampler_labels(self.samplers)


__all__ = [
    "ALL_SAMPLERS",
    "DEFAULT_DIMS",
    "DEFAULT_SAMPLERS",
    "ScalingConfig",
    "check_samplers",
    "eps_value",
    "sampler_labels",
    "split_names",
]
