"""Exact-codebook validation of the per-query informative probability (docs/construction.md §7.2, 11.6).

The formula :func:`~jscore.lowerbound.informative.profile` predicts the fraction of
reference-typical queries ``x ~ Q_sigma`` that :class:`~jscore.oracles.LRAdversary` answers
informatively. :func:`exact_informative_fraction` measures that fraction with an explicit random
codebook; :func:`compare` puts both side by side (rows ``ratio, sigma, exact, exact_se, formula,
formula_old, dev, dev_old``). This module computes rows; the files and figures are written by
:mod:`jscore.sweeps.validation_lab` (this comparison) and :mod:`jscore.sweeps.exact_lab` (the
bracket check).

The lab here evaluates the adversary's three tests for many queries at one ``sigma`` in batches:
the codebook part is the oracle's own fused pass (:func:`~jscore.targets.codebook.stream_codebook`,
float32, ``batch x block`` logits at a time); the Bessel terms, the band and the thresholds are
float64. It is checked flag-for-flag against ``LRAdversary.answer`` in the tests; d = 64 at
R = 0.25 (M = 8.9e6) is its largest case. The codebook is generated
in float32 blocks straight into one host array (``M d 4`` bytes: 2.3 GB at d = 64, R = 0.25).
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from ..targets.codebook import default_block_size, stream_codebook
from .informative import bessel_terms, effective_log_m_py, norm_band, profile, typical_norm_draws

_GEN_BLOCK = 1 << 18


def offset_grid(K: int, sigma_min: float, sigma_max: float, offset: float):
    """``sigma_k = sigma_max exp(-(k - 1 + U) Delta)``, ``Delta = log(sigma_max/sigma_min)/K``,
    k = 1..K, followed by 0 (final Tweedie step); docs/construction.md §8."""
    delta = math.log(sigma_max / sigma_min) / K
    lev = sigma_max * np.exp(-(np.arange(K) + offset) * delta)
    return np.concatenate([lev, [0.0]])


def random_sphere_codebook(d: int, rate: float, seed: int, rho: float = 1.0) -> np.ndarray:
    """``M = ceil(exp(rate d))`` i.i.d. uniform points on ``S_r`` (``r = rho sqrt d``), float32 ``(M, d)``.

    Blocks of 2^18 rows from ``numpy.random.default_rng([seed, b])``; peak memory ``M d 4`` bytes
    plus one block.
    """
    M = max(1, math.ceil(math.exp(rate * d)))
    if M >= 2**31:
        raise ValueError(f"M = {M} codewords is beyond int32 indexing; lower `rate` or `d`.")
    r = rho * math.sqrt(d)
    out = np.empty((M, d), np.float32)
    for b in range(-(-M // _GEN_BLOCK)):
        lo, hi = b * _GEN_BLOCK, min((b + 1) * _GEN_BLOCK, M)
        g = np.random.default_rng([seed, b]).standard_normal((hi - lo, d))
        out[lo:hi] = (r * g / np.linalg.norm(g, axis=1, keepdims=True)).astype(np.float32)
    return out


_bessel = jax.jit(bessel_terms, static_argnums=1)
_lab_pass = jax.jit(stream_codebook, static_argnames=("block_size", "want_mean", "want_index"))


def adversary_flags(codebook, x, sigma, eps, p=2.0, *, log_m=None,
                    block: int | None = None, batch: int = 512):
    """The three tests of ``LRAdversary(codebook, eps, p)`` for many queries ``x`` ``(n, d)`` at one ``sigma``.

    ``codebook`` ``(M, d)`` float32 with common norm ``r``. Returns a dict of float64/bool numpy
    arrays: ``informative``, ``in_band``, ``log_lr``, ``diff`` (``|s_P - s_Q|``), ``max_cos``.
    Needs ``jax_enable_x64`` for the float64 parts.
    """
    Y = jnp.asarray(codebook, jnp.float32)
    M, d = Y.shape
    r = float(np.linalg.norm(np.asarray(codebook[0], np.float64)))
    log_m = math.log(M) if log_m is None else log_m
    x = np.asarray(x, np.float64)
    s2 = float(sigma) ** 2
    out = {k: [] for k in ("informative", "in_band", "log_lr", "diff", "max_cos")}
    lo, hi = (float(v) for v in norm_band(float(sigma), float(d), eps, p, r / math.sqrt(d)))
    log_b = math.log(2.0 * r / s2)
    log_lam = math.log(0.5) + p * (math.log(eps) - math.log(2.0) - log_b)
    for i in range(0, x.shape[0], batch):
        xb = x[i:i + batch]
        res = _lab_pass(jnp.asarray(xb, jnp.float32), Y, jnp.asarray(1.0 / s2, jnp.float32),
                        block_size=default_block_size() if block is None else block)
        lse, mean, mx = (np.asarray(v, np.float64) for v in (res.lse, res.mean, res.max_logit))
        xi = np.linalg.norm(xb, axis=1)
        kappa = r * xi / s2
        lam, a = (np.asarray(v) for v in _bessel(jnp.asarray(kappa), float(d)))
        log_lr = lse - log_m - lam
        m_q = (r * a / xi)[:, None] * xb
        diff = np.linalg.norm(mean - m_q, axis=1) / s2
        band = (xi * xi >= lo) & (xi * xi <= hi)
        out["informative"].append(band & (log_lr >= log_lam) & (diff > 0.5 * eps))
        out["in_band"].append(band)
        out["log_lr"].append(log_lr)
        out["diff"].append(diff)
        out["max_cos"].append(mx * s2 / (r * xi))
    return {k: np.concatenate(v) for k, v in out.items()}


def reference_points(d: int, sigma: float, n: int, seed: int, rho: float = 1.0) -> np.ndarray:
    """``n`` draws of ``Q_sigma``: ``y' + sigma z`` with ``y'`` uniform on ``S_r``, float64 ``(n, d)``."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((n, d))
    y = rho * math.sqrt(d) * g / np.linalg.norm(g, axis=1, keepdims=True)
    return y + sigma * rng.standard_normal((n, d))


