"""Exact-codebook experiments of the lower-bound lab (docs/construction.md §8, 10, 11).

All three run with explicit codebooks, so they are feasible only for small d (see the memory
table of section 10); at d <= 64 the windows are O(1) wide and these runs are wiring tests of
the construction, not evidence of scaling.

- :func:`tv_curve` (a): ``TV(P_sigma, Q_sigma)`` from planted points vs ``Phi(sqrt(d)(C-Rbar)/sqrt(V))``.
- :func:`success_vs_levels` (b): decoder success and informative rate of samplers against K
  geometric levels with random log-offsets, for any oracles built from the codebook.
- :func:`adaptive_search` (c): the optimal adaptive searcher (one fresh reference-typical query
  per untested window centre, random order, stop at the first informative answer).

Each returns a list of dict rows.

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

The units of ``jscore lowerbound exact`` (:func:`tv_unit`, :func:`success_unit`,
:func:`search_unit`, :func:`bracket_unit`, :func:`audit_unit`) compute one row each from their
arguments alone; the experiment :class:`jscore.sweeps.exact_lab.ExactLab` runs them resumably and
writes the CSV files and figures. This module computes; it writes no files.
"""

from __future__ import annotations

import math
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..oracles.adversary import LRAdversary
from ..oracles.exact import Exact, Reference
from ..sampling import sample
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


# ----------------------------------------------------------------------------- units of the lab
# One function per unit of ``jscore lowerbound exact`` (the experiment
# :class:`jscore.sweeps.exact_lab.ExactLab` runs them, stores their rows and writes the files).
# A unit's row depends on its arguments only: the keys are derived here from ``seed`` and the
# unit, and the ``*_codebook`` functions give the codebook a unit draws (pass it as ``codebook=``
# to share one between the units of a (d, rate)).

TV_FIELDS = ["d", "rate", "M", "ratio", "n", "seed", "sigma", "tv", "tv_se", "planted_exceed",
             "phi", "tv_minus_phi", "exceed_minus_phi", "seconds"]


def _tv_key(d: int, rate: float, seed: int):
    return jax.random.fold_in(jax.random.key(int(seed)), int(d) * 1000 + round(float(rate) * 1000))


def tv_codebook(d: int, rate: float, seed: int = 0, rho: float = 1.0) -> SphereCodebook:
    """The codebook of the TV units of ``(d, rate)``: ``fold_in(K, 0)`` with
    ``K = fold_in(key(seed), 1000 d + round(1000 rate))``."""
    return SphereCodebook.random(jax.random.fold_in(_tv_key(d, rate, seed), 0), int(d),
                                 float(rate), rho)


def tv_unit(d: int, rate: float, ratio: float, n: int, seed: int = 0, rho: float = 1.0, *,
            codebook=None) -> dict:
    """(a) One TV point: ``TV(P_sigma, Q_sigma)`` from ``n`` planted points at
    ``sigma = ratio sigma_c(Rbar)`` (key ``fold_in(K, 1 + round(1e6 ratio))``) against
    ``Phi(sqrt(d)(C - Rbar)/sqrt(V))``. Row: :data:`TV_FIELDS`."""
    t0 = time.perf_counter()
    d, rate, f, n = int(d), float(rate), float(ratio), int(n)
    cb = tv_codebook(d, rate, seed, rho) if codebook is None else codebook
    sc = float(critical_sigma(cb.effective_rate, rho))
    s = f * sc
    r = tv_planted(cb, s, n, jax.random.fold_in(_tv_key(d, rate, seed), 1 + round(f * 1e6)))
    phi = float(tv_prediction(d, cb.effective_rate, s, rho))
    return dict(d=d, rate=rate, M=cb.num_codewords, ratio=f, n=n, seed=int(seed), sigma=s,
                tv=r.tv, tv_se=r.tv_se, planted_exceed=r.planted_exceed, phi=phi,
                tv_minus_phi=r.tv - phi, exceed_minus_phi=r.planted_exceed - phi,
                seconds=round(time.perf_counter() - t0, 3))


