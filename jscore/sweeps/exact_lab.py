"""The exact-codebook lab as an experiment of the unit protocol (``jscore lowerbound exact``,
``jscore sweep exact.toml`` with ``experiment = "exact"``).

:class:`ExactLab` holds the lab's settings (one :func:`~jscore.config.option` field per flag of
``jscore lowerbound exact``). Five experiments, each cut into small units so that a killed run
loses at most one unit in progress (docs/experiments/exact_lab.md):

- ``audit``: one unit per sigma of the audit grid (every ``p`` from one pass);
- ``bracket``: one unit per (d, sigma/sigma_c);
- ``tv``: one unit per (d, rate, sigma/sigma_c);
- ``success``: one unit per (replicate seed, rate, K, offset, sampler, oracle) of each d;
- ``search``: one unit per (d, hidden rate).

A unit is ``[experiment, {settings}]`` naming everything its row depends on (the unit functions of
:mod:`jscore.lowerbound.exact_experiments` derive their keys from it exactly as before), so the
config hash is the experiment's name alone: runs with any settings share one folder and resume
each other's units, as the lab's CSV files did. The codebook of a (d, rate) is drawn once per
process and shared by its units (a small cache). :meth:`ExactLab.consolidate` writes the files of
the current configuration's units into the run folder: ``audit.csv``, ``audit_summary.csv``,
``bracket.csv``, ``bracket_summary.csv``, ``tv.csv``, ``success_units.csv``,
``success_d{d}.csv``, ``gap_d{d}.csv``, ``search.csv`` and their figures (PNG and PDF); every
unit ever run into the folder stays in ``units-p<i>.jsonl``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future

from ..config import option
from ..lowerbound.exact_experiments import error_bar
from ..lowerbound.scaling_config import split_names
from ..lowerbound.validation import BRACKET_RATIOS
from ..store import write_table
from .protocol import ExperimentResult, UnitExperiment

EXPERIMENTS = ("tv", "success", "search", "audit", "bracket")
ORACLES = ("adversary", "exact", "reference")
THETA0 = 0.9  # decoder threshold
RHO = 1.0  # codeword norm / sqrt(d)
ALPHA = 0.05  # family-wise level of the bracket check


# ----------------------------------------------------------------------------- parsing fields
def _items(value, field, flag):
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise TypeError(f"`{field}` ({flag}) must be a comma-separated text or a list, got "
                    f"{value!r} of type {type(value).__name__}.")


def _numbers(value, field, flag, kind):
    out = []
    for v in _items(value, field, flag):
        try:
            if kind is int:
                if isinstance(v, bool) or (isinstance(v, float) and v != int(v)):
                    raise ValueError
                x = int(v)
            else:
                if isinstance(v, bool):
                    raise ValueError
                x = float(v)
        except (TypeError, ValueError):
            what = "integers" if kind is int else "numbers"
            raise ValueError(f"{flag} expects comma-separated {what}, got {value!r} "
                             f"(field `{field}`); e.g. {flag} 12,16") from None
        out.append(x)
    return tuple(out)


def _names(value, field, flag):
    """Comma-separated names; ``name:key=value,key=value`` keeps its options together
    (:func:`jscore.lowerbound.scaling_config.split_names`)."""
    return tuple(split_names(",".join(str(v) for v in _items(value, field, flag))))


# ----------------------------------------------------------------------------- codebook cache
_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 2


def _cached(key, make):
    """``make()`` once per ``key`` in this process (the last ``_CACHE_SIZE`` keys are kept);
    threads asking for a key being made wait for it."""
    import jax

    key = (*key, str(jax.config.jax_default_device))  # one copy per device of the workers
    with _CACHE_LOCK:
        fut = _CACHE.get(key)
        owner = fut is None
        if owner:
            fut = _CACHE[key] = Future()
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        else:
            _CACHE.move_to_end(key)
    if owner:
        try:
            fut.set_result(make())
        except BaseException as e:
            fut.set_exception(e)
            with _CACHE_LOCK:
                _CACHE.pop(key, None)
            raise
    return fut.result()


def clear_cache() -> None:
    """Drop the cached codebooks."""
    with _CACHE_LOCK:
        _CACHE.clear()


# ----------------------------------------------------------------------------- the config
_RO = dict(identity=False)  # every setting a row depends on is in its unit (see the docstring)


@dataclasses.dataclass(frozen=True)
class ExactLab(UnitExperiment):
    """Settings of the exact-codebook lab (``jscore lowerbound exact``); lists as tuples (or
    comma-separated text, parsed here). Validation: ``ValueError`` naming the flag and the value
    before anything runs, including the memory guard ``max_codewords`` on every codebook of the
    selected experiments."""

    experiment = "exact"
    name: str = option("lowerbound-exact", "run folder suffix (jscore sweep: jscore-sweep-NAME)",
                       cli=False, **_RO)
    experiments: tuple = option(EXPERIMENTS, "comma-separated subset of tv, success, search, "
                                "audit, bracket, or all", flag="--experiment",
                                aliases=("--experiments",), **_RO)
    dims: tuple = option((32,), "dimensions of success and search", **_RO)
    rates: tuple = option((0.15, 0.2, 0.25, 0.3, 0.35),
                          "hidden-rate grid of success and search", **_RO)
    ks: tuple = option((2, 3, 4, 6, 8, 12, 16, 24), "numbers of geometric levels K", **_RO)
    chains: int = option(100, "chains per (sampler, oracle, rate, K, offset) unit", **_RO)
    offsets: int = option(4, "stratified random log-offsets per K", **_RO)
    replicates: int = option(1, "success: independent copies of the design (seeds seed, "
                             "seed+1, ...; fresh codebooks, offsets, chains); >= 2 adds replicate "
                             "standard errors", **_RO)
    samplers: tuple = option(("euler", "heun", "euler_ancestral", "dpmpp_2m"),
                             "catalogue sampler names", **_RO)
    oracles: tuple = option(ORACLES, "adversary, exact, reference", **_RO)
    eps: float = option(0.05, "adversary L^p accuracy eps", **_RO)
    p: float = option(2.0, "adversary L^p exponent p", **_RO)
    sigma_min: float = option(0.02, "smallest level of the grids", **_RO)
    sigma_max: float = option(20.0, "largest level of the grids", **_RO)
    tv: tuple = option((32, 0.3, 48, 0.25), "(d, rate) pairs of the TV curve", metavar="D,R,D,R",
                       **_RO)
    tv_ratios: tuple = option((0.8, 0.9, 1.0, 1.1, 1.25, 1.6), "sigma/sigma_c of the TV curve",
                              **_RO)
    tv_points: int = option(2000, "planted points per TV value", **_RO)
    searches: int = option(1000, "searches per hidden rate", **_RO)
    audit_dim: int = option(40, "dimension of the audit", **_RO)
    audit_rate: float = option(0.25, "hidden rate of the audit", **_RO)
    audit_ps: tuple = option((1.0, 2.0, 4.0), "L^p exponents audited", **_RO)
    audit_sigmas: int = option(41, "log-spaced sigma from sigma_c/30 to 30 sigma_c, plus "
                               "sigma-min/max", **_RO)
    audit_points: int = option(10_000, "planted points per sigma", **_RO)
    bracket_dims: tuple = option((40,), "bracket: dimensions of the check of the exact "
                                 "informative fraction against [lower, upper]", **_RO)
    bracket_rate: float = option(0.25, "bracket: hidden rate", **_RO)
    bracket_ratios: tuple = option(None, "bracket: sigma/sigma_c values (default: 16 values in "
                                   "[0.4, 3])", **_RO)
    bracket_points: int = option(2000, "bracket: reference points per sigma", **_RO)
    max_codewords: float = option(2e7, "refuse codebooks larger than this (memory guard)", **_RO)
    seed: int = option(0, "seed of codebooks, points and chains", **_RO)

    def __post_init__(self):
        setf = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        exps = _names(self.experiments, "experiments", "--experiment")
        exps = EXPERIMENTS if exps in ((), ("all",)) else exps
        bad = [x for x in exps if x not in EXPERIMENTS]
        if bad:
            raise ValueError(f"unknown --experiment {list(bad)} (field `experiments`); choose "
                             f"from {', '.join(EXPERIMENTS)} or all")
        setf("experiments", tuple(exps))
        oracles = _names(self.oracles, "oracles", "--oracles")
        bad = [o for o in oracles if o not in ORACLES]
        if bad or not oracles:
            raise ValueError(f"unknown --oracles {bad or '(empty)'} (field `oracles`); choose "
                             f"from {', '.join(ORACLES)}")
        setf("oracles", oracles)
        setf("samplers", _names(self.samplers, "samplers", "--samplers"))
        for f, kind in (("dims", int), ("ks", int), ("bracket_dims", int), ("rates", float),
                        ("tv", float), ("tv_ratios", float), ("audit_ps", float)):
            setf(f, _numbers(getattr(self, f), f, "--" + f.replace("_", "-"), kind))
        if self.bracket_ratios is not None:
            setf("bracket_ratios", _numbers(self.bracket_ratios, "bracket_ratios",
                                            "--bracket-ratios", float))
        if "tv" in exps and len(self.tv) % 2 == 0:
            setf("tv", tuple(v if i % 2 else int(v) for i, v in enumerate(self.tv)))
        self._check()
        if "success" in exps:
            from ..samplers.catalogue import make

            if not self.samplers:
                raise ValueError("--samplers is empty (field `samplers`); e.g. --samplers euler")
            for s in self.samplers:
                make(s)  # ValueError "Unknown sampler ..." naming the catalogue

    def _check(self):
        def flag(name):
            return "--" + name.replace("_", "-")

        for name in ("chains", "offsets", "replicates", "bracket_points", "tv_points", "searches",
                     "audit_dim", "audit_points", "audit_sigmas", "seed"):
            v, lo = getattr(self, name), 2 if name == "audit_sigmas" else 0 if name == "seed" else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{flag(name)} must be an integer >= {lo}, got {v!r} "
                                 f"(field `{name}`)")
        for name in ("eps", "p", "sigma_min", "sigma_max", "audit_rate", "bracket_rate",
                     "max_codewords"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{flag(name)} must be a finite number, got {v!r} "
                                 f"(field `{name}`)")
            object.__setattr__(self, name, float(v))
        if not self.dims or any(d < 2 for d in self.dims):
            raise ValueError(f"--dims must be integers >= 2, got {list(self.dims)} (field `dims`)")
        if not self.ks or any(k < 1 for k in self.ks):
            raise ValueError(f"--ks must be integers >= 1 (numbers of levels), got "
                             f"{list(self.ks)} (field `ks`)")
        for name in ("rates", "tv", "tv_ratios", "audit_ps"):
            vals = getattr(self, name)
            if not all(math.isfinite(v) for v in vals):
                raise ValueError(f"{flag(name)} must be finite numbers, got {list(vals)} "
                                 f"(field `{name}`)")
        if not self.rates or any(not r > 0 for r in self.rates):
            raise ValueError(f"--rates must be positive (nats per dimension), got "
                             f"{list(self.rates)} (field `rates`)")
        if not self.eps > 0:
            raise ValueError(f"--eps must be > 0, got {self.eps} (field `eps`)")
        if not self.p >= 1 or any(not p >= 1 for p in self.audit_ps) or not self.audit_ps:
            raise ValueError(f"--p and --audit-ps must be >= 1, got {self.p}, "
                             f"{list(self.audit_ps)} (fields `p`, `audit_ps`)")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"need 0 < --sigma-min < --sigma-max, got {self.sigma_min}, "
                             f"{self.sigma_max} (fields `sigma_min`, `sigma_max`)")
        if len(self.tv) % 2 or not self.tv:
            raise ValueError(f"--tv takes pairs d,rate (even length), got {list(self.tv)} "
                             "(field `tv`); e.g. --tv 32,0.3,48,0.25")
        if any(not f > 0 for f in self.tv_ratios) or not self.tv_ratios:
            raise ValueError(f"--tv-ratios must be positive, got {list(self.tv_ratios)} "
                             "(field `tv_ratios`)")
        exps = self.experiments
        sizes = []
        if "success" in exps or "search" in exps:
            sizes += [(d, r) for d in self.dims for r in self.rates]
        if "tv" in exps:
            sizes += self.tv_pairs()
        if "audit" in exps:
            sizes.append((self.audit_dim, self.audit_rate))
        if "bracket" in exps:
            br = self.bracket_ratios
            if not self.bracket_dims or (br is not None and (
                    not br or any(not (math.isfinite(f) and f > 0) for f in br))):
                raise ValueError(f"--bracket-dims must be non-empty and --bracket-ratios "
                                 f"positive, got {list(self.bracket_dims)}, "
                                 f"{None if br is None else list(br)} (fields `bracket_dims`, "
                                 "`bracket_ratios`)")
            sizes += [(d, self.bracket_rate) for d in self.bracket_dims]
        for d, r in sizes:
            if not (d >= 2 and r > 0):
                raise ValueError(f"bad (d, rate) = ({d}, {r}): need d >= 2 and rate > 0")
            M = math.exp(r * d)
            if M > self.max_codewords:
                raise ValueError(
                    f"d = {d}, rate = {r} needs M = exp(rate d) = {M:.3g} codewords "
                    f"({M * d * 4 / 2**30:.1f} GiB float32), above --max-codewords "
                    f"{self.max_codewords:.3g} (field `max_codewords`); lower d or the rate, or "
                    "raise --max-codewords")

    # ------------------------------------------------------------------ the units
    def tv_pairs(self) -> list:
        """The (d, rate) pairs of ``tv``."""
        return [(int(self.tv[i]), float(self.tv[i + 1])) for i in range(0, len(self.tv), 2)]

    def seeds(self) -> list:
        """Seeds of the success replicates: ``seed, seed + 1, ...``."""
        return [self.seed + k for k in range(self.replicates)]

    def units(self) -> list:
        """Units ``[experiment, {everything its row depends on}]``, in the order the command ran
        them before: audit, bracket, tv, then per d success and search."""
        out = []
        ex = self.experiments
        if "audit" in ex:
            from ..lowerbound.exact_experiments import audit_sigmas

            grid = audit_sigmas(self.audit_dim, self.audit_rate, self.audit_sigmas,
                                (self.sigma_min, self.sigma_max), RHO)
            out += [["audit", dict(d=self.audit_dim, rate=self.audit_rate, eps=self.eps,
                         ps=list(self.audit_ps), n=self.audit_points, seed=self.seed,
                         sigma_index=i, sigma=float(s))] for i, s in enumerate(grid)]
        if "bracket" in ex:
            ratios = BRACKET_RATIOS if self.bracket_ratios is None else self.bracket_ratios
            out += [["bracket", dict(d=d, rate=self.bracket_rate, index=k, ratio=float(f),
                         n=self.bracket_points, seed=self.seed, eps=self.eps, p=self.p)]
                    for d in self.bracket_dims for k, f in enumerate(ratios)]
        if "tv" in ex:
            out += [["tv", dict(d=d, rate=r, ratio=float(f), n=self.tv_points, seed=self.seed)]
                    for d, r in self.tv_pairs() for f in self.tv_ratios]
        for d in self.dims:
            if "success" in ex:
                out += [["success", dict(sampler=s, oracle=o, d=d, rate=float(r), K=int(K),
                             offset_index=u, offsets=self.offsets, chains=self.chains, seed=sd,
                             eps=self.eps, p=self.p, sigma_min=self.sigma_min,
                             sigma_max=self.sigma_max)]
                        for sd in self.seeds() for r in self.rates for K in self.ks
                        for u in range(self.offsets) for s in self.samplers for o in self.oracles]
            if "search" in ex:
                out += [["search", dict(d=d, rate=float(r), rates=list(self.rates),
                             n=self.searches, seed=self.seed, eps=self.eps, p=self.p)]
                        for r in self.rates]
        return out

    def describe(self) -> str:
        units = self.units()
        counts = {x: sum(u[0] == x for u in units) for x in self.experiments}
        fields = ", ".join(f"{k} = {v!r}" for k, v in self.to_dict().items())
        return (f"exact experiment: {len(units)} units ("
                + ", ".join(f"{k} {v}" for k, v in counts.items()) + f"); {fields}")

    def run_unit(self, unit, *, log=print) -> dict:
        """The row of one unit (for ``audit``: ``{"rows": [one per p]}``), from the unit alone."""
        from ..lowerbound import exact_experiments as E

        kind, u = unit[0], dict(unit[1])
        if kind == "tv":
            cb = _cached(("tv", u["d"], u["rate"], u["seed"]),
                         lambda: E.tv_codebook(u["d"], u["rate"], u["seed"], RHO))
            row = E.tv_unit(rho=RHO, codebook=cb, **u)
            log(f"tv d={row['d']} R={row['rate']} sigma/sigma_c={row['ratio']}: "
                f"TV={row['tv']:.3f} Phi={row['phi']:.3f}")
            return row
        if kind == "success":
            cb = _cached(("success", u["d"], u["rate"], u["seed"]),
                         lambda: E.success_codebook(u["d"], u["rate"], u["seed"], RHO))
            row = E.success_unit(u.pop("sampler"), _sampler(unit[1]["sampler"]), u.pop("oracle"),
                                 u.pop("d"), u.pop("rate"), u.pop("K"), u.pop("offset_index"),
                                 theta0=THETA0, rho=RHO, codebook=cb, **u)
            log(f"success R={row['rate']} K={row['K']} u={row['offset_index']} "
                f"{row['sampler']}/{row['oracle']}: success {row['success']:.2f}, informative "
                f"{row['informative']:.2f} seed {row['seed']} ({row['seconds']:.1f} s)")
            return row
        if kind == "search":
            row = E.search_unit(u.pop("d"), u.pop("rate"), u.pop("rates"), u.pop("n"), rho=RHO,
                                **u)
            log(f"search d={row['d']} R={row['rate']}: {row['mean_queries']:.3f} queries, "
                f"hits {row['mean_hits']:.2f}")
            return row
        if kind == "bracket":
            cb = _cached(("bracket", u["d"], u["rate"], u["seed"]),
                         lambda: E.bracket_codebook(u["d"], u["rate"], u["seed"], RHO))
            row = E.bracket_unit(u.pop("d"), u.pop("rate"), u.pop("index"), u.pop("ratio"),
                                 u.pop("n"), rho=RHO, codebook=cb, **u)
            log(f"bracket d={row['d']} sigma/sigma_c={row['ratio']}: exact {row['exact']:.3f} in "
                f"[{row['lower']:.3f}, {row['upper']:.3f}]? {row['side']} "
                f"({row['outside_se']:.2f} SE out; {row['seconds']:.0f} s)")
            return row
        if kind == "audit":
            cb = _cached(("audit", u["d"], u["rate"], u["seed"]),
                         lambda: E.audit_codebook(u["d"], u["rate"], u["seed"], RHO))
            rows = E.audit_unit(u.pop("d"), u.pop("rate"), u.pop("sigma_index"), u.pop("sigma"),
                                rho=RHO, codebook=cb, **u)
            r0 = rows[0]
            log(f"audit sigma/sigma_c={r0['ratio']:.4g}: max upper/eps over p = "
                f"{max(r['upper'] for r in rows) / r0['eps']:.3g} ({r0['seconds']:.1f} s)")
            return {"rows": rows}
        raise ValueError(f"ExactLab.run_unit: unknown unit {unit!r}")

    # ------------------------------------------------------------------ the result
    def consolidate(self, rows, out, *, plot=True, log=print, stats=None):
        """The lab's CSV files, summaries and figures from the unit rows (into ``out`` unless
        None); the text of :meth:`ExperimentResult.table` is the tables
        ``jscore lowerbound exact`` prints."""
        kinds = {k: [r for r in rows if r["unit"][0] == k] for k in EXPERIMENTS}
        w = _Outputs(out, plot)
        if "audit" in self.experiments:
            self._audit_outputs(w, kinds["audit"])
        if "bracket" in self.experiments:
            self._bracket_outputs(w, kinds["bracket"])
        if "tv" in self.experiments:
            self._tv_outputs(w, kinds["tv"])
        self._success_and_search_outputs(w, kinds["success"], kinds["search"])
        w.results["stats"] = stats
        return ExperimentResult(out, self, rows, w.results, w.files, "".join(w.text),
                                complete=len(rows) == len(self.units()))

    def _audit_outputs(self, w, units):
        from ..lowerbound import exact_experiments as E

        arows = [r for u in units for r in u["rows"]]
        summary = E.audit_summary(arows, self.audit_ps, self.eps)
        w.results["audit"], w.results["audit_summary"] = arows, summary
        if summary:
            w.csv("audit.csv", _strip(arows, E.AUDIT_FIELDS))
            w.csv("audit_summary.csv", summary)
            w.fig("audit.png", lambda f: plot_audit(arows, f, self.eps))
        w.text.append(format_table(
            "audit (max over sigma of the L^p error; UCB = upper confidence bound)", summary,
            ["p", "num_sigmas", "max_lp_error", "max_upper_over_eps", "argmax_ratio",
             "zero_error_up_to_ratio", "passed"]))

    def _bracket_outputs(self, w, units):
        from ..lowerbound import exact_experiments as E
        from ..lowerbound import validation as V

        brows = _strip(units, E.BRACKET_FIELDS)
        groups = []
        for d in self.bracket_dims:
            sub = [r for r in brows if r["d"] == d]
            if sub:
                groups.append((V.bracket_summary(sub, ALPHA),
                               sorted(sub, key=lambda r: float(r["ratio"]))))
        summaries = [g[0] for g in groups]
        w.results["bracket"], w.results["bracket_summary"] = brows, summaries
        if groups:
            w.csv("bracket.csv", brows)
            w.csv("bracket_summary.csv", [V.bracket_summary(g[1], ALPHA) for g in groups])
            w.fig("bracket.png", lambda f: plot_bracket([g[1] for g in groups], f,
                                                      [V.bracket_summary(g[1], ALPHA)
                                                       for g in groups]))
        w.text.append(format_table(
            "bracket: exact informative fraction vs [lower, upper] at the same query norms "
            "(worst point per d, in binomial SEs; tolerance = Bonferroni over the points, "
            "family-wise alpha = 0.05)", summaries,
            ["d", "M", "points", "max_outside_se", "at_ratio", "side", "outside",
             "tolerance_se", "passed"]))

    def _tv_outputs(self, w, units):
        from ..lowerbound import exact_experiments as E

        trows = _strip(units, E.TV_FIELDS)
        w.results["tv"] = trows
        w.csv("tv.csv", trows)
        if trows:
            w.fig("tv.png", lambda f: plot_tv(trows, f))
        w.text.append(format_table("TV(P_sigma, Q_sigma) vs Phi", trows,
                                   ["d", "rate", "M", "ratio", "tv", "tv_se", "planted_exceed",
                                    "phi", "tv_minus_phi"]))

    def _success_and_search_outputs(self, w, success_units, search_units):
        from ..lowerbound import exact_experiments as E

        srows = _strip(success_units, E.SUCCESS_FIELDS)
        qrows = _strip(search_units, E.SEARCH_FIELDS)
        w.csv("success_units.csv", srows)
        w.csv("search.csv", qrows)
        w.results["success_units"], w.results["search"] = srows, qrows
        for d in self.dims:
            if "success" in self.experiments:
                self._success_outputs(w, d, [r for r in srows if r["d"] == d])
            if "search" in self.experiments:
                sub = [r for r in qrows if r["d"] == d]
                w.text.append(format_table(f"optimal adaptive searcher (d = {d})", sub,
                                           ["rate", "M", "num_centres", "mean_queries",
                                            "mean_queries_se", "found", "mean_hits",
                                            "predicted_queries", "disjoint_prediction"]))
        if qrows:
            C = len(self.rates)
            multi = len({r["d"] for r in qrows}) > 1
            title = (f"adaptive searcher, d={qrows[0]['d']}: " if not multi else
                     "adaptive searcher: ") + f"(N+1)/2+1 = {(C + 1) / 2 + 1:g}"
            w.fig("search.png", lambda f: plot_rows(qrows, "rate", "mean_queries",
                                                   "d" if multi else None, f, title=title))

    def _success_outputs(self, w, d, srows):
        from ..lowerbound import exact_experiments as E

        summary = E.summarize_success(srows)
        gap = E.decoding_vs_informative(summary)
        w.results[f"success_d{d}"], w.results[f"gap_d{d}"] = summary, gap
        if summary:
            w.csv(f"success_d{d}.csv", summary)
            w.fig(f"success_d{d}.png", lambda f: plot_success(summary, f, d))
            if gap:
                w.csv(f"gap_d{d}.csv", [dict(d=d, **r) for r in gap])
                w.fig(f"gap_d{d}.png", lambda f: plot_gap(summary, f, d))
        w.text.append(format_table(
            f"decoder success vs K, with P(some answer informative) (d = {d}, averaged "
            "over rates and offsets; SE = chain Monte-Carlo error given the codebooks "
            "and offsets; SE_rep: over independent replicates)", summary,
            ["sampler", "oracle", "K", "success", "success_se", "informative",
             "informative_se", "gap", "gap_se", "success_se_rep", "informative_se_rep",
             "gap_se_rep", "success_given_informative", "queries_mean", "units", "rates",
             "replicates"]))
        if gap:
            w.text.append(format_table(
                f"K where P(informative) (necessary condition) and decoder success reach "
                f"1/2, adversary oracle (d = {d}; lo/hi: crossings of the +-2 SE band)",
                gap, ["sampler", "K_inf", "K_inf_lo", "K_inf_hi", "K_succ", "K_succ_lo",
                      "K_succ_hi", "max_gap", "max_gap_se", "at_K"]))


class _Outputs:
    """What :meth:`ExactLab.consolidate` collects: files written into ``out`` (none when it is
    None; figures only with ``plot``), the printed tables and the results dict."""

    def __init__(self, out, plot):
        self.out, self.plot = out, plot
        self.files, self.text, self.results = [], [], {}

    def csv(self, name, recs):
        """``name`` (``<stem>.csv``) and ``<stem>.parquet`` (:func:`jscore.store.write_table`)."""
        if self.out is not None and recs:
            self.files += write_table(os.path.join(self.out, name.removesuffix(".csv")), recs)

    def fig(self, name, draw):
        if self.out is not None and self.plot:
            path = os.path.join(self.out, name)
            draw(path)
            self.files.append(path)


def _strip(recs, cols):
    return [{c: r[c] for c in cols} for r in recs]


def _sampler(name):
    from ..samplers.catalogue import make

    with _CACHE_LOCK:
        smp = _SAMPLERS.get(name)
        if smp is None:
            smp = _SAMPLERS[name] = make(name)
    return smp


_SAMPLERS: dict = {}


def format_table(title, rows, cols) -> str:
    """A titled text table (numbers to 4 significant digits), as ``jscore lowerbound`` prints."""
    def fmt(v):
        try:
            f = float(v)
        except (TypeError, ValueError):
            return str(v)
        return f"{f:.4g}"

    lines = [title]
    if not rows:
        lines.append("  (no rows)")
        return "\n".join(lines) + "\n"
    cells = [[fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    lines.append("  " + " ".join(c.rjust(w) for c, w in zip(cols, widths)))
    lines += ["  " + " ".join(v.rjust(w) for v, w in zip(x, widths)) for x in cells]
    return "\n".join(lines) + "\n\n"


# ----------------------------------------------------------------------------- figures

def plot_rows(rows, x: str, y: str, group: str | None, path, *, title: str = ""):
    """Line plot of ``y`` vs ``x`` (one line per value of ``group``) saved as PNG and PDF."""
    from ..plot import figure, legend_outside, save, series, style

    with style():
        fig, (ax,) = figure(size=(4.6, 3.4))
        keys = sorted({r[group] for r in rows}) if group else [None]
        for i, k in enumerate(keys):
            sub = [r for r in rows if group is None or r[group] == k]
            ax.plot([r[x] for r in sub], [r[y] for r in sub], label=str(k) if group else None,
                    **series(i))
        ax.set_xlabel(x.replace("_", " "))
        ax.set_ylabel(y.replace("_", " "))
        if title:
            ax.set_title(title)
        legend_outside(ax, title=group)
        save(fig, path)


def plot_tv(rows, path):
    from ..plot import figure, legend_outside, save, style

    with style():
        fig, (ax,) = figure(size=(4.6, 3.4))
        groups = sorted({(int(r["d"]), float(r["rate"])) for r in rows})
        for i, (d, rate) in enumerate(groups):
            sub = sorted((r for r in rows if int(r["d"]) == d and float(r["rate"]) == rate),
                         key=lambda r: float(r["ratio"]))
            x = [float(r["ratio"]) for r in sub]
            c = f"C{i}"
            ax.errorbar(x, [float(r["tv"]) for r in sub],
                        yerr=[2 * float(r["tv_se"]) for r in sub], fmt="o-", color=c,
                        label=f"TV ($\\pm$2 SE), $d$={d}, $R$={rate}")
            ax.plot(x, [float(r["phi"]) for r in sub], "--", color=c, label=f"$\\Phi(u)$, $d$={d}")
            ax.plot(x, [float(r["planted_exceed"]) for r in sub], ":", marker="^", color=c,
                    label=f"$P(i > \\log M)$, $d$={d}")
        ax.set_xscale("log")
        ax.set_xlabel("$\\sigma/\\sigma_c$")
        ax.set_ylabel("$\\mathrm{TV}(P_\\sigma, Q_\\sigma)$")
        legend_outside(ax)
        save(fig, path)


def plot_success(summary, path, d):
    from ..plot import figure, legend_outside, save, series, style

    orcs = sorted({r["oracle"] for r in summary})
    with style():
        fig, axes = figure(len(orcs), size=(3.4, 3.0))
        for ax, o in zip(axes, orcs):
            for i, s in enumerate(sorted({r["sampler"] for r in summary})):
                sub = sorted((r for r in summary if r["oracle"] == o and r["sampler"] == s),
                             key=lambda r: r["K"])
                ax.errorbar([r["K"] for r in sub], [r["success"] for r in sub],
                            yerr=[2 * error_bar(r, "success") for r in sub], label=s, **series(i))
            ax.set_xscale("log")
            ax.set_ylim(-0.03, 1.03)
            ax.set_xlabel("$K$ (geometric levels)")
            ax.set_title(f"{o} oracle, $d$ = {d}")
        axes[0].set_ylabel("decoder success" + _bar_label(summary))
        legend_outside(axes[-1])
        save(fig, path)


def _bar_label(rows):
    reps = sorted({int(r.get("replicates", 1)) for r in rows})
    if reps and reps[0] >= 2:
        return f" ($\\pm$2 SE over {'/'.join(map(str, reps))} replicates)"
    return " ($\\pm$2 chain SE)"


def _k_ticks(ax, Ks):
    ticks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128) if min(Ks) <= k <= max(Ks)]
    ax.set_xticks(ticks, [str(k) for k in ticks])
    ax.set_xticks([], minor=True)


def plot_gap(summary, path, d, oracle: str = "adversary"):
    plot_decoding_vs_informative([(d, summary)], path, oracle)


def plot_decoding_vs_informative(groups, path, oracle: str = "adversary"):
    """P(informative), decoder success and P(success | informative) against K, one panel per
    (d, sampler); ``groups``: ``(d, summary rows of summarize_success)`` pairs. Error bars: 2
    :func:`error_bar` (PNG and PDF)."""
    from ..plot import figure, legend_outside, save, series, style

    panels = [(d, s, sorted((r for r in rows if r["oracle"] == oracle and r["sampler"] == s),
                            key=lambda r: r["K"]))
              for d, rows in groups
              for s in sorted({r["sampler"] for r in rows if r["oracle"] == oracle})]
    with style():
        fig, axes = figure(len(panels), size=(2.9, 2.9))
        for ax, (d, s, sub) in zip(axes, panels):
            K = [r["K"] for r in sub]
            for i, (col, lab) in enumerate((("informative", "$P(\\mathrm{informative})$"),
                                            ("success", "decoder success"))):
                ax.errorbar(K, [r[col] for r in sub], yerr=[2 * error_bar(r, col) for r in sub],
                            label=lab, **series(i))
            ax.plot(K, [r["success_given_informative"] for r in sub], label="$P(\\mathrm{success}"
                    "\\mid\\mathrm{informative})$", **series(2), alpha=0.7)
            ax.axhline(0.5, color="k", lw=0.6, ls=":")
            ax.set_xscale("log")
            _k_ticks(ax, K)
            ax.set_ylim(-0.03, 1.03)
            ax.set_xlabel("$K$ (geometric levels)")
            reps = int(sub[0].get("replicates", 1)) if sub else 1
            ax.set_title(f"{s}, {oracle} oracle, $d$ = {d}"
                         + (f"\n{reps} replicates" if reps > 1 else ""))
        axes[0].set_ylabel("fraction of chains" + _bar_label([r for _, _, sub in panels
                                                              for r in sub]))
        legend_outside(axes[-1])
        save(fig, path)


def plot_audit(rows, path, eps):
    from ..plot import figure, legend_outside, save, series, style

    with style():
        fig, (ax,) = figure(size=(4.6, 3.4))
        for i, p in enumerate(sorted({r["p"] for r in rows})):
            sub = sorted((r for r in rows if r["p"] == p), key=lambda r: r["ratio"])
            st = series(i)
            ax.plot([r["ratio"] for r in sub], [r["upper"] for r in sub], ms=3,
                    label=f"$p$ = {p:g}: upper confidence bound", **st)
            ax.plot([r["ratio"] for r in sub], [r["lp_error"] for r in sub], ":",
                    color=st["color"], label=f"$p$ = {p:g}: estimate")
        ax.axhline(eps, color="k", lw=0.8, label="$\\varepsilon$")
        ax.axhline(eps / 2, color="k", lw=0.8, ls="--", label="$\\varepsilon/2$")
        ax.set_xscale("log")
        ax.set_xlabel("$\\sigma/\\sigma_c$")
        ax.set_ylabel("$L^p(P_\\sigma)$ error of the adversary")
        legend_outside(ax)
        save(fig, path)


def plot_bracket(all_rows, path, summaries=None):
    """Measured informative fraction (+-2 SE) inside the band ``[lower, upper]``, with the default
    estimate, one panel per d (PNG and PDF)."""
    from ..plot import figure, legend_outside, save, series, style

    with style():
        fig, axes = figure(len(all_rows), size=(3.4, 3.0))
        for i, (ax, rows) in enumerate(zip(axes, all_rows)):
            rows = sorted(rows, key=lambda r: float(r["ratio"]))
            x = [float(r["ratio"]) for r in rows]
            ax.fill_between(x, [float(r["lower"]) for r in rows], [float(r["upper"]) for r in rows],
                            color="C0", alpha=0.25, lw=0, label="[lower, upper]")
            ax.plot(x, [float(r["formula"]) for r in rows], color="C0", lw=0.9,
                    label="default estimate")
            st = series(1)
            ax.errorbar(x, [float(r["exact"]) for r in rows],
                        yerr=[2 * float(r["exact_se"]) for r in rows], ls="none",
                        marker=st["marker"], color=st["color"], ms=3,
                        label="exact codebook ($\\pm$2 SE)")
            ax.set_xscale("log")
            ticks = [t for t in (0.4, 0.6, 1.0, 1.5, 2.0, 3.0) if min(x) <= t <= max(x)]
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.set_xticks([], minor=True)
            ax.set_ylim(-0.03, 1.03)
            ax.set_xlabel("$\\sigma/\\sigma_c$")
            title = f"$d$ = {rows[0]['d']}, $M$ = {int(rows[0]['M']):,}"
            if summaries is not None:
                title += f"\nworst {summaries[i]['max_outside_se']:.2f} SE outside"
            ax.set_title(title)
        axes[0].set_ylabel("$P(\\mathrm{informative})$ at $x \\sim Q_\\sigma$")
        legend_outside(axes[-1])
        save(fig, path)


__all__ = ["ALPHA", "BRACKET_RATIOS", "EXPERIMENTS", "ExactLab", "ORACLES", "clear_cache",
           "format_table", "plot_audit", "plot_bracket", "plot_decoding_vs_informative",
           "plot_gap", "plot_rows", "plot_success", "plot_tv"]
