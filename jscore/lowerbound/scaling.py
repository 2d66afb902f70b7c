"""The sqrt(d) scaling sweep of the lower-bound lab (docs/construction.md §6 and 8).

For each dimension ``d`` (default 1e2 ... 1e6), all without a codebook (section 7):

- window profile ``pi_bar_d(sigma)`` at ``R = 0.3`` and its edges, width ``w``, ``w sqrt(d)`` and
  ``w sqrt(d / ln(d/eps))`` (reference 3.26 +- 0.02 at p = 2, eps = 1/d);
- window count ``N(d) = int dR / W_C(R)`` over ``[R_lo, R_hi]`` (``W_C`` = capacity width);
- ``K*(d)`` = least number of geometric levels (random log-offset) with success >= 1/2, for
  queries at reference-typical points at every level (the "ideal" family) and for real samplers
  run in scalar form against the reference oracle (success = single-codeword estimate of
  ``P(exists informative)``, averaged over offsets, ``R ~ U[R_lo, R_hi]`` and chains), with the
  distinct levels inside the critical band at ``K*``;
- the optimal adaptive searcher's expected number of queries (fresh reference-typical points at
  the window centres in random order, stop at the first informative answer, plus one final
  low-noise query);
- the controls: the exact oracle needs 2 queries (``{sigma_max, sigma_min}``) at every d; the
  reference oracle's success is at most ``M S_d(theta_0)`` (reported as ``log10``);

then log-log slopes with bootstrap confidence intervals, a CSV/JSON of everything (written
incrementally) and a PNG (K*(d) and N(d) with fitted slopes next to the profile collapse).

Float64 is switched on inside :func:`scaling` (``jax.enable_x64``).
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..compiles import CompileCounter
from ..store import atomic_write, write_csv
from ..fit import COVERS as _FIT_COVERS
from ..fit import loglog_slope
from .caps import log_cap
from .informative import (
    capacity,
    critical_sigma,
    estimate_and_sides,
    informative_sides,
    effective_log_m_py,
    guard_threshold,
    leading_order_window,
    profile,
    typical_norm,
    typical_norm_draws,
    window_edges,
)
from .general import draws_for, has_scalar_reduction, resolve_sampler
from .grids import (  # re-exported: these lived here before grids.py
    _GOLDEN,
    _JIT,
    _TRACED_MIN_D,
    SIGMA_MAX,
    SIGMA_MIN,
    SamplerDraws,
    _call,
    _grid_sides_body,
    _sides_body,
    _sides_chain,
    geometric_levels,
    lattice_points,
    resolve_schedule,
    scale_bins,
    schedule_label,
    worst_over_scales,
)
from .scalar import _chain, scalar_spec  # noqa: F401  (_chain re-exported)
from .trajectory import assemble  # noqa: F401  (re-exported)

DEFAULT_DIMS = (100, 400, 1600, 6400, 25600, 102400, 409600, 1000000)
DEFAULT_SAMPLERS = ("euler", "euler_ancestral", "heun")
ALL_SAMPLERS = (
    "euler",
    "euler_ancestral",
    "euler_maruyama",
    "heun",
    "dpmpp_2m",
    "randomized_midpoint",
)
THETA0 = 0.9


def eps_value(d: float, rule) -> float:
    """``eps`` at dimension ``d`` from a rule (``"1/d"``, ``"1/sqrt(d)"``, ``"1/d^2"``), a number,
    or a number written as text (``"1e-4"``, ``"1/12288"``; spaces ignored)."""
    if isinstance(rule, (int, float)):
        return float(rule)
    rules = {"1/d": 1.0 / d, "1/sqrt(d)": d**-0.5, "1/d^2": d**-2.0, "1/d^1/2": d**-0.5}
    text = str(rule).replace(" ", "")
    if text in rules:
        return rules[text]
    num, slash, den = text.partition("/")
    try:
        return float(num) / float(den) if slash else float(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"Unknown eps rule {rule!r}; use one of {', '.join(rules)} or a number "
                         "(e.g. 1e-4 or 1/12288).") from None


def _t1_body(d, log_m):
    return guard_threshold(d, log_m)


def _profile_body(d, sig, g, c, log_m, t1, eps, p):
    return profile(sig, d, None, eps, p, 1.0, draws=(g, c), log_m=log_m, t1=t1)


def _profile_sides_body(d, sig, g, c, log_m, eps, p):
    """Both side profiles ``(2, ...)`` from one :func:`informative_sides` evaluation."""
    xi = typical_norm(sig[..., None], g, c, d, 1.0)
    sd = informative_sides(xi, sig[..., None], d, None, eps, p, 1.0, log_m=log_m)
    return jnp.stack([jnp.mean(sd.lower, axis=-1), jnp.mean(sd.upper, axis=-1)])


def _profile_branch_body(d, sig, g, c, log_m, eps, p, branch, want):
    """Profiles ``(3, P)`` (estimate, lower, upper; a NaN row where not ``want``ed) at the
    points ``sig``, ``log_m`` ``(P,)`` that all lie on ``branch``
    (:func:`~jscore.lowerbound.informative.estimate_and_sides`), and the number of points not
    on it (0 unless XLA rounds the capacity test differently from the host's split)."""
    xi = typical_norm(sig[:, None], g, c, d, 1.0)
    est, lo, up, cond = estimate_and_sides(xi, sig[:, None], d, eps, p, 1.0,
                                           log_m=log_m[:, None], branch=branch, want=want)
    nan = jnp.full(sig.shape, jnp.nan, sig.dtype)
    rows = [nan if v is None else jnp.mean(v, axis=-1) for v in (est, lo, up)]
    off = jnp.sum(cond[:, 0] != (branch == "condensed"))
    return jnp.stack(rows), off


def _condensed_body(d, sig, log_m):
    return capacity(sig, 1.0) >= log_m / d


def _profiles_split(d, sig, log_ms, g, c, eps, p, want):
    """Profiles on the grid ``sig`` ``(n_R, grid)``: ``(3, n_R, grid)`` (estimate, lower,
    upper), the condensed and liquid points in one padded program each (the condensed ones skip
    the liquid bisections). Shapes are padded to multiples of 64 points, so a symmetric grid
    compiles each program once for all d."""
    ftype = jnp.result_type(float)
    lm = jnp.broadcast_to(jnp.asarray(log_ms, ftype)[:, None], sig.shape)
    cond = np.asarray(_call("condensed", _condensed_body, d, sig, lm))
    flat_sig, flat_lm = np.asarray(sig).reshape(-1), np.asarray(lm).reshape(-1)
    out = np.full((3, flat_sig.size), np.nan)
    for branch, idx in (("condensed", np.nonzero(cond.reshape(-1))[0]),
                        ("liquid", np.nonzero(~cond.reshape(-1))[0])):
        if idx.size == 0:
            continue
        size = -(-idx.size // 64) * 64
        take = np.concatenate([idx, np.full(size - idx.size, idx[0])])
        vals, off = _call("profile_branch", _profile_branch_body, d,
                          jnp.asarray(flat_sig[take], ftype), g, c,
                          jnp.asarray(flat_lm[take], ftype), jnp.asarray(eps, ftype),
                          jnp.asarray(p, ftype), static=(branch, want))
        if int(off):  # pragma: no cover - the split disagrees with the kernel's own test
            raise RuntimeError(f"profile split: {int(off)} points off the {branch} branch")
        out[:, idx] = np.asarray(vals)[:, :idx.size]
    return out.reshape((3,) + sig.shape)


def profile_side_tables(d, ls, log_ms, eps, p, *, key, n=1000):
    """The lower- and upper-side profiles on the grid of :func:`profile_tables` (same ``key``:
    the same reference-norm draws). Returns ``(vals_lower, vals_upper)``, each ``(n_R, grid)``."""
    ftype = jnp.result_type(float)
    g, c = typical_norm_draws(key, d, n)
    rbar = np.asarray(log_ms) / d
    sc = 1.0 / np.sqrt(np.expm1(2.0 * rbar))
    sig = jnp.asarray(sc[:, None] * np.exp(ls), ftype)
    vals = _profiles_split(d, sig, log_ms, g, c, eps, p, "sides")
    return vals[1], vals[2]


# ----------------------------------------------------------------------------- profiles
def profile_tables(d, rates, eps, p, *, key, n=1000, grid=128, span_factor=3.0, sides=False):
    """Tabulate ``pi_bar_d`` around each rate's ``sigma_c``: returns ``(ls, vals, log_ms, t1s)``.

    ``ls``: ``(n_R, grid)`` offsets ``log(sigma/sigma_c(Rbar))``; ``vals``: profile values.
    ``sides=True`` also returns the side profiles of :func:`profile_side_tables` (same draws),
    ``(ls, vals, log_ms, t1s, vals_lower, vals_upper)``, from the same programs (cheaper; the
    upper side then agrees with :func:`profile_side_tables` to ~1e-13 relative, XLA rounding).
    """
    rates = np.asarray(rates, float)
    log_ms = np.array([effective_log_m_py(d, r) for r in rates])
    rbar = log_ms / d
    spans = []
    for rb in rbar:
        lo, up = leading_order_window(d, rb, eps, p)
        spans.append(min(span_factor * max(-lo, up, 1e-3), 4.0))
    ls = np.stack([np.linspace(-s, s, grid) for s in spans])
    sc = 1.0 / np.sqrt(np.expm1(2.0 * rbar))
    ftype = jnp.result_type(float)
    t1s = _call("t1", _t1_body, d, jnp.asarray(log_ms, ftype))
    g, c = typical_norm_draws(key, d, n)
    sig = jnp.asarray(sc[:, None] * np.exp(ls), ftype)
    # "both" even without sides: on the condensed branch it reproduces the plain estimate bit
    # for bit, where an estimate-only program may round t* differently (~1e-10 at d = 1e6)
    vals = _profiles_split(d, sig, log_ms, g, c, eps, p, "both")
    if sides:
        return ls, vals[0], log_ms, np.asarray(t1s), vals[1], vals[2]
    return ls, vals[0], log_ms, np.asarray(t1s)


def _edges_from_table(ls, vals):
    inside = np.nonzero(vals > 0.5)[0]
    if inside.size == 0:
        return math.nan, math.nan
    i, j = inside[0], inside[-1]

    def cross(a, b):
        va, vb = vals[a], vals[b]
        return ls[a] + (0.5 - va) * (ls[b] - ls[a]) / (vb - va)

    lower = cross(i - 1, i) if i > 0 else ls[0]
    upper = cross(j, j + 1) if j < len(ls) - 1 else ls[-1]
    return float(lower), float(upper)


def window_count(d, rates, ls, vals, log_ms):
    """``N(d) = int dR / W_C(R)`` (trapezoid over ``rates``) and the per-rate edges."""
    widths, edges = [], []
    for k in range(len(rates)):
        lo, up = _edges_from_table(ls[k], vals[k])
        rb = log_ms[k] / d
        sc = 1.0 / math.sqrt(math.expm1(2.0 * rb))
        c_lo = 0.5 * math.log1p(1.0 / (sc * math.exp(lo)) ** 2)
        c_hi = 0.5 * math.log1p(1.0 / (sc * math.exp(up)) ** 2)
        widths.append(c_lo - c_hi)
        edges.append((lo, up))
    inv = 1.0 / np.asarray(widths)
    return float(np.trapezoid(inv, rates)), edges


# ----------------------------------------------------------------------------- ideal family
def _offsets(n_offsets):
    return (np.arange(n_offsets) + 0.5) / n_offsets


def ideal_success(K, rates, weights, ls, vals, log_ms, d, n_offsets=64, combine="product"):
    """Success(K) for fresh reference-typical queries at every level.

    ``combine="product"``: ``1 - prod_k (1 - pi_bar_k)`` (independent fresh points, disjoint caps;
    the estimate and the lower side); ``"union"``: ``min(1, sum_k pi_bar_k)`` (the union bound,
    with the upper-side profile: an upper bound).
    """
    if combine not in ("product", "union"):
        raise ValueError(f"Unknown combine {combine!r}; use 'product' or 'union'.")
    u = _offsets(n_offsets)
    lsig = np.log(geometric_levels(K, u))  # (U, K)
    total = 0.0
    for k in range(len(rates)):
        sc = 1.0 / math.sqrt(math.expm1(2.0 * log_ms[k] / d))
        x = lsig - math.log(sc)
        pk = np.interp(x, ls[k], vals[k], left=0.0, right=0.0)
        if combine == "union":
            hit = np.minimum(np.sum(pk, axis=1), 1.0)
        else:
            hit = 1.0 - np.exp(np.sum(np.log1p(-np.minimum(pk, 1.0 - 1e-16)), axis=1))
        total += weights[k] * np.mean(hit)
    return float(total)


def _kstar_search(success: Callable[[int], float], k_start=2, k_max=4096):
    """Least integer K with success >= 1/2 (exponential then binary search; success cached),
    linearly interpolated between K-1 and K. Returns ``(K*, {K: success})``."""
    cache: dict = {}

    def s(k):
        if k not in cache:
            cache[k] = success(k)
        return cache[k]

    k = k_start
    if s(k) >= 0.5:
        return float(k), cache
    lo = k
    while True:
        hi = min(int(math.ceil(lo * 1.6)) + 1, k_max)
        if s(hi) >= 0.5:
            break
        if hi >= k_max:
            return math.nan, cache
        lo = hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if s(mid) >= 0.5:
            hi = mid
        else:
            lo = mid
    s_lo, s_hi = s(lo), s(hi)
    frac = (0.5 - s_lo) / (s_hi - s_lo) if s_hi > s_lo else 1.0
    return float(lo + frac * (hi - lo)), cache


# ----------------------------------------------------------------------------- real samplers
def _crossing(curve: dict, k_lo: int, k_hi: int) -> float:
    """Linear interpolation of the 1/2 crossing between evaluated ``k_lo`` (< 1/2) and ``k_hi``."""
    a, b = curve[k_lo], curve[k_hi]
    frac = (0.5 - a) / (b - a) if b > a else 1.0
    return float(k_lo + min(max(frac, 0.0), 1.0) * (k_hi - k_lo))


def kstar_sides(draws: SamplerDraws, k_guess: float = 4.0, *, k_start=2, rel_tol=0.01):
    """``K*_lo`` and ``K*_hi`` per replicate on the same draws for every K (common random numbers).

    ``K*_lo``: least K where the *upper* side reaches 1/2; ``K*_hi``: where the *lower* side
    does (so ``K*_lo <= K*_hi``). A geometric search from ``k_guess`` brackets every replicate's
    crossing; each is then bisected until its bracket is at most ``max(1, rel_tol K)`` levels
    wide and interpolated linearly. Returns ``(kstar_lo (R,), kstar_hi (R,), curves)`` with
    ``curves[K] = (lower (R,), upper (R,), levels)``; NaN where no K <= k_max reaches 1/2.
    """
    f = draws
    R = f.n_reps

    def side(k, which):
        return f(k)[which]

    # bracket: k_a with every replicate's upper side < 1/2 (or k_start), k_b with every lower >= 1/2
    k = max(k_start, int(round(k_guess)))
    k_a = k
    while k_a > k_start and np.any(side(k_a, 1) >= 0.5):
        k_a = max(k_start, int(k_a / 1.25))
    k_b = max(k, k_a + 1)
    while np.any(side(k_b, 0) < 0.5) and k_b < f.k_max:
        k_b = min(f.k_max, int(math.ceil(k_b * 1.25)) + 1)
    out = {}
    for which, name in ((1, "lo"), (0, "hi")):
        ks = np.full(R, np.nan)
        for r in range(R):
            lo, hi = k_a, k_b
            if side(lo, which)[r] >= 0.5:
                ks[r] = float(lo)
                continue
            if not side(hi, which)[r] >= 0.5:
                continue
            while hi - lo > max(1, int(rel_tol * lo)):
                mid = (lo + hi) // 2
                if side(mid, which)[r] >= 0.5:
                    hi = mid
                else:
                    lo = mid
            ks[r] = _crossing({lo: side(lo, which)[r], hi: side(hi, which)[r]}, lo, hi)
        out[name] = ks
    return out["lo"], out["hi"], dict(sorted(f.cache.items()))


def mc_interval(values, level=0.95):
    """Mean and t-interval half-width over independent replicates: ``(mean, half_width)``."""
    from scipy import stats

    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return (float(v.mean()) if v.size else math.nan), math.nan
    half = stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return float(v.mean()), float(half)


# ----------------------------------------------------------------------------- searcher
def searcher_queries(d, rates, weights, ls, vals, log_ms, *, seed=0, trials=2000):
    """Expected queries of the optimal adaptive searcher, and its window grid size.

    Window centres ``sigma_c(R_m)`` with rates spaced by the window width in capacity units from
    ``R_lo`` to ``R_hi``; the hidden rate is ``R ~ U[R_lo, R_hi]`` (the tabulated rates);
    fresh reference-typical queries at the centres in random order until the first informative
    answer, plus one final low-noise query. Returns ``(mean queries, N windows)``.
    """
    rng = np.random.default_rng(seed)
    rates = np.asarray(rates)
    # capacity widths per tabulated rate, interpolated
    _, edges = window_count(d, rates, ls, vals, log_ms)
    wc = []
    for k, (lo, up) in enumerate(edges):
        sc = 1.0 / math.sqrt(math.expm1(2.0 * log_ms[k] / d))
        wc.append(0.5 * math.log1p(1 / (sc * math.exp(lo)) ** 2)
                  - 0.5 * math.log1p(1 / (sc * math.exp(up)) ** 2))
    wc = np.asarray(wc)
    centres = []
    r = rates[0] + 0.5 * np.interp(rates[0], rates, wc)
    while r <= rates[-1]:
        centres.append(r)
        r += np.interp(r, rates, wc)
    if not centres:
        centres = [0.5 * (rates[0] + rates[-1])]
    centres = np.asarray(centres)
    sig_c = 1.0 / np.sqrt(np.expm1(2.0 * centres))
    # pi_bar of hidden rate k at each centre
    probs = np.zeros((len(rates), len(centres)))
    for k in range(len(rates)):
        sc = 1.0 / math.sqrt(math.expm1(2.0 * log_ms[k] / d))
        probs[k] = np.interp(np.log(sig_c / sc), ls[k], vals[k], left=0.0, right=0.0)
    w = np.asarray(weights) / np.sum(weights)
    total = 0.0
    for k in range(len(rates)):
        q = np.zeros(trials)
        for t in range(trials):
            order = rng.permutation(len(centres))
            hit = rng.random(len(centres)) < probs[k, order]
            first = np.argmax(hit) + 1 if hit.any() else len(centres)
            q[t] = first + 1
        total += w[k] * q.mean()
    return float(total), int(len(centres))


# ----------------------------------------------------------------------------- fits
def _slope(ds, ys):
    """``(slope, ci_low, ci_high)`` of :func:`jscore.fit.loglog_slope` (pairs bootstrap over d,
    2000 replicates, 95 %; NaN interval below 3 dimensions): what ``results["fits"]`` holds."""
    f = loglog_slope(ds, ys, n_boot=2000, seed=0, level=0.95)
    return f.slope, f.ci_low, f.ci_high


# ----------------------------------------------------------------------------- the sweep
def exact_control(d, *, key, n_chains=4, n_codewords=8, theta0=THETA0, rho=1.0):
    """The exact-oracle control, measured: Euler on the two levels ``{sigma_max, sigma_min}`` (no
    offset) then Tweedie, through ``js.sample`` with ``Exact`` at dimension ``d`` (full vectors).

    The codebook has ``n_codewords`` uniform points on ``S_r`` (a hidden codebook of
    ``M = e^{R d}`` points cannot be stored beyond d ~ 64): the step into ``sigma = 0`` from
    ``sigma_min = 0.02`` returns the codeword nearest the state whatever ``M`` (the posterior at
    ``sigma_min << sigma_c`` sits on one codeword), so the outcome does not depend on the
    codebook size. Returns ``(decoded fraction, mean queries)``; success means the output
    decodes to a codeword (cosine >= ``theta0``).
    """
    from ..oracles import Exact
    from ..samplers import Euler
    from ..sampling import sample
    from ..targets import SphereCodebook
    from .metrics import BOTTOM, decode

    d = int(d)
    k_cb, k_run = jax.random.split(key)
    g = jax.random.normal(k_cb, (int(n_codewords), d), jnp.float32)
    cb = SphereCodebook(rho * math.sqrt(d) * g / jnp.linalg.norm(g, axis=1, keepdims=True))
    sig = jnp.asarray([SIGMA_MAX, SIGMA_MIN, 0.0], jnp.float32)
    with jax.enable_x64(False):
        res = sample(Exact(cb), Euler(), sig, k_run, num_samples=int(n_chains))
        dec = decode(cb, res.x, theta0)
    ok = float(np.mean(np.asarray(dec.index) != BOTTOM))
    return ok, float(np.mean(np.asarray(res.stats.queries)))


def reference_control(d, rate_hi=0.45, theta0=THETA0):
    """``log10(M S_d(theta_0))``: bound on the reference oracle's decoder pass rate (largest rate)."""
    log_m = effective_log_m_py(d, rate_hi)
    return float((log_m + float(log_cap(jnp.asarray(theta0, jnp.result_type(float)), float(d))))
                 / math.log(10.0))


def scaling(
    dims=DEFAULT_DIMS,
    samplers=DEFAULT_SAMPLERS,
    *,
    p=2.0,
    eps="1/d",
    rate=0.3,
    rate_lo=0.15,
    rate_hi=0.45,
    n_rates=9,
    n_xi=1000,
    n_offsets=64,
    n_reps=8,
    k_max=1024,
    schedule="geometric",
    n_scales=8,
    max_queries=None,
    robustness=False,
    seed=0,
    out_dir=None,
    resume="auto",
    overwrite=False,
    plot=True,
    log=print,
):
    """Run the sqrt(d) sweep; returns a dict of results (also written to ``out_dir`` if given).

    For every sampler and d: ``kstar_lo`` (levels at which the *upper* side of P(some answer is
    informative) reaches 1/2) and ``kstar_hi`` (the *lower* side reaches 1/2), each with a
    Monte-Carlo 95% CI over ``n_reps`` independent replicates (docs/certified_bound.md). K* is a
    necessary condition for success against the adversary, not success.

    **Arguments:**
    - ``dims``: dimensions; ``samplers``: any samplers: scalar-table names (``euler``, ``ddim``,
      ``euler_ancestral``, ``euler_maruyama``, ``heun``, ``dpmpp_2m``, ``randomized_midpoint``:
      the hand-written scalar reduction), catalogue names with options (``"heun:s_churn=40"``,
      ``"unipc"``) or ``AbstractSampler`` instances (a registered type runs its scalar
      reduction, anything else the full-vector path :class:`~jscore.lowerbound.general.FullVectorDraws`;
      results are keyed by the name, or an instance's class name). ``"ideal"`` is always included.
    - ``schedule``: the level family (:func:`jscore.lowerbound.schedule_families.family` spec):
      ``"geometric"`` (default; random log-offset, step ``log(sigma_max/sigma_min)/K``, the
      log-offset is the hidden scale), ``"karras:7"``, ``"edm"``, ``"vp_linear"``, ``"cosine"``,
      ``"uniform"``: the fixed grid ``family.grid(K, 0.02, 20)`` against a hidden critical scale
      log-uniform on ``[0.02, 20]`` (docs/experiments/lowerbound_sweep.md). K* averages over it;
      ``kstar_worst_lo``/``kstar_worst_hi`` are the least K at which the minimum over
      ``n_scales`` hidden-scale positions of the upper/lower side reaches 1/2 (an estimate
      biased low by Monte-Carlo error, no interval; NaN if some position never does for
      ``K <= k_max``), ``kstar_worst_inner_*`` the same without the top position (hidden scale
      next to sigma_max, where the grid starts at the data's own scale); for ``geometric`` the
      positions are phases within one log-step and inner = all. ``max_queries``: cap on queries per chain,
      needed by a data-dependent sampler on the full-vector path.
    - ``p``, ``eps`` (rule or number), ``rate`` (window table), ``[rate_lo, rate_hi]`` and
      ``n_rates`` (rate grid of the window table, N, the ideal K* and the searcher).
    - ``n_xi``: reference-norm draws per profile; ``n_offsets``: points (log-offset, rate) of
      each replicate's randomly shifted lattice (more where K is small: x4, x3, x2 for an ideal
      K* below 4, 8, 16); ``n_reps``: independent replicates (>= 2 for an interval);
      ``k_max``: largest K tried.
    - ``robustness``: also the p in {1,2,4} x eps in {d^-1/2, d^-1, d^-2} window grid at
      d in {1.6e3, 2.56e4, 4.1e5}.
    - ``out_dir``: writes ``scaling.json`` after every dimension, ``scaling.csv`` and
      ``scaling.png``/``.pdf`` at the end.
    - ``resume``: with ``out_dir`` holding a ``scaling.json`` of the same configuration, ``"auto"``
      (default) reuses its finished dimensions and computes only the rest (a killed run is resumed
      by running it again); ``True`` requires such a file; ``False`` refuses existing results.
      ``overwrite=True`` discards them. Results of a different configuration are never mixed:
      that raises ``ValueError``. ``plot=False`` skips the figure.

    ``results["compile"]`` holds the XLA compilations and compile seconds of this call
    (:class:`jscore.compiles.CompileCounter`); the log ends with them.
    """
    with jax.enable_x64(True), CompileCounter() as compiles:
        return _scaling(dims, samplers, p, eps, rate, rate_lo, rate_hi, n_rates, n_xi, n_offsets,
                        n_reps, k_max, robustness, seed, out_dir, log, resume, overwrite,
                        plot, compiles=compiles, schedule=schedule, n_scales=n_scales,
                        max_queries=max_queries)


# recorded in the config but not part of its identity: rows are per d, so adding dimensions to a
# finished run computes only the new ones
_RUN_KEYS = ("device", "jax", "dims")


# config keys added with schedules: a scaling.json written before them ran with these values
_PRE_SCHEDULE_DEFAULTS = {"schedule": "geometric", "n_scales": 8, "max_queries": None}


def _finished_rows(out_dir, config, resume, overwrite):
    """Rows of a previous run of the same ``config`` in ``out_dir`` (by d), per ``resume``."""
    if resume not in ("auto", True, False):
        raise ValueError(f"`resume` must be 'auto', True or False, got {resume!r}.")
    path = None if out_dir is None else os.path.join(out_dir, "scaling.json")
    if path is None or overwrite or not os.path.exists(path):
        if resume is True:
            raise ValueError(f"resume=True but there are no earlier results at {path!r}.")
        return {}
    try:
        with open(path) as fh:
            old = json.load(fh)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path!r} is not a readable scaling.json ({e}); move it away or pass "
                         "overwrite=True (--overwrite).") from None
    old_config = {**_PRE_SCHEDULE_DEFAULTS, **old.get("config", {})}  # files from before schedules
    same = {k: v for k, v in old_config.items() if k not in _RUN_KEYS} == {
        k: v for k, v in json.loads(json.dumps(config, default=_json_default)).items()
        if k not in _RUN_KEYS}
    if not same:
        raise ValueError(f"{out_dir!r} holds results of a different configuration; choose another "
                         "output folder or pass overwrite=True (--overwrite) to discard them.")
    if resume is False:
        raise ValueError(f"{out_dir!r} already holds results of this configuration; pass "
                         "resume='auto' to continue them or overwrite=True to discard them.")
    return {float(r["d"]): r for r in old.get("rows", [])}