SUCCESS_FIELDS = ["sampler", "oracle", "d", "rate", "M", "K", "offset_index", "offsets", "offset",
                  "chains", "seed", "eps", "p", "success", "informative", "n_success",
                  "n_informative", "n_both", "levels_mean", "queries_mean", "median_cosine",
                  "seconds"]
SUMMARY_FIELDS = ["sampler", "oracle", "K", "success", "success_se", "informative",
                  "informative_se", "gap", "gap_se", "success_se_rep", "informative_se_rep",
                  "gap_se_rep", "replicates", "success_given_informative",
                  "success_uninformative", "levels_mean", "queries_mean", "units", "rates",
                  "chains"]


def _rate_key(rate: float, seed: int):
    return jax.random.fold_in(jax.random.key(int(seed)), round(float(rate) * 1e6))


def success_codebook(d: int, rate: float, seed: int = 0, rho: float = 1.0) -> SphereCodebook:
    """The codebook of the success units of ``(d, rate, seed)``: ``fold_in(K, 0)`` with
    ``K = fold_in(key(seed), round(1e6 rate))``."""
    return SphereCodebook.random(jax.random.fold_in(_rate_key(rate, seed), 0), int(d),
                                 float(rate), rho)


def success_unit(sampler_name: str, sampler, oracle: str, d: int, rate: float, K: int,
                 offset_index: int, *, offsets=4, chains=100, seed=0, eps=0.05, p=2.0,
                 sigma_min=0.02, sigma_max=20.0, theta0=0.9, rho=1.0, codebook=None) -> dict:
    """(b) One success unit: ``chains`` chains of ``sampler`` against ``oracle`` (``adversary``,
    ``exact`` or ``reference``) on the K-level grid :func:`offset_grid` with the stratified
    offset ``U_u = (u + V)/offsets`` (``V ~ U[0, 1)`` from ``fold_in(K_R, 1)``, chains from
    ``fold_in(fold_in(K_R, 2 + u), K)``, ``K_R`` of :func:`success_codebook`).

    Success = the decoder passes (``theta0``); from the *same* chains, how many decoded
    (``n_success``), got some informative answer (``n_informative``, a necessary condition;
    1 by convention for the exact oracle) and both (``n_both``). Row: :data:`SUCCESS_FIELDS`.
    """
    t0 = time.perf_counter()
    d, rate, K, u = int(d), float(rate), int(K), int(offset_index)
    offsets, chains, seed, eps, p = int(offsets), int(chains), int(seed), float(eps), float(p)
    kr = _rate_key(rate, seed)
    cb = success_codebook(d, rate, seed, rho) if codebook is None else codebook
    orc = _oracles(cb, eps, p, [oracle])[oracle]
    v = float(jax.random.uniform(jax.random.fold_in(kr, 1)))
    off = (u + v) / offsets
    sig = offset_grid(K, sigma_min, sigma_max, off)
    kk = jax.random.fold_in(jax.random.fold_in(kr, 2 + u), K)
    res = sample(orc, sampler, jnp.asarray(sig, jnp.result_type(float)), kk, num_samples=chains)
    dec = decode(cb, res.x, theta0)
    flag = res.stats.extra.get("informative")
    # Exact answers s_P everywhere: flag = 1 by convention (section 5)
    inf_c = np.ones(chains, bool) if flag is None else np.asarray(flag, bool).reshape(chains)
    succ_c = np.asarray(dec.index).reshape(chains) != BOTTOM
    return dict(sampler=sampler_name, oracle=oracle, d=d, rate=rate, M=cb.num_codewords, K=K,
                offset_index=u, offsets=offsets, offset=off, chains=chains, seed=seed, eps=eps,
                p=p, success=float(succ_c.mean()), informative=float(inf_c.mean()),
                n_success=int(succ_c.sum()), n_informative=int(inf_c.sum()),
                n_both=int((succ_c & inf_c).sum()),
                levels_mean=float(np.mean(np.asarray(res.stats.levels))),
                queries_mean=float(np.mean(np.asarray(res.stats.queries))),
                median_cosine=float(np.median(np.asarray(dec.cosine))),
                seconds=round(time.perf_counter() - t0, 3))


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



