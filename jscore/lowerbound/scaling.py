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

then log-log slopes with bootstrap confidence intervals (:func:`fit_results`). This module
computes in memory: :func:`scaling_row` is one dimension's row, :func:`scaling` all of them and
the fits; the configuration is :class:`~jscore.lowerbound.scaling_config.ScalingConfig`. The run
folder (resume, ``scaling.json``/``.csv``/``.png``, ``table.txt``) is the experiment layer's:
:class:`jscore.sweeps.LowerBoundSweep`.

Float64 is switched on inside :func:`scaling` and :func:`scaling_row` (``jax.enable_x64``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..compiles import CompileCounter
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
from .general import draws_for
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

from .scaling_config import (  # re-exported: these lived here before scaling_config.py
    ALL_SAMPLERS,
    DEFAULT_DIMS,
    DEFAULT_SAMPLERS,
    ScalingConfig,
    _plain_scalar_name,
    check_samplers,
    eps_value,
    sampler_labels,
)

THETA0 = 0.9


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


def _log_cap_body(d, t):
    return log_cap(t, d)


def reference_control(d, rate_hi=0.45, theta0=THETA0):
    """``log10(M S_d(theta_0))``: bound on the reference oracle's decoder pass rate (largest rate).
    One program for every d >= 60 (d traced)."""
    log_m = effective_log_m_py(d, rate_hi)
    cap = _call("log_cap", _log_cap_body, d, jnp.asarray(theta0, jnp.result_type(float)))
    return float((log_m + float(cap)) / math.log(10.0))


_FILE_ARGS = ("out_dir", "resume", "overwrite", "plot")


def scaling(config: ScalingConfig | None = None, /, *, log=print, **fields):
    """Run the sqrt(d) sweep in memory; returns a dict of results (nothing is written).

    ``config``: a :class:`~jscore.lowerbound.scaling_config.ScalingConfig`, or its fields as
    keywords (``scaling(dims=(100, 400), samplers=("euler",), n_reps=4)``; with ``config`` too,
    they replace its fields). Every field, its default and its check is documented there. For
    every sampler and d: ``kstar_lo`` (levels at which the *upper* side of P(some answer is
    informative) reaches 1/2) and ``kstar_hi`` (the *lower* side reaches 1/2), each with a
    Monte-Carlo 95% CI over ``n_reps`` independent replicates (docs/certified_bound.md). K* is a
    necessary condition for success against the adversary, not success.

    Returns ``{"config", "rows" (one per d, :func:`scaling_row`), "robustness" (if asked),
    "fits", "fits_mc", "fits_covers" (:func:`fit_results`), "elapsed_s", "compile"}``;
    ``results["compile"]`` holds the XLA compilations and compile seconds of this call
    (:class:`jscore.compiles.CompileCounter`); the log ends with them.

    Files, resume and figures belong to the experiment layer: ``js.sweep(
    js.sweeps.LowerBoundSweep(...), out=...)`` (or ``jscore lowerbound scale --out DIR``) runs
    the same rows resumably into a folder with ``scaling.json``/``.csv``/``.png`` and
    ``table.txt``. Float64 is switched on inside (``jax.enable_x64``).
    """
    given = [k for k in _FILE_ARGS if k in fields]
    if given:
        raise TypeError(
            f"scaling() computes in memory and no longer takes {', '.join(given)}; to write a "
            "resumable run folder use js.sweep(js.sweeps.LowerBoundSweep(...), out=DIR) (or "
            "`jscore lowerbound scale --out DIR`).")
    if config is None:
        config = ScalingConfig(**fields)
    elif not isinstance(config, ScalingConfig):
        raise TypeError(f"scaling: `config` must be a ScalingConfig, got {type(config).__name__}; "
                        "or pass its fields as keywords, e.g. scaling(dims=(100, 400)).")
    elif fields:
        config = dataclasses.replace(config, **fields)
    t_start = time.time()
    with jax.enable_x64(True), CompileCounter() as compiles:
        results = {"config": run_config(config),
                   "rows": [scaling_row(config, d, log=log) for d in config.dims]}
        if config.robustness:
            results["robustness"] = robustness_row(config, log=log)["robustness"]
        results.update(fit_results(results["rows"], config.labels))
    results["elapsed_s"] = time.time() - t_start
    results["compile"] = compiles.as_dict()
    log(compiles.summary())
    return results


def run_config(config: ScalingConfig) -> dict:
    """``results["config"]``: the configuration as plain data (dims as floats, samplers by their
    result labels, the level range, the device and jax version of this process)."""
    return dict(dims=list(map(float, config.dims)), samplers=config.labels, p=config.p,
                eps=str(config.eps), rate=config.rate, rate_lo=config.rate_lo,
                rate_hi=config.rate_hi, n_rates=config.n_rates, n_xi=config.n_xi,
                n_offsets=config.n_offsets, n_reps=config.n_reps, k_max=config.k_max,
                seed=config.seed, schedule=schedule_label(config.schedule),
                n_scales=config.n_scales, max_queries=config.max_queries,
                sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, device=str(jax.devices()[0]),
                jax=jax.__version__)


def points_for(n_offsets, k_guess):
    """Lattice points per replicate at a dimension whose ideal K* is ``k_guess``: ``n_offsets``
    times 4, 3, 2 or 1 for ``k_guess`` below 4, 8, 16 or beyond (small K has few levels to
    average over, and its runs are cheap)."""
    if not math.isfinite(k_guess):
        return int(n_offsets)
    mult = 4 if k_guess < 4 else 3 if k_guess < 8 else 2 if k_guess < 16 else 1
    return int(n_offsets) * mult


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


def _rate_grid(config):
    """The rate grid of N, K* and the searcher and its trapezoid weights (summing to 1)."""
    rates = np.linspace(config.rate_lo, config.rate_hi, config.n_rates)
    weights = np.full(config.n_rates, 1.0)
    weights[0] = weights[-1] = 0.5
    return rates, weights / weights.sum()


def scaling_row(config: ScalingConfig, d, *, log=print) -> dict:
    """The row of dimension ``d`` (float64 inside): :func:`dimension_row` with, under
    ``"samplers"``, one :func:`sampler_row` per sampler label. Depends on ``config`` and ``d``
    only (the key is ``fold_in(key(seed), d)``), so rows can be computed in any order, thread or
    process."""
    row = dimension_row(config, d, log=log)
    for label in config.labels:
        row["samplers"][label] = sampler_row(config, d, label, row["width"], row["kstar_ideal"],
                                             log=log)
    return row


def dimension_row(config: ScalingConfig, d, *, log=print) -> dict:
    """The sampler-independent part of dimension ``d``'s row (float64 inside; window, N(d),
    ideal K*, searcher, controls; ``samplers`` empty): a unit of
    :class:`jscore.sweeps.LowerBoundSweep`."""
    c = config
    with jax.enable_x64(True):
        rates, weights = _rate_grid(c)
        kd = jax.random.fold_in(jax.random.key(c.seed), int(d))
        return _dimension_row(float(d), c.eps, c.p, c.rate, rates, weights, c.rate_hi, c.n_xi,
                              c.k_max, c.seed, kd, log)


def sampler_row(config: ScalingConfig, d, label, width, kstar_ideal, *, log=print) -> dict:
    """The K* of sampler ``label`` (one of ``config.labels``) at dimension ``d``, given the
    dimension row's window ``width`` and ideal ``kstar_ideal`` (float64 inside; key
    ``fold_in(fold_in(key(seed), d), 7)``): a unit of :class:`jscore.sweeps.LowerBoundSweep`."""
    c = config
    name = c.samplers[list(c.labels).index(label)]
    with jax.enable_x64(True):
        d = float(d)
        kd = jax.random.fold_in(jax.random.key(c.seed), int(d))
        eps = eps_value(d, c.eps)
        n_pts = points_for(c.n_offsets, kstar_ideal)
        t1 = time.time()
        sr = _sampler_row(name, d, eps, c.p, width, jax.random.fold_in(kd, 7), n_pts, c.n_reps,
                          c.k_max, c.rate_lo, c.rate_hi, kstar_ideal, schedule=c.schedule,
                          n_scales=c.n_scales, max_queries=c.max_queries)
    log(f"    d={d:<9.0f} {label:<22s} K*={sr['kstar_lo']:7.1f} .. {sr['kstar_hi']:7.1f}  "
        f"(MC 95% CI +-{sr['kstar_lo_mc']:.2f} / +-{sr['kstar_hi_mc']:.2f}, "
        f"{c.n_reps} x {n_pts} points)  levels in band={sr['levels_in_band']:.1f}  "
        f"worst scale: {sr['kstar_worst_lo']:.1f} .. {sr['kstar_worst_hi']:.1f} "
        f"(inner {sr['kstar_worst_inner_lo']:.1f} .. {sr['kstar_worst_inner_hi']:.1f})  "
        f"[{sr['schedule']}, {sr['path']}] ({time.time() - t1:.0f}s)")
    return sr


def robustness_row(config: ScalingConfig, *, log=print) -> dict:
    """``{"robustness": robustness_grid(...)}`` at the config's seed, ``n_xi`` and ``rate``
    (float64 inside): the robustness unit of the sweep."""
    with jax.enable_x64(True):
        return {"robustness": robustness_grid(seed=config.seed, n=config.n_xi, rate=config.rate,
                                              log=log)}


def fit_results(rows, samplers) -> dict:
    """``{"fits", "fits_mc", "fits_covers"}`` of the rows (one per d, in the order given) for the
    sampler labels ``samplers``: across-d log-log slopes (pairs bootstrap over d) and Monte-Carlo
    intervals of the sampler slopes (t-interval over the replicates' own slopes: replicate r's
    K*(d) at every d)."""
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
    covers = {"fits": _FIT_COVERS["pairs"],
              "fits_mc": "t-interval over the replicates' own slopes: Monte-Carlo error of the K* "
                         "estimates only; not scatter across d"}
    return {"fits": fits, "fits_mc": mc, "fits_covers": covers}


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


__all__ = [
    "DEFAULT_DIMS",
    "DEFAULT_SAMPLERS",
    "ALL_SAMPLERS",
    "ScalingConfig",
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
    "searcher_queries",
    "reference_control",
    "robustness_grid",
    "scaling",
    "dimension_row",
    "sampler_row",
    "scaling_row",
    "robustness_row",
    "fit_results",
    "run_config",
]


class _CallableModule(__import__("types").ModuleType):
    """Lets ``js.lowerbound.scaling(...)`` run the sweep while ``js.lowerbound.scaling.<name>``
    still reaches this module's helpers."""

    def __call__(self, *args, **kwargs):
        return scaling(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableModule
