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

import dataclasses
import math
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..config import option
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


def _int_list(value, name, flag, optional=False):
    """A tuple of ints from a tuple/list or comma-separated text (a flag's value)."""
    if value is None and optional:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,)
    items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) \
        else list(value) if isinstance(value, (list, tuple)) else None
    try:
        if items is None or any(isinstance(v, (bool, float)) for v in items):
            raise ValueError
        return tuple(int(v) for v in items)
    except (TypeError, ValueError):
        raise ValueError(f"{flag} expects comma-separated integers, got {value!r} (field "
                         f"`{name}`); e.g. {flag} 2,4,8") from None


@dataclasses.dataclass(frozen=True)
class LevelsConfig:
    """Settings of :func:`levels_vs_queries` (and of ``jscore lowerbound levels``: one flag per
    field): the one place their defaults live. Lists as tuples or comma-separated text; ``eps`` a
    number or a rule (``1/d``, ``1/sqrt(d)``, ``1/d^2``). ``ValueError`` naming the flag on bad
    values."""

    d: int = option(10_000.0, "dimension d (an integer; 1e4 accepted)", flag="--dim")
    levels: tuple = option(DEFAULT_LEVELS, "comma-separated numbers of levels L")
    per_level: tuple = option(DEFAULT_PER_LEVEL, "comma-separated queries-per-level knobs m "
                              "(AL steps, PC correctors)")
    single_level_queries: tuple = option(DEFAULT_SINGLE, "comma-separated total queries Q of "
                                         "the SingleLevel control", flag="--single")
    samplers: tuple = option(SAMPLERS, "annealed_langevin and/or pc")
    cells: str = option("grid", "grid: every (L, m); panels: only the two panels")
    panel_levels: tuple = option(None, "L of the 'against queries' panel (default: the largest L)")
    panel_per_level: tuple = option(None, "m of the 'against L' panel (default: the smallest m)")
    eps: str = option("1/d", "adversary accuracy: a number or a rule such as 1/d")
    p: float = option(2.0, "adversary L^p exponent p")
    n_points: int = option(16, "lattice points per replicate", flag="--points")
    n_reps: int = option(8, "independent replicates (>= 2)", flag="--reps")
    seed: int = option(0, "seed of the draws")
    rate: float = option(0.3, "hidden rate at which the window width is measured")
    rate_lo: float = option(0.15, "lowest hidden rate of the lattice")
    rate_hi: float = option(0.45, "highest hidden rate of the lattice")
    ideal: bool = option(True, "also the ideal family (m fresh points per level)")
    n_xi: int = option(1000, "reference-norm draws of the window width and the ideal family")

    def __post_init__(self):
        setf = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        if isinstance(self.d, str):
            try:
                setf("d", float(self.d))
            except ValueError:
                raise ValueError(f"--dim must be an integer in [2, 2^32), got {self.d!r} "
                                 "(field `d`)") from None
        if isinstance(self.d, bool) or not isinstance(self.d, (int, float, np.integer,
                                                                  np.floating)) \
                or not 2 <= self.d < 2**32 or int(self.d) != self.d:
            raise ValueError(f"--dim must be an integer in [2, 2^32), got {self.d!r} (field `d`)")
        setf("d", int(self.d))
        for name, flag, opt in (("levels", "--levels", False), ("per_level", "--per-level", False),
                                ("single_level_queries", "--single", False),
                                ("panel_levels", "--panel-levels", True),
                                ("panel_per_level", "--panel-per-level", True)):
            v = getattr(self, name)
            setf(name, () if v is None and not opt else _int_list(v, name, flag, opt))
        sm = self.samplers
        setf("samplers", tuple(x.strip() for x in sm.split(",") if x.strip())
             if isinstance(sm, str) else tuple(sm))
        if not isinstance(self.eps, (str, int, float)) or isinstance(self.eps, bool):
            raise TypeError(f"--eps must be a number or a rule such as 1/d, got {self.eps!r} "
                            "(field `eps`)")
        for name in ("n_points", "n_reps", "seed", "n_xi"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"`{name}` must be an integer, got {v!r}")
        for name in ("p", "rate", "rate_lo", "rate_hi"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"`{name}` must be a finite number, got {v!r}")
            setf(name, float(v))
        if not isinstance(self.ideal, bool):
            raise TypeError(f"`ideal` must be true or false, got {self.ideal!r}")
        self.eps_value()
        _check_arguments(self.d, self.levels, self.per_level, self.samplers,
                         self.single_level_queries, self.cells, self.n_points, self.n_reps,
                         self.n_xi, self.eps_value(), self.p)
        _cells_to_run(self.cells, sorted(set(self.levels)), sorted(set(self.per_level)),
                      self.panel_levels, self.panel_per_level)

    def eps_value(self) -> float:
        """``eps`` as a number at ``d``."""
        from .scaling import eps_value

        if self.eps is None:
            return 1.0 / self.d
        try:
            return eps_value(float(self.d), self.eps)
        except ValueError as e:
            raise ValueError(f"`eps` (--eps): {e}") from None

    def plan(self) -> dict:
        """:func:`levels_plan` of these settings."""
        kw = self.kwargs()
        kw.pop("ideal")
        return levels_plan(self.d, **kw)

    def kwargs(self) -> dict:
        """The keyword arguments of :func:`levels_vs_queries` (``eps`` as a number)."""
        kw = {f.name: getattr(self, f.name) for f in dataclasses.fields(LevelsConfig)
              if f.name != "d"}
        return {**kw, "eps": self.eps_value()}


