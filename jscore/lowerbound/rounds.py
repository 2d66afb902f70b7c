"""Exploratory: adaptive rounds against queries on the nested codebook (docs/experiments/rounds.md).

The codebook family bounds queries and distinct levels but not rounds: one round can probe every
window centre at once. :class:`~jscore.targets.NestedCodebook` chains L stages so that stage
``l``'s answers are informative only at queries whose block ``l - 1`` already sits at the decoded
stage-``(l - 1)`` codeword (block ``l - 1`` is condensed at stage ``l``'s levels), and stage
``l``'s window position (its rate) is a hash of that codeword's index. The conjecture measured
here: any sampler needs at least L rounds; a parallel searcher needs about L rounds and L times
the windows per stage queries. Not proved: that the adversary hides stage ``l`` from every query
made before stage ``l - 1`` is decoded (the *hiding* property; the admissibility of the answers
is proved, :mod:`jscore.oracles.nested_adversary`).

Measurements (all at small d on exact nested codebooks, float64):

- :func:`nested_audit`: the L^p error of the adversary under ``P_sigma`` on a sigma grid spanning
  every stage, for each p, through :func:`jscore.lowerbound.audit` (the existing machinery), plus
  per-stage masses and informative fractions from one pass over the same planted points.
- :func:`stage_profiles`: per stage ``l``, the fraction of informative block-``l`` answers at
  *prefix-planted* queries (blocks ``< l`` at a clean path plus noise, blocks ``>= l``
  reference-typical) and at fully reference-typical queries; a stage's window is where the first
  exceeds 1/2.
- :func:`search_rounds`: the parallel searcher (each round probes every window centre
  ``a_l sigma_c(R)`` of the current stage at once; takes the lowest-sigma informative answer's
  denoised block as the stage's codeword) and the sequential searcher (one centre per round, random
  order, stop at the first informative one).
- :func:`sampler_rounds`: catalogue samplers against the adversary: rounds and queries in total,
  the decoded prefix of the output, and the round of each stage's first informative answer.

Every function here returns plain rows (lists of dicts); the one-command driver ``run_rounds``,
the figure ``plot_rounds`` and the files moved to the experiment layer,
:mod:`jscore.sweeps.rounds_lab`.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..oracles.nested_adversary import NestedAdversary
from ..targets.nested import NestedCodebook
from .audit import audit, critical_sigma


def stage_centres(nc: NestedCodebook):
    """Window centres ``a_l sigma_c(R)`` per stage over the distinct rates, ``(L, N)`` ascending."""
    rates = sorted({R for row in nc.stage_rates for R in row})
    sc = np.sort(critical_sigma(np.asarray(rates), float(nc.rho)))
    return np.asarray(nc.scales, np.float64)[:, None] * sc[None, :]


def stage_of_sigma(nc: NestedCodebook, sigma):
    """Stage whose centre range is nearest to ``sigma`` in log scale (int array)."""
    c = np.exp(np.mean(np.log(stage_centres(nc)), axis=1))  # geometric mean per stage
    return np.argmin(np.abs(np.log(np.asarray(sigma, np.float64))[..., None] - np.log(c)), -1)


def audit_grid(nc: NestedCodebook, per_stage: int = 21, lo: float = 1 / 30, hi: float = 30.0):
    """Log-spaced sigma grid from ``lo`` times the smallest centre to ``hi`` times the largest,
    ``per_stage`` points per factor ``1/scale_ratio`` (at least 41 points)."""
    c = stage_centres(nc)
    a, b = lo * c.min(), hi * c.max()
    L = nc.num_stages
    ratio = float(nc.scales[1] / nc.scales[0]) if L > 1 else 0.01
    num = max(41, int(round(per_stage * math.log(b / a) / math.log(1 / ratio))))
    return np.geomspace(a, b, num)


# ----------------------------------------------------------------------------- audit
@eqx.filter_jit
def _stage_pass(adv, sigma, key, n):
    nc = adv.nested
    x = nc.sample_noised(key, sigma, n)

    def one(xi):
        a = adv.answer(xi, sigma)
        n2 = jnp.sum(jnp.reshape(xi, (nc.num_stages, nc.block_dim)) ** 2, -1)
        return n2, a.diff, a.log_lr

    return jax.lax.map(one, x, batch_size=256)


def nested_audit(adv: NestedAdversary, sigmas=None, ps=(1.0, 2.0, 4.0), n: int = 10_000,
                 key=None, *, check_p=2.0, log=None):
    """Admissibility audit of the nested adversary, per sigma and p.

    One pass over ``n`` planted points of ``P_sigma`` per sigma serves every p (the tests do not
    depend on p except through lambda, eta and the bands, which are applied per p to the shared
    per-point quantities): ``e = |O - s_P|``, ``lp_error = mean(e^p)^{1/p}`` and the upper
    confidence bound ``upper = (mean(e^p) + 3 sd(e^p)/sqrt n)^{1/p}``, as in
    :func:`jscore.lowerbound.audit`. For ``p = check_p`` the package's :func:`audit` is run too
    on its own planted points (column ``upper_audit``; None to skip). Each row adds ``stage``
    (nearest stage), per block ``l`` the informative fraction ``inf_l``, the band-failure mass
    ``eta_l`` and the conditional-LR failure mass ``lam_l`` (``log L_l < log(lambda/L)``), and
    ``bound = eps/2 + B (sum_l lam_l + eta_l)^{1/p}``. Returns a list of dict rows.
    """
    nc = adv.nested
    key = jax.random.key(0) if key is None else key
    sigmas = audit_grid(nc) if sigmas is None else np.asarray(sigmas, np.float64)
    dtype = jnp.result_type(float)
    eps = float(adv.eps)
    L, k = nc.num_stages, nc.block_dim
    stages = stage_of_sigma(nc, sigmas)
    ref = None
    if check_p is not None:
        ref = audit(NestedAdversary(nc, eps, float(check_p)), nc, sigmas, p=float(check_p), n=n,
                    key=key, log=False)
    rows = []
    for i, s in enumerate(sigmas):
        n2, diff, llr = (np.asarray(v, np.float64) for v in _stage_pass(
            adv, jnp.asarray(s, dtype), jax.random.fold_in(jax.random.fold_in(key, 7), i), n))
        for p in ps:
            prm = NestedAdversary(nc, eps, float(p)).parameters(s, dtype)
            lam_fail = llr < float(prm.log_lambda) - math.log(L)
            band = (n2 >= np.asarray(prm.band_lo)) & (n2 <= np.asarray(prm.band_hi))
            good = np.all(band, 1) & ~np.any(lam_fail, 1)
            inf = good[:, None] & (diff > 0.5 * eps / math.sqrt(L))
            e = np.sqrt(np.sum(np.where(inf, 0.0, diff) ** 2, 1))
            ep = e ** float(p)
            m, sd = ep.mean(), ep.std(ddof=1)
            row = dict(sigma=float(s), stage=int(stages[i]), p=float(p), eps=eps, n=n,
                       lp_error=m ** (1 / float(p)),
                       upper=(m + 3 * sd / math.sqrt(n)) ** (1 / float(p)),
                       max_error=float(e.max()))
            row["passed"] = bool(row["upper"] <= eps)
            if ref is not None and float(p) == float(check_p):
                row["upper_audit"] = float(ref.upper[i])
            mass = 0.0
            for l in range(L):
                row[f"inf_{l}"] = float(inf[:, l].mean())
                row[f"eta_{l}"] = float((~band[:, l]).mean())
                row[f"lam_{l}"] = float(lam_fail[:, l].mean())
                mass += row[f"eta_{l}"] + row[f"lam_{l}"]
            row["good"] = float(good.mean())
            row["bound"] = eps / 2 + float(prm.bound) * mass ** (1 / float(p))
            rows.append(row)
        if log is not None:
            log(f"audit sigma={s:.4g} (stage {stages[i]}): max upper/eps over p = "
                f"{max(r['upper'] for r in rows[-len(ps):]) / eps:.3g}")
    return rows


def summarize_audit(rows):
    """Per (stage, p): the largest ``upper/eps`` over the stage's sigmas, where, and ``passed``."""
    out = []
    for st in sorted({r["stage"] for r in rows}) + ["all"]:
        for p in sorted({r["p"] for r in rows}):
            sub = [r for r in rows if r["p"] == p and (st == "all" or r["stage"] == st)]
            k = int(np.argmax([r["upper"] for r in sub]))
            out.append(dict(stage=st, p=p, num_sigmas=len(sub),
                            max_lp_error=max(r["lp_error"] for r in sub),
                            max_upper_over_eps=sub[k]["upper"] / sub[k]["eps"],
                            argmax_sigma=sub[k]["sigma"], passed=all(r["passed"] for r in sub)))
    return out