SEARCH_FIELDS = ["d", "rate", "M", "num_centres", "n", "seed", "eps", "p", "mean_queries",
                 "mean_queries_se", "found", "mean_hits", "predicted_queries",
                 "disjoint_prediction", "seconds"]


def search_unit(d: int, rate: float, rates, n: int, *, seed=0, eps=0.05, p=2.0, rho=1.0) -> dict:
    """(c) The optimal adaptive searcher (:func:`adaptive_search`, key
    ``fold_in(key(seed), round(1e6 rate))``) for the hidden ``rate``, ``n`` searches, with the
    centres ``sigma_c`` of the whole grid ``rates``. ``disjoint_prediction`` = ``(N+1)/2 + 1``
    with N = C (disjoint windows, the spec's formula). Row: :data:`SEARCH_FIELDS`."""
    t0 = time.perf_counter()
    d, n, seed, eps, p, rate = int(d), int(n), int(seed), float(eps), float(p), float(rate)
    rates = [float(r) for r in rates]
    C = len(rates)
    row = adaptive_search(d, [rate], n, _rate_key(rate, seed), eps=eps, p=p,
                          centres=critical_sigma(rates, rho), rho=rho)[0]
    return dict(d=d, rate=rate, M=row["M"], num_centres=C, n=n, seed=seed, eps=eps, p=p,
                mean_queries=row["mean_queries"], mean_queries_se=row["mean_queries_se"],
                found=row["found"], mean_hits=row["mean_hits"],
                predicted_queries=row["predicted_queries"], disjoint_prediction=(C + 1) / 2 + 1,
                seconds=round(time.perf_counter() - t0, 3))


BRACKET_FIELDS = ["d", "rate", "M", "ratio", "n", "seed", "eps", "p", "point_seed", "sigma",
                  "exact", "exact_se", "in_band", "lower", "upper", "formula", "outside_se", "side",
                  "seconds"]


def bracket_codebook(d: int, rate: float, seed: int = 0, rho: float = 1.0) -> np.ndarray:
    """The codebook of the bracket units of ``d``:
    :func:`~jscore.lowerbound.validation.random_sphere_codebook` with seed ``seed + d``."""
    from .validation import random_sphere_codebook

    return random_sphere_codebook(int(d), float(rate), int(seed) + int(d), rho)


def bracket_unit(d: int, rate: float, index: int, ratio: float, n: int, *, seed=0, eps=0.05,
                 p=2.0, rho=1.0, codebook=None) -> dict:
    """One bracket point: at ``sigma = ratio sigma_c`` the fraction of ``n`` reference points
    ``x ~ Q_sigma`` (:func:`~jscore.lowerbound.validation.point_seed` ``(seed + d, index)``) that
    the adversary answers informatively on :func:`bracket_codebook`
    (:func:`~jscore.lowerbound.validation.exact_informative_fraction`), against both sides of
    the per-query informative probability at the same query norms
    (:func:`~jscore.lowerbound.validation.bracket_check`); float64. Row: :data:`BRACKET_FIELDS`
    (``seed`` is the codebook's, ``seed + d``)."""
    from . import validation as V

    t0 = time.perf_counter()
    d, rate, n, eps, p = int(d), float(rate), int(n), float(eps), float(p)
    cseed = int(seed) + d
    Y = bracket_codebook(d, rate, seed, rho) if codebook is None else codebook
    with jax.enable_x64(True):
        (row,) = V.exact_informative_fraction(d, rate, [float(ratio)], n, cseed, eps=eps, p=p,
                                              rho=rho, codebook=Y, indices=[int(index)])
        (row,) = V.bracket_check([row], eps, p, rho)
    row.update(seed=cseed, eps=eps, p=p, seconds=round(time.perf_counter() - t0, 3))
    return {c: row[c] for c in BRACKET_FIELDS}


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


AUDIT_FIELDS = ["d", "rate", "M", "eps", "p", "n", "seed", "sigma_index", "sigma", "ratio",
                "lp_error", "upper", "max_error", "informative", "lambda_hat", "eta_hat", "bound",
                "B", "passed", "seconds"]


def _audit_key(d: int, seed: int):
    return jax.random.fold_in(jax.random.key(int(seed)), int(d))


