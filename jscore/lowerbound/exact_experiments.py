"""Exact-codebook experiments of the lower-bound lab (docs/construction.md §8, 10, 11).

All three run with explicit codebooks, so they are feasible only for small d (see the memory
table of section 10); at d <= 64 the windows are O(1) wide and these runs are wiring tests of
the construction, not evidence of scaling.

- :func:`tv_curve` (a): ``TV(P_sigma, Q_sigma)`` from planted points vs ``Phi(sqrt(d)(C-Rbar)/sqrt(V))``.
- :func:`success_vs_levels` (b): decoder success and informative rate of samplers against K
  geometric levels with random log-offsets, for any oracles built from the codebook.
- :func:`adaptive_search` (c): the optimal adaptive searcher (one fresh reference-typical query
  per untested window centre, random order, stop at the first informative answer).

Each returns a list of dict rows; :func:`write_rows` writes them to CSV and ``plot_rows`` a PNG.

Scale notes (issue 5, item 7). A codebook takes ``M d 4`` bytes in float32 (``M d 8`` in float64);
the streaming pass adds only ``chains x block_size`` logits. Largest d with the codebook within
16 GB (24 GB CPU host) / 64 GB (80 GB GPU), recomputed from ``M = ceil(exp(R d))``:

    R = 0.15: d = 115 (M = 3.1e7) / 124 (M = 1.2e8)
    R = 0.25: d =  71 (M = 5.1e7) /  76 (M = 1.8e8)
    R = 0.35: d =  51 (M = 5.7e7) /  55 (M = 2.3e8)
    R = 0.45: d =  40 (M = 6.6e7) /  43 (M = 2.5e8)

d = 64 at R = 0.25 has M = 8 886 111 (2.3 GB float32), which fits either machine in memory;
its cost is ~4 M d = 2.3e9 flops per query per chain (logits plus the weighted codeword sum),
which is why the issue asks for it on a GPU (not run here: no accelerator). Indices are int32,
so M < 2^31 is enforced.

Measured on the 2-core CPU (``benchmarks/exact_query_cost.py``, with the earlier per-point pass;
process CPU time per query per chain, Euler, 100 chains, adversary): 24 us at M = 2 981 (d = 32),
91 us at M = 14 765 (d = 32), 666 us at M = 73 131 (d = 32), 1 383 us at M = 162 755 (d = 48),
i.e. 14-23 GFlop per CPU-second and linear in M d. The fused pass that replaced it reaches
20-58 GFlop/s on the same machine (``benchmarks/codebook_oracle.py``), i.e. ~0.05-0.1 s per query
per chain at d = 64, R = 0.25.

Resumable runs (``jscore lowerbound exact``): :func:`run_tv`, :func:`run_success`,
:func:`run_search` and :func:`run_audit` append one CSV row per finished unit (flushed and
fsynced) through :class:`jscore.store.CsvRows` and skip the units already in the file when rerun.
"""

from __future__ import annotations

import math
import os
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..oracles.adversary import LRAdversary
from ..oracles.exact import Exact, Reference
from ..sampling import sample
from ..store import CsvRows, write_csv
from ..targets.codebook import SphereCodebook
from .audit import critical_sigma
from .metrics import BOTTOM, decode, tv_planted, tv_prediction
from .validation import offset_grid  # noqa: F401  (re-exported; it lives beside its other user)


def tv_curve(d: int, rate: float, ratios, n: int, key, rho: float = 1.0):
    """(a) Rows ``ratio, sigma, tv, tv_se, planted_exceed, phi`` at ``sigma = ratio * sigma_c``."""
    kc, kp = jax.random.split(key)
    cb = SphereCodebook.random(kc, d, rate, rho)
    sc = float(critical_sigma(cb.effective_rate, rho))
    rows = []
    for i, f in enumerate(ratios):
        s = float(f) * sc
        r = tv_planted(cb, s, n, jax.random.fold_in(kp, i))
        rows.append(dict(d=d, rate=rate, M=cb.num_codewords, ratio=float(f), sigma=s, tv=r.tv,
                         tv_se=r.tv_se, planted_exceed=r.planted_exceed,
                         phi=float(tv_prediction(d, cb.effective_rate, s, rho))))
    return rows


def _oracles(cb, eps, p, names):
    table = {"adversary": lambda: LRAdversary(cb, eps, p), "exact": lambda: Exact(cb),
             "reference": lambda: Reference(cb.reference)}
    return {k: table[k]() for k in names}