# ----------------------------------------------------------------------------- profiles
def _prefix_queries(nc, key, sigma, n, stage):
    """``n`` queries with blocks ``< stage`` planted at clean paths (plus noise ``sigma``) and
    blocks ``>= stage`` reference-typical; ``(n, d)``."""
    kp, kq = jax.random.split(key)
    xp = nc.sample_noised(kp, sigma, n)
    xq = nc.reference.sample_noised(kq, sigma, n)
    k = nc.block_dim
    return jnp.concatenate([xp[:, :stage * k], xq[:, stage * k:]], axis=1)


def stage_profiles(adv: NestedAdversary, sigmas, n: int = 1000, key=None):
    """Rows ``stage, sigma, prefix_informative, reference_informative, other_informative``:
    the fraction of block-``stage`` informative answers at prefix-planted queries (blocks before
    ``stage`` planted), at fully reference-typical queries, and the largest fraction of any other
    block at the prefix-planted queries."""
    nc = adv.nested
    key = jax.random.key(1) if key is None else key
    dtype = jnp.result_type(float)
    flags = jax.jit(jax.vmap(lambda x, s: adv.answer(x, s).informative, in_axes=(0, None)))
    rows = []
    for i, s in enumerate(np.asarray(sigmas, np.float64)):
        kq = jax.random.fold_in(key, i)
        ref = np.asarray(flags(nc.reference.sample_noised(kq, s, n), jnp.asarray(s, dtype)))
        for l in range(nc.num_stages):
            f = np.asarray(flags(_prefix_queries(nc, jax.random.fold_in(kq, 1 + l), s, n, l),
                                 jnp.asarray(s, dtype)))
            later = f[:, l + 1:]
            rows.append(dict(stage=l, sigma=float(s), ratio=float(s / nc.scales[l]),
                             prefix_informative=float(f[:, l].mean()),
                             reference_informative=float(ref[:, l].mean()),
                             later_informative=float(later.mean(0).max()) if later.size else 0.0))
    return rows


