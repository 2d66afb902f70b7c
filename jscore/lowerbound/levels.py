"""Distinct noise levels against queries (docs/experiments/levels.md).

Against the hard instance, ``P(some answer informative)`` is governed by the number of
*distinct* noise levels a sampler visits near the hidden critical scale, not by its number of
queries. This module measures it for samplers that make ``m`` queries per level:

- :class:`~jscore.samplers.AnnealedLangevin` with ``steps_per_level = m`` (``L m + 1`` queries
  per chain on ``L`` levels ending at 0),
- :class:`~jscore.samplers.PredictorCorrector` with ``corrector_steps = m`` (``L (m + 1)``),
- :class:`~jscore.samplers.SingleLevel` with ``Q`` queries at one level (``Q - 1`` Langevin
  steps and the Tweedie query), started in the reference law at its level (below),

on ``L`` geometric levels ``sigma_k = sigma_max exp(-(k + u) Delta_L)``, ``Delta_L =
log(sigma_max/sigma_min)/L``, with the hidden scale drawn exactly as in
:class:`~jscore.lowerbound.general.FullVectorDraws` (which does the work: the same randomly
shifted lattices of (log-offset, rate) points, the same chain keys for every ``(L, m)``, the
full-vector reference run and :func:`~jscore.lowerbound.trajectory.assemble`'s two sides
``p_lower <= p_upper``, docs/certified_bound.md §2).

``SingleLevel`` runs through the same machinery with ``L = 1``: its level is the first level of
the one-level grid, ``sigma = sigma_max exp(-u log(sigma_max/sigma_min))``, log-uniform in
``[sigma_min, sigma_max]`` relative to the hidden scale. It starts from a draw of the reference
law at its own level, ``Q_sigma = Unif(sqrt(d) S^{d-1}) * N(0, sigma^2 I)`` (codebook-free, so
the coupling of docs/construction.md §7.1 holds): its first query is already typical, and the
control isolates what further queries at one level add.

Also reported, as a ceiling that needs no sampler: the *ideal* family, ``m`` fresh independent
reference-typical points at each of the ``L`` levels (lower side ``1 - prod (1 - pibar^lo)``,
upper side ``min(1, sum pibar^hi)`` over all ``L m`` queries), averaged over the same hidden
scale and rates (:func:`~jscore.lowerbound.scaling.ideal_success`).

All numbers are Monte-Carlo estimates of the two sides (with standard errors over replicates),
and an informative answer is necessary for success, not sufficient.

This module computes and returns plain dicts; the figure and the files live in the experiment
layer: ``plot_levels`` moved to :func:`jscore.sweeps.levels_lab.plot_levels` (with
:func:`~jscore.sweeps.levels_lab.write_levels`).
"""

from __future__ import annotations

import math
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..samplers import AnnealedLangevin, PredictorCorrector, SingleLevel
from ..samplers.base import AbstractSampler, Solution, as_param
from .general import FullVectorDraws
from .scaling import SIGMA_MAX, SIGMA_MIN, ideal_success, profile_side_tables, profile_tables

SAMPLERS = ("annealed_langevin", "pc")
DEFAULT_LEVELS = (2, 4, 8, 16, 32)
DEFAULT_PER_LEVEL = (1, 2, 4, 8, 16, 32, 64)
DEFAULT_SINGLE = (1, 2, 4, 8, 16, 32, 64)


class _SingleLevelAtGrid(AbstractSampler):
    """``SingleLevel(sigma=sigmas[0], steps)`` started from ``Q_sigma`` (test/experiment helper).

    The level is the grid's first entry (so the hidden-scale lattice of ``FullVectorDraws`` sets
    it); the start ``x_0 = sqrt(d) v/|v| + sigma z`` with ``v ~ N(0, I)`` from the chain key and
    ``z = x / sigmas[0]`` the chain's own initial draw. Q = steps + 1 per chain, N_sigma = 1.
    """

    steps: int = eqx.field(default=0, static=True)
    snr: Float[Array, ""] = eqx.field(default=0.16, converter=as_param)

    @property
    def is_stochastic(self) -> bool:
        return True

    def num_queries(self, num_steps: int, ends_at_zero: bool) -> int:
        return int(self.steps) + 1

    def solve(self, oracle, sigmas, x, key, ostate, ledger, record) -> Solution:
        sigma = sigmas[0]
        v = jax.random.normal(jax.random.fold_in(key, 7919), x.shape, x.dtype)
        x0 = math.sqrt(x.shape[-1]) * v / jnp.sqrt(jnp.sum(v * v)) + x  # x = sigma z
        inner = SingleLevel(sigma=sigma, steps=int(self.steps), snr=self.snr)
        return inner.solve(oracle, sigmas, x0, jax.random.fold_in(key, 1), ostate, ledger, record)


