"""Schedule families for the lower-bound experiment (docs/experiments/schedules.md).

A family builds ``K`` strictly decreasing positive levels ``sigma_0 > ... > sigma_{K-1}`` between
``sigma_max`` and ``sigma_min`` (no final 0): ``grid(K, sigma_min, sigma_max, offset=0.0)``.
``offset`` in ``[0, 1)`` rescales the whole grid by ``exp(-offset * Delta)``,
``Delta = log(sigma_max / sigma_min) / (K - 1)`` (one mean log-step); for the geometric family
this is :func:`jscore.schedules.geometric`'s offset. Parse a family from text with
:func:`family`; :func:`sparsest` finds where a grid leaves the widest gap in log sigma.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from .. import schedules

#: Defaults when ``sigma_min`` / ``sigma_max`` are not given (EDM's range, as in js.schedules).
EDM_SIGMA_MIN, EDM_SIGMA_MAX = 0.002, 80.0


def _range(K, sigma_min, sigma_max, offset):
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 2:
        raise ValueError(f"`K` must be an integer >= 2 (levels of the grid), got {K!r}.")
    smin = EDM_SIGMA_MIN if sigma_min is None else float(sigma_min)
    smax = EDM_SIGMA_MAX if sigma_max is None else float(sigma_max)
    if not (0.0 < smin < smax < math.inf):
        raise ValueError(f"Need 0 < sigma_min < sigma_max, got sigma_min={sigma_min!r}, "
                         f"sigma_max={sigma_max!r}; swap or fix them.")
    offset = float(offset)
    if not 0.0 <= offset < 1.0:
        raise ValueError(f"`offset` must be in [0, 1) (fraction of one log-step), got {offset!r}.")
    return int(K), smin, smax, offset


def _shift(sig, K, smin, smax, offset):
    return np.asarray(sig, np.float64) * math.exp(-offset * math.log(smax / smin) / (K - 1))


def _host(build, K, *args):
    """A js.schedules grid built in float64 (its host path is float64; x64 keeps the final cast)."""
    with jax.enable_x64(True):
        return np.asarray(build(K, *args, append_zero=False), np.float64)[:K]


@dataclasses.dataclass(frozen=True)
class Geometric:
    """Constant ratio ``sigma_{i+1} / sigma_i = (sigma_min / sigma_max)^(1/(K-1))``."""

    name = "geometric"

    def grid(self, K, sigma_min=None, sigma_max=None, offset=0.0):
        K, smin, smax, offset = _range(K, sigma_min, sigma_max, offset)
        return _host(schedules.geometric, K, smin, smax, offset)


@dataclasses.dataclass(frozen=True)
class Karras:
    """``sigma_i = (smax^(1/rho) + i/(K-1) (smin^(1/rho) - smax^(1/rho)))^rho``."""

    rho: float = 7.0
    name = "karras"

    def __post_init__(self):
        if not (isinstance(self.rho, (int, float)) and 0.0 < self.rho < math.inf):
            raise ValueError(f"`rho` must be a positive finite number, got {self.rho!r}; e.g. 7.")

    def grid(self, K, sigma_min=None, sigma_max=None, offset=0.0):
        K, smin, smax, offset = _range(K, sigma_min, sigma_max, offset)
        sig = _host(schedules.karras, K, smin, smax, float(self.rho))
        return _shift(sig, K, smin, smax, offset)


@dataclasses.dataclass(frozen=True)
class EDM(Karras):
    """EDM's schedule: Karras with ``rho = 7`` on ``[0.002, 80]`` unless a range is given."""

    rho: float = 7.0
    name = "edm"