def audit_codebook(d: int, rate: float, seed: int = 0, rho: float = 1.0) -> SphereCodebook:
    """The codebook of the audit: ``fold_in(fold_in(key(seed), d), 0)``."""
    return SphereCodebook.random(jax.random.fold_in(_audit_key(d, seed), 0), int(d), float(rate),
                                 rho)


def audit_sigmas(d: int, rate: float, num: int = 41, include=(0.02, 20.0), rho: float = 1.0):
    """The audit's sigma grid (:func:`~jscore.lowerbound.audit.audit_grid` of the codebook of
    ``(d, rate)``: it needs only ``log M / d`` and ``rho``, so no codebook is drawn)."""
    import types

    from ..targets.codebook import _num_codewords
    from .audit import audit_grid

    rbar = math.log(_num_codewords(int(d), float(rate))) / int(d)
    return audit_grid(types.SimpleNamespace(effective_rate=rbar, rho=rho), num, include=include)


def audit_unit(d: int, rate: float, sigma_index: int, sigma: float, *, eps=0.05,
               ps=(1.0, 2.0, 4.0), n=10_000, seed=0, rho=1.0, codebook=None) -> list[dict]:
    """The admissibility audit (section 5) at one ``sigma`` of :func:`audit_sigmas` (planted
    points from ``fold_in(K, 1 + sigma_index)``), one row per ``p`` from one pass
    (:func:`audit_all_p`). Rows: :data:`AUDIT_FIELDS`."""
    t0 = time.perf_counter()
    d, rate, eps, n, seed, i, s = int(d), float(rate), float(eps), int(n), int(seed), \
        int(sigma_index), float(sigma)
    cb = audit_codebook(d, rate, seed, rho) if codebook is None else codebook
    sc = float(critical_sigma(cb.effective_rate, rho))
    res = audit_all_p(cb, eps, [float(p) for p in ps], s, n,
                      jax.random.fold_in(_audit_key(d, seed), 1 + i))
    dt = round(time.perf_counter() - t0, 3)
    return [dict(d=d, rate=rate, M=cb.num_codewords, eps=eps, p=r.pop("p"), n=n, seed=seed,
                 sigma_index=i, sigma=s, ratio=s / sc, **{k: v for k, v in r.items() if k != "eps"},
                 passed=bool(r["upper"] <= eps), seconds=dt) for r in res]


def audit_summary(rows, ps, eps):
    """Per ``p`` of the audit rows: ``max_upper_over_eps``, where it occurs
    (``argmax_ratio``), ``max_lp_error``, the largest sigma/sigma_c below which the error is
    exactly 0, and ``passed`` (every UCB <= eps)."""
    summary = []
    for p in [float(p) for p in ps]:
        sub = [r for r in rows if float(r["p"]) == p]
        if not sub:
            continue
        up = np.array([float(r["upper"]) for r in sub])
        lp = np.array([float(r["lp_error"]) for r in sub])
        ratio = np.array([float(r["ratio"]) for r in sub])
        k = int(np.argmax(up))
        r0 = sub[0]
        summary.append(dict(d=int(r0["d"]), rate=float(r0["rate"]), M=int(r0["M"]),
                            eps=float(eps), p=p, n=int(r0["n"]), num_sigmas=len(sub),
                            max_lp_error=float(lp.max()), max_upper=float(up[k]),
                            max_upper_over_eps=float(up[k] / eps), argmax_ratio=float(ratio[k]),
                            zero_error_up_to_ratio=_zero_prefix(ratio, lp),
                            passed=bool(np.all(up <= eps))))
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


__all__ = ["tv_curve", "success_vs_levels", "adaptive_search", "offset_grid", "summarize_success",
           "audit_all_p", "half_crossing", "decoding_vs_informative", "error_bar", "tv_unit",
           "tv_codebook", "success_unit", "success_codebook", "search_unit", "bracket_unit",
           "bracket_codebook", "audit_unit", "audit_codebook", "audit_sigmas", "audit_summary",
           "TV_FIELDS", "SUCCESS_FIELDS", "SUMMARY_FIELDS", "SEARCH_FIELDS", "BRACKET_FIELDS",
           "AUDIT_FIELDS"]