_C = LevelsConfig  # the defaults of levels_vs_queries below


def levels_vs_queries(d, *, levels=_C.levels, per_level=_C.per_level, samplers=_C.samplers,
                      single_level_queries=_C.single_level_queries, cells=_C.cells,
                      panel_levels=None, panel_per_level=None, seed=_C.seed,
                      n_points=_C.n_points, n_reps=_C.n_reps, eps=None, p=_C.p, rate=_C.rate,
                      rate_lo=_C.rate_lo, rate_hi=_C.rate_hi, ideal=_C.ideal, n_xi=_C.n_xi,
                      log=None) -> dict:
    """``P(some answer informative)`` (both sides) against ``L`` distinct levels and ``m``
    queries per level, at dimension ``d`` (defaults: :class:`LevelsConfig`).

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
    log = log or (lambda msg: None)
    t_start = time.time()
    plan = levels_plan(d, levels=levels, per_level=per_level, samplers=samplers,
                       single_level_queries=single_level_queries, cells=cells,
                       panel_levels=panel_levels, panel_per_level=panel_per_level, seed=seed,
                       n_points=n_points, n_reps=n_reps, eps=eps, p=p, rate=rate,
                       rate_lo=rate_lo, rate_hi=rate_hi, n_xi=n_xi)
    width = levels_width(plan)
    out_cells = []
    for name in plan["samplers"]:
        for m in sorted({m for _, m in plan["todo"]}):
            dm = _draws(plan, width, make_sampler(name, m))
            for L in sorted(L for L, mm in plan["todo"] if mm == m):
                out_cells.append(_measure(dm, name, L, m, log,
                                          f"d={plan['d']} {name:>17} L={L:>3} m={m:>3} "))
    for Q in plan["single"]:
        out_cells.append(levels_cell(plan, width, "single_level", 1, Q, log))
    ideal_rows = levels_ideal(plan) if ideal else []
    return levels_result(plan, width, out_cells, ideal_rows, time.time() - t_start)


def levels_plan(d, *, levels, per_level, samplers, single_level_queries, cells, panel_levels,
                panel_per_level, seed, n_points, n_reps, eps, p, rate, rate_lo, rate_hi,
                n_xi) -> dict:
    """The validated settings of :func:`levels_vs_queries` and its ``todo`` list of ``(L, m)``
    cells, as a dict (the pieces :func:`levels_cell`, :func:`levels_ideal` and
    :func:`levels_result` take; ``eps`` a number or a rule, None: ``1/d``)."""
    if isinstance(eps, str):
        from .scaling import eps_value

        eps = eps_value(float(d), eps)
    d, levels, per_level, single, eps, p = _check_arguments(
        d, levels, per_level, samplers, single_level_queries, cells, n_points, n_reps, n_xi, eps,
        p)
    panel_levels, panel_per_level, todo = _cells_to_run(cells, levels, per_level, panel_levels,
                                                        panel_per_level)
    return dict(d=d, levels=levels, per_level=per_level, samplers=list(samplers), single=single,
                cells=cells, panel_levels=panel_levels, panel_per_level=panel_per_level,
                todo=todo, seed=int(seed), n_points=int(n_points), n_reps=int(n_reps), eps=eps,
                p=p, rate=rate, rate_lo=rate_lo, rate_hi=rate_hi, n_xi=int(n_xi))


def levels_width(plan) -> float:
    """The window width at ``plan['rate']`` (key ``fold_in(key(seed), 7)``)."""
    from .informative import window_edges

    key = jax.random.key(plan["seed"])
    lo_w, up_w = window_edges(float(plan["d"]), plan["rate"], plan["eps"], plan["p"],
                              key=jax.random.fold_in(key, 7), n=plan["n_xi"])
    return float(up_w - lo_w)


def _draws(plan, width, sampler):
    kd = jax.random.fold_in(jax.random.key(plan["seed"]), 3)  # shared by every cell
    return FullVectorDraws(sampler, plan["d"], plan["eps"], plan["p"], width, key=kd,
                           n_points=plan["n_points"], n_reps=plan["n_reps"],
                           k_max=max(plan["levels"]), rate_lo=plan["rate_lo"],
                           rate_hi=plan["rate_hi"])


def levels_cell(plan, width, name, L, m, log=None) -> dict:
    """One cell: sampler ``name`` (or ``"single_level"`` with ``L = 1``, ``m = Q``) on ``L``
    levels with knob ``m``; the same draws and chain keys as every other cell."""
    log = log or (lambda msg: None)
    head = f"d={plan['d']} {'single_level':>17} L=  1 " if name == "single_level" else \
        f"d={plan['d']} {name:>17} L={L:>3} m={m:>3} "
    return _measure(_draws(plan, width, make_sampler(name, m)), name, L, m, log, head)


def levels_ideal(plan) -> list:
    """The ideal family's ``[L, m, lower, upper]`` rows (key ``fold_in(key(seed), 5)``)."""
    return _ideal(plan["d"], plan["eps"], plan["p"], plan["rate_lo"], plan["rate_hi"],
                  plan["levels"], plan["per_level"], plan["single"], plan["n_xi"],
                  jax.random.fold_in(jax.random.key(plan["seed"]), 5))


def levels_result(plan, width, cells, ideal_rows, elapsed) -> dict:
    """The result dict of :func:`levels_vs_queries` from its pieces."""
    config = dict(d=plan["d"], levels=plan["levels"], per_level=plan["per_level"],
                  samplers=plan["samplers"], single_level_queries=plan["single"],
                  cells=plan["cells"], panel_levels=plan["panel_levels"],
                  panel_per_level=plan["panel_per_level"], seed=plan["seed"],
                  n_points=plan["n_points"], n_reps=plan["n_reps"], eps=plan["eps"],
                  p=plan["p"], rate=plan["rate"], rate_lo=plan["rate_lo"],
                  rate_hi=plan["rate_hi"], sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX,
                  n_xi=plan["n_xi"], device=str(jax.devices()[0]), jax=jax.__version__)
    return dict(config=config, width=width, cells=cells, ideal=ideal_rows, elapsed_s=elapsed)


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


__all__ = ["SAMPLERS", "LevelsConfig", "levels_cell", "levels_ideal", "levels_plan",
           "levels_result", "levels_width", "make_sampler", "queries_per_chain", "levels_vs_queries",
           "format_levels_table"]
