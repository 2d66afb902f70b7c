"""P(some answer informative) of a sampler on a fixed schedule, against the hidden scale
(docs/experiments/schedules.md).

Convention. The hard instance at rate R has its critical scale at ``sigma_c(R)`` (finite-d centre
``exp(-1/2 log expm1(2 log M / d))``). A practitioner's grid ``G`` is fixed, so the unknown is
where the instance's scale ``h`` sits relative to ``G``. The problem is scale-equivariant (the
oracle for data scaled by ``lambda`` at noise ``sigma`` is the oracle for the original data at
``sigma / lambda``, rescaled, and every sampler here commutes with that rescaling, in law for
the stochastic ones), so running ``G`` against an instance of scale ``h`` is running
``G exp(-s)``, ``s = log h - log sigma_c(R)``, against the standard instance: the hidden scale
shifts the grid in log sigma, not the grid's own spacing. For the geometric family with a
uniform log-offset this is the same as drawing the offset.

``average``: mean over ``log h`` on a midpoint grid of ``n_scales`` positions in
``[log scale_min, log scale_max]`` (and over the rate, stratified with a random shift per
replicate): an estimate of the average over a log-uniform hidden scale. ``worst``: the minimum
over those positions of the per-position estimate: the worst case at that resolution (a minimum
of noisy estimates, biased low by Monte-Carlo error; the per-position standard errors are given).
Both are reported for the two sides (lower: single-codeword model on the lower sides; upper:
union bound, docs/certified_bound.md).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .informative import effective_log_m_py
from .scalar import scalar_spec
from .scaling import SIGMA_MAX, SIGMA_MIN, _call, _grid_sides_body


class GridDraws:
    """One sampler on one fixed grid at one d, against the hidden scale.

    ``grid``: K strictly decreasing positive levels (the sampler then steps to 0). ``__call__()``
    returns ``dict(log_h (J,), lower (J, R), upper (J, R), levels (J,))``: per hidden-scale
    position ``h_j`` and replicate, the mean over ``n_points`` stratified rates.
    """

    def __init__(self, name, grid, d, eps, p, width, *, key, n_scales=16, n_points=16, n_reps=4,
                 scale_min=None, scale_max=None, rate_lo=0.15, rate_hi=0.45):
        g = np.asarray(grid, np.float64)
        if g.ndim != 1 or g.size < 1 or np.any(~np.isfinite(g)) or np.any(g <= 0) \
                or np.any(np.diff(g) >= 0):
            raise ValueError(f"`grid` must be 1-D, finite, positive and strictly decreasing, got "
                             f"{grid!r}; build one with schedule_families.family(...).grid(K).")
        for nm, v in (("n_scales", n_scales), ("n_points", n_points), ("n_reps", n_reps)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"`{nm}` must be an int >= 1, got {v!r}.")
        lo = float(g[-1] if scale_min is None else scale_min)
        hi = float(g[0] if scale_max is None else scale_max)
        if not 0.0 < lo < hi:
            raise ValueError(f"Need 0 < scale_min < scale_max, got {lo!r}, {hi!r}.")
        self.spec, self.grid, self.d, self.K = scalar_spec(name), g, float(d), int(g.size)
        self.eps, self.p, self.width = eps, p, width
        self.J, self.n_points, self.n_reps = int(n_scales), int(n_points), int(n_reps)
        self.log_h = math.log(lo) + (np.arange(self.J) + 0.5) / self.J * math.log(hi / lo)
        shifts = np.asarray(jax.random.uniform(jax.random.fold_in(key, 0), (self.n_reps,)))
        frac = np.mod((np.arange(self.n_points)[None, :] + shifts[:, None]) / self.n_points, 1.0)
        rate = (rate_lo + (rate_hi - rate_lo) * frac).ravel()  # (R n,)
        log_m = np.array([effective_log_m_py(d, r) for r in rate])
        log_c = -0.5 * np.log(np.expm1(2.0 * log_m / d))  # log sigma_c at the effective rate
        self.shift = (self.log_h[:, None] - log_c[None, :]).ravel()  # (J R n,)
        self.log_m = np.tile(log_m, self.J)
        self.keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.fold_in(key, 1), i))(
            jnp.arange(self.shift.size))
        self._out = None

    def __call__(self):
        if self._out is None:
            ftype = jnp.result_type(float)
            log_sig = jnp.asarray(np.concatenate([np.log(self.grid), [0.0]]), ftype)
            lo, hi, lev = _call(
                "grid_sides", _grid_sides_body, self.d, jnp.asarray(self.K, jnp.int32), log_sig,
                jnp.asarray(self.shift, ftype), jnp.asarray(self.log_m, ftype), self.keys,
                jnp.asarray(self.eps, ftype), jnp.asarray(self.p, ftype),
                jnp.asarray(self.width, ftype), static=(self.spec, self.K))
            shape = (self.J, self.n_reps, self.n_points)
            self._out = dict(log_h=self.log_h, lower=np.asarray(lo).reshape(shape).mean(2),
                             upper=np.asarray(hi).reshape(shape).mean(2),
                             levels=np.asarray(lev, float).reshape(self.J, -1).mean(1))
        return self._out

    def summary(self):
        """``{side: dict(average, average_se, worst, worst_se, worst_sigma)}`` for ``lower`` and
        ``upper`` (standard errors over the ``n_reps`` replicates; NaN for one replicate)."""
        out = self()
        res = {}
        for side in ("lower", "upper"):
            v = out[side]  # (J, R)
            per = v.mean(1)
            se = v.std(1, ddof=1) / math.sqrt(self.n_reps) if self.n_reps > 1 else \
                np.full(self.J, math.nan)
            j = int(np.argmin(per))
            avg_se = v.mean(0).std(ddof=1) / math.sqrt(self.n_reps) if self.n_reps > 1 else math.nan
            res[side] = dict(average=float(per.mean()), average_se=float(avg_se),
                             worst=float(per[j]), worst_se=float(se[j]),
                             worst_sigma=float(math.exp(self.log_h[j])), per_scale=per.tolist())
        return res


def schedule_certificate(schedule, K, d, sampler="heun", eps=None, *, p=2.0, rate=0.3,
                         sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, n_scales=16, n_points=16,
                         n_reps=4, seed=0):
    """P(some answer informative) of ``sampler`` on ``K`` levels of ``schedule`` (a family spec
    such as ``"karras:7"``, or a family) at dimension ``d``, against the hidden scale in
    ``[sigma_min, sigma_max]``; ``eps`` defaults to ``1/d``. The window width is measured at
    ``rate`` (:func:`~jscore.lowerbound.informative.window_edges`). Returns a dict with the grid,
    the sparsest log-gap, ``log_h`` ``(n_scales,)`` and per side ``average``/``worst`` (with
    standard errors) and ``per_scale``: estimates, not bounds, of the two sides' averages."""
    from .informative import window_edges
    from .schedule_families import family, sparsest

    fam = family(schedule) if isinstance(schedule, str) else schedule
    d = float(d)
    eps = 1.0 / d if eps is None else float(eps)
    grid = fam.grid(K) if getattr(fam, "name", "") == "user" else fam.grid(K, sigma_min, sigma_max)
    key = jax.random.key(seed)
    lo, up = window_edges(d, rate, eps, p, key=jax.random.fold_in(key, 7), n=1000)
    gd = GridDraws(sampler, grid, d, eps, p, up - lo, key=key, n_scales=n_scales,
                   n_points=n_points, n_reps=n_reps, scale_min=sigma_min, scale_max=sigma_max)
    gap, at = sparsest(grid, sigma_min, sigma_max)
    return dict(schedule=str(schedule), K=int(K), d=d, sampler=sampler, eps=eps, width=up - lo,
                grid=grid.tolist(), sparsest_gap=gap, sparsest_sigma=at,
                log_h=gd.log_h.tolist(), levels_in_band=gd()["levels"].tolist(), **gd.summary())


