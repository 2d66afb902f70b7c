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

import csv
import json
import math
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .caps import log_cap
from .informative import (
    critical_sigma,
    effective_log_m_py,
    guard_threshold,
    leading_order_window,
    profile,
    typical_norm_draws,
    window_edges,
)
from .scalar import _chain, scalar_spec
from .trajectory import assemble

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
SIGMA_MIN, SIGMA_MAX = 0.02, 20.0
THETA0 = 0.9
_TRACED_MIN_D = 60.0  # traced d uses the Debye regime directly (accurate to 1e-15 from d = 60)


def eps_value(d: float, rule) -> float:
    """``eps`` from a rule: ``"1/d"``, ``"1/sqrt(d)"``, ``"1/d^2"`` or a number."""
    if isinstance(rule, (int, float)):
        return float(rule)
    rules = {"1/d": 1.0 / d, "1/sqrt(d)": d**-0.5, "1/d^2": d**-2.0, "1/d^1/2": d**-0.5}
    if rule not in rules:
        raise ValueError(f"Unknown eps rule {rule!r}; use one of {', '.join(rules)} or a number.")
    return rules[rule]


# ----------------------------------------------------------------------------- jit plumbing
_JIT: dict = {}


def _call(name, body, d, *args, static=()):
    """Call ``body(d, *args)`` jitted; d traced for d >= 60 (one compile for a sweep)."""
    big = float(d) >= _TRACED_MIN_D
    key = (name, None if big else float(d), static, jax.config.jax_enable_x64)
    if key not in _JIT:
        if big:
            _JIT[key] = jax.jit(lambda dd, *a: body(dd, *a, *static))
        else:
            _JIT[key] = jax.jit(lambda *a: body(float(d), *a, *static))
    f = _JIT[key]
    if big:
        return f(jnp.asarray(float(d), jnp.result_type(float)), *args)
    return f(*args)


def _t1_body(d, log_m):
    return guard_threshold(d, log_m)


def _profile_body(d, sig, g, c, log_m, t1, eps, p):
    return profile(sig, d, None, eps, p, 1.0, draws=(g, c), log_m=log_m, t1=t1)


