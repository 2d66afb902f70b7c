"""The rounds experiment's driver, files and figure (docs/experiments/rounds.md): the
experiment-layer half of :mod:`jscore.lowerbound.rounds`, whose measurements (audit, stage
profiles, searchers, samplers) return plain dict rows.

:func:`run_rounds` and :func:`plot_rounds` moved here from ``jscore.lowerbound.rounds``; its
``write_csv``/``write_json`` wrappers are gone (use :func:`jscore.store.write_csv` and
:func:`jscore.store.write_json`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import jax
import numpy as np

from ..lowerbound.rounds import (audit_grid, nested_audit, sampler_rounds, search_rounds,
                                 stage_profiles, stage_windows, summarize_audit, summarize_search)
from ..oracles.nested_adversary import NestedAdversary
from ..config import option
from ..plot import figure, save, series, style
from ..store import write_csv, write_json
from ..targets.nested import NestedCodebook
from .protocol import UnitExperiment

#: (d, L) pairs of the searchers in the default run.
DEFAULT_CONFIGS = ((24, 1), (24, 2), (24, 3), (48, 3), (48, 4))


def _numbers(value, name, kind):
    """A tuple of ``kind`` from a tuple/list (nested pairs flattened) or comma-separated text."""
    flag = "--" + name.replace("_", "-")
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, (list, tuple)):
        items = [x for v in value for x in (v if isinstance(v, (list, tuple)) else (v,))]
    else:
        items = None
    try:
        if items is None or any(isinstance(v, bool) or (kind is int and isinstance(v, float))
                                for v in items):
            raise ValueError
        return tuple(kind(v) for v in items)
    except (TypeError, ValueError):
        what = "integers" if kind is int else "numbers"
        raise ValueError(f"{flag} expects comma-separated {what}, got {value!r} (field "
                         f"`{name}`)") from None


def _pairs(value, name):
    vals = _numbers(value, name, int)
    flag = "--" + name.replace("_", "-")
    if not vals or len(vals) % 2:
        raise ValueError(f"{flag} expects D,L,D,L,... pairs of integers, got {value!r} (field "
                         f"`{name}`); e.g. {flag} 24,2")
    pairs = tuple((vals[i], vals[i + 1]) for i in range(0, len(vals), 2))
    for d, L in pairs:
        if d < 1 or L < 1 or d % L:
            raise ValueError(f"{flag}: d = {d} must be a positive multiple of L = {L} (field "
                             f"`{name}`).")
    return pairs


@dataclasses.dataclass(frozen=True)
class RoundsConfig:
    """Settings of :func:`run_rounds` (``jscore lowerbound rounds``: one flag per field), the one
    place their defaults live. Pairs as tuples ``((d, L), ...)`` or text ``D,L,D,L``; lists as
    tuples or comma-separated text. ``ValueError`` naming the flag on bad values."""

    experiment = "rounds"  # the name of the flags' help group
    configs: tuple = option(DEFAULT_CONFIGS, "(d, L) pairs of the searchers (d a multiple of L)",
                            metavar="D,L,...")
    sampler_configs: tuple = option(((24, 2), (24, 3)), "(d, L) pairs of the samplers",
                                    metavar="D,L,...")
    audit_config: tuple = option((24, 2), "(d, L) of the audit and the stage profiles",
                                 metavar="D,L")
    rates: tuple = option((0.3, 0.4, 0.5), "rate grid; variant v of a stage has rate "
                          "rates[v mod len(rates)]")
    scale_ratio: float = option(0.01, "a_{l+1} / a_l, in (0, 1)")
    eps: float = option(0.05, "adversary L^p accuracy eps")
    p: float = option(2.0, "adversary L^p exponent p")
    audit_ps: tuple = option((1.0, 2.0, 4.0), "audited exponents")
    audit_points: int = option(10_000, "planted points per sigma")
    searches: int = option(50, "searches per (d, L) and mode")
    chains: int = option(16, "sampler chains per (sampler, d, L)")
    levels_per_stage: tuple = option((8,), "sampler grid levels per factor 1/scale_ratio in sigma")
    seed: int = option(0, "seed of codebooks, points and chains")

    def __post_init__(self):
        setf = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        for name in ("configs", "sampler_configs", "audit_config"):
            setf(name, _pairs(getattr(self, name), name))
        if len(self.audit_config) != 1:
            raise ValueError(f"--audit-config takes one D,L pair, got {self.audit_config} "
                             "(field `audit_config`)")
        setf("audit_config", self.audit_config[0])
        for name in ("rates", "audit_ps"):
            setf(name, _numbers(getattr(self, name), name, float))
        setf("levels_per_stage", _numbers(self.levels_per_stage, "levels_per_stage", int))
        for name in ("searches", "chains", "audit_points", "seed"):
            v, lo = getattr(self, name), 0 if name == "seed" else 2
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"`{name}` must be an integer >= {lo}, got {v!r}.")
        for name in ("scale_ratio", "eps", "p"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"`{name}` must be a finite number, got {v!r}.")
            setf(name, float(v))
        if not 0 < self.scale_ratio < 1:
            raise ValueError(f"`scale_ratio` must be in (0, 1), got {self.scale_ratio}.")
        if not self.eps > 0 or not self.p >= 1 or any(p < 1 for p in self.audit_ps) \
                or not self.audit_ps:
            raise ValueError("`eps` must be > 0 and every p (`p`, `audit_ps`) >= 1, got "
                             f"eps = {self.eps}, p = {self.p}, audit_ps = {list(self.audit_ps)}.")
        if not self.rates or any(not r > 0 for r in self.rates):
            raise ValueError(f"`rates` must be positive, got {list(self.rates)}.")
        if not self.levels_per_stage or any(lps < 1 for lps in self.levels_per_stage):
            raise ValueError(f"`levels_per_stage` must be >= 1, got {list(self.levels_per_stage)}.")

    def to_dict(self) -> dict:
        """The fields as TOML/JSON data (pairs as lists)."""
        from .protocol import _plain

        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_toml(self) -> str:
        from .spec import toml_dumps

        return toml_dumps(self.to_dict(), "jscore lowerbound rounds settings (RoundsConfig)")

    @classmethod
    def from_dict(cls, data: dict):
        """The config from a TOML table; unknown keys raise ``ValueError``."""
        data = dict(data)
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"Unknown rounds keys {unknown}; known: {known}.")
        return cls(**data)


def plot_rounds(search_summary, sampler_rows, path):
    """Rounds (left) and queries (right) to full success against L, per searcher and sampler.

    ``search_summary``: rows of :func:`~jscore.lowerbound.rounds.summarize_search`;
    ``sampler_rows``: rows of :func:`~jscore.lowerbound.rounds.sampler_rounds`. Writes ``path``
    as PNG and PDF (:func:`jscore.plot.save`)."""
    with style():
        fig, (a1, a2) = figure(ncols=2, size=(10.5, 3.4))
        groups = {}
        for r in search_summary:
            if r["rounds_all"] > 0:
                groups.setdefault(f"{r['mode']} searcher, d={r['d']}", []).append(
                    (r["L"], r["rounds_all"], r["queries_all"]))
        for r in sampler_rows:
            ok = r["success"] > 0
            groups.setdefault(f"{r['sampler']}, d={r['d']}", []).append(
                (r["L"], r["rounds"] if ok else np.nan, r["queries"] if ok else np.nan))
        for i, (lab, pts) in enumerate(sorted(groups.items())):
            pts = sorted(pts)
            st = series(i)
            a1.plot([p[0] for p in pts], [p[1] for p in pts], label=lab, **st)
            a2.plot([p[0] for p in pts], [p[2] for p in pts], **st)
        Ls = sorted({r["L"] for r in search_summary})
        a1.plot(Ls, Ls, "k--", lw=0.8, label="rounds = L")
        for ax, lab in ((a1, "rounds to full success"), (a2, "queries to full success")):
            ax.set_xlabel("stages $L$")
            ax.set_ylabel(lab)
            ax.set_yscale("log")
        a2.legend(*a1.get_legend_handles_labels(), loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0.0, fontsize=6)
        save(fig, path)


def default_samplers() -> dict:
    """The samplers of the default run: Euler, ParallelPicard (window 8, tol 0.1 and inf) and
    RandomizedMidpoint with 4 points, by row name."""
    from ..samplers.euler import Euler
    from ..samplers.midpoint import RandomizedMidpoint
    from ..samplers.picard import ParallelPicard

    return {"euler": Euler(), "picard_w8_tol0.1": ParallelPicard(window=8, tol=0.1),
            "picard_w8_tolinf": ParallelPicard(window=8, tol=float("inf")),
            "midpoint_k4": RandomizedMidpoint(num_points=4)}


def run_rounds(out_dir, config: RoundsConfig | None = None, *, samplers=None, log=print,
               **changes):
    """The whole experiment with the settings ``config`` (default :class:`RoundsConfig`) and
    ``changes`` (its field names; ``ps`` for ``audit_ps``): audit and stage profiles at
    ``audit_config`` (d, L); both searchers at every ``configs`` (d, L); the samplers
    (``samplers``, a dict name -> sampler; default :func:`default_samplers`) at
    ``sampler_configs``. Writes ``audit.csv``, ``audit_summary.csv``, ``profiles.csv``,
    ``windows.csv``, ``search.csv``, ``search_summary.csv``, ``samplers.csv``,
    ``sampler_chains.csv``, ``rounds.json`` and ``rounds.png``/``.pdf`` into ``out_dir``. Needs
    ``jax_enable_x64``. Returns the JSON dict.
    """
    if "ps" in changes:
        changes["audit_ps"] = changes.pop("ps")
    cfg = config if config is not None else RoundsConfig()
    if changes:
        cfg = dataclasses.replace(cfg, **changes)  # validated again
    configs, rates, scale_ratio, eps, p = (cfg.configs, cfg.rates, cfg.scale_ratio, cfg.eps,
                                           cfg.p)
    audit_config, audit_points, ps, searches = (cfg.audit_config, cfg.audit_points,
                                                cfg.audit_ps, cfg.searches)
    chains, levels_per_stage, sampler_configs, seed = (cfg.chains, cfg.levels_per_stage,
                                                       cfg.sampler_configs, cfg.seed)
    if not jax.config.jax_enable_x64:
        raise ValueError("run_rounds needs float64: set jax.config.update('jax_enable_x64', True) "
                         "(logits of the nested codebook reach a_0^2 k / sigma_min^2).")
    os.makedirs(out_dir, exist_ok=True)
    samplers = default_samplers() if samplers is None else samplers
    key = jax.random.key(seed)
    out = dict(config=dict(rates=list(rates), scale_ratio=scale_ratio, eps=eps, p=p,
                           audit_config=list(audit_config), audit_points=audit_points,
                           searches=searches, chains=chains, seed=seed,
                           levels_per_stage=list(levels_per_stage)))

    def make(d, L):
        kk = jax.random.fold_in(jax.random.fold_in(key, d), L)
        nc = NestedCodebook.random(kk, d, L, rates=rates, scale_ratio=scale_ratio)
        return nc, NestedAdversary(nc, eps, p)

    t0 = time.perf_counter()
    elapsed = lambda: time.perf_counter() - t0  # noqa: E731
    out["audit_summary"], out["windows"] = _audit_stage(out_dir, make, audit_config, ps,
                                                        audit_points, key, log, elapsed)
    out["search_summary"] = _search_stage(out_dir, make, configs, searches, key, log, elapsed)
    out["samplers"] = _sampler_stage(out_dir, make, sampler_configs, samplers, levels_per_stage,
                                     chains, key, log, elapsed)
    out["elapsed_s"] = elapsed()
    write_json(os.path.join(out_dir, "rounds.json"), out)
    plot_rounds(out["search_summary"], out["samplers"], os.path.join(out_dir, "rounds.png"))
    return out


def _audit_stage(out_dir, make, audit_config, ps, audit_points, key, log, elapsed):
    """Audit and stage profiles at ``audit_config``; writes ``audit.csv``, ``audit_summary.csv``,
    ``profiles.csv`` and ``windows.csv``. Returns ``(audit summary rows, window rows)``."""
    nc, adv = make(*audit_config)
    grid = audit_grid(nc, per_stage=15)
    rows = nested_audit(adv, grid, ps=ps, n=audit_points, key=jax.random.fold_in(key, 1), log=log)
    write_csv(os.path.join(out_dir, "audit.csv"), rows)
    summ = summarize_audit(rows)
    write_csv(os.path.join(out_dir, "audit_summary.csv"), summ)
    log(f"audit d={audit_config[0]} L={audit_config[1]}: {len(grid)} sigmas, "
        f"max upper/eps = {max(r['max_upper_over_eps'] for r in summ):.3g} "
        f"({elapsed():.0f} s)")
    prof = stage_profiles(adv, grid, n=1000, key=jax.random.fold_in(key, 2))
    write_csv(os.path.join(out_dir, "profiles.csv"), prof)
    win = stage_windows(prof, nc.num_stages)
    write_csv(os.path.join(out_dir, "windows.csv"), win)
    log(f"profiles: windows {win} ({elapsed():.0f} s)")
    return summ, win


def _search_stage(out_dir, make, configs, searches, key, log, elapsed):
    """Both searchers at every (d, L) of ``configs``; writes ``search.csv`` (after every config)
    and ``search_summary.csv``. Returns the summary rows."""
    search = []
    for d, L in configs:
        nc, adv = make(d, L)
        for mode in ("parallel", "sequential"):
            search += search_rounds(adv, searches, jax.random.fold_in(key, 3 + d * 10 + L),
                                    mode=mode)
            mine = [r for r in search if r["mode"] == mode and r["L"] == L and r["d"] == d]
            log(f"search d={d} L={L} {mode}: {summarize_search(mine)}")
        log(f"search d={d} L={L} done ({elapsed():.0f} s)")
        write_csv(os.path.join(out_dir, "search.csv"), search)
    ssum = summarize_search(search)
    write_csv(os.path.join(out_dir, "search_summary.csv"), ssum)
    return ssum


def _sampler_stage(out_dir, make, sampler_configs, samplers, levels_per_stage, chains, key, log,
                   elapsed):
    """The samplers at every (d, L) of ``sampler_configs``; writes ``samplers.csv`` and
    ``sampler_chains.csv`` after every config. Returns the per-sampler rows."""
    srows, schains = [], []
    for d, L in sampler_configs:
        nc, adv = make(d, L)
        r, c = sampler_rounds(adv, samplers, levels_per_stage, n=chains,
                              key=jax.random.fold_in(key, 4 + d * 10 + L))
        srows += r
        schains += c
        log(f"samplers d={d} L={L} done ({elapsed():.0f} s)")
        write_csv(os.path.join(out_dir, "samplers.csv"), srows)
        write_csv(os.path.join(out_dir, "sampler_chains.csv"), schains)
    return srows


__all__ = ["DEFAULT_CONFIGS", "RoundsConfig", "RoundsLab", "default_samplers", "plot_rounds",
           "run_rounds"]


@dataclasses.dataclass(frozen=True)
class RoundsLab(RoundsConfig, UnitExperiment):
    """The rounds experiment as a unit experiment (``experiment = "rounds"``, ``jscore sweep
    FILE``): the fields of :class:`RoundsConfig` and a run folder ``name``; the samplers are
    :func:`default_samplers`. Units: ``["audit"]`` (audit, stage profiles and windows at
    ``audit_config``), ``["search", d, L]`` (both searchers) per ``configs`` pair and
    ``["samplers", d, L]`` per ``sampler_configs`` pair, each with the keys of
    :func:`run_rounds`, so the numbers are the same. :meth:`consolidate` writes the files of
    :func:`run_rounds`."""

    experiment = "rounds"
    result_file = "rounds.json"  # what the command wrote before it resumed
    to_dict = UnitExperiment.to_dict
    to_toml = UnitExperiment.to_toml
    from_dict = UnitExperiment.__dict__["from_dict"]
    name: str = option("rounds", "run folder suffix (jscore sweep: jscore-sweep-NAME)",
                       cli=False, identity=False)

    def units(self) -> list:
        return ([["audit"]] + [["search", d, L] for d, L in self.configs]
                + [["samplers", d, L] for d, L in self.sampler_configs])

    def _make(self, d, L):
        key = jax.random.key(self.seed)
        kk = jax.random.fold_in(jax.random.fold_in(key, d), L)
        nc = NestedCodebook.random(kk, d, L, rates=self.rates, scale_ratio=self.scale_ratio)
        return nc, NestedAdversary(nc, self.eps, self.p)

    def run_unit(self, unit, *, log=print) -> dict:
        from ..store import json_default
        import json

        with jax.enable_x64(True):
            key = jax.random.key(self.seed)
            if unit[0] == "audit":
                nc, adv = self._make(*self.audit_config)
                grid = audit_grid(nc, per_stage=15)
                rows = nested_audit(adv, grid, ps=self.audit_ps, n=self.audit_points,
                                    key=jax.random.fold_in(key, 1), log=log)
                prof = stage_profiles(adv, grid, n=1000, key=jax.random.fold_in(key, 2))
                row = dict(audit=rows, audit_summary=summarize_audit(rows), profiles=prof,
                           windows=stage_windows(prof, nc.num_stages))
            elif unit[0] == "search":
                d, L = unit[1:]
                nc, adv = self._make(d, L)
                row = dict(search=[r for mode in ("parallel", "sequential") for r in
                                   search_rounds(adv, self.searches,
                                                 jax.random.fold_in(key, 3 + d * 10 + L),
                                                 mode=mode)])
            else:
                d, L = unit[1:]
                nc, adv = self._make(d, L)
                r, c = sampler_rounds(adv, default_samplers(), self.levels_per_stage,
                                      n=self.chains, key=jax.random.fold_in(key, 4 + d * 10 + L))
                row = dict(samplers=r, sampler_chains=c)
        return json.loads(json.dumps(row, default=json_default))

    def consolidate(self, rows, out, *, plot=True, log=print, stats=None):
        from .protocol import ExperimentResult

        audit = next((r for r in rows if "audit" in r), None)
        search = [x for r in rows if "search" in r for x in r["search"]]
        srows = [x for r in rows if "samplers" in r for x in r["samplers"]]
        chains = [x for r in rows if "sampler_chains" in r for x in r["sampler_chains"]]
        res = dict(config=dict(rates=list(self.rates), scale_ratio=self.scale_ratio,
                               eps=self.eps, p=self.p, audit_config=list(self.audit_config),
                               audit_points=self.audit_points, searches=self.searches,
                               chains=self.chains, seed=self.seed,
                               levels_per_stage=list(self.levels_per_stage)),
                   audit_summary=audit["audit_summary"] if audit else [],
                   windows=audit["windows"] if audit else [],
                   search_summary=summarize_search(search) if search else [], samplers=srows,
                   elapsed_s=(stats or {}).get("seconds", 0.0))
        files = []
        if out is not None:
            tables = dict(search=search, search_summary=res["search_summary"], samplers=srows,
                          sampler_chains=chains)
            if audit:
                tables = dict(audit=audit["audit"], audit_summary=audit["audit_summary"],
                              profiles=audit["profiles"], windows=audit["windows"], **tables)
            for stem, data in tables.items():
                if data:
                    files.append(write_csv(os.path.join(out, f"{stem}.csv"), data))
            files.append(write_json(os.path.join(out, "rounds.json"), res))
            if plot:
                plot_rounds(res["search_summary"], srows, os.path.join(out, "rounds.png"))
                files.append(os.path.join(out, "rounds.png"))
        text = (f"rounds experiment: {len(rows)} of {len(self.units())} units; "
                f"{len(search)} searches, {len(srows)} sampler rows\n")
        return ExperimentResult(out=out, config=self, rows=rows, results=res, files=files,
                                text=text, complete=len(rows) == len(self.units()))