def format_certificate(res) -> str:
    """A text table of :func:`schedule_certificate`'s result: P (both sides) per hidden scale."""
    lines = [f"{res['schedule']}, K = {res['K']}, d = {res['d']:.0f}, {res['sampler']}, "
             f"eps = {res['eps']:.3g}; sparsest log-gap {res['sparsest_gap']:.3f} at sigma = "
             f"{res['sparsest_sigma']:.4g}",
             f"{'hidden sigma_c':>14}  {'P lower':>8}  {'P upper':>8}"]
    for lh, a, b in zip(res["log_h"], res["lower"]["per_scale"], res["upper"]["per_scale"]):
        lines.append(f"{math.exp(lh):>14.4g}  {a:>8.3f}  {b:>8.3f}")
    for name in ("average", "worst"):
        lo, up = res["lower"], res["upper"]
        lines.append(f"{name:>14}  {lo[name]:>8.3f}  {up[name]:>8.3f}  "
                     f"(+- {lo[name + '_se']:.3f} / {up[name + '_se']:.3f} s.e.)")
    lines.append(f"worst hidden scale: sigma = {res['upper']['worst_sigma']:.4g} (upper side), "
                 f"{res['lower']['worst_sigma']:.4g} (lower side)")
    return "\n".join(lines)


__all__ = ["GridDraws", "schedule_certificate", "format_certificate"]