def points_for(n_offsets, k_guess):
    """Lattice points per replicate at a dimension whose ideal K* is ``k_guess``: ``n_offsets``
    times 4, 3, 2 or 1 for ``k_guess`` below 4, 8, 16 or beyond (small K has few levels to
    average over, and its runs are cheap)."""
    if not math.isfinite(k_guess):
        return int(n_offsets)
    mult = 4 if k_guess < 4 else 3 if k_guess < 8 else 2 if k_guess < 16 else 1
    return int(n_offsets) * mult


def _plain_scalar_name(sampler) -> bool:
    """A name of the scalar table of :func:`~jscore.lowerbound.scalar.scalar_spec` (no options)."""
    if not isinstance(sampler, str) or ":" in sampler:
        return False
    try:
        scalar_spec(sampler)
    except ValueError:
        return False
    return True


def make_draws(sampler, d, eps, p, width, *, key, n_points=64, n_reps=8, k_max=1024,
               rate_lo=0.15, rate_hi=0.45, schedule=None, max_queries=None):
    """The draws of one sampler at one d: a plain scalar-table name (``"euler"``, ``"heun"``,
    ...) runs :class:`SamplerDraws` on that name's reduction (the sweep's numbers before any
    sampler was accepted, bit for bit); anything else goes through
    :func:`~jscore.lowerbound.general.draws_for` (scalar reduction for registered types, else the
    full-vector path, :class:`~jscore.lowerbound.general.FullVectorDraws`)."""
    kw = dict(key=key, n_points=n_points, n_reps=n_reps, k_max=k_max, rate_lo=rate_lo,
              rate_hi=rate_hi, schedule=schedule)
    if _plain_scalar_name(sampler):
        return SamplerDraws(sampler, d, eps, p, width, **kw)
    return draws_for(sampler, d, eps, p, width, max_queries=max_queries, **kw)