def stage_windows(profile_rows, num_stages):
    """Per stage: ``[lo, hi]`` = the sigma range where ``prefix_informative > 1/2`` (NaN if none)
    and whether the windows are pairwise disjoint (``disjoint``)."""
    out = []
    for l in range(num_stages):
        s = np.array([r["sigma"] for r in profile_rows if r["stage"] == l])
        f = np.array([r["prefix_informative"] for r in profile_rows if r["stage"] == l])
        inside = s[f > 0.5]
        out.append(dict(stage=l, lo=float(inside.min()) if inside.size else math.nan,
                        hi=float(inside.max()) if inside.size else math.nan))
    ok = all(out[l + 1]["hi"] < out[l]["lo"] for l in range(num_stages - 1))
    for w in out:
        w["disjoint"] = bool(ok)
    return out


# ----------------------------------------------------------------------------- searchers
def search_rounds(adv: NestedAdversary, n: int = 200, key=None, *, mode: str = "parallel",
                  max_rounds_per_stage: int = 3, theta0: float = 0.9,
                  snap=(0.5, 0.25, 0.125), max_snaps: int = 3, snap_tol: float = 1e-6):
    """Run ``n`` searches stage by stage; per search the rounds and queries at which stage 0 and
    all stages are first decoded (``-1`` if never), and the decoded prefix length.

    ``mode="parallel"``: a round probes all N centres of the current stage (N queries) at fresh
    points (blocks before the stage at ``a_l y_hat_l + sigma z``, the rest reference-typical) and
    keeps the lowest-sigma informative answer; its denoised block, scaled to the sphere, is the
    stage's estimate. Then up to ``max_snaps`` *snap rounds* refine it: the levels ``s * snap``
    (``s`` the level of the last informative answer) at points ``a_l y_hat_l + sigma z``, keeping
    the lowest-sigma informative answer, until the estimate moves by less than ``snap_tol r``
    (at small d the answer at a window centre is a posterior blend, not yet a codeword). ``mode="sequential"``: a round is one centre, in a fresh random order per
    stage, until an answer is informative. A stage with no informative answer after
    ``max_rounds_per_stage`` rounds (parallel) or passes over the centres (sequential) ends the
    search. "Decoded" is checked by the experimenter with the codebooks (cosine >= theta0 along
    the hash, :meth:`NestedCodebook.decode`); the searcher only sees the answers and the
    reference law (an answer's block is informative iff it differs from ``s_Q``).
    """
    if mode not in ("parallel", "sequential"):
        raise ValueError(f"`mode` must be 'parallel' or 'sequential', got {mode!r}.")
    key = jax.random.key(2) if key is None else key
    s = _Search(adv, mode, int(max_rounds_per_stage), snap, max_snaps, snap_tol)
    return [s.run(t, jax.random.fold_in(key, t), theta0) for t in range(n)]