def make_sampler(name: str, m: int) -> AbstractSampler:
    """The sampler ``name`` with ``m`` queries-per-level knob: ``"annealed_langevin"``
    (``steps_per_level = m``), ``"pc"`` (``corrector_steps = m``) or ``"single_level"`` (``m``
    queries in all, i.e. ``m - 1`` Langevin steps, started in ``Q_sigma``)."""
    if name == "annealed_langevin":
        return AnnealedLangevin(steps_per_level=int(m))
    if name == "pc":
        return PredictorCorrector(corrector_steps=int(m))
    if name == "single_level":
        return _SingleLevelAtGrid(steps=int(m) - 1)
    raise ValueError(f"`samplers`: unknown sampler {name!r}; use one of {SAMPLERS} "
                     "(and 'single_level' for the control).")


def queries_per_chain(name: str, L: int, m: int) -> int:
    """Exact queries per chain, from the samplers' documented counts on ``L`` levels then 0:
    annealed Langevin ``L m + 1``, predictor-corrector ``L (m + 1)``, single level ``m``."""
    return int(make_sampler(name, m).num_queries(1 if name == "single_level" else int(L), True))


def _check_ints(name, values, lo):
    vals = list(values) if not isinstance(values, (int, np.integer)) else [values]
    if not vals or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo
                       for v in vals):
        raise ValueError(f"`{name}` must be a non-empty list of integers >= {lo}, got "
                         f"{values!r}; e.g. {name}=(1, 2, 4).")
    return sorted(set(int(v) for v in vals))


def _stats(v):
    v = np.asarray(v, float)
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
    return float(v.mean()), se


def _cell(name, L, m, lo, hi, lev, elapsed):
    lo_m, lo_se = _stats(lo)
    hi_m, hi_se = _stats(hi)
    return dict(sampler=name, L=int(L), m=int(m), queries=queries_per_chain(name, L, m),
                distinct_levels=1 if name == "single_level" else int(L),
                levels_in_band=float(lev), p_lower=lo_m, p_lower_se=lo_se, p_upper=hi_m,
                p_upper_se=hi_se, p_lower_reps=np.asarray(lo, float).tolist(),
                p_upper_reps=np.asarray(hi, float).tolist(), seconds=float(elapsed))