def point_seed(seed: int, k: int) -> int:
    """Seed of the queries of the ``k``-th ratio of :func:`exact_informative_fraction`."""
    return int(seed) * 1_000_003 + 7919 * (int(k) + 1)


def exact_informative_fraction(d: int, rate: float, ratios, n: int, seed: int = 0, *, eps=0.05,
                               p=2.0, rho=1.0, codebook=None, log=None, indices=None):
    """Measured informative fraction at ``sigma = ratio * sigma_c(Rbar)``, one random codebook.

    ``n``: queries per ratio (an int, or one per ratio). Rows: ``ratio, sigma, n, point_seed,
    exact, exact_se, in_band, median_max_cos, seconds`` (the queries of a row are
    ``reference_points(d, sigma, n, point_seed, rho)``). ``codebook``:
    reuse an array from :func:`random_sphere_codebook` (else one is drawn from ``seed``).
    ``indices``: the ``k`` of :func:`point_seed` per ratio (default ``0, 1, ...``).
    """
    if codebook is None:
        codebook = random_sphere_codebook(d, rate, seed, rho)
    codebook = jnp.asarray(codebook, jnp.float32)  # one device copy for all ratios
    log_m = math.log(codebook.shape[0])
    ns = [int(n)] * len(ratios) if np.ndim(n) == 0 else [int(v) for v in n]
    sc = rho / math.sqrt(math.expm1(2.0 * log_m / d))
    rows = []
    ks = range(len(ratios)) if indices is None else [int(k) for k in indices]
    for k, ratio, n in zip(ks, ratios, ns):
        t0 = time.time()
        s = float(ratio) * sc
        x = reference_points(d, s, n, point_seed(seed, k), rho)
        res = adversary_flags(codebook, x, s, eps, p, log_m=log_m)
        f = float(res["informative"].mean())
        rows.append(dict(d=d, rate=rate, M=codebook.shape[0], ratio=float(ratio), sigma=s,
                         n=n, point_seed=point_seed(seed, k), exact=f, exact_se=math.sqrt(max(f * (1 - f), 1.0 / n) / n),
                         in_band=float(res["in_band"].mean()),
                         median_max_cos=float(np.median(res["max_cos"])),
                         seconds=time.time() - t0))
        if log is not None:
            log(f"d={d} R={rate} ratio={ratio:.3f} exact={f:.3f} ({rows[-1]['seconds']:.0f}s)")
    return rows


def formula_fraction(d: int, log_m: float, sigmas, eps=0.05, p=2.0, rho=1.0, *, n=4000, seed=5,
                     **kwargs):
    """``pi_bar_d(sigma)`` of :func:`~jscore.lowerbound.informative.profile` at ``sigmas`` (numpy)."""
    draws = typical_norm_draws(jax.random.key(seed), float(d), n)
    fn = jax.jit(lambda s, dr, lm, e, pp, rh: profile(s, float(d), None, e, pp, rh, draws=dr,
                                                      log_m=lm, **kwargs))
    ftype = jnp.result_type(float)
    return np.asarray(fn(jnp.asarray(sigmas, ftype), draws, jnp.asarray(log_m, ftype),
                         jnp.asarray(eps, ftype), jnp.asarray(p, ftype), jnp.asarray(rho, ftype)))