class _Search:
    """One searcher against ``adv`` (see :func:`search_rounds`): ``run`` is one search; the
    ``rounds`` and ``queries`` it charges are returned by each piece, never kept here."""

    def __init__(self, adv, mode, max_rounds, snap, max_snaps, snap_tol):
        self.nc, self.mode, self.max_rounds = adv.nested, mode, max_rounds
        self.snap, self.max_snaps, self.snap_tol = snap, max_snaps, snap_tol
        self.dtype = jnp.result_type(float)
        self.C = stage_centres(self.nc)
        self.N, self.k, self.r = self.C.shape[1], self.nc.block_dim, self.nc.radius

        @jax.jit
        def probe(x, s):
            a = jax.vmap(adv.answer)(x, s)
            den = x + (s * s)[:, None] * a.score
            return a.informative, den

        self.probe = probe

    def fresh(self, kk, sig, yhat, l):
        """Query points at levels ``sig``: blocks ``< l`` at ``a_i yhat_i + sigma z``, the rest
        reference-typical; ``(len(sig), d)``."""
        nc, k = self.nc, self.k
        m = sig.shape[0]
        xq = jax.vmap(lambda kq, sg: nc.reference.sample_noised(kq, sg, 1)[0])(
            jax.random.split(kk, m), sig)
        if l == 0:
            return xq
        z = jax.random.normal(jax.random.fold_in(kk, 1), (m, l * k), self.dtype)
        pre = jnp.concatenate([nc.scales[i] * yhat[i] for i in range(l)])
        return jnp.concatenate([pre[None, :] + sig[:, None] * z, xq[:, l * k:]], axis=1)

    def locate(self, kl, yhat, l):
        """First informative block-``l`` answer over the stage's centres: ``(est, s_hit, rounds,
        queries)``, ``est`` None when none after ``max_rounds`` rounds (passes if sequential)."""
        k, N, C = self.k, self.N, self.C[l]
        rounds = queries = 0
        for attempt in range(self.max_rounds):
            if self.mode == "parallel":
                order = np.arange(N)
            else:
                order = np.asarray(jax.random.permutation(jax.random.fold_in(kl, 100 + attempt), N))
            sig = jnp.asarray(C if self.mode == "parallel" else C[order], self.dtype)
            x = self.fresh(jax.random.fold_in(kl, attempt), sig, yhat, l)
            inf, den = self.probe(x, sig)  # sequential: evaluated together, charged one per round
            hit = np.flatnonzero(np.asarray(inf[:, l]))
            if self.mode == "parallel":
                rounds += 1
                queries += N
            elif hit.size:
                rounds += int(hit[0]) + 1
                queries += int(hit[0]) + 1
            if hit.size:
                return den[hit[0], l * k:(l + 1) * k], float(C[order][hit[0]]), rounds, queries
            if self.mode != "parallel":
                rounds += N
                queries += N
        return None, None, rounds, queries

    def refine(self, kl, yhat, l, est, s_hit):
        """Snap rounds: the ladder ``s_hit * snap`` at points ``a_l est + sigma z``, in parallel
        (or one level per round when sequential), keeping the lowest-sigma informative answer.
        Returns ``(est, rounds, queries)``."""
        k, r = self.k, self.r
        rounds = queries = 0
        for it in range(len(self.snap) and self.max_snaps):
            sig = jnp.asarray(s_hit * np.asarray(self.snap), self.dtype)
            m = sig.shape[0]
            x = self.fresh(jax.random.fold_in(kl, 1000 + it), sig, yhat + [est], l + 1)
            inf, den = self.probe(x, sig)
            hit = np.flatnonzero(np.asarray(inf[:, l]))
            used = m if (self.mode == "parallel" or not hit.size) else int(hit[-1]) + 1
            rounds += 1 if self.mode == "parallel" else used
            queries += used
            if not hit.size:
                break
            new = den[hit[-1], l * k:(l + 1) * k]
            new = r * new / jnp.maximum(jnp.linalg.norm(new), 1e-300)
            moved = float(jnp.linalg.norm(new - est) / r)
            est = new
            s_hit = float(sig[hit[-1]])
            if moved < self.snap_tol:
                break
        return est, rounds, queries

    def run(self, t, kt, theta0):
        """Search ``t`` with key ``kt``: one row of :func:`search_rounds`."""
        nc, k, r, L = self.nc, self.k, self.r, self.nc.num_stages
        rounds = queries = 0
        yhat = []
        first = {"stage0": (-1, -1), "all": (-1, -1)}
        decoded = 0
        for l in range(L):
            kl = jax.random.fold_in(kt, l)
            est, s_hit, dr, dq = self.locate(kl, yhat, l)
            rounds, queries = rounds + dr, queries + dq
            if est is None:
                break
            est = r * est / jnp.maximum(jnp.linalg.norm(est), 1e-300)
            est, dr, dq = self.refine(kl, yhat, l, est, s_hit)
            rounds, queries = rounds + dr, queries + dq
            yhat.append(est)
            xhat = jnp.concatenate([nc.scales[i] * yhat[i] for i in range(l + 1)]
                                   + [jnp.zeros(((L - l - 1) * k,), self.dtype)])
            if not np.asarray(nc.decode(xhat, theta0)[2])[l]:
                break
            decoded = l + 1
            if l == 0:
                first["stage0"] = (rounds, queries)
            if l == L - 1:
                first["all"] = (rounds, queries)
        return dict(mode=self.mode, L=L, d=nc.dim, windows=self.N, search=t,
                    decoded_stages=decoded, rounds_first=first["stage0"][0],
                    queries_first=first["stage0"][1], rounds_all=first["all"][0],
                    queries_all=first["all"][1], rounds_total=rounds, queries_total=queries)