def success_vs_levels(samplers: dict, d: int, rates, Ks, n: int, key, *, eps=0.05, p=2.0,
                      num_offsets: int = 4, sigma_min=0.02, sigma_max=20.0, theta0=0.9,
                      oracles=("adversary", "exact", "reference"), rho=1.0):
    """(b) Decoder success vs K for each sampler and oracle, averaged over rates and offsets.

    ``samplers``: name -> sampler. For each rate a codebook is drawn; for each K, offsets
    ``U = (u + V)/num_offsets`` (V uniform, u = 0..num_offsets-1, stratified) and ``n`` chains.
    Rows: ``sampler, oracle, K, success, informative, levels_mean``.
    """
    rows = []
    acc = {}
    for ri, rate in enumerate(rates):
        kr = jax.random.fold_in(key, ri)
        cb = SphereCodebook.random(jax.random.fold_in(kr, 0), d, float(rate), rho)
        ors = _oracles(cb, eps, p, oracles)
        v = float(jax.random.uniform(jax.random.fold_in(kr, 1)))
        for K in Ks:
            for u in range(num_offsets):
                sig = offset_grid(int(K), sigma_min, sigma_max, (u + v) / num_offsets)
                for sname, smp in samplers.items():
                    for oname, orc in ors.items():
                        kk = jax.random.fold_in(jax.random.fold_in(kr, 2 + u), int(K))
                        res = sample(orc, smp, jnp.asarray(sig), kk, num_samples=n)
                        dec = decode(cb, res.x, theta0)
                        succ = float(np.mean(np.asarray(dec.index) != BOTTOM))
                        flag = res.stats.extra.get("informative")
                        # Exact answers s_P everywhere: flag = 1 by convention (section 5)
                        inf = 1.0 if flag is None else float(np.mean(np.asarray(flag)))
                        a = acc.setdefault((sname, oname, int(K)), [0.0, 0.0, 0.0, 0])
                        a[0] += succ
                        a[1] += inf
                        a[2] += float(np.mean(np.asarray(res.stats.levels)))
                        a[3] += 1
    for (sname, oname, K), (s, i, lv, c) in sorted(acc.items()):
        rows.append(dict(sampler=sname, oracle=oname, K=K, success=s / c, informative=i / c,
                         levels_mean=lv / c, d=d, eps=eps, p=p))
    return rows