@dataclasses.dataclass(frozen=True)
class VPLinear:
    """DDPM's linear betas in continuous time: ``abar(u) = exp(-(b0 u + (b1 - b0) u^2 / 2))``,
    ``sigma = sqrt(1/abar - 1)``, VP time u uniform from ``u(sigma_max)`` to ``u(sigma_min)``."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    name = "vp_linear"

    def grid(self, K, sigma_min=None, sigma_max=None, offset=0.0):
        K, smin, smax, offset = _range(K, sigma_min, sigma_max, offset)
        b0, b1 = float(self.beta_min), float(self.beta_max)
        if not 0.0 < b0 < b1:
            raise ValueError(f"Need 0 < beta_min < beta_max, got {b0!r}, {b1!r}.")
        db = b1 - b0

        def time(s):
            return (-b0 + math.sqrt(b0 * b0 + 2.0 * db * math.log1p(s * s))) / db

        u = np.linspace(time(smax), time(smin), K)
        sig = np.sqrt(np.expm1(b0 * u + 0.5 * db * u * u))
        sig[0], sig[-1] = smax, smin
        return _shift(sig, K, smin, smax, offset)


@dataclasses.dataclass(frozen=True)
class Cosine:
    """Improved-DDPM cosine schedule (:func:`jscore.schedules.cosine`), VP time uniform."""

    s: float = 0.008
    name = "cosine"

    def grid(self, K, sigma_min=None, sigma_max=None, offset=0.0):
        K, smin, smax, offset = _range(K, sigma_min, sigma_max, offset)
        sig = _host(schedules.cosine, K, smin, smax, float(self.s))
        return _shift(sig, K, smin, smax, offset)


@dataclasses.dataclass(frozen=True)
class Uniform:
    """Uniform in sigma: ``sigma_i = smax + i/(K-1) (smin - smax)``."""

    name = "uniform"

    def grid(self, K, sigma_min=None, sigma_max=None, offset=0.0):
        K, smin, smax, offset = _range(K, sigma_min, sigma_max, offset)
        return _shift(np.linspace(smax, smin, K), K, smin, smax, offset)


@dataclasses.dataclass(frozen=True)
class User:
    """A fixed user grid (strictly decreasing, positive); ``grid`` needs ``K == len(levels)`` and
    ignores the range (``sigma_min``/``sigma_max`` default to the grid's own ends)."""

    levels: tuple
    name = "user"

    def __post_init__(self):
        v = np.asarray(self.levels, np.float64)
        if v.ndim != 1 or v.size < 2 or not np.all(np.isfinite(v)) or np.any(v <= 0) \
                or np.any(np.diff(v) >= 0):
            raise ValueError(f"A user grid must be >= 2 finite positive strictly decreasing levels, "
                             f"got {self.levels!r}; e.g. 'user:20,10,1'.")

    def grid(self, K=None, sigma_min=None, sigma_max=None, offset=0.0):
        v = np.asarray(self.levels, np.float64)
        K = v.size if K is None else K
        if K != v.size:
            raise ValueError(f"This user grid has {v.size} levels, asked for K={K!r}; pass K={v.size}.")
        K, smin, smax, offset = _range(K, v[-1], v[0], offset)
        return _shift(v, K, smin, smax, offset)


_PLAIN = {"geometric": Geometric, "vp_linear": VPLinear, "uniform": Uniform, "edm": EDM}


def family(spec: str):
    """Parse a family: ``geometric``, ``karras`` / ``karras:RHO``, ``edm``, ``vp_linear``,
    ``cosine`` / ``cosine:S``, ``uniform``, ``user:S0,S1,...`` (decreasing levels)."""
    if not isinstance(spec, str):
        raise TypeError(f"`spec` must be a string such as 'karras:7', got {type(spec).__name__}.")
    name, _, arg = spec.strip().partition(":")
    known = "geometric, karras[:rho], edm, vp_linear, cosine[:s], uniform, user:s0,s1,..."
    if name in _PLAIN:
        if arg:
            raise ValueError(f"Schedule {name!r} takes no parameter, got {spec!r}; use {name!r}.")
        return _PLAIN[name]()
    if name in ("karras", "cosine", "user"):
        try:
            nums = tuple(float(a) for a in arg.split(",")) if arg else ()
        except ValueError:
            raise ValueError(f"Cannot read the numbers in schedule {spec!r}; e.g. 'karras:5', "
                             "'user:20,10,1'.") from None
        if name == "user":
            if not nums:
                raise ValueError("A user schedule needs its levels, e.g. 'user:20,10,1'.")
            return User(nums)
        if len(nums) > 1:
            raise ValueError(f"Schedule {name!r} takes one number, got {spec!r}.")
        return (Karras if name == "karras" else Cosine)(*nums)
    raise ValueError(f"Unknown schedule {spec!r}; use one of {known}.")


def sparsest(grid, sigma_min=None, sigma_max=None):
    """The widest gap in log sigma that ``grid`` leaves inside ``[sigma_min, sigma_max]`` (the
    range defaults to the grid's ends; the range's ends count as gap ends). Returns
    ``(gap, sigma_at_gap)``: the gap in natural-log units and its log-midpoint."""
    v = np.asarray(grid, np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        raise ValueError("`grid` needs at least one positive level.")
    lo = float(v.min()) if sigma_min is None else float(sigma_min)
    hi = float(v.max()) if sigma_max is None else float(sigma_max)
    if not 0.0 < lo < hi:
        raise ValueError(f"Need 0 < sigma_min < sigma_max, got {lo!r}, {hi!r}.")
    inside = np.log(v[(v >= lo) & (v <= hi)])
    pts = np.unique(np.concatenate([[math.log(lo), math.log(hi)], inside]))
    gaps = np.diff(pts)
    j = int(np.argmax(gaps))
    return float(gaps[j]), float(math.exp(0.5 * (pts[j] + pts[j + 1])))


__all__ = ["Geometric", "Karras", "EDM", "VPLinear", "Cosine", "Uniform", "User", "family",
           "sparsest"]