def _kstar_curve(f, k0, k_max, *, k_start=2, rel_tol=0.01):
    """Least K (interpolated) with ``f(K) >= 1/2`` for a scalar ``f`` roughly increasing in K:
    geometric bracket from ``k0``, then bisection to ``max(1, rel_tol K)`` levels; NaN if no
    ``K <= k_max`` reaches 1/2."""
    k = max(k_start, min(int(k0) if math.isfinite(k0) else k_start, k_max))
    vals: dict = {}

    def g(k):
        if k not in vals:
            vals[k] = f(k)
        return vals[k]

    if g(k) >= 0.5:
        hi = k
        while True:
            lo = max(k_start, int(hi / 1.25))
            if lo == hi:  # hi == k_start already reaches 1/2
                return float(hi)
            if g(lo) < 0.5:
                break
            hi = lo
    else:
        lo = k
        hi = min(k_max, int(math.ceil(k * 1.25)) + 1)
        while g(hi) < 0.5:
            if hi >= k_max:
                return math.nan
            lo, hi = hi, min(k_max, int(math.ceil(hi * 1.25)) + 1)
    while hi - lo > max(1, int(rel_tol * lo)):
        mid = (lo + hi) // 2
        if g(mid) >= 0.5:
            hi = mid
        else:
            lo = mid
    return _crossing({lo: g(lo), hi: g(hi)}, lo, hi)


