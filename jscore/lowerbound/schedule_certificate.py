"""P(some answer informative) of a sampler on a fixed schedule, against the hidden scale, and the
number of steps the schedule family needs to reach 1/2 (docs/experiments/schedules.md).

Convention. The hard instance at rate R has its critical scale at ``sigma_c(R)`` (finite-d centre
``exp(-1/2 log expm1(2 log M / d))``). A practitioner's grid ``G`` is fixed, so the unknown is
where the instance's scale ``h`` sits relative to ``G``. The problem is scale-equivariant (the
oracle for data scaled by ``lambda`` at noise ``sigma`` is the oracle for the original data at
``sigma / lambda``, rescaled, and every sampler here commutes with that rescaling, in law for
the stochastic ones), so running ``G`` against an instance of scale ``h`` is running
``G exp(-s)``, ``s = log h - log sigma_c(R)``, against the standard instance: the hidden scale
shifts the grid in log sigma, not the grid's own spacing. For the geometric family with a
uniform log-offset this is the same as drawing the offset.

Positions. ``[log scale_min, log scale_max]`` is cut into ``n_scales`` equal cells; replicate
``r`` puts ``n_points`` chains in every cell at the points of a randomly shifted rank-1 lattice in
(position within the cell, rate) (:func:`~jscore.lowerbound.scaling.lattice_points`), so each
replicate is an unbiased, stratified estimate of the average over a log-uniform hidden scale and
a uniform rate in ``[rate_lo, rate_hi]``; replicates are independent (standard errors).

``average``: mean over all chains. ``worst``: the minimum over cells of the cell's mean (the
average of P over the worst cell, width ``log(scale_max/scale_min)/n_scales``: a pointwise worst
hidden scale is at most this; a minimum of noisy estimates is biased low by Monte-Carlo error).
Both are reported for the two sides (lower: single-codeword model on the lower sides; upper:
union bound, docs/certified_bound.md). They are estimates of the two sides, not bounds.

Any sampler: a sampler with a registered scalar reduction runs in scalar form (one compiled
program per padded grid length, a power of two >= 64); any other ``AbstractSampler`` runs the
real sampler on ``d``-vectors against the reference law
(:func:`~jscore.lowerbound.general.point_sides` on the per-point shifted grids), one compile per K.

This module computes and returns plain dicts; ``plot_certificate`` moved to the experiment layer,
:func:`jscore.sweeps.certificate.plot_certificate` (with
:func:`~jscore.sweeps.certificate.write_certificate` for the files).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from .general import has_scalar_reduction, point_sides, resolve_sampler
from .informative import effective_log_m_py
from .scalar import scalar_spec
from ..config import option
from .scaling import SIGMA_MAX, SIGMA_MIN, _call, _grid_sides_body, lattice_points

#: The smallest padded grid length of the scalar path (one compile serves every K <= 64).
MIN_BUCKET = 64


def _bucket(K: int) -> int:
    """Padded number of levels for K: the least power of two >= max(K, MIN_BUCKET)."""
    return max(MIN_BUCKET, 1 << max(0, (int(K) - 1).bit_length()))


def _check_grid(grid):
    g = np.asarray(grid, np.float64)
    if g.ndim != 1 or g.size < 1 or np.any(~np.isfinite(g)) or np.any(g <= 0) \
            or np.any(np.diff(g) >= 0):
        raise ValueError(f"`grid` must be 1-D, finite, positive and strictly decreasing, got "
                         f"{grid!r}; build one with schedule_families.family(...).grid(K).")
    return g


class GridDraws:
    """One sampler on fixed grids at one d, against the hidden scale (common random numbers).

    ``sampler``: a catalogue name (``"name:key=value"`` allowed) or an ``AbstractSampler``.
    ``grid``: K strictly decreasing positive levels (the sampler then steps to 0).
    ``evaluate(grid)`` (any K, same positions, rates and chain keys) and ``__call__()`` (on
    ``grid``) return ``dict(lower (J, R), upper (J, R), levels (J, R))``: per cell ``j`` and
    replicate ``r`` the mean over its ``n_points`` chains. ``log_h`` ``(J, R, n)``: the chains'
    hidden scales; ``cell_log_h`` ``(J,)``: the cells' log-midpoints. ``full_vector``: use the
    full-vector path even where a scalar reduction exists (a cross-check).
    """

    def __init__(self, sampler, grid, d, eps, p, width, *, key, n_scales=32, n_points=8,
                 n_reps=4, scale_min=None, scale_max=None, rate_lo=0.15, rate_hi=0.45,
                 max_queries=None, k_pad=None, full_vector=False):
        g = _check_grid(grid)
        for nm, v in (("n_scales", n_scales), ("n_points", n_points), ("n_reps", n_reps)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"`{nm}` must be an int >= 1, got {v!r}.")
        lo = float(g[-1] if scale_min is None else scale_min)
        hi = float(g[0] if scale_max is None else scale_max)
        if not 0.0 < lo < hi:
            raise ValueError(f"Need 0 < scale_min < scale_max, got {lo!r}, {hi!r}.")
        self.sampler = resolve_sampler(sampler)
        self.scalar = not full_vector and has_scalar_reduction(self.sampler)
        self.spec = scalar_spec(self.sampler) if self.scalar else None
        self.path = "scalar" if self.scalar else "full-vector"
        self.grid, self.d, self.K = g, float(d), int(g.size)
        self.eps, self.p, self.width, self.max_queries = eps, p, width, max_queries
        self.k_pad = _bucket(max(self.K, int(k_pad or 0)))  # one scalar program for K <= k_pad
        self.J, self.n_points, self.n_reps = int(n_scales), int(n_points), int(n_reps)
        J, R, n = self.J, self.n_reps, self.n_points
        span = math.log(hi / lo)
        self.cell_log_h = math.log(lo) + (np.arange(J) + 0.5) / J * span
        shifts = np.asarray(jax.random.uniform(jax.random.fold_in(key, 0), (R, 2)), np.float64)
        pts = np.stack([lattice_points(n, s) for s in shifts])  # (R, n, 2)
        self.log_h = math.log(lo) + (np.arange(J)[:, None, None] + pts[None, :, :, 0]) / J * span
        rate = rate_lo + (rate_hi - rate_lo) * pts[:, :, 1]  # (R, n)
        log_m = np.array([[effective_log_m_py(d, x) for x in row] for row in rate])
        log_c = -0.5 * np.log(np.expm1(2.0 * log_m / d))  # log sigma_c at the effective rate
        self.shift = (self.log_h - log_c[None]).ravel()  # (J R n,)
        self.log_m = np.broadcast_to(log_m[None], (J, R, n)).ravel()
        self.keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.fold_in(key, 1), i))(
            jnp.arange(self.shift.size))
        self.cache: dict = {}

    def evaluate(self, grid):
        """Per-cell, per-replicate means (see the class) of the sampler on ``grid``."""
        g = _check_grid(grid)
        ck = tuple(g.tolist())
        if ck not in self.cache:
            lo, hi, lev = (self._scalar if self.scalar else self._full)(g)
            shape = (self.J, self.n_reps, self.n_points)
            self.cache[ck] = dict(
                lower=np.asarray(lo, np.float64).reshape(shape).mean(2),
                upper=np.asarray(hi, np.float64).reshape(shape).mean(2),
                levels=np.asarray(lev, np.float64).reshape(shape).mean(2))
        return self.cache[ck]

    def __call__(self):
        return self.evaluate(self.grid)

    def _scalar(self, g):
        K = g.size
        ftype = jnp.result_type(float)
        pad = self.k_pad if K <= self.k_pad else _bucket(K)
        log_sig = np.zeros(pad + 1)  # padded: entries from K on are ignored
        log_sig[:K] = np.log(g)
        return _call("grid_sides", _grid_sides_body, self.d, jnp.asarray(K, jnp.int32),
                     jnp.asarray(log_sig, ftype), jnp.asarray(self.shift, ftype),
                     jnp.asarray(self.log_m, ftype), self.keys, jnp.asarray(self.eps, ftype),
                     jnp.asarray(self.p, ftype), jnp.asarray(self.width, ftype),
                     static=(self.spec, pad))

    def _full(self, g):
        if int(self.d) != self.d:
            raise ValueError(f"The full-vector path needs an integer `d`, got {self.d!r}.")
        return point_sides(self.sampler, np.exp(np.log(g)[None, :] - self.shift[:, None]),
                           self.keys, self.d, self.log_m, self.eps, self.p, self.width,
                           self.max_queries, who="GridDraws / schedule_certificate")

    def summary(self, out=None):
        """``{side: dict(average, average_se, worst, worst_se, worst_sigma, per_scale,
        per_scale_se)}`` for ``lower`` and ``upper`` of ``out`` (default ``self()``); standard
        errors over the ``n_reps`` replicates (NaN for one replicate)."""
        out = self() if out is None else out
        R = self.n_reps
        res = {}
        for side in ("lower", "upper"):
            v = out[side]  # (J, R)
            per = v.mean(1)
            se = v.std(1, ddof=1) / math.sqrt(R) if R > 1 else np.full(self.J, math.nan)
            j = int(np.argmin(per))
            avg_se = v.mean(0).std(ddof=1) / math.sqrt(R) if R > 1 else math.nan
            res[side] = dict(average=float(per.mean()), average_se=float(avg_se),
                             worst=float(per[j]), worst_se=float(se[j]),
                             worst_sigma=float(math.exp(self.cell_log_h[j])),
                             per_scale=per.tolist(), per_scale_se=se.tolist())
        return res


def _least_k(reached, k0, k_min, k_cap, rel_tol, known=None):
    """``(lo, hi)``: ``reached(hi)`` and not ``reached(lo)`` with ``hi - lo <= max(1, rel_tol lo)``
    (``lo = hi`` when ``reached(k_min)``; ``(k_cap, None)`` when not ``reached(k_cap)``): a
    geometric bracket (factor 2) from ``k0``, then bisection; assumes ``reached`` is monotone.
    ``known``: ``{K: reached(K)}`` already evaluated; a bracket found there skips the search for one."""
    yes = [k for k, v in (known or {}).items() if v]
    no = [k for k, v in (known or {}).items() if not v and (not yes or k < min(yes))]
    k = min(max(k_min, int(k0)), k_cap)
    if yes and no:
        lo, hi = max(no), min(yes)
    elif reached(k):
        hi = k
        while hi > k_min:
            lo = max(k_min, hi // 2)
            if not reached(lo):
                break
            hi = lo
        else:
            return k_min, k_min
    else:
        lo = k
        while True:
            if lo >= k_cap:
                return k_cap, None
            hi = min(k_cap, 2 * lo)
            if reached(hi):
                break
            lo = hi
    while hi - lo > max(1, int(rel_tol * lo)):
        mid = (lo + hi) // 2
        if reached(mid):
            hi = mid
        else:
            lo = mid
    return lo, hi


def steps_to_half(gd, fam, sigma_min, sigma_max, k0, *, k_min=2, k_cap=1024, rel_tol=0.02):
    """Steps the family ``fam`` needs for its P (average and worst hidden scale, both sides) to
    reach 1/2, on ``gd``'s common random numbers (the same positions, rates and keys for every K).

    Returns ``(steps, brackets, curve)``: ``steps = {average: [lo, hi], worst: [lo, hi]}``, ``lo``
    the least K (within the bisection tolerance) whose *upper* side reaches 1/2, ``hi`` the same
    for the *lower* side (so ``lo <= hi``); ``None`` when not reached by ``k_cap``. ``brackets``:
    the same with the last K that did not reach 1/2 (``[below, at]`` per entry). ``curve``:
    ``{K: {average_lower, average_upper, worst_lower, worst_upper}}`` for every evaluated K.
    These are estimates of where a necessary condition for success (P >= 1/2) is first met, not
    bounds.
    """
    curve: dict = {}

    def stats(K):
        if K not in curve:
            s = gd.summary(gd.evaluate(fam.grid(K, sigma_min, sigma_max)))
            curve[K] = {f"{a}_{side}": s[side][a] for a in ("average", "worst")
                        for side in ("lower", "upper")}
        return curve[K]

    steps, brackets = {}, {}
    for agg in ("average", "worst"):
        pair, br = [], []
        for side in ("upper", "lower"):
            name = f"{agg}_{side}"
            lo, hi = _least_k(lambda k: stats(k)[name] >= 0.5, k0, k_min, k_cap, rel_tol,
                              known={k: v[name] >= 0.5 for k, v in curve.items()})
            pair.append(hi)
            br.append([None if lo == hi else lo, hi])
            k0 = hi if hi is not None else k0
        steps[agg], brackets[agg] = pair, br
    return steps, brackets, dict(sorted(curve.items()))


def _opt_number(v, name, flag, kind, lo=None):
    """``None`` or a number of ``kind`` (text from a flag converted), >= ``lo``."""
    if v is None or v == "":
        return None
    try:
        if isinstance(v, bool):
            raise ValueError
        x = kind(v) if not (kind is int and isinstance(v, str)) else int(v)
        if kind is int and isinstance(v, float) and v != int(v):
            raise ValueError
    except (TypeError, ValueError):
        example = 4 if kind is int else 0.05
        raise ValueError(f"{flag} must be {'an integer' if kind is int else 'a number'}, got "
                         f"{v!r} (field `{name}`); e.g. {flag} {example}") from None
    if lo is not None and not x >= lo:
        raise ValueError(f"{flag} must be >= {lo}, got {v!r} (field `{name}`)")
    return x


@dataclasses.dataclass(frozen=True)
class ScheduleCertificateConfig:
    """Settings of one schedule certificate (``jscore lowerbound schedule``; the defaults of
    :func:`schedule_certificate` too): one :func:`~jscore.config.option` field per flag.
    ``eps``: a number or a rule (``1/d``, ``1/sqrt(d)``, ``1/d^2``); ``scale_min``/``scale_max``
    ``None``: ``sigma_min`` / ``sigma_max / 10``. ``ValueError`` naming the flag on bad values."""

    schedule: str = option("karras", "schedule family spec (geometric, karras[:rho], edm, "
                           "vp_linear, cosine[:s], uniform, user:s0,s1,...)")
    steps: int = option(18, "number of levels K of the grid")
    dim: float = option(12288.0, "dimension d")
    sampler: str = option("heun", "catalogue sampler name, options as 'name:key=value,...'")
    eps: str = option("1/d", "adversary accuracy: a number (1e-4, 1/12288) or a rule (1/d, "
                      "1/sqrt(d), 1/d^2)")
    p: float = option(2.0, "adversary L^p exponent p")
    sigma_min: float = option(SIGMA_MIN, "lowest level of the grid")
    sigma_max: float = option(SIGMA_MAX, "highest level of the grid")
    scale_min: float = option(None, "lowest hidden scale (default: --sigma-min)")
    scale_max: float = option(None, "highest hidden scale (default: --sigma-max / 10)")
    scales: int = option(32, "hidden-scale cells")
    points: int = option(4, "chains per cell and replicate")
    reps: int = option(4, "independent replicates")
    k_cap: int = option(512, "largest K the steps search tries")
    search: bool = option(True, "the steps-to-1/2 search (--no-search skips it)")
    max_queries: int = option(None, "query cap for data-dependent samplers (full-vector path; "
                              "default: none)")
    seed: int = option(0, "seed of the draws")

    def __post_init__(self):
        setf = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        for name in ("steps", "scales", "points", "reps", "k_cap", "seed"):
            lo = 2 if name in ("steps", "reps", "k_cap") else 0 if name == "seed" else 1
            setf(name, _opt_number(getattr(self, name), name, _flag(name), int, lo))
            if getattr(self, name) is None:
                raise ValueError(f"{_flag(name)} is required (field `{name}`)")
        for name in ("dim", "p", "sigma_min", "sigma_max"):
            setf(name, _opt_number(getattr(self, name), name, _flag(name), float))
            if getattr(self, name) is None or not math.isfinite(getattr(self, name)):
                raise ValueError(f"{_flag(name)} must be a finite number, got "
                                 f"{getattr(self, name)!r} (field `{name}`)")
        for name in ("scale_min", "scale_max"):
            setf(name, _opt_number(getattr(self, name), name, _flag(name), float))
        setf("max_queries", _opt_number(self.max_queries, "max_queries", "--max-queries", int, 1))
        if not 2 <= self.dim < 2**32:
            raise ValueError(f"--dim must be in [2, 2^32), got {self.dim} (field `dim`)")
        if not isinstance(self.search, bool):
            raise TypeError(f"`search` must be true or false, got {self.search!r}")
        for name in ("schedule", "sampler"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise TypeError(f"{_flag(name)} must be a non-empty name, got "
                                f"{getattr(self, name)!r} (field `{name}`)")
        if not isinstance(self.eps, str):
            if isinstance(self.eps, bool) or not isinstance(self.eps, (int, float)):
                raise TypeError(f"--eps must be a number or a rule such as 1/d, got "
                                f"{self.eps!r} (field `eps`)")
        self.eps_value()

    def eps_value(self) -> float:
        """``eps`` as a number at ``dim`` (:func:`~jscore.lowerbound.scaling.eps_value`)."""
        from .scaling import eps_value

        try:
            return eps_value(self.dim, self.eps)
        except ValueError as e:
            raise ValueError(f"`eps` (--eps): {e}") from None

    def run(self):
        """:func:`schedule_certificate` of these settings."""
        return schedule_certificate(self.schedule, self.steps, self.dim, self.sampler,
                                    self.eps_value(), p=self.p, sigma_min=self.sigma_min,
                                    sigma_max=self.sigma_max, scale_min=self.scale_min,
                                    scale_max=self.scale_max, n_scales=self.scales,
                                    n_points=self.points, n_reps=self.reps, seed=self.seed,
                                    search=self.search, k_cap=self.k_cap,
                                    max_queries=self.max_queries)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


_C = ScheduleCertificateConfig  # the defaults of schedule_certificate below


def schedule_certificate(schedule, K, d, sampler=_C.sampler, eps=None, *, p=_C.p, rate=0.3,
                         sigma_min=_C.sigma_min, sigma_max=_C.sigma_max, scale_min=None,
                         scale_max=None, n_scales=_C.scales, n_points=_C.points,
                         n_reps=_C.reps, seed=_C.seed, search=_C.search, k_cap=_C.k_cap,
                         rel_tol=0.02, max_queries=None, measure_width=False):
    """P(some answer informative) of ``sampler`` on ``K`` levels of ``schedule`` (a family spec
    such as ``"karras:7"``, or a family) at dimension ``d``, against the hidden scale in
    ``[scale_min, scale_max]`` (default ``[sigma_min, sigma_max / 10]``: the sampler starts from
    pure noise ``N(0, sigma_max^2 I)``, which is mismatched when the data's scale is within a
    decade of ``sigma_max``), and (``search``) the steps the family needs to reach 1/2 (K up to
    ``k_cap``, bisection to ``max(1, rel_tol K)``).

    ``sampler``: catalogue name (``"name:key=value"`` allowed) or ``AbstractSampler`` (no scalar
    reduction: the full-vector path, ``max_queries`` for data-dependent ones). ``eps``: a number
    or a rule (``"1/d"``, ``"1/sqrt(d)"``, ``"1/d^2"``), default ``1/d``. The window width is
    the leading-order one at ``rate`` (:func:`~jscore.lowerbound.informative.leading_order_window`;
    ``measure_width``: measured, :func:`~jscore.lowerbound.informative.window_edges`, two more
    compiles); it only sets the levels-in-band count, not P. Returns a dict
    with the grid, the sparsest log-gap, ``cell_log_h`` ``(n_scales,)``, per side
    ``average``/``worst`` (with standard errors) and ``per_scale``, and ``steps_to_half``
    (:func:`steps_to_half`; None for a user grid or ``search=False``): estimates, not bounds.
    Runs in float64.
    """
    with jax.enable_x64(True):
        return _certificate(schedule, K, d, sampler, eps, p, rate, sigma_min, sigma_max,
                            scale_min, scale_max, n_scales, n_points, n_reps, seed, search,
                            k_cap, rel_tol, max_queries, measure_width)


def _certificate(schedule, K, d, sampler, eps, p, rate, sigma_min, sigma_max, scale_min,
                 scale_max, n_scales, n_points, n_reps, seed, search, k_cap, rel_tol,
                 max_queries, measure_width):
    from .informative import leading_order_window, window_edges
    from .schedule_families import family, sparsest
    from .scaling import eps_value

    fam = family(schedule) if isinstance(schedule, str) else schedule
    if isinstance(k_cap, bool) or not isinstance(k_cap, (int, np.integer)) or k_cap < 2:
        raise ValueError(f"`k_cap` must be an int >= 2 (largest K the search tries), got {k_cap!r}.")
    if not 0.0 <= float(rel_tol) < 1.0:
        raise ValueError(f"`rel_tol` must be in [0, 1) (bisection tolerance), got {rel_tol!r}.")
    d = float(d)
    if not d >= 2:
        raise ValueError(f"`d` must be >= 2, got {d!r}.")
    eps = 1.0 / d if eps is None else eps_value(d, eps)
    if not 0.0 < eps:
        raise ValueError(f"`eps` must be positive, got {eps!r}.")
    user = getattr(fam, "name", "") == "user"
    grid = fam.grid(K) if user else fam.grid(K, sigma_min, sigma_max)
    key = jax.random.key(seed)
    if measure_width:
        lo, up = window_edges(d, rate, eps, p, key=jax.random.fold_in(key, 7), n=1000)
    else:
        lo, up = leading_order_window(d, effective_log_m_py(d, rate) / d, eps, p)
    h_lo = float(sigma_min if scale_min is None else scale_min)
    h_hi = float(sigma_max / 10.0 if scale_max is None else scale_max)
    if user:
        h_lo = float(grid[-1]) if scale_min is None else h_lo
        h_hi = float(grid[0]) / 10.0 if scale_max is None else h_hi
    if not 0.0 < h_lo < h_hi:
        raise ValueError(f"Need 0 < scale_min < scale_max (hidden-scale range), got {h_lo!r}, "
                         f"{h_hi!r}; with the default scale_max = sigma_max/10 pass "
                         "sigma_max > 10 sigma_min or set scale_max.")
    gd = GridDraws(sampler, grid, d, eps, p, up - lo, key=key, n_scales=n_scales,
                   n_points=n_points, n_reps=n_reps, scale_min=h_lo, scale_max=h_hi,
                   max_queries=max_queries, k_pad=k_cap if search and not user else None)
    gap, at = sparsest(grid, sigma_min, sigma_max)
    out = gd()
    res = dict(schedule=str(schedule), K=int(K), d=d, sampler=_sampler_name(sampler),
               path=gd.path, eps=eps, p=float(p), width=up - lo, grid=grid.tolist(),
               sigma_min=float(sigma_min), sigma_max=float(sigma_max), scale_min=h_lo,
               scale_max=h_hi, sparsest_gap=gap,
               sparsest_sigma=at, n_scales=gd.J, n_points=gd.n_points, n_reps=gd.n_reps,
               cell_log_h=gd.cell_log_h.tolist(), levels_in_band=out["levels"].mean(1).tolist(),
               **gd.summary(out), steps_to_half=None, steps_bracket=None, steps_curve=None)
    if search and not user:
        steps, br, curve = steps_to_half(gd, fam, sigma_min, sigma_max, K, k_cap=k_cap,
                                         rel_tol=rel_tol)
        res.update(steps_to_half=steps, steps_bracket=br, k_cap=int(k_cap),
                   steps_curve={str(k): v for k, v in curve.items()})
    return res


def _sampler_name(sampler) -> str:
    return sampler if isinstance(sampler, str) else type(sampler).__name__


def _fmt_steps(v, k_cap):
    return f"> {k_cap}" if v is None else str(v)


def format_certificate(res) -> str:
    """A text table of :func:`schedule_certificate`'s result: P (both sides) per hidden-scale
    cell, the average and the worst cell, and the steps to reach 1/2."""
    lines = [f"{res['schedule']}, K = {res['K']}, d = {res['d']:.0f}, {res['sampler']} "
             f"({res.get('path', 'scalar')} path), eps = {res['eps']:.3g}; sparsest log-gap "
             f"{res['sparsest_gap']:.3f} at sigma = {res['sparsest_sigma']:.4g}",
             f"{'hidden sigma_c':>14}  {'P lower':>8}  {'P upper':>8}"]
    for lh, a, b in zip(res["cell_log_h"], res["lower"]["per_scale"], res["upper"]["per_scale"]):
        lines.append(f"{math.exp(lh):>14.4g}  {a:>8.3f}  {b:>8.3f}")
    for name in ("average", "worst"):
        lo, up = res["lower"], res["upper"]
        lines.append(f"{name:>14}  {lo[name]:>8.3f}  {up[name]:>8.3f}  "
                     f"(+- {lo[name + '_se']:.3f} / {up[name + '_se']:.3f} s.e.)")
    lines.append(f"worst hidden-scale cell: sigma = {res['upper']['worst_sigma']:.4g} (upper "
                 f"side), {res['lower']['worst_sigma']:.4g} (lower side)")
    st = res.get("steps_to_half")
    if st:
        cap = res.get("k_cap", 1024)
        for name in ("average", "worst"):
            a, b = st[name]
            lines.append(f"steps to P = 1/2 ({name}): {_fmt_steps(a, cap)} (upper side) to "
                         f"{_fmt_steps(b, cap)} (lower side)")
        lines.append("(estimates of where the necessary condition P >= 1/2 is first met, not bounds)")
    return "\n".join(lines)


__all__ = ["GridDraws", "ScheduleCertificateConfig", "steps_to_half", "schedule_certificate", "format_certificate"]