# ----------------------------------------------------------------------------- samplers
def round_of_query(trace_q, trace_r, q, num_points: int = 1):
    """Round (1-based) of the ``q``-th query (1-based) of one chain from its per-step trace
    (cumulative ``queries`` and ``rounds`` per recorded step, ``Record(every=1)``); 0 if q = 0.

    Within a step of one round (Euler, a Picard sweep) every query is in that round; within a
    randomized-midpoint step (``1 + J K`` queries, ``1 + J`` rounds, K = ``num_points``) query
    ``i`` of the step is in round ``1`` if ``i = 1`` else ``1 + ceil((i - 1)/K)``.
    """
    if q <= 0:
        return 0
    tq = np.asarray(trace_q)
    tr = np.asarray(trace_r)
    s = int(np.searchsorted(tq, q))  # first step with cumulative queries >= q
    q0 = int(tq[s - 1]) if s > 0 else 0
    r0 = int(tr[s - 1]) if s > 0 else 0
    i = q - q0
    if int(tr[s]) - r0 <= 1:
        return r0 + 1
    return r0 + (1 if i == 1 else 1 + math.ceil((i - 1) / num_points))


def sampler_grid(nc: NestedCodebook, levels_per_stage: int, sigma_max: float = 10.0,
                 lo: float = 0.05):
    """Geometric grid from ``sigma_max`` to ``lo * a_{L-1}`` with ``levels_per_stage`` levels per
    factor ``1/scale_ratio`` (at least 2 per stage), then 0."""
    smin = lo * float(nc.scales[-1])
    L = nc.num_stages
    ratio = float(nc.scales[1] / nc.scales[0]) if L > 1 else 0.01
    K = max(2 * L, int(round(levels_per_stage * math.log(sigma_max / smin) / math.log(1 / ratio))))
    return np.concatenate([np.geomspace(sigma_max, smin, K), [0.0]])