def _sampler_row(name, d, eps, p, width, key, n_points, n_reps, k_max, rate_lo, rate_hi,
                 k_guess, schedule=None, n_scales=8, max_queries=None):
    draws = make_draws(name, d, eps, p, width, key=key, n_points=n_points, n_reps=n_reps,
                       k_max=k_max, rate_lo=rate_lo, rate_hi=rate_hi, schedule=schedule,
                       max_queries=max_queries)
    klo, khi, curves = kstar_sides(draws, k_guess)
    m_lo, h_lo = mc_interval(klo)
    m_hi, h_hi = mc_interval(khi)
    k_at = int(math.ceil(m_hi)) if math.isfinite(m_hi) else None
    lev = draws(k_at)[2] if k_at is not None else math.nan
    curve = {int(k): [float(np.mean(v[0])), float(np.mean(v[1]))] for k, v in curves.items()}
    row = dict(kstar_lo=m_lo, kstar_hi=m_hi, kstar_lo_mc=h_lo, kstar_hi_mc=h_hi,
               kstar_lo_reps=klo.tolist(), kstar_hi_reps=khi.tolist(), n_points=n_points,
               n_reps=n_reps, evaluations=len(curves), success_curve=curve,
               levels_in_band=lev)
    # worst case over the hidden scale (after the numbers above, which it leaves unchanged)
    J = int(min(n_scales, n_points))
    fixed = getattr(draws, "family", None) is not None

    def worst(which, skip_top):
        return lambda K: worst_over_scales(draws, K, J, skip_top)[which]

    k0_lo = math.floor(m_lo) if math.isfinite(m_lo) else 2
    k0_hi = math.floor(m_hi) if math.isfinite(m_hi) else 2
    w_lo = _kstar_curve(worst(1, False), k0_lo, k_max)
    w_hi = _kstar_curve(worst(0, False), k0_hi, k_max)
    if fixed and J > 1:  # without the top bin (hidden scale next to sigma_max)
        wi_lo = _kstar_curve(worst(1, True), k0_lo, k_max)
        wi_hi = _kstar_curve(worst(0, True), k0_hi, k_max)
    else:
        wi_lo, wi_hi = w_lo, w_hi
    k_w = wi_hi if math.isfinite(wi_hi) else k_at
    if k_w is not None and math.isfinite(k_w):
        kb = worst_over_scales(draws, int(math.ceil(k_w)), J, fixed and J > 1)[2]
        pos = (kb + 0.5) / J
        w_sig = math.exp(math.log(SIGMA_MIN) + pos * math.log(SIGMA_MAX / SIGMA_MIN)) \
            if fixed else math.nan
    else:
        pos = w_sig = math.nan
    per = scale_bins(draws, k_at, J)[0].tolist() if k_at is not None else []
    row.update(schedule=schedule_label(schedule), path=draws.path, n_scales=J,
               kstar_worst_lo=w_lo, kstar_worst_hi=w_hi, kstar_worst_inner_lo=wi_lo,
               kstar_worst_inner_hi=wi_hi, worst_position=pos, worst_sigma=w_sig,
               lower_per_scale_at_kstar=per)
    return row