def levels_vs_queries(d, *, levels=DEFAULT_LEVELS, per_level=DEFAULT_PER_LEVEL,
                      samplers=SAMPLERS, single_level_queries=DEFAULT_SINGLE, cells="grid",
                      panel_levels=None, panel_per_level=None, seed=0, n_points=32, n_reps=4,
                      eps=None, p=2.0, rate=0.3, rate_lo=0.15, rate_hi=0.45, ideal=True,
                      n_xi=1000, log=None) -> dict:
    """``P(some answer informative)`` (both sides) against ``L`` distinct levels and ``m``
    queries per level, at dimension ``d``.

    ``levels``: level counts ``L``; ``per_level``: ``m`` values; ``samplers``: names of
    :data:`SAMPLERS`; ``single_level_queries``: ``Q`` values of the ``SingleLevel`` control
    (empty: none). ``cells="grid"`` runs every ``(L, m)``; ``cells="panels"`` only the two panels,
    ``(L, m)`` for ``L`` in ``panel_levels`` (default: the largest ``L``) and every ``m``, and for
    ``m`` in ``panel_per_level`` (default: the smallest ``m``) and every ``L``. ``eps`` defaults
    to ``1/d``; the window width (the level-count resolution) is measured at ``rate``.
    ``n_points`` (log-offset, rate) lattice points per replicate, ``n_reps`` replicates; the
    same draws and chain keys for every cell (common random numbers).

    Returns a dict: ``config``, ``width``, ``cells`` (one dict per sampler and ``(L, m)``:
    ``queries`` per chain, ``distinct_levels``, mean ``levels_in_band``, ``p_lower``,
    ``p_upper`` with standard errors over replicates and per-replicate values), ``ideal``
    (``[L, m, lower, upper]`` of the ideal family for every ``(L, m)`` of the grid and
    ``(1, Q)``), ``elapsed_s``. Run inside ``jax.enable_x64(True)`` (the CLI does).
    """
    from .informative import window_edges

    d, levels, per_level, single, eps, p = _check_arguments(
        d, levels, per_level, samplers, single_level_queries, cells, n_points, n_reps, n_xi, eps,
        p)
    panel_levels, panel_per_level, todo = _cells_to_run(cells, levels, per_level, panel_levels,
                                                        panel_per_level)
    log = log or (lambda msg: None)
    t_start = time.time()
    key = jax.random.key(seed)
    lo_w, up_w = window_edges(float(d), rate, eps, p, key=jax.random.fold_in(key, 7), n=n_xi)
    width = float(up_w - lo_w)
    kd = jax.random.fold_in(key, 3)  # the lattice and chain keys: shared by every cell
    kw = dict(key=kd, n_points=int(n_points), n_reps=int(n_reps), k_max=max(levels),
              rate_lo=rate_lo, rate_hi=rate_hi)

    def draws(sampler):
        return FullVectorDraws(sampler, d, eps, p, width, **kw)

    out_cells = []
    for name in samplers:
        for m in sorted({m for _, m in todo}):
            dm = draws(make_sampler(name, m))
            for L in sorted(L for L, mm in todo if mm == m):
                out_cells.append(_measure(dm, name, L, m, log,
                                          f"d={d} {name:>17} L={L:>3} m={m:>3} "))
    for Q in single:
        out_cells.append(_measure(draws(make_sampler("single_level", Q)), "single_level", 1, Q,
                                  log, f"d={d} {'single_level':>17} L=  1 "))
    ideal_rows = _ideal(d, eps, p, rate_lo, rate_hi, levels, per_level, single, n_xi,
                        jax.random.fold_in(key, 5)) if ideal else []
    config = dict(d=d, levels=levels, per_level=per_level, samplers=list(samplers),
                  single_level_queries=single, cells=cells, panel_levels=panel_levels,
                  panel_per_level=panel_per_level, seed=int(seed), n_points=int(n_points),
                  n_reps=int(n_reps), eps=eps, p=p, rate=rate, rate_lo=rate_lo, rate_hi=rate_hi,
                  sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, n_xi=int(n_xi),
                  device=str(jax.devices()[0]), jax=jax.__version__)
    return dict(config=config, width=width, cells=out_cells, ideal=ideal_rows,
                elapsed_s=time.time() - t_start)


def _measure(draws, name, L, m, log, head):
    """One cell of :func:`levels_vs_queries`: ``draws(L)`` timed, logged after ``head``."""
    t0 = time.time()
    lo, hi, lev = draws(L)
    c = _cell(name, L, m, lo, hi, lev, time.time() - t0)
    log(f"{head}Q={c['queries']:>5}  P in [{c['p_lower']:.3f} +- {c['p_lower_se']:.3f}, "
        f"{c['p_upper']:.3f} +- {c['p_upper_se']:.3f}]  {c['seconds']:.1f} s")
    return c


def _check_arguments(d, levels, per_level, samplers, single_level_queries, cells, n_points,
                     n_reps, n_xi, eps, p):
    """Validated ``(d, levels, per_level, single, eps, p)`` of :func:`levels_vs_queries`
    (sorted, deduplicated int lists; ``eps`` defaults to ``1/d``); ValueError naming the argument."""
    if isinstance(d, bool) or not isinstance(d, (int, float, np.integer, np.floating)) \
            or int(d) != d or not 2 <= d < 2**32:
        raise ValueError(f"`d` must be an integer dimension in [2, 2^32), got {d!r}.")
    d = int(d)
    levels = _check_ints("levels", levels, 1)
    per_level = _check_ints("per_level", per_level, 1)
    single = [] if single_level_queries in (None, ()) or (
        hasattr(single_level_queries, "__len__") and len(single_level_queries) == 0) \
        else _check_ints("single_level_queries", single_level_queries, 1)
    if isinstance(samplers, str) or not all(isinstance(s, str) for s in samplers):
        raise ValueError(f"`samplers` must be a list of names from {SAMPLERS}, got {samplers!r}.")
    for s in samplers:
        if s not in SAMPLERS:
            raise ValueError(f"`samplers`: unknown sampler {s!r}; use names from {SAMPLERS}.")
    if cells not in ("grid", "panels"):
        raise ValueError(f"`cells` must be 'grid' or 'panels', got {cells!r}.")
    for nm, v, lo in (("n_points", n_points, 1), ("n_reps", n_reps, 2), ("n_xi", n_xi, 10)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"`{nm}` must be an int >= {lo}, got {v!r}.")
    eps = 1.0 / d if eps is None else float(eps)
    if not eps > 0:
        raise ValueError(f"`eps` must be > 0, got {eps!r}.")
    p = float(p)
    if not p >= 1:
        raise ValueError(f"`p` must be >= 1, got {p!r}.")
    return d, levels, per_level, single, eps, p