def compare(rows, eps=0.05, p=2.0, rho=1.0, *, n=4000):
    """Add ``formula`` (current default), ``formula_old`` (0/1 guard) and deviations to lab rows."""
    d = rows[0]["d"]
    log_m = math.log(rows[0]["M"])
    sig = np.array([r["sigma"] for r in rows])
    new = formula_fraction(d, log_m, sig, eps, p, rho, n=n)
    old = formula_fraction(d, log_m, sig, eps, p, rho, n=n, guard="indicator")
    out = []
    for r, a, b in zip(rows, new, old):
        out.append(dict(r, formula=float(a), formula_old=float(b), dev=float(a - r["exact"]),
                        dev_old=float(b - r["exact"])))
    return out


def summarize(rows):
    """``{max_dev, at_ratio, max_dev_old, at_ratio_old}`` of absolute deviations."""
    i = int(np.argmax([abs(r["dev"]) for r in rows]))
    j = int(np.argmax([abs(r["dev_old"]) for r in rows]))
    return dict(d=rows[0]["d"], rate=rows[0]["rate"], M=rows[0]["M"],
                max_dev=abs(rows[i]["dev"]), at_ratio=rows[i]["ratio"],
                max_dev_old=abs(rows[j]["dev_old"]), at_ratio_old=rows[j]["ratio"])


def sampler_informative(sampler, d: int, rate: float, Ks, n: int, seed: int = 0, *, eps=0.05,
                        p=2.0, num_offsets: int = 4, sigma_min=0.02, sigma_max=20.0):
    """``P(exists informative)`` of a sampler against the exact adversary vs the formula.

    For each K the geometric grid of :func:`offset_grid`
    with stratified log-offsets ``(u + 0.37)/num_offsets``; ``n`` chains per offset. ``exact``:
    fraction of chains that got an informative answer from ``LRAdversary`` on one random
    codebook; ``formula`` / ``formula_old``: mean trajectory estimate of
    :func:`~jscore.lowerbound.trajectory.assemble` (default / 0/1 guard) on the coupled
    reference run (same keys, so the same trajectory up to the first informative answer), and
    its ``lower``/``upper`` bounds. Rows ``K, exact, exact_se, formula, formula_old, lower, upper``.
    """
    from ..oracles.adversary import LRAdversary
    from ..sampling import sample
    from ..targets.codebook import SphereCodebook
    from .trajectory import assemble, reference_run

    cb = SphereCodebook.random(jax.random.key(seed), d, rate)
    log_m = math.log(cb.num_codewords)
    adv = LRAdversary(cb, eps, p)
    rows = []
    for K in Ks:
        acc = np.zeros(5)
        for u in range(num_offsets):
            sig = jnp.asarray(offset_grid(int(K), sigma_min, sigma_max, (u + 0.37) / num_offsets))
            key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed + 1), int(K)), u)
            res = sample(adv, sampler, sig, key, num_samples=n)
            traj, _ = reference_run(sampler, sig, key, d, n)
            b = assemble(traj, float(d), None, eps, p, log_m=log_m)
            bo = assemble(traj, float(d), None, eps, p, log_m=log_m, guard="indicator")
            acc += [float(np.mean(np.asarray(res.stats.extra["informative"]))),
                    float(jnp.mean(b.estimate)), float(jnp.mean(bo.estimate)),
                    float(jnp.mean(b.lower)), float(jnp.mean(b.upper))]
        ex, fo, fo_old, lo, up = acc / num_offsets
        rows.append(dict(d=d, rate=rate, M=cb.num_codewords, K=int(K), exact=ex,
                         exact_se=math.sqrt(max(ex * (1 - ex), 1.0 / n) / (n * num_offsets)),
                         formula=fo, formula_old=fo_old, lower=lo, upper=up, dev=fo - ex,
                         dev_old=fo_old - ex))
    return rows


# ----------------------------------------------------------------------------- bracket check
BRACKET_RATIOS = (0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.85, 1.0, 1.3, 1.6, 1.9, 2.1, 2.3, 2.5, 2.7,
                  3.0)


def bracket_tolerance(num_points: int, alpha: float = 0.05) -> float:
    """Bonferroni threshold in standard errors for the bracket check over ``num_points`` points.

    Each point can leave the bracket on one of two sides, so ``2 num_points`` one-sided tests at
    level ``alpha / (2 num_points)``: ``z = Phi^{-1}(1 - alpha / (2 num_points))``. If the
    bracket holds (and the standard errors are right), every point is within ``z`` SE of it with
    probability at least ``1 - alpha``.
    """
    from scipy.special import ndtri

    if int(num_points) < 1 or not 0.0 < alpha < 1.0:
        raise ValueError(f"need num_points >= 1 and 0 < alpha < 1, got {num_points}, {alpha}")
    return float(ndtri(1.0 - alpha / (2.0 * int(num_points))))