def sampler_rounds(adv: NestedAdversary, samplers: dict, levels_per_stage, n: int = 32, key=None,
                   theta0: float = 0.9):
    """For each sampler and grid density: per chain the decoded prefix of the output, total
    rounds and queries, and per stage the round of its first informative answer (0 = never).

    Returns rows per (sampler, levels_per_stage) with means over ``n`` chains: ``success`` (all
    stages decoded), ``stage0`` (stage 0 decoded), ``rounds``, ``queries``,
    ``first_inf_round_l`` (mean over chains that got one), ``monotone`` (fraction of chains whose
    first-informative rounds strictly increase with the stage, among stages reached), and
    ``rounds_success_min`` (the fewest rounds of a fully decoded chain, -1 if none).
    """
    from ..results import Record
    from ..samplers.midpoint import RandomizedMidpoint
    from ..sampling import sample

    nc = adv.nested
    key = jax.random.key(3) if key is None else key
    L = nc.num_stages
    rows, chains = [], []
    for name, smp in samplers.items():
        K = smp.num_points if isinstance(smp, RandomizedMidpoint) else 1
        for lps in levels_per_stage:
            grid = sampler_grid(nc, int(lps))
            res = sample(adv, smp, jnp.asarray(grid), jax.random.fold_in(key, int(lps)),
                         num_samples=n, record=Record(every=1))
            _, _, ok = jax.vmap(lambda x: nc.decode(x, theta0))(res.x)
            ok = np.asarray(ok)
            sfi = np.asarray(res.stats.extra["stage_first_informative"])
            tq, tr = np.asarray(res.trace.queries), np.asarray(res.trace.rounds)
            reached = ~np.isnan(np.asarray(res.trace.sigma))  # entries written (sweeps run)
            R, Q = np.asarray(res.stats.rounds), np.asarray(res.stats.queries)
            fr = np.zeros((n, L), int)
            mono = []
            for c in range(n):
                fr[c] = [round_of_query(tq[c][reached[c]], tr[c][reached[c]], int(sfi[c, l]), K)
                         for l in range(L)]
                got = int(np.sum(fr[c] > 0))
                # first-informative rounds strictly increase over a prefix of the stages
                mono.append(bool(np.all(fr[c][:got] > 0) and np.all(np.diff(fr[c][:got]) > 0)))
                chains.append(dict(sampler=name, levels_per_stage=int(lps), chain=c,
                                   decoded_stages=int(ok[c].sum()), rounds=int(R[c]),
                                   queries=int(Q[c]),
                                   **{f"first_inf_round_{l}": int(fr[c, l]) for l in range(L)}))
            succ = ok[:, -1]
            row = dict(sampler=name, levels_per_stage=int(lps), L=L, d=nc.dim, K=len(grid) - 1,
                       n=n, success=float(succ.mean()), stage0=float(ok[:, 0].mean()),
                       rounds=float(R.mean()), queries=float(Q.mean()),
                       monotone=float(np.mean(mono)),
                       rounds_success_min=int(R[succ].min()) if succ.any() else -1)
            for l in range(L):
                v = fr[:, l][fr[:, l] > 0]
                row[f"first_inf_round_{l}"] = float(v.mean()) if v.size else -1.0
            rows.append(row)
    return rows, chains


# ----------------------------------------------------------------------------- summaries
def summarize_search(rows):
    """Per (mode, L, d): success rate and mean rounds/queries to stage 0 and to all stages."""
    out = []
    keys = sorted({(r["mode"], r["L"], r["d"]) for r in rows})
    for mode, L, d in keys:
        sub = [r for r in rows if (r["mode"], r["L"], r["d"]) == (mode, L, d)]
        full = [r for r in sub if r["rounds_all"] > 0]
        s0 = [r for r in sub if r["rounds_first"] > 0]
        out.append(dict(mode=mode, L=L, d=d, n=len(sub), windows=sub[0]["windows"],
                        success=len(full) / len(sub), stage0=len(s0) / len(sub),
                        rounds_first=float(np.mean([r["rounds_first"] for r in s0])) if s0 else -1,
                        queries_first=float(np.mean([r["queries_first"] for r in s0])) if s0 else -1,
                        rounds_all=float(np.mean([r["rounds_all"] for r in full])) if full else -1,
                        rounds_all_min=int(min(r["rounds_all"] for r in full)) if full else -1,
                        queries_all=float(np.mean([r["queries_all"] for r in full])) if full else -1))
    return out


__all__ = ["nested_audit", "summarize_audit", "stage_profiles", "stage_windows", "search_rounds",
           "sampler_rounds", "round_of_query", "stage_centres", "audit_grid", "sampler_grid",
           "summarize_search"]