def sampler_labels(samplers) -> list:
    """Result keys of ``samplers``: names as given, an instance by its class name (``#i`` added
    when two coincide)."""
    out = []
    for i, s in enumerate(samplers):
        lab = s.strip() if isinstance(s, str) else type(s).__name__
        out.append(lab if lab not in out else f"{lab}#{i}")
    return out


def check_samplers(samplers, max_queries=None):
    """Validate ``samplers`` before any compute: plain scalar names, catalogue names (with
    ``name:key=value`` options) or ``AbstractSampler`` instances; a data-dependent sampler
    without a scalar reduction needs ``max_queries``. Raises ValueError/TypeError."""
    if isinstance(samplers, str) or not len(samplers):
        raise ValueError(f"`samplers` must be a non-empty list of sampler names or instances, got "
                         f"{samplers!r}; e.g. ['euler', 'heun'].")
    if max_queries is not None and (isinstance(max_queries, bool) or not isinstance(
            max_queries, (int, np.integer)) or max_queries < 1):
        raise ValueError(f"`max_queries` must be None or an int >= 1, got {max_queries!r}.")
    for s in samplers:
        if _plain_scalar_name(s):
            continue
        try:
            inst = resolve_sampler(s)
        except (ValueError, TypeError) as e:
            raise type(e)(f"`samplers` entry {s!r}: {e}") from None
        if has_scalar_reduction(inst):
            continue
        caps = [inst.query_capacity(8, z) for z in (True, False)]
        if None in caps and max_queries is None:
            raise ValueError(f"sampler {s!r} makes a data-dependent number of queries and has no "
                             "scalar reduction: pass `max_queries` (--max-queries), the cap on "
                             "queries per chain.")