def bracket_sides(row, eps=0.05, p=2.0, rho=1.0):
    """``(lower, upper, formula)``: both sides of the per-query informative probability and the
    default estimate, averaged over the *same* query norms as the lab row ``row`` (its
    ``reference_points(d, sigma, n, point_seed)``; ``log M`` from its ``M``).

    Sides from :func:`~jscore.lowerbound.informative.informative_bounds` (lower: a single
    codeword passes; upper: union bound plus Markov, minimised over the split), the estimate
    from :func:`~jscore.lowerbound.informative.informative_probability`; float64.
    """
    d, s, n = int(row["d"]), float(row["sigma"]), int(row["n"])
    x = reference_points(d, s, n, int(row["point_seed"]), rho)
    xi = np.linalg.norm(x, axis=1)
    size = max(1024, 1 << (n - 1).bit_length())  # padded: one compilation for many n
    pad = np.full(size, xi[0])
    pad[:n] = xi
    with jax.enable_x64(True):
        f64 = lambda v: jnp.asarray(v, jnp.float64)  # noqa: E731
        out = _sides_sum(f64(pad), f64(s), f64(math.log(int(row["M"]))), f64(eps), f64(p),
                         f64(rho), n, float(d))
        return tuple(float(v) / n for v in out)


@jax.jit(static_argnames=("d",))
def _sides_sum(xi, sigma, log_m, eps, p, rho, n, d):
    from .informative import informative_bounds, informative_probability

    lo, hi = informative_bounds(xi, sigma, d, None, eps, p, rho, log_m=log_m)
    est = informative_probability(xi, sigma, d, None, eps, p, rho, log_m=log_m)
    keep = jnp.arange(xi.shape[0]) < n
    return tuple(jnp.sum(jnp.where(keep, v, 0.0)) for v in (lo, hi, est))


def bracket_check(rows, eps=0.05, p=2.0, rho=1.0):
    """Add ``lower, upper, formula, outside_se, side`` to lab rows (see :func:`bracket_sides`).

    ``outside_se = max(0, (lower - exact)/exact_se, (exact - upper)/exact_se)``: how many
    standard errors the measured fraction lies outside ``[lower, upper]`` (0 inside), ``side``
    ``"below"``, ``"above"`` or ``"inside"``. ``exact_se`` is the binomial error of the mean
    over the row's queries (floored at one event, ``sqrt(max(f(1-f), 1/n)/n)``); given the
    query norms it is conservative for the comparison (the per-query probabilities vary, which
    only lowers the variance), and it treats the queries as independent given the codebook.
    """
    out = []
    for r in rows:
        lo, hi, est = bracket_sides(r, eps, p, rho)
        f, se = float(r["exact"]), float(r["exact_se"])
        below, above = (lo - f) / se, (f - hi) / se
        out.append(dict(r, lower=lo, upper=hi, formula=est, outside_se=max(0.0, below, above),
                        side="below" if below > 0 else "above" if above > 0 else "inside"))
    return out


def bracket_summary(rows, alpha: float = 0.05):
    """Worst point of :func:`bracket_check` rows of one ``d``: ``max_outside_se``, its ratio and
    side, how many points lie outside, and the Bonferroni ``tolerance_se``
    (:func:`bracket_tolerance` over the rows); ``passed = max_outside_se <= tolerance_se``."""
    k = int(np.argmax([float(r["outside_se"]) for r in rows]))
    tol = bracket_tolerance(len(rows), alpha)
    worst = float(rows[k]["outside_se"])
    return dict(d=int(rows[0]["d"]), rate=float(rows[0]["rate"]), M=int(rows[0]["M"]),
                n=int(rows[0]["n"]), points=len(rows), min_ratio=min(float(r["ratio"]) for r in rows),
                max_ratio=max(float(r["ratio"]) for r in rows), max_outside_se=worst,
                at_ratio=float(rows[k]["ratio"]), side=rows[k]["side"],
                outside=sum(float(r["outside_se"]) > 0 for r in rows), alpha=alpha,
                tolerance_se=tol, passed=bool(worst <= tol))


__all__ = ["random_sphere_codebook", "adversary_flags", "reference_points",
           "exact_informative_fraction", "formula_fraction", "compare", "summarize",
           "sampler_informative", "point_seed", "BRACKET_RATIOS", "bracket_tolerance",
           "bracket_sides", "bracket_check", "bracket_summary", "offset_grid"]