# ----------------------------------------------------------------------------- profiles
def profile_tables(d, rates, eps, p, *, key, n=1000, grid=128, span_factor=3.0):
    """Tabulate ``pi_bar_d`` around each rate's ``sigma_c``: returns ``(ls, vals, log_ms, t1s)``.

    ``ls``: ``(n_R, grid)`` offsets ``log(sigma/sigma_c(Rbar))``; ``vals``: profile values.
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
    vals = _call("profile", _profile_body, d, sig, g, c, jnp.asarray(log_ms, ftype)[:, None, None],
                 t1s[:, None, None], jnp.asarray(eps, ftype), jnp.asarray(p, ftype))
    return ls, np.asarray(vals), log_ms, np.asarray(t1s)


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


def geometric_levels(K, u, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX):
    """``sigma_k = sigma_max exp(-(k - 1 + u) Delta)``, ``k = 1..K``, ``Delta = log(max/min)/K``."""
    delta = math.log(sigma_max / sigma_min) / K
    k = np.arange(K)
    return sigma_max * np.exp(-(k[None, :] + np.asarray(u)[:, None]) * delta)


def ideal_success(K, rates, weights, ls, vals, log_ms, d, n_offsets=64):
    """Success(K) for fresh reference-typical queries at every level (product form, exact here)."""
    u = _offsets(n_offsets)
    lsig = np.log(geometric_levels(K, u))  # (U, K)
    total = 0.0
    for k in range(len(rates)):
        sc = 1.0 / math.sqrt(math.expm1(2.0 * log_ms[k] / d))
        x = lsig - math.log(sc)
        pk = np.interp(x, ls[k], vals[k], left=0.0, right=0.0)
        miss = np.exp(np.sum(np.log1p(-np.minimum(pk, 1.0 - 1e-16)), axis=1))
        total += weights[k] * np.mean(1.0 - miss)
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
def _sampler_body(d, K, offsets, keys, log_ms, t1s, eps, p, width, spec, k_max):
    """Mean (estimate, lower, upper, levels) over offsets x chains x rates, for K levels."""
    ftype = jnp.result_type(float)
    delta = math.log(SIGMA_MAX / SIGMA_MIN) / K.astype(ftype)
    kk = jnp.arange(k_max + 1, dtype=ftype)

    def one(u, key):
        sig = SIGMA_MAX * jnp.exp(-(kk + u) * delta)
        sig = jnp.where(kk < K, sig, 0.0)  # grid: K levels, then 0 (Tweedie), padded with 0
        traj, _ = _chain(spec, sig, key, d, 1.0, None, K)
        return traj

    traj = jax.vmap(one)(offsets, keys)  # (n, q)

    def per_rate(log_m, t1):
        b = assemble(traj, d, None, eps, p, 1.0, log_m=log_m, t1=t1, width=width)
        return b.estimate, b.lower, b.upper, b.levels_in_band

    est, lo, up, lev = jax.vmap(per_rate)(log_ms, t1s)  # (n_R, n)
    return est, lo, up, lev


def sampler_success_fn(name, d, rates, weights, log_ms, t1s, eps, p, width, *, key,
                       n_offsets=8, n_chains=2, k_max=1024):
    """``K -> (success, lower, upper, levels_in_band)`` for a sampler in scalar form."""
    spec = scalar_spec(name)
    chains = 1 if not spec.is_stochastic else n_chains
    u = np.repeat(_offsets(n_offsets), chains)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(u.size))
    ftype = jnp.result_type(float)
    w = np.asarray(weights)

    def f(K):
        if K > k_max:
            return math.nan, math.nan, math.nan, math.nan
        est, lo, up, lev = _call(
            "sampler", _sampler_body, d, jnp.asarray(K, jnp.int32), jnp.asarray(u, ftype), keys,
            jnp.asarray(log_ms, ftype), jnp.asarray(t1s, ftype), jnp.asarray(eps, ftype),
            jnp.asarray(p, ftype), width, static=(spec, k_max),
        )
        mean = lambda a: float(np.sum(w * np.mean(np.asarray(a), axis=1)))  # noqa: E731
        return mean(est), mean(lo), mean(up), float(np.mean(np.asarray(lev)[0]))

    return f


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
def fit_slope(ds, ys, *, n_boot=2000, seed=0, level=0.95):
    """Least-squares slope of ``log y`` on ``log d`` with a pairs-bootstrap CI: ``(slope, lo, hi)``."""
    x = np.log(np.asarray(ds, float))
    y = np.log(np.asarray(ys, float))
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 2:
        return math.nan, math.nan, math.nan
    slope = float(np.polyfit(x, y, 1)[0])
    if x.size < 3:
        return slope, math.nan, math.nan
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, x.size, x.size)
        if np.ptp(x[idx]) == 0:
            continue
        boots.append(np.polyfit(x[idx], y[idx], 1)[0])
    a = (1.0 - level) / 2.0
    return slope, float(np.quantile(boots, a)), float(np.quantile(boots, 1.0 - a))


# ----------------------------------------------------------------------------- the sweep
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
    n_offsets=8,
    n_chains=2,
    k_max=1024,
    robustness=False,
    seed=0,
    out_dir=None,
    resume="auto",
    overwrite=False,
    plot=True,
    log=print,
):
    """Run the sqrt(d) sweep; returns a dict of results (also written to ``out_dir`` if given).

    **Arguments:**
    - ``dims``: dimensions; ``samplers``: names for the scalar reduction (see
      :func:`jscore.lowerbound.scalar.scalar_spec`), ``"ideal"`` is always included.
    - ``p``, ``eps`` (rule or number), ``rate`` (window table), ``[rate_lo, rate_hi]`` and
      ``n_rates`` (rate grid for N, K* and the searcher).
    - ``n_xi``: reference-norm draws per profile; ``n_offsets``/``n_chains``: log-offsets and
      chains per offset for real samplers; ``k_max``: largest K tried.
    - ``robustness``: also the p in {1,2,4} x eps in {d^-1/2, d^-1, d^-2} window grid at
      d in {1.6e3, 2.56e4, 4.1e5}.
    - ``out_dir``: writes ``scaling.json`` after every dimension, ``scaling.csv`` and
      ``scaling.png`` at the end.
    - ``resume``: with ``out_dir`` holding a ``scaling.json`` of the same configuration, ``"auto"``
      (default) reuses its finished dimensions and computes only the rest (a killed run is resumed
      by running it again); ``True`` requires such a file; ``False`` refuses existing results.
      ``overwrite=True`` discards them. Results of a different configuration are never mixed:
      that raises ``ValueError``. ``plot=False`` skips ``scaling.png``.
    """
    with jax.enable_x64(True):
        return _scaling(dims, samplers, p, eps, rate, rate_lo, rate_hi, n_rates, n_xi, n_offsets,
                        n_chains, k_max, robustness, seed, out_dir, log, resume, overwrite,
                        plot)


# recorded in the config but not part of its identity: rows are per d, so adding dimensions to a
# finished run computes only the new ones
_RUN_KEYS = ("device", "jax", "dims")


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
    same = {k: v for k, v in old.get("config", {}).items() if k not in _RUN_KEYS} == {
        k: v for k, v in json.loads(json.dumps(config, default=_json_default)).items()
        if k not in _RUN_KEYS}
    if not same:
        raise ValueError(f"{out_dir!r} holds results of a different configuration; choose another "
                         "output folder or pass overwrite=True (--overwrite) to discard them.")
    if resume is False:
        raise ValueError(f"{out_dir!r} already holds results of this configuration; pass "
                         "resume='auto' to continue them or overwrite=True to discard them.")
    return {float(r["d"]): r for r in old.get("rows", [])}


def _scaling(dims, samplers, p, eps_rule, rate, rate_lo, rate_hi, n_rates, n_xi, n_offsets,
             n_chains, k_max, robustness, seed, out_dir, log, resume="auto", overwrite=False,
             make_plot=True):
    t_start = time.time()
    for name in samplers:
        scalar_spec(name)  # validate names early
    bad = [d for d in dims if not 2 <= float(d) < 2**32]  # d seeds fold_in(key, d): a uint32
    if not len(dims) or bad:
        raise ValueError(f"`dims` must be a non-empty list of dimensions in [2, 2^32), got "
                         f"{list(dims)}.")
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
    key = jax.random.key(seed)
    rates = np.linspace(rate_lo, rate_hi, n_rates)
    weights = np.full(n_rates, 1.0)
    weights[0] = weights[-1] = 0.5
    weights /= weights.sum()
    results = {
        "config": dict(dims=list(map(float, dims)), samplers=list(samplers), p=p, eps=str(eps_rule),
                       rate=rate, rate_lo=rate_lo, rate_hi=rate_hi, n_rates=n_rates, n_xi=n_xi,
                       n_offsets=n_offsets, n_chains=n_chains, k_max=k_max, seed=seed,
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
        t0 = time.time()
        eps = eps_value(d, eps_rule)
        kd = jax.random.fold_in(key, int(d))
        lower, upper = window_edges(d, rate, eps, p, key=kd, n=n_xi)
        width = upper - lower
        ls, vals, log_ms, t1s = profile_tables(d, rates, eps, p, key=jax.random.fold_in(kd, 1),
                                               n=n_xi)
        n_win, _ = window_count(d, rates, ls, vals, log_ms)
        k_ideal, cache = _kstar_search(
            lambda K: ideal_success(K, rates, weights, ls, vals, log_ms, d), k_max=8 * k_max
        )
        searcher, n_centres = searcher_queries(d, rates, weights, ls, vals, log_ms, seed=seed)
        # the R = rate profile for the collapse figure
        k_mid = int(np.argmin(np.abs(rates - rate)))
        row = dict(
            d=d, eps=eps, lower=lower, upper=upper, width=width, w_sqrt_d=width * math.sqrt(d),
            w_norm=width * math.sqrt(d / math.log(d / eps)), N=n_win, kstar_ideal=k_ideal,
            searcher_queries=searcher, searcher_windows=n_centres,
            exact_control_queries=2, reference_control_log10=reference_control(d, rate_hi),
            profile_R=float(rates[k_mid]), profile_ls=ls[k_mid].tolist(),
            profile_vals=vals[k_mid].tolist(), samplers={},
        )
        log(f"d={d:>9.0f}  window [{lower:+.4f}, {upper:+.4f}]  w={width:.4f}  "
            f"w*sqrt(d/ln(d/eps))={row['w_norm']:.3f}  N={n_win:.2f}  K*_ideal={k_ideal:.1f}  "
            f"searcher={searcher:.2f}  ({time.time() - t0:.0f}s)")
        for name in samplers:
            t1 = time.time()
            f = sampler_success_fn(name, d, rates, weights, log_ms, t1s, eps, p, width,
                                   key=jax.random.fold_in(kd, 7), n_offsets=n_offsets,
                                   n_chains=n_chains, k_max=k_max)
            kst, cache = _kstar_search(lambda K: f(K)[0], k_max=k_max)
            curve = {int(k): v for k, v in sorted(cache.items())}
            k_at = int(math.ceil(kst)) if math.isfinite(kst) else None
            extra = f(k_at) if k_at is not None else (math.nan,) * 4
            row["samplers"][name] = dict(kstar=kst, success_curve=curve, lower_at_kstar=extra[1],
                                         upper_at_kstar=extra[2], levels_in_band=extra[3])
            log(f"    {name:<22s} K*={kst:7.1f}  levels in band at K*={extra[3]:.1f}  "
                f"({time.time() - t1:.0f}s)")
        results["rows"].append(row)
        if out_dir is not None:
            _write_json(results, out_dir)
    if robustness:
        results["robustness"] = robustness_grid(seed=seed, n=n_xi, rate=rate, log=log)
    results["fits"] = _fits(results, samplers)
    results["elapsed_s"] = time.time() - t_start
    if out_dir is not None:
        _write_json(results, out_dir)
        _write_csv(results, out_dir, samplers)
    if out_dir is not None and make_plot:
        try:
            plot(results, os.path.join(out_dir, "scaling.png"))
        except Exception as e:  # pragma: no cover - plotting is best effort
            log(f"figure failed: {e}")
    return results


def _fits(results, samplers):
    rows = results["rows"]
    ds = [r["d"] for r in rows]
    fits = {
        "N": fit_slope(ds, [r["N"] for r in rows]),
        "kstar_ideal": fit_slope(ds, [r["kstar_ideal"] for r in rows]),
        "searcher": fit_slope(ds, [r["searcher_queries"] for r in rows]),
        "w_norm": fit_slope(ds, [r["w_norm"] for r in rows]),
    }
    for name in samplers:
        fits[f"kstar_{name}"] = fit_slope(ds, [r["samplers"][name]["kstar"] for r in rows])
    return fits


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
    path = os.path.join(out_dir, "scaling.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(results, fh, indent=1, default=_json_default)
    os.replace(tmp, path)


def _write_csv(results, out_dir, samplers):
    path = os.path.join(out_dir, "scaling.csv")
    cols = ["d", "eps", "lower", "upper", "width", "w_sqrt_d", "w_norm", "N", "kstar_ideal",
            "searcher_queries", "searcher_windows", "exact_control_queries",
            "reference_control_log10"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols + [f"kstar_{s}" for s in samplers] + [f"levels_{s}" for s in samplers])
        for r in results["rows"]:
            w.writerow([r[c] for c in cols] + [r["samplers"][s]["kstar"] for s in samplers]
                       + [r["samplers"][s]["levels_in_band"] for s in samplers])


def format_table(results) -> str:
    """A plain-text table of the sweep (one line per d)."""
    samplers = results["config"]["samplers"]
    head = (f"{'d':>9} {'lower':>8} {'upper':>8} {'w':>7} {'w*sqd':>6} {'w_norm':>6} {'N':>6} "
            f"{'K*ideal':>8} {'search':>7}" + "".join(f" {('K*' + s)[:14]:>14}" for s in samplers))
    lines = [head]
    for r in results["rows"]:
        lines.append(
            f"{r['d']:>9.0f} {r['lower']:>8.4f} {r['upper']:>8.4f} {r['width']:>7.4f} "
            f"{r['w_sqrt_d']:>6.2f} {r['w_norm']:>6.3f} {r['N']:>6.2f} {r['kstar_ideal']:>8.1f} "
            f"{r['searcher_queries']:>7.2f}"
            + "".join(f" {r['samplers'][s]['kstar']:>14.1f}" for s in samplers)
        )
    if "fits" in results:
        lines.append("log-log slopes (95% bootstrap CI):")
        for k, v in results["fits"].items():
            lines.append(f"  {k:<24s} {v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]")
    return "\n".join(lines)


def plot(results, path):
    """PNG: K*(d) and N(d) with fitted slopes (left), window-profile collapse (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    ds = np.array([r["d"] for r in rows])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    series = [("N(d)", [r["N"] for r in rows], "N"),
              ("K* ideal", [r["kstar_ideal"] for r in rows], "kstar_ideal"),
              ("searcher queries", [r["searcher_queries"] for r in rows], "searcher")]
    for s in results["config"]["samplers"]:
        series.append((f"K* {s}", [r["samplers"][s]["kstar"] for r in rows], f"kstar_{s}"))
    fits = results.get("fits", {})
    for label, ys, fk in series:
        f = fits.get(fk, (math.nan,) * 3)
        ax1.loglog(ds, ys, "o-", label=f"{label}: slope {f[0]:.2f} [{f[1]:.2f}, {f[2]:.2f}]")
    ax1.loglog(ds, 0.3 * np.sqrt(ds), "k:", label="sqrt(d) guide")
    ax1.set_xlabel("d")
    ax1.set_ylabel("count")
    ax1.set_title("windows N(d) and levels K*(d) (success >= 1/2)")
    ax1.legend(fontsize=7)
    for r in rows:
        x = np.asarray(r["profile_ls"]) * math.sqrt(r["d"] / math.log(r["d"] / r["eps"]))
        ax2.plot(x, r["profile_vals"], label=f"d={r['d']:.0f}")
    ax2.set_xlabel("sqrt(d/ln(d/eps)) * log(sigma/sigma_c)")
    ax2.set_ylabel("pi_bar_d(sigma)")
    ax2.set_xlim(-6, 6)
    ax2.set_title(f"window profile collapse (R = {rows[0]['profile_R']:.2f})")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


__all__ = [
    "DEFAULT_DIMS",
    "DEFAULT_SAMPLERS",
    "ALL_SAMPLERS",
    "eps_value",
    "profile_tables",
    "window_count",
    "geometric_levels",
    "ideal_success",
    "sampler_success_fn",
    "searcher_queries",
    "fit_slope",
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