def _dimension_row(d, eps_rule, p, rate, rates, weights, rate_hi, n_xi, k_max, seed, kd, log):
    """The sampler-independent part of one dimension's row: window edges and sides, the profile
    tables, N(d), the ideal K* (both sides), the optimal searcher and the two controls (key ``kd``)."""
    t0 = time.time()
    eps = eps_value(d, eps_rule)
    lower, upper = window_edges(d, rate, eps, p, key=kd, n=n_xi)
    w_lo = window_edges(d, rate, eps, p, key=kd, n=n_xi, side="lower")
    w_hi = window_edges(d, rate, eps, p, key=kd, n=n_xi, side="upper")
    width = upper - lower
    k_tab = jax.random.fold_in(kd, 1)
    ls, vals, log_ms, _, v_lo, v_hi = profile_tables(d, rates, eps, p, key=k_tab, n=n_xi,
                                                     sides=True)
    n_win, _ = window_count(d, rates, ls, vals, log_ms)

    def kst(v, combine="product"):
        return _kstar_search(lambda K: ideal_success(K, rates, weights, ls, v, log_ms, d,
                                                     combine=combine), k_max=8 * k_max)[0]

    k_ideal = kst(vals)
    k_ideal_lo, k_ideal_hi = kst(v_hi, "union"), kst(v_lo)
    searcher, n_centres = searcher_queries(d, rates, weights, ls, vals, log_ms, seed=seed)
    exact_ok, exact_q = exact_control(d, key=jax.random.fold_in(kd, 11))
    # the R = rate profile for the collapse figure
    k_mid = int(np.argmin(np.abs(rates - rate)))
    row = dict(
        d=d, eps=eps, lower=lower, upper=upper, width=width, w_sqrt_d=width * math.sqrt(d),
        w_norm=width * math.sqrt(d / math.log(d / eps)), N=n_win,
        window_lo_side=list(w_lo), window_hi_side=list(w_hi),
        kstar_ideal=k_ideal, kstar_ideal_lo=k_ideal_lo, kstar_ideal_hi=k_ideal_hi,
        searcher_queries=searcher, searcher_windows=n_centres,
        exact_control_success=exact_ok, exact_control_queries=exact_q,
        reference_control_log10=reference_control(d, rate_hi),
        profile_R=float(rates[k_mid]), profile_ls=ls[k_mid].tolist(),
        profile_vals=vals[k_mid].tolist(), profile_lo=v_lo[k_mid].tolist(),
        profile_hi=v_hi[k_mid].tolist(), samplers={},
    )
    log(f"d={d:>9.0f}  window [{lower:+.4f}, {upper:+.4f}] (sides: [{w_hi[0]:+.4f}, "
        f"{w_hi[1]:+.4f}] .. [{w_lo[0]:+.4f}, {w_lo[1]:+.4f}])  "
        f"w*sqrt(d/ln(d/eps))={row['w_norm']:.3f}  N={n_win:.2f}  "
        f"K*_ideal={k_ideal_lo:.1f}..{k_ideal_hi:.1f}  searcher={searcher:.2f}  "
        f"exact oracle: {exact_ok:.2f} decoded in {exact_q:.0f} queries  "
        f"({time.time() - t0:.0f}s)")
    return row


def _scaling(dims, samplers, p, eps_rule, rate, rate_lo, rate_hi, n_rates, n_xi, n_offsets,
             n_reps, k_max, robustness, seed, out_dir, log, resume="auto", overwrite=False,
             make_plot=True, compiles=None, schedule="geometric", n_scales=8, max_queries=None):
    compiles = CompileCounter() if compiles is None else compiles  # an unopened one counts 0
    t_start = time.time()
    check_samplers(samplers, max_queries)  # validate names early (before any file is written)
    resolve_schedule(schedule)
    if isinstance(n_scales, bool) or not isinstance(n_scales, (int, np.integer)) or n_scales < 1:
        raise ValueError(f"`n_scales` must be an int >= 1 (hidden-scale positions of the worst "
                         f"case), got {n_scales!r}.")
    labels = sampler_labels(samplers)
    bad = [d for d in dims if not 2 <= float(d) < 2**32]  # d seeds fold_in(key, d): a uint32
    if not len(dims) or bad:
        raise ValueError(f"`dims` must be a non-empty list of dimensions in [2, 2^32), got "
                         f"{list(dims)}.")
    for nm, v, lo in (("n_offsets", n_offsets, 1), ("n_reps", n_reps, 1), ("k_max", k_max, 2)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"`{nm}` must be an int >= {lo}, got {v!r}.")
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
    key = jax.random.key(seed)
    rates = np.linspace(rate_lo, rate_hi, n_rates)
    weights = np.full(n_rates, 1.0)
    weights[0] = weights[-1] = 0.5
    weights /= weights.sum()
    results = {
        "config": dict(dims=list(map(float, dims)), samplers=labels, p=p, eps=str(eps_rule),
                       rate=rate, rate_lo=rate_lo, rate_hi=rate_hi, n_rates=n_rates, n_xi=n_xi,
                       n_offsets=n_offsets, n_reps=n_reps, k_max=k_max, seed=seed,
                       schedule=schedule_label(schedule), n_scales=int(n_scales),
                       max_queries=max_queries,
                       sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, device=str(jax.devices()[0]),
                       jax=jax.__version__),
        "rows": [],
    }
    finished = _finished_rows(out_dir, results["config"], resume, overwrite)
    for d in dims:
        d = float(d)
        if d in finished:
            results["rows"].append(finished[d])
            log(f"d={d:>9.0f}  finished earlier (read from scaling.json)")
            continue
        kd = jax.random.fold_in(key, int(d))
        row = _dimension_row(d, eps_rule, p, rate, rates, weights, rate_hi, n_xi, k_max, seed,
                             kd, log)
        eps, width, k_ideal = row["eps"], row["width"], row["kstar_ideal"]
        n_pts = points_for(n_offsets, k_ideal)
        for name, lab in zip(samplers, labels):
            t1 = time.time()
            sr = _sampler_row(name, d, eps, p, width, jax.random.fold_in(kd, 7), n_pts, n_reps,
                              k_max, rate_lo, rate_hi, k_ideal, schedule=schedule,
                              n_scales=n_scales, max_queries=max_queries)
            row["samplers"][lab] = sr
            log(f"    {lab:<22s} K*={sr['kstar_lo']:7.1f} .. {sr['kstar_hi']:7.1f}  "
                f"(MC 95% CI +-{sr['kstar_lo_mc']:.2f} / +-{sr['kstar_hi_mc']:.2f}, "
                f"{n_reps} x {n_pts} points)  levels in band={sr['levels_in_band']:.1f}  "
                f"worst scale: {sr['kstar_worst_lo']:.1f} .. {sr['kstar_worst_hi']:.1f} "
                f"(inner {sr['kstar_worst_inner_lo']:.1f} .. {sr['kstar_worst_inner_hi']:.1f})  "
                f"[{sr['schedule']}, {sr['path']}] ({time.time() - t1:.0f}s)")
        results["rows"].append(row)
        results["compile"] = compiles.as_dict()
        if out_dir is not None:
            _write_json(results, out_dir)
    if robustness:
        results["robustness"] = robustness_grid(seed=seed, n=n_xi, rate=rate, log=log)
    results["fits"], results["fits_mc"] = _fits(results, labels)
    results["fits_covers"] = {"fits": _FIT_COVERS["pairs"],
                              "fits_mc": "t-interval over the replicates' own slopes: Monte-Carlo "
                                         "error of the K* estimates only; not scatter across d"}
    results["elapsed_s"] = time.time() - t_start
    results["compile"] = compiles.as_dict()
    log(compiles.summary())
    if out_dir is not None:
        _write_json(results, out_dir)
        _write_csv(results, out_dir, labels)
    if out_dir is not None and make_plot:
        try:
            plot(results, os.path.join(out_dir, "scaling.png"))
        except Exception as e:  # pragma: no cover - plotting is best effort
            log(f"figure failed: {e}")
    return results