def _cells_to_run(cells, levels, per_level, panel_levels, panel_per_level):
    """``(panel_levels, panel_per_level, todo)``: the panels (defaults: the largest ``L``, the
    smallest ``m``) and the sorted ``(L, m)`` cells of ``cells="grid"`` or ``"panels"``."""
    panel_levels = [max(levels)] if panel_levels is None else _check_ints(
        "panel_levels", panel_levels, 1)
    panel_per_level = [min(per_level)] if panel_per_level is None else _check_ints(
        "panel_per_level", panel_per_level, 1)
    if cells == "grid":
        return panel_levels, panel_per_level, [(L, m) for L in levels for m in per_level]
    if not set(panel_levels) <= set(levels) or not set(panel_per_level) <= set(per_level):
        raise ValueError(f"`panel_levels` {panel_levels} must be among `levels` {levels} and "
                         f"`panel_per_level` {panel_per_level} among `per_level` {per_level}.")
    return panel_levels, panel_per_level, sorted(
        {(L, m) for L in panel_levels for m in per_level}
        | {(L, m) for L in levels for m in panel_per_level})


def _ideal(d, eps, p, rate_lo, rate_hi, levels, per_level, single, n_xi, key, n_rates=9):
    """``[L, m, lower, upper]``: ``m`` fresh reference-typical points at each of ``L`` levels."""
    rates = np.linspace(rate_lo, rate_hi, n_rates)
    weights = np.full(n_rates, 1.0)
    weights[0] = weights[-1] = 0.5
    weights /= weights.sum()
    ls, _, log_ms, _ = profile_tables(float(d), rates, eps, p, key=key, n=n_xi)
    v_lo, v_hi = profile_side_tables(float(d), ls, log_ms, eps, p, key=key, n=n_xi)
    rows = []
    pairs = sorted({(L, m) for L in levels for m in per_level} | {(1, q) for q in single})
    for L, m in pairs:
        lo_m = 1.0 - (1.0 - np.minimum(v_lo, 1.0)) ** m  # m fresh points at one level
        hi_m = np.minimum(m * v_hi, 1.0)
        lower = ideal_success(L, rates, weights, ls, lo_m, log_ms, float(d))
        upper = ideal_success(L, rates, weights, ls, hi_m, log_ms, float(d), combine="union")
        rows.append([int(L), int(m), float(lower), float(min(max(upper, lower), 1.0))])
    return rows


def format_levels_table(res) -> str:
    """A text table of :func:`levels_vs_queries`: one row per sampler and ``(L, m)``."""
    cfg = res["config"]
    lines = [f"d = {cfg['d']}, eps = {cfg['eps']:.3g}, p = {cfg['p']:g}, window width "
             f"{res['width']:.4f}; {cfg['n_reps']} replicates x {cfg['n_points']} points "
             f"(estimates of the two sides of P(some answer informative), +- 1 s.e.)",
             f"{'sampler':>17} {'L':>4} {'m':>4} {'queries':>8} {'in band':>8} "
             f"{'P lower':>15} {'P upper':>15} {'ideal lo..up':>14}"]
    ideal = {(r[0], r[1]): (r[2], r[3]) for r in res.get("ideal", [])}
    for c in res["cells"]:
        idl = ideal.get((c["L"], c["m"]))
        ids = f"{idl[0]:.3f}..{idl[1]:.3f}" if idl else ""
        lines.append(f"{c['sampler']:>17} {c['L']:>4} {c['m']:>4} {c['queries']:>8} "
                     f"{c['levels_in_band']:>8.2f} {c['p_lower']:>7.3f} +- {c['p_lower_se']:.3f}"
                     f" {c['p_upper']:>7.3f} +- {c['p_upper_se']:.3f} {ids:>14}")
    return "\n".join(lines)


__all__ = ["SAMPLERS", "make_sampler", "queries_per_chain", "levels_vs_queries",
           "format_levels_table"]