def adaptive_search(d: int, rates, n: int, key, *, eps=0.05, p=2.0, centres=None, rho=1.0):
    """(c) Optimal adaptive searcher against the adversary.

    For each hidden rate (a fresh codebook), query fresh reference-typical points
    ``x = y' + sigma z`` (``y' ~ Q``) at the window centres ``sigma_c(R_m)`` of the rate grid in a
    random order and stop at the first informative answer; then one final low-noise query.
    Rows: ``rate, mean_queries, found, mean_hits, predicted_queries`` (``mean_queries`` includes
    the final query; a search that finds nothing costs ``len(centres)``; ``mean_hits`` is the mean
    number of informative centres and ``predicted_queries`` the mean of ``(C+1)/(hits+1) + 1``,
    the expected first-hit position of a random order plus the final query). ``n`` searches per
    rate.
    """
    rates = np.asarray(rates, np.float64)
    centres = critical_sigma(rates, rho) if centres is None else np.asarray(centres, np.float64)
    rows = []
    for ri, rate in enumerate(rates):
        kr = jax.random.fold_in(key, ri)
        cb = SphereCodebook.random(jax.random.fold_in(kr, 0), d, float(rate), rho)
        adv = LRAdversary(cb, eps, p)
        flags_fn = jax.jit(jax.vmap(lambda x, s: adv.answer(x, s).informative))
        C = len(centres)
        perms = np.stack([np.asarray(jax.random.permutation(jax.random.fold_in(kr, 1 + t), C))
                          for t in range(n)])
        sig = centres[perms]  # (n, C)
        xq = jax.vmap(lambda k, s: cb.reference.sample_noised(k, s, 1)[0])(
            jax.random.split(jax.random.fold_in(kr, 10**6), n * C),
            jnp.asarray(sig.reshape(-1), jnp.result_type(float)))
        flags = np.asarray(flags_fn(xq, jnp.asarray(sig.reshape(-1), xq.dtype))).reshape(n, C)
        found = flags.any(1)
        q = np.where(found, np.argmax(flags, 1) + 1 + 1, C)
        hits = flags.sum(1)
        pred = np.where(hits > 0, (C + 1) / (hits + 1) + 1, C)
        rows.append(dict(d=d, rate=float(rate), M=cb.num_codewords, num_centres=C,
                         mean_queries=float(q.mean()),
                         mean_queries_se=float(q.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0,
                         found=float(found.mean()), mean_hits=float(hits.mean()),
                         predicted_queries=float(pred.mean())))
    return rows


def write_rows(rows, path):
    """Write dict rows to a CSV file atomically (:func:`jscore.store.write_csv`)."""
    write_csv(path, rows)


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


# ----------------------------------------------------------------------------- resumable runs
def _log_default(msg):
    print(msg, file=sys.stderr, flush=True)


TV_FIELDS = ["d", "rate", "M", "ratio", "n", "seed", "sigma", "tv", "tv_se", "planted_exceed",
             "phi", "tv_minus_phi", "exceed_minus_phi", "seconds"]


def run_tv(out_dir, *, settings=((32, 0.3), (48, 0.25)), ratios=(0.8, 0.9, 1.0, 1.1, 1.25, 1.6),
           n=2000, seed=0, rho=1.0, log=_log_default):
    """(a) Resumable TV curve into ``out_dir/tv.csv`` (one row per (d, rate, ratio)) + ``tv.png``.

    ``settings``: (d, rate) pairs. Returns the rows of this configuration (strings from the CSV).
    """
    book = CsvRows(os.path.join(out_dir, "tv.csv"), TV_FIELDS,
                        ["d", "rate", "ratio", "n", "seed"])
    for d, rate in settings:
        d, rate = int(d), float(rate)
        todo = [float(f) for f in ratios if not book.done(d=d, rate=rate, ratio=float(f), n=n,
                                                          seed=seed)]
        if not todo:
            continue
        key = jax.random.fold_in(jax.random.key(seed), d * 1000 + round(rate * 1000))
        cb = SphereCodebook.random(jax.random.fold_in(key, 0), d, rate, rho)
        sc = float(critical_sigma(cb.effective_rate, rho))
        for f in todo:
            t0 = time.perf_counter()
            s = f * sc
            r = tv_planted(cb, s, n, jax.random.fold_in(key, 1 + round(f * 1e6)))
            phi = float(tv_prediction(d, cb.effective_rate, s, rho))
            book.append(dict(d=d, rate=rate, M=cb.num_codewords, ratio=f, n=n, seed=seed, sigma=s,
                             tv=r.tv, tv_se=r.tv_se, planted_exceed=r.planted_exceed, phi=phi,
                             tv_minus_phi=r.tv - phi, exceed_minus_phi=r.planted_exceed - phi,
                             seconds=round(time.perf_counter() - t0, 3)))
            log(f"tv d={d} R={rate} sigma/sigma_c={f}: TV={r.tv:.3f} Phi={phi:.3f}")
    rows = [r for d, rate in settings for r in book.select(d=int(d), rate=float(rate), n=n,
                                                           seed=seed)
            if float(r["ratio"]) in {float(f) for f in ratios}]
    if rows:
        _plot_tv(rows, os.path.join(out_dir, "tv.png"))
    return rows


def _plot_tv(rows, path):
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


SUCCESS_FIELDS = ["sampler", "oracle", "d", "rate", "M", "K", "offset_index", "offsets", "offset",
                  "chains", "seed", "eps", "p", "success", "informative", "n_success",
                  "n_informative", "n_both", "levels_mean", "queries_mean", "median_cosine",
                  "seconds"]
SUCCESS_KEY = ["sampler", "oracle", "d", "rate", "K", "offset_index", "offsets", "chains", "seed",
               "eps", "p"]
SUMMARY_FIELDS = ["sampler", "oracle", "K", "success", "success_se", "informative",
                  "informative_se", "gap", "gap_se", "success_se_rep", "informative_se_rep",
                  "gap_se_rep", "replicates", "success_given_informative",
                  "success_uninformative", "levels_mean", "queries_mean", "units", "rates",
                  "chains"]


def run_success(out_dir, samplers, *, d=32, rates=(0.15, 0.2, 0.25, 0.3, 0.35),
                Ks=(2, 3, 4, 6, 8, 12, 16, 24), chains=100, offsets=4, eps=0.05, p=2.0, seed=0,
                oracles=("adversary", "exact", "reference"), sigma_min=0.02, sigma_max=20.0,
                theta0=0.9, rho=1.0, replicates=1, log=_log_default):
    """(b) Resumable success-vs-K: one row per (sampler, oracle, rate, K, offset) unit in
    ``success_units.csv``; ``success_d{d}.csv`` (:func:`summarize_success`, averages over rates
    and offsets) and ``success_d{d}.png`` are rebuilt from the units at the end, and with the
    adversary oracle ``gap_d{d}.csv`` (:func:`decoding_vs_informative`) and ``gap_d{d}.png``
    (P(informative), decoder success and P(success | informative) against K, side by side).
    ``samplers``: name -> sampler.

    Offsets are stratified, ``U_u = (u + V_R)/offsets`` with ``V_R ~ U[0, 1)`` per rate; grids
    from :func:`offset_grid` (K levels then 0). Success = decoder pass rate (theta0). Each unit
    records, from the *same* chains, how many decoded (``n_success``), how many got some
    informative answer (``n_informative``: a necessary condition for success) and how many both
    (``n_both``). ``replicates`` independent copies of the whole design (seeds ``seed``,
    ``seed + 1``, ...: fresh codebooks, offsets and chains) give the replicate standard errors
    of :func:`summarize_success`. Returns the summary rows.
    """
    book = CsvRows(os.path.join(out_dir, "success_units.csv"), SUCCESS_FIELDS, SUCCESS_KEY)
    d, eps, p, seed = int(d), float(eps), float(p), int(seed)
    chains, offsets, replicates = int(chains), int(offsets), int(replicates)
    if replicates < 1:
        raise ValueError(f"`replicates` must be an integer >= 1, got {replicates}")
    seeds = [seed + k for k in range(replicates)]
    for seed, rate in [(sd, float(r)) for sd in seeds for r in rates]:
        common = dict(d=d, chains=chains, seed=seed, eps=eps, p=p, offsets=offsets)
        todo = [(K, u, s, o) for K in Ks for u in range(offsets) for s in samplers for o in oracles
                if not book.done(sampler=s, oracle=o, rate=rate, K=int(K), offset_index=u,
                                 **common)]
        if not todo:
            continue
        kr = jax.random.fold_in(jax.random.key(seed), round(rate * 1e6))
        cb = SphereCodebook.random(jax.random.fold_in(kr, 0), d, rate, rho)
        ors = _oracles(cb, eps, p, oracles)
        v = float(jax.random.uniform(jax.random.fold_in(kr, 1)))
        for K, u, sname, oname in todo:
            t0 = time.perf_counter()
            off = (u + v) / offsets
            sig = offset_grid(int(K), sigma_min, sigma_max, off)
            kk = jax.random.fold_in(jax.random.fold_in(kr, 2 + u), int(K))
            res = sample(ors[oname], samplers[sname], jnp.asarray(sig, jnp.result_type(float)), kk,
                         num_samples=chains)
            dec = decode(cb, res.x, theta0)
            flag = res.stats.extra.get("informative")
            # Exact answers s_P everywhere: flag = 1 by convention (section 5)
            inf_c = (np.ones(chains, bool) if flag is None
                     else np.asarray(flag, bool).reshape(chains))
            succ_c = np.asarray(dec.index).reshape(chains) != BOTTOM
            book.append(dict(sampler=sname, oracle=oname, d=d, rate=rate, M=cb.num_codewords,
                             K=int(K), offset_index=u, offsets=offsets, offset=off, chains=chains,
                             seed=seed, eps=eps, p=p, success=float(succ_c.mean()),
                             informative=float(inf_c.mean()), n_success=int(succ_c.sum()),
                             n_informative=int(inf_c.sum()), n_both=int((succ_c & inf_c).sum()),
                             levels_mean=float(np.mean(np.asarray(res.stats.levels))),
                             queries_mean=float(np.mean(np.asarray(res.stats.queries))),
                             median_cosine=float(np.median(np.asarray(dec.cosine))),
                             seconds=round(time.perf_counter() - t0, 3)))
            log(f"success R={rate} K={K} u={u} {sname}/{oname}: success {succ_c.mean():.2f}, "
                f"informative {inf_c.mean():.2f} seed {seed} ({time.perf_counter() - t0:.1f} s)")
    common = dict(d=d, chains=chains, eps=eps, p=p, offsets=offsets)
    units = [r for r in book.select(**common)
             if int(r["seed"]) in seeds and float(r["rate"]) in {float(x) for x in rates}
             and int(r["K"]) in {int(k) for k in Ks}
             and r["sampler"] in samplers and r["oracle"] in oracles]
    summary = summarize_success(units)
    if summary:
        write_rows(summary, os.path.join(out_dir, f"success_d{d}.csv"))
        _plot_success(summary, os.path.join(out_dir, f"success_d{d}.png"), d)
        gap = decoding_vs_informative(summary)
        if gap:
            write_rows([dict(d=d, **r) for r in gap], os.path.join(out_dir, f"gap_d{d}.csv"))
            _plot_gap(summary, os.path.join(out_dir, f"gap_d{d}.png"), d)
    return summary


def _mean_var(p, m2, n):
    """Variance of a unit mean of ``n`` draws with sample mean ``p`` and sample second moment
    ``m2``: the unbiased (ddof = 1) per-draw variance over ``n``; arrays over units."""
    return np.maximum(m2 - p * p, 0.0) / np.maximum(n - 1, 1)


def summarize_success(units):
    """Average unit rows over rates and offsets per (sampler, oracle, K), with Monte-Carlo errors.

    Each unit (one codebook, one offset, ``n_u`` chains) gives per-chain indicators ``S`` (the
    decoder passes) and ``I`` (some answer of the run was informative; 1 for the exact oracle,
    0 for the reference one). With ``U`` units, ``success = (1/U) sum_u mean_u(S)``,
    ``informative`` likewise, ``gap = informative - success`` (same chains, so paired), and
    ``*_se = sqrt(sum_u var_u / n_u) / U`` with the within-unit variance of ``S``, ``I`` or
    ``I - S``: the chain-level Monte-Carlo error *given* the drawn codebooks and offsets (it
    does not cover the codebook draw). ``success_given_informative`` = sum of ``S I`` over sum
    of ``I`` and ``success_uninformative`` = fraction of chains with ``S = 1, I = 0`` (pooled
    over chains; the latter is the decoder's false-alarm rate and should be ~0). ``units``,
    ``rates`` and ``chains`` count what was averaged (fewer than rates x offsets when a run
    was cut short).

    With units from ``replicates >= 2`` seeds (independent codebooks, offsets and chains),
    ``*_se_rep`` = standard deviation of the per-seed estimates over ``sqrt(replicates)``: the
    error of the estimate over everything that was drawn (``nan`` with one seed).
    :func:`error_bar` picks it (floored at ``*_se``) when present.
    """
    acc = {}
    for r in units:
        a = acc.setdefault((r["sampler"], r["oracle"], int(r["K"])), [])
        a.append(r)
    out = []
    for (s, o, K), rs in sorted(acc.items()):
        n = np.array([int(r["chains"]) for r in rs], np.float64)
        ns = np.array([int(r["n_success"]) for r in rs], np.float64)
        ni = np.array([int(r["n_informative"]) for r in rs], np.float64)
        nb = np.array([int(r["n_both"]) for r in rs], np.float64)
        U = len(rs)
        ps, pi = ns / n, ni / n
        pg = pi - ps
        g2 = (ni - nb + ns - nb) / n  # mean of (I - S)^2 per unit
        se = {k: float(math.sqrt(np.sum(_mean_var(m, m2, n)))) / U
              for k, m, m2 in (("s", ps, ps), ("i", pi, pi), ("g", pg, g2))}
        seed = np.array([int(r["seed"]) for r in rs])
        reps = sorted(set(seed.tolist()))
        for k, m in (("s", ps), ("i", pi), ("g", pg)):
            per = np.array([m[seed == sd].mean() for sd in reps])
            se[k + "rep"] = (float(per.std(ddof=1) / math.sqrt(len(reps))) if len(reps) > 1
                             else float("nan"))
        out.append(dict(sampler=s, oracle=o, K=K, success=float(ps.mean()), success_se=se["s"],
                        informative=float(pi.mean()), informative_se=se["i"],
                        gap=float(pg.mean()), gap_se=se["g"], success_se_rep=se["srep"],
                        informative_se_rep=se["irep"], gap_se_rep=se["grep"],
                        replicates=len(reps),
                        success_given_informative=(float(nb.sum() / ni.sum()) if ni.sum() > 0
                                                   else float("nan")),
                        success_uninformative=float((ns - nb).sum() / n.sum()),
                        levels_mean=float(np.mean([float(r["levels_mean"]) for r in rs])),
                        queries_mean=float(np.mean([float(r["queries_mean"]) for r in rs])),
                        units=U, rates=len({r["rate"] for r in rs}), chains=int(n.sum())))
    return out


def error_bar(row, col: str) -> float:
    """Standard error of ``row[col]`` from a summary row: with two or more replicates the
    replicate SE (it covers codebooks, offsets and chains) floored at the chain-level SE (its
    expectation is at least that; with few replicates the estimate can fall below it by
    chance), else the chain-level SE."""
    if int(row.get("replicates", 1)) >= 2:
        return max(float(row[col + "_se_rep"]), float(row[col + "_se"]))
    return float(row[col + "_se"])


def half_crossing(Ks, values, level: float = 0.5) -> float:
    """First ``K`` at which the curve ``values(Ks)`` reaches ``level``, linear in ``log K``
    between the two grid points around it; ``Ks[0]`` if it starts at or above ``level``,
    ``nan`` if it never gets there. ``Ks`` increasing."""
    Ks = np.asarray(Ks, np.float64)
    v = np.asarray(values, np.float64)
    if Ks.ndim != 1 or Ks.shape != v.shape or Ks.size == 0:
        raise ValueError(f"`Ks` and `values` must be 1-d of one length, got {Ks.shape}, {v.shape}")
    if np.any(np.diff(Ks) <= 0):
        raise ValueError(f"`Ks` must be increasing, got {Ks.tolist()}")
    above = np.nonzero(v >= level)[0]
    if above.size == 0:
        return float("nan")
    k = int(above[0])
    if k == 0:
        return float(Ks[0])
    a, b = v[k - 1], v[k]
    t = (level - a) / (b - a)
    return float(np.exp(np.log(Ks[k - 1]) + t * (np.log(Ks[k]) - np.log(Ks[k - 1]))))


def decoding_vs_informative(summary, oracle: str = "adversary"):
    """Per sampler, where P(informative) and decoder success reach 1/2 against ``oracle``.

    Rows: ``sampler, K_inf, K_inf_lo, K_inf_hi, K_succ, K_succ_lo, K_succ_hi, max_gap,
    max_gap_se, at_K``. ``K_inf`` (``K_succ``) is :func:`half_crossing` of the informative
    (success) curve; ``_lo`` / ``_hi`` are the crossings of the curve plus / minus 2 standard
    errors of :func:`error_bar` (pointwise +-2 SE band; it covers what that SE covers:
    everything drawn with replicates, the chain-level error only without).
    ``max_gap`` is the largest ``informative - success`` over K, with its paired SE. A crossing
    equal to the smallest K means "at or below it"; ``nan`` means "above the largest K".
    """
    rows = []
    for s in sorted({r["sampler"] for r in summary if r["oracle"] == oracle}):
        sub = sorted((r for r in summary if r["oracle"] == oracle and r["sampler"] == s),
                     key=lambda r: r["K"])
        Ks = [r["K"] for r in sub]
        row = dict(sampler=s)
        for tag, col in (("inf", "informative"), ("succ", "success")):
            v = np.array([r[col] for r in sub])
            se = np.array([error_bar(r, col) for r in sub])
            row[f"K_{tag}"] = half_crossing(Ks, v)
            row[f"K_{tag}_lo"] = half_crossing(Ks, v + 2 * se)
            row[f"K_{tag}_hi"] = half_crossing(Ks, v - 2 * se)
        k = int(np.argmax([r["gap"] for r in sub]))
        row.update(max_gap=sub[k]["gap"], max_gap_se=error_bar(sub[k], "gap"), at_K=sub[k]["K"])
        rows.append(row)
    return rows


def _plot_success(summary, path, d):
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


def _plot_gap(summary, path, d, oracle: str = "adversary"):
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


SEARCH_FIELDS = ["d", "rate", "M", "num_centres", "n", "seed", "eps", "p", "mean_queries",
                 "mean_queries_se", "found", "mean_hits", "predicted_queries",
                 "disjoint_prediction", "seconds"]


def run_search(out_dir, *, d=32, rates=(0.15, 0.2, 0.25, 0.3, 0.35), n=1000, eps=0.05, p=2.0,
               seed=0, rho=1.0, log=_log_default):
    """(c) Resumable optimal adaptive searcher: one row per hidden rate in ``search.csv``.

    Centres are ``sigma_c`` of the rate grid. ``mean_hits`` is the mean number of centres whose
    query is informative; ``predicted_queries`` = mean of ``(C+1)/(hits+1) + 1`` (first success
    of a random order, plus the final query); ``disjoint_prediction`` = ``(N+1)/2 + 1`` with
    N = C (disjoint windows, the spec's formula).
    """
    book = CsvRows(os.path.join(out_dir, "search.csv"), SEARCH_FIELDS,
                        ["d", "rate", "num_centres", "n", "seed", "eps", "p"])
    d, n, seed, eps, p = int(d), int(n), int(seed), float(eps), float(p)
    rates = [float(r) for r in rates]
    C = len(rates)
    for ri, rate in enumerate(rates):
        if book.done(d=d, rate=rate, num_centres=C, n=n, seed=seed, eps=eps, p=p):
            continue
        t0 = time.perf_counter()
        row = adaptive_search(d, [rate], n, jax.random.fold_in(jax.random.key(seed),
                                                               round(rate * 1e6)),
                              eps=eps, p=p, centres=critical_sigma(rates, rho), rho=rho)[0]
        book.append(dict(d=d, rate=rate, M=row["M"], num_centres=C, n=n, seed=seed, eps=eps, p=p,
                         mean_queries=row["mean_queries"], mean_queries_se=row["mean_queries_se"],
                         found=row["found"], mean_hits=row["mean_hits"],
                         predicted_queries=row["predicted_queries"],
                         disjoint_prediction=(C + 1) / 2 + 1,
                         seconds=round(time.perf_counter() - t0, 3)))
        log(f"search d={d} R={rate}: {row['mean_queries']:.3f} queries, "
            f"hits {row['mean_hits']:.2f}")
    rows = [r for r in book.select(d=d, num_centres=C, n=n, seed=seed, eps=eps, p=p)
            if float(r["rate"]) in set(rates)]
    if rows:
        plot_rows([{k: float(v) for k, v in r.items()} for r in rows], "rate", "mean_queries",
                  None, os.path.join(out_dir, "search.png"),
                  title=f"adaptive searcher, d={d}: (N+1)/2+1 = {(C + 1) / 2 + 1:g}")
    return rows


BRACKET_FIELDS = ["d", "rate", "M", "ratio", "n", "seed", "eps", "p", "point_seed", "sigma",
                  "exact", "exact_se", "in_band", "lower", "upper", "formula", "outside_se", "side",
                  "seconds"]


def run_bracket(out_dir, *, dims=(40,), rate=0.25, ratios=None, n=2000, eps=0.05, p=2.0, seed=0,
                rho=1.0, alpha=0.05, log=_log_default):
    """Resumable bracket check: one row per (d, ratio) in ``bracket.csv``; ``bracket_summary.csv``
    and the figure ``bracket.png`` cover every (d, n) group of the file with this rate, eps, p
    and seed (so dimensions run separately end up side by side).

    At ``sigma = ratio * sigma_c`` the fraction of ``n`` reference points ``x ~ Q_sigma`` that
    the adversary answers informatively on one random codebook (seed ``seed + d``;
    :func:`~jscore.lowerbound.validation.exact_informative_fraction`) against the lower and
    upper side of the per-query informative probability at the same query norms
    (:func:`~jscore.lowerbound.validation.bracket_check`). A point passes when it lies within
    ``tolerance_se`` standard errors of ``[lower, upper]``, the Bonferroni threshold over the
    points of its d at family-wise level ``alpha``. Default ratios
    :data:`~jscore.lowerbound.validation.BRACKET_RATIOS` (sigma/sigma_c in [0.4, 3]).
    Returns the summary rows of ``dims``.
    """
    from . import validation as V

    ratios = list(V.BRACKET_RATIOS if ratios is None else (float(r) for r in ratios))
    book = CsvRows(os.path.join(out_dir, "bracket.csv"), BRACKET_FIELDS,
                        ["d", "rate", "ratio", "n", "seed", "eps", "p"])
    rate, n, eps, p, seed = float(rate), int(n), float(eps), float(p), int(seed)
    summaries, groups = [], []
    for d in [int(v) for v in dims]:
        cseed = seed + d
        todo = [(k, f) for k, f in enumerate(ratios)
                if not book.done(d=d, rate=rate, ratio=f, n=n, seed=cseed, eps=eps, p=p)]
        if todo:
            t0 = time.perf_counter()
            Y = V.random_sphere_codebook(d, rate, cseed, rho)
            log(f"bracket d={d}: codebook M={Y.shape[0]} ({time.perf_counter() - t0:.0f} s)")
            for k, f in todo:
                t0 = time.perf_counter()
                with jax.enable_x64(True):
                    (row,) = V.exact_informative_fraction(d, rate, [f], n, cseed, eps=eps, p=p,
                                                          rho=rho, codebook=Y, indices=[k])
                    (row,) = V.bracket_check([row], eps, p, rho)
                row.update(seed=cseed, eps=eps, p=p, seconds=round(time.perf_counter() - t0, 3))
                book.append({c: row[c] for c in BRACKET_FIELDS})
                log(f"bracket d={d} sigma/sigma_c={f}: exact {row['exact']:.3f} in "
                    f"[{row['lower']:.3f}, {row['upper']:.3f}]? {row['side']} "
                    f"({row['outside_se']:.2f} SE out; {time.perf_counter() - t0:.0f} s)")
            del Y
        rows = [r for r in book.select(d=d, rate=rate, n=n, seed=cseed, eps=eps, p=p)
                if float(r["ratio"]) in set(ratios)]
        if rows:
            summaries.append(V.bracket_summary(rows, alpha))
    # the files cover every (d, n) group of this rate, eps, p and seed in bracket.csv
    keys = sorted({(int(r["d"]), int(r["n"])) for r in book.rows
                   if r["rate"] == str(rate) and r["eps"] == str(eps) and r["p"] == str(p)
                   and int(r["seed"]) == seed + int(r["d"])})
    for dd, nn in keys:
        rows = sorted(book.select(d=dd, n=nn, rate=rate, eps=eps, p=p, seed=seed + dd),
                      key=lambda r: float(r["ratio"]))
        groups.append((rows, V.bracket_summary(rows, alpha)))
    if groups:
        write_rows([g[1] for g in groups], os.path.join(out_dir, "bracket_summary.csv"))
        V.plot_bracket([g[0] for g in groups], os.path.join(out_dir, "bracket.png"),
                       [g[1] for g in groups])
    return summaries


AUDIT_FIELDS = ["d", "rate", "M", "eps", "p", "n", "seed", "sigma_index", "sigma", "ratio",
                "lp_error", "upper", "max_error", "informative", "lambda_hat", "eta_hat", "bound",
                "B", "passed", "seconds"]


@eqx.filter_jit
def _planted_tests(adv, codebook, sigma, key, n, batch):
    """Planted points (the draws of ``jscore.lowerbound.audit(..., sigmas=[sigma], key=key)``) and,
    per point, what every ``p`` shares: ``|x|^2``, ``log L_sigma(x)`` and ``|s_P - s_Q|``."""
    kx, _ = jax.random.split(jax.random.fold_in(key, 0))
    x = codebook.sample_noised(kx, sigma, n)

    def one(xi):
        a = adv.answer(xi, sigma)
        return jnp.sum(xi * xi), a.log_lr, a.diff

    return jax.lax.map(one, x, batch_size=batch)


def audit_all_p(codebook, eps, ps, sigma, n, key, *, batch_size=256):
    """Audit rows of the LR adversary at one ``sigma`` for every ``p`` in ``ps`` from one pass.

    ``eps`` may also be a list: then the rows are for every ``(eps, p)`` pair, eps-major (the
    pass does not depend on eps or p). Each row holds ``eps``, ``p`` and the statistics below.

    The answer differs from ``s_P`` only when it is not informative, and then by exactly
    ``|s_P - s_Q|``, so ``e = |s_P - s_Q| 1{not informative}`` with the informative test of each
    ``p`` (band, ``log L >= log lambda``, ``|s_P - s_Q| > eps/2``) applied to the shared per-point
    quantities; statistics as in :func:`jscore.lowerbound.audit`
    (UCB = ``(m + 3 sd/sqrt n)^{1/p}``).
    """
    from ..oracles.adversary import LRAdversary

    dtype = jnp.result_type(float)
    epss = [float(e) for e in eps] if np.ndim(eps) else [float(eps)]
    base = LRAdversary(codebook, epss[0], float(ps[0]))
    n2, llr, diff = (np.asarray(v, np.float64) for v in _planted_tests(
        base, codebook, jnp.asarray(sigma, dtype), key, n, batch_size))
    out = []
    for eps, p in [(e, float(p)) for e in epss for p in ps]:
        prm = LRAdversary(codebook, eps, float(p)).parameters(sigma, dtype)
        in_band = (n2 >= float(prm.band_lo)) & (n2 <= float(prm.band_hi))
        lr_fail = llr < float(prm.log_lambda)
        informative = in_band & ~lr_fail & (diff > 0.5 * eps)
        e = np.where(informative, 0.0, diff)
        ep = e ** float(p)
        m = ep.mean()
        sd = ep.std(ddof=1) if n > 1 else 0.0
        lam, eta = float(lr_fail.mean()), float((~in_band).mean())
        B = float(prm.bound)
        out.append(dict(eps=eps, p=p, lp_error=m ** (1 / p),
                        upper=(m + 3 * sd / math.sqrt(n)) ** (1 / p),
                        max_error=float(e.max()), informative=float(informative.mean()),
                        lambda_hat=lam, eta_hat=eta, bound=eps / 2 + B * (lam + eta) ** (1 / p),
                        B=B))
    return out


def run_audit(out_dir, *, d=40, rate=0.25, eps=0.05, ps=(1.0, 2.0, 4.0), num=41, n=10_000,
              include=(0.02, 20.0), seed=0, rho=1.0, log=_log_default):
    """Resumable admissibility audit (section 5): one row per (p, sigma) in ``audit.csv``.

    Grid: :func:`audit_grid` (``num`` log-spaced values from sigma_c/30 to 30 sigma_c) plus
    ``include`` (the samplers' sigma_min, sigma_max). One codebook pass per sigma serves every p
    (:func:`audit_all_p`). Returns the per-p summary rows (``max_upper_over_eps``, where it
    occurs, ``max_lp_error``, ``passed``) also written to ``audit_summary.csv``.
    """
    from .audit import audit_grid

    book = CsvRows(os.path.join(out_dir, "audit.csv"), AUDIT_FIELDS,
                        ["d", "rate", "eps", "p", "n", "seed", "sigma_index", "sigma"])
    d, rate, eps, n, seed = int(d), float(rate), float(eps), int(n), int(seed)
    ps = [float(p) for p in ps]
    key = jax.random.fold_in(jax.random.key(seed), d)
    cb = SphereCodebook.random(jax.random.fold_in(key, 0), d, rate, rho)
    sc = float(critical_sigma(cb.effective_rate, rho))
    grid = audit_grid(cb, num, include=include)
    for i, s in enumerate(grid):
        s = float(s)
        todo = [p for p in ps if not book.done(d=d, rate=rate, eps=eps, p=p, n=n, seed=seed,
                                                sigma_index=i, sigma=s)]
        if not todo:
            continue
        t0 = time.perf_counter()
        res = audit_all_p(cb, eps, todo, s, n, jax.random.fold_in(key, 1 + i))
        dt = round(time.perf_counter() - t0, 3)
        for r in res:
            book.append(dict(d=d, rate=rate, M=cb.num_codewords, eps=eps, p=r.pop("p"), n=n,
                             seed=seed, sigma_index=i, sigma=s, ratio=s / sc,
                             **{k: v for k, v in r.items() if k != "eps"},
                             passed=bool(r["upper"] <= eps), seconds=dt))
        log(f"audit sigma/sigma_c={s / sc:.4g}: max upper/eps over p = "
            f"{max(r['upper'] for r in res) / eps:.3g} ({dt:.1f} s)")
    summary = []
    for p in ps:
        rows = [r for r in book.select(d=d, rate=rate, eps=eps, p=p, n=n, seed=seed)
                if int(r["sigma_index"]) < len(grid)]
        if not rows:
            continue
        up = np.array([float(r["upper"]) for r in rows])
        lp = np.array([float(r["lp_error"]) for r in rows])
        ratio = np.array([float(r["ratio"]) for r in rows])
        k = int(np.argmax(up))
        summary.append(dict(d=d, rate=rate, M=cb.num_codewords, eps=eps, p=p, n=n,
                            num_sigmas=len(rows), max_lp_error=float(lp.max()),
                            max_upper=float(up[k]), max_upper_over_eps=float(up[k] / eps),
                            argmax_ratio=float(ratio[k]),
                            zero_error_up_to_ratio=_zero_prefix(ratio, lp),
                            passed=bool(np.all(up <= eps))))
    if summary:
        write_rows(summary, os.path.join(out_dir, "audit_summary.csv"))
        rows = [{k: float(v) if k != "passed" else v == "True" for k, v in r.items()}
                for r in book.select(d=d, rate=rate, eps=eps, n=n, seed=seed)]
        _plot_audit(rows, os.path.join(out_dir, "audit.png"), eps)
    return summary


def _zero_prefix(ratio, lp):
    """Largest sigma/sigma_c such that the L^p error is exactly 0 at every grid point below it."""
    order = np.argsort(ratio)
    best = 0.0
    for k in order:
        if lp[k] != 0.0:
            break
        best = float(ratio[k])
    return best


def _plot_audit(rows, path, eps):
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


__all__ = ["tv_curve", "success_vs_levels", "adaptive_search", "offset_grid", "write_rows",
           "plot_rows", "run_tv", "run_success", "run_search", "run_audit",
           "summarize_success", "audit_all_p", "half_crossing",
           "decoding_vs_informative", "error_bar", "run_bracket",
           "plot_decoding_vs_informative"]