def _fits(results, samplers):
    """Across-d fits (pairs bootstrap over d) and Monte-Carlo intervals of the sampler slopes
    (t-interval over the replicates' own slopes: replicate r's K*(d) at every d)."""
    rows = results["rows"]
    ds = [r["d"] for r in rows]
    fits = {
        "N": _slope(ds, [r["N"] for r in rows]),
        "kstar_ideal_lo": _slope(ds, [r["kstar_ideal_lo"] for r in rows]),
        "kstar_ideal_hi": _slope(ds, [r["kstar_ideal_hi"] for r in rows]),
        "searcher": _slope(ds, [r["searcher_queries"] for r in rows]),
        "w_norm": _slope(ds, [r["w_norm"] for r in rows]),
    }
    mc = {}
    for name in samplers:
        for side in ("lo", "hi"):
            k = f"kstar_{side}_{name}"
            fits[k] = _slope(ds, [r["samplers"][name][f"kstar_{side}"] for r in rows])
            reps = [r["samplers"][name][f"kstar_{side}_reps"] for r in rows]
            n = min(len(v) for v in reps)
            slopes = []
            for j in range(n):
                ys = [v[j] for v in reps]
                if len(ds) >= 2 and all(math.isfinite(y) and y > 0 for y in ys):
                    slopes.append(loglog_slope(ds, ys, n_boot=1).slope)
            m, h = mc_interval(slopes)
            mc[k] = (fits[k][0], fits[k][0] - h, fits[k][0] + h) if math.isfinite(h) else (
                fits[k][0], math.nan, math.nan)
        if all("kstar_worst_hi" in r["samplers"][name] for r in rows):
            for side in ("lo", "hi"):
                for w in ("worst", "worst_inner"):
                    fits[f"kstar_{w}_{side}_{name}"] = _slope(
                        ds, [r["samplers"][name].get(f"kstar_{w}_{side}", math.nan) for r in rows])
    return fits, mc


def robustness_grid(dims=(1600, 25600, 409600), ps=(1.0, 2.0, 4.0),
                    eps_rules=("1/sqrt(d)", "1/d", "1/d^2"), *, rate=0.3, n=1000, seed=0, log=print):
    """``w sqrt(d/ln(d/eps))`` over p x eps rule x d (section 8.7); a list of dicts."""
    out = []
    key = jax.random.key(seed)
    for p in ps:
        for rule in eps_rules:
            vals = []
            for d in dims:
                eps = eps_value(d, rule)
                lo, up = window_edges(float(d), rate, eps, p, key=jax.random.fold_in(key, int(d)), n=n)
                vals.append((up - lo) * math.sqrt(d / math.log(d / eps)))
            out.append(dict(p=p, eps=rule, dims=list(dims), w_norm=vals))
            log(f"robustness p={p:g} eps={rule:<10s} " + " / ".join(f"{v:.2f}" for v in vals))
    return out


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _write_json(results, out_dir):
    atomic_write(os.path.join(out_dir, "scaling.json"),
                 json.dumps(results, indent=1, default=_json_default))


def _write_csv(results, out_dir, samplers):
    path = os.path.join(out_dir, "scaling.csv")
    cols = ["d", "eps", "lower", "upper", "width", "w_sqrt_d", "w_norm", "N", "kstar_ideal",
            "kstar_ideal_lo", "kstar_ideal_hi", "searcher_queries", "searcher_windows",
            "exact_control_success", "exact_control_queries", "reference_control_log10"]
    per = ["kstar_lo", "kstar_lo_mc", "kstar_hi", "kstar_hi_mc", "levels_in_band",
           "kstar_worst_lo", "kstar_worst_hi", "kstar_worst_inner_lo", "kstar_worst_inner_hi"]
    names = (cols + ["lower_lo_side", "upper_lo_side", "lower_hi_side", "upper_hi_side"]
             + [f"{c}_{s}" for s in samplers for c in per])
    write_csv(path, [dict(zip(names, [r[c] for c in cols] + list(r["window_lo_side"])
                               + list(r["window_hi_side"])
                               + [r["samplers"][s].get(c, math.nan) for s in samplers for c in per]))
                     for r in results["rows"]])


LEGEND = """columns (one row per dimension d; eps = 1/d, p = 2 unless configured):
  window        edges of the window of informative noise levels in log(sigma/sigma_c), R = 0.3
                (default estimate); w_norm = width * sqrt(d / ln(d/eps)), flat in d
  N             number of disjoint windows over the rate range (the sqrt(d) count)
  K*ideal       geometric levels at which P(some answer is informative) reaches 1/2 for fresh
                reference-typical queries at every level: lo .. hi
  K* <sampler>  the same for the sampler's own trajectory: K*_lo (the upper side reaches 1/2) ..
                K*_hi (the lower side reaches 1/2), +- MC 95% CI (replicates), in % of K*.
                An informative answer is necessary for success: K* is a necessary condition,
                not the level count at which the sampler succeeds
  K*_worst      the least K at which the minimum over the hidden-scale positions (the grid's phase
                for geometric levels, the critical scale in [0.02, 20] for a fixed family) of
                the upper .. lower side reaches 1/2: an estimate biased low by MC error
                ('inner': without the position next to sigma_max; nan: never for K <= k_max)
  exact         the exact oracle, measured through js.sample: fraction decoded / queries
slopes: log-log slope against d; [across-d bootstrap CI of the slope] and {MC 95% CI (replicates)}."""


def format_table(results) -> str:
    """A plain-text table of the sweep (one line per d), then the slopes with both intervals."""
    samplers = results["config"]["samplers"]
    head = (f"{'d':>9} {'window':>17} {'w_norm':>6} {'N':>6} {'K*ideal':>13} {'exact':>7}"
            + "".join(f" {('K* ' + s)[:24]:>24}" for s in samplers))
    lines = [head]
    for r in results["rows"]:
        cells = []
        for s in samplers:
            x = r["samplers"][s]
            pct = 100 * max(x["kstar_lo_mc"] / x["kstar_lo"], x["kstar_hi_mc"] / x["kstar_hi"]) \
                if x["kstar_lo"] > 0 and x["kstar_hi"] > 0 else math.nan
            cells.append(f" {x['kstar_lo']:>8.1f} ..{x['kstar_hi']:>7.1f} +-{pct:>3.1f}%")
        lines.append(
            f"{r['d']:>9.0f} [{r['lower']:+.4f},{r['upper']:+.4f}] {r['w_norm']:>6.3f} "
            f"{r['N']:>6.2f} {r['kstar_ideal_lo']:>5.1f} ..{r['kstar_ideal_hi']:>5.1f} "
            f"{r['exact_control_success']:>4.2f}/{r['exact_control_queries']:.0f}"
            + "".join(f"{c:>25}" for c in cells))
    worst = [(r["d"], s, r["samplers"][s]) for r in results["rows"] for s in samplers
             if "kstar_worst_hi" in r["samplers"][s]]
    if worst:
        sched = results["config"].get("schedule", "geometric")
        where = ("phase of the grid within one log-step" if sched == "geometric"
                 else "hidden critical scale in [sigma_min, sigma_max]")
        lines.append(f"worst case over the hidden scale ({sched} levels; minimum over "
                     f"{worst[0][2]['n_scales']} positions of the {where}; an estimate biased low "
                     "by MC error, no interval): K*_worst lo .. hi")
        if sched != "geometric":
            lines.append("  (nan: some position never reaches 1/2 for K <= k_max; 'inner': "
                         "without the top position, next to sigma_max)")
        for d, s, x in worst:
            at = (f"  worst inner at sigma_c ~ {x['worst_sigma']:.3g}"
                  if math.isfinite(x.get("worst_sigma", math.nan)) else "")
            inner = (f"  inner {x['kstar_worst_inner_lo']:>7.1f} .. "
                     f"{x['kstar_worst_inner_hi']:>7.1f}" if sched != "geometric" else "")
            lines.append(f"  {d:>9.0f} {s:<24s} {x['kstar_worst_lo']:>7.1f} .. "
                         f"{x['kstar_worst_hi']:>7.1f}{inner}  (average {x['kstar_lo']:.1f} .. "
                         f"{x['kstar_hi']:.1f}){at}")
    if "fits" in results:
        lines.append("log-log slopes [across-d bootstrap CI of the slope] {MC 95% CI (replicates)}:")
        mc = results.get("fits_mc", {})
        for k, v in results["fits"].items():
            extra = ""
            if k in mc:
                extra = f"  {{{mc[k][1]:.3f}, {mc[k][2]:.3f}}}"
            ci = (f"[{v[1]:.3f}, {v[2]:.3f}]" if np.isfinite(v[1]) and np.isfinite(v[2])
                  else "[no CI: fewer than 3 dimensions]")
            lines.append(f"  {k:<28s} {v[0]:.3f} {ci}{extra}")
    return "\n".join(lines)


def _tex(name: str) -> str:
    return name.replace("_", r"\_")


def plot(results, path):
    """Figure through :mod:`jscore.plot` (PNG and PDF): the K* band (K*_lo .. K*_hi) per sampler
    with MC 95% error bars and N(d) (left); the window profile, both sides as a band, collapsed
    in ``sqrt(d/ln(d/eps)) log(sigma/sigma_c)`` (right). Returns the paths written."""
    from .. import plot as jplot

    rows = results["rows"]
    ds = np.array([r["d"] for r in rows])
    fits = results.get("fits", {})
    with jplot.style():
        fig, (ax1, ax2) = jplot.figure(2, size=(4.8, 3.6))
        f = fits.get("N", (math.nan,) * 3)
        ax1.plot(ds, [r["N"] for r in rows], color="k", marker="^", ls="-", ms=3,
                 label=rf"$N(d)$: slope {f[0]:.2f} [{f[1]:.2f}, {f[2]:.2f}]")
        lo_i = np.array([r["kstar_ideal_lo"] for r in rows])
        hi_i = np.array([r["kstar_ideal_hi"] for r in rows])
        ax1.fill_between(ds, lo_i, hi_i, color="0.5", alpha=0.3, lw=0,
                         label=r"$K^*$ ideal (fresh typical queries)")
        for i, s in enumerate(results["config"]["samplers"]):
            st = jplot.series(i)
            c = st["color"]
            x = [r["samplers"][s] for r in rows]
            lo = np.array([v["kstar_lo"] for v in x])
            hi = np.array([v["kstar_hi"] for v in x])
            elo = np.array([v["kstar_lo_mc"] for v in x])
            ehi = np.array([v["kstar_hi_mc"] for v in x])
            fl = fits.get(f"kstar_lo_{s}", (math.nan,) * 3)
            fh = fits.get(f"kstar_hi_{s}", (math.nan,) * 3)
            ax1.fill_between(ds, lo, hi, color=c, alpha=0.25, lw=0)
            ax1.errorbar(ds, lo, yerr=elo, color=c, marker=st["marker"], ls="none", ms=3)
            ax1.errorbar(ds, hi, yerr=ehi, color=c, marker=st["marker"], ls="none", ms=3,
                         mfc="none",
                         label=rf"$K^*$ {s}: slopes {fl[0]:.3f} / {fh[0]:.3f}")
        ax1.plot(ds, 0.3 * np.sqrt(ds), "k:", lw=1, label=r"$\propto\sqrt{d}$")
        jplot.log_scale(ax1, "x", ds)
        ax1.set_yscale("log")
        ax1.set_xlabel(r"dimension $d$")
        ax1.set_ylabel(r"levels $K^*_{\mathrm{lo}}..K^*_{\mathrm{hi}}$;  windows $N$")
        ax1.set_title(r"$K^*$: $P(\mathrm{some\ answer\ informative}) = 1/2$"
                      "\n(a necessary condition for success, not success)")
        jplot.legend_outside(ax1, title="band: lower..upper side;\nbars: MC 95% CI (replicates);"
                             "\nslopes of $K^*_{\\mathrm{lo}}$ / $K^*_{\\mathrm{hi}}$")
        for j, r in enumerate(rows):
            st = jplot.series(j)
            x = np.asarray(r["profile_ls"]) * math.sqrt(r["d"] / math.log(r["d"] / r["eps"]))
            ax2.fill_between(x, r.get("profile_lo", r["profile_vals"]),
                             r.get("profile_hi", r["profile_vals"]), color=st["color"],
                             alpha=0.2, lw=0)
            ax2.plot(x, r["profile_vals"], color=st["color"], lw=1, label=rf"$d = {r['d']:.0f}$")
        ax2.set_xlabel(r"$\sqrt{d/\ln(d/\varepsilon)}\;\log(\sigma/\sigma_c)$")
        ax2.set_ylabel(r"$\bar\pi_d(\sigma)$")
        ax2.set_xlim(-6, 6)
        ax2.set_title(rf"window profile ($R = {rows[0]['profile_R']:.2f}$):"
                      "\nestimate, band lower..upper side")
        jplot.legend_outside(ax2)
        return jplot.save(fig, path)


__all__ = [
    "DEFAULT_DIMS",
    "DEFAULT_SAMPLERS",
    "ALL_SAMPLERS",
    "eps_value",
    "profile_tables",
    "window_count",
    "geometric_levels",
    "ideal_success",
    "lattice_points",
    "SamplerDraws",
    "kstar_sides",
    "mc_interval",
    "points_for",
    "profile_side_tables",
    "exact_control",
    "LEGEND",
    "searcher_queries",
    "reference_control",
    "robustness_grid",
    "scaling",
    "format_table",
    "plot",
]


class _CallableModule(__import__("types").ModuleType):
    """Lets ``js.lowerbound.scaling(...)`` run the sweep while ``js.lowerbound.scaling.<name>``
    still reaches this module's helpers."""

    def __call__(self, *args, **kwargs):
        return scaling(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableModule
