"""Per-query informative probability of the LR adversary at codebook-independent points.

docs/construction.md §5, 6, 7.2 and 7.3. Fix a query ``(x, sigma)`` that does not depend on the
codebook, with ``xi = |x|``. Over the random codebook (M i.i.d. uniform points on ``S_r``,
``r = rho sqrt(d)``) the probability ``pi(xi, sigma)`` that ``LRAdversary(eps, p)`` answers it
informatively is, with ``kappa = r xi / sigma^2`` and ``B = 2 r / sigma^2``::

    lambda = eta = 1/2 (eps / (2B))^p,     t_sig = log(2/eta)
    band   = [r^2 + d s^2 - 2 sqrt((d s^4 + 2 r^2 s^2) t_sig),  r^2 + d s^2 + 2 sqrt(...) + 2 s^2 t_sig]
    t(u)   = (u + Lambda_d(kappa)) / kappa,      N_u = M S_d(t(u))                (expected count)
    condensed, C(sigma) >= Rbar:  pi = 1{xi^2 in band} (1 - exp(-N_{u_lo})),    u_lo = log M + log lambda
    liquid,    C(sigma) <  Rbar:  pi = 1{xi^2 in band} (1 - exp(-M S_d(t*))),   h(t*) = (eps/2)^2

with ``C(sigma) = 1/2 log(1 + rho^2/sigma^2)`` and ``Rbar = log M / d`` (the effective rate,
``M = ceil(exp(R d))``).

**Liquid side (one big jump over a truncated bulk).** There ``L ~ 1`` and the answer is
informative iff ``D = |m_P - m_Q|/sigma^2 > eps/2``. With normalised weights ``w_j`` and unit
codewords ``u_j``, ``D^2 = (r/sigma^2)^2 |sum_j w_j (u_j - A x/|x|)|^2 ~ sum_j g(T_j)`` (the
cross terms average out), ``g(t) = (r/sigma^2)^2 exp(2(kappa t - Lambda_d(kappa)))/M^2 f(t)``,
``f(t) = 1 - 2 A t + A^2`` (``A = A_d(kappa)``). Split the codewords at a cosine ``tau``: those
below are many and contribute their mean (law of large numbers; change of measure to
vMF(2 kappa))::

    m(tau) = (r/sigma^2)^2 exp(Lambda_d(2k) - 2 Lambda_d(k) - log M) E_{vMF(2k)}[f(T); T < tau]

(the vMF(2 kappa) marginal taken normal, mean ``A_d(2k)``, variance ``A_d'(2k)``); those above
form a Poisson process of mean ``M S_d(tau)``, independent of the bulk, and one of them must
supply the rest. ``h(tau) = m(tau) + g(tau)`` increases, so the event is "some codeword has
cosine >= t*" with ``h(t*) = (eps/2)^2`` (bisection). Limits: ``m -> 0`` gives the spec's
single-codeword term ``1 - exp(-N_{u_hi})`` (exactly so with ``jump="spec"``, ``f = 1 - A^2``);
``tau -> 1`` gives the annealed second moment of the spec's collective term. The spec's cosine
guard ``A_d(2 kappa) < t_1`` is not needed: when the vMF(2 kappa) mean lies beyond the codewords
that exist (the beta = 2 model is frozen), ``m(t*)`` is small and the single jump decides. As
d grows ``M S_d(t*)`` goes to 0 or infinity and the term tends to the spec's 0/1 form; the
section-6 windows and section-8 K* are unchanged (K* = 10.5 ... 192.5 for d = 1.6e3 ... 1e6,
``w sqrt(d/ln(d/eps))`` = 3.29-3.30). At d = 40-64 the probability replaces a step and matches
exact codebooks on the liquid tail to ~0.01-0.03 (the 0/1 guard was off by up to 0.11; see
:mod:`jscore.lowerbound.validation`). ``guard="indicator"`` keeps the spec's form::

    pi_liquid = max(1 - exp(-N_{u_hi}), 1_coll),  u_hi = log M - log(B sqrt(1 - A_d(kappa)^2) / eps)
    1_coll = 1{A_d(2 kappa) < t_1} 1{(r/sigma^2) sqrt(1 - 2 A A_2 + A^2) exp((Lambda_d(2k) - 2 Lambda_d(k) - log M)/2) > eps/2}

with ``t_1`` the typical largest cosine at its d -> infinity value ``sqrt(1 - exp(-2 Rbar))``
(see :func:`guard_threshold`). Everything is in log space: ``log N = log M + log S_d(t)``,
``pi = -expm1(-exp(min(log N, 700)))``, ``N = 0`` if ``t >= 1`` and ``pi = 1`` if ``t <= 0``.

Use float64 (``jax_enable_x64``); the arguments are O(d) and cancel to O(1) near the edges.
``d`` is a static Python number; ``xi`` and ``sigma`` broadcast; ``rate``, ``eps``, ``p`` and
``rho`` may be arrays (traced, no retracing when they change).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr

from . import bessel as _bessel_mod
from .caps import _check_d, cap_threshold, log_cap

_LOG_CAP_MAX = 700.0
_HUGE_LOG_M = 1400.0


def _sqrt(v):
    return math.sqrt(v) if isinstance(v, float) else jnp.sqrt(v)


def bessel_terms(kappa, d):
    """``(Lambda_d(kappa), A_d(kappa))`` for ``kappa >= 0``; ``d`` static, or traced with d >= 60.

    A traced ``d`` (one compiled function for a whole dimension sweep) uses the uniform Debye
    expansion of :mod:`jscore.lowerbound.bessel` directly (its Regime 1); with its nine Debye
    terms it agrees with the static-d evaluation to 2e-15 for d >= 60 (checked in the tests).
    """
    if isinstance(d, float):
        return _bessel_mod.log_bessel_mgf_and_ratio(kappa, d)
    return _bessel_mod._regime1(kappa, d / 2.0 - 1.0)


def effective_log_m(d, rate):
    """``log M = log ceil(exp(R d))`` (the effective rate is ``log M / d``); elementwise in ``rate``.

    For ``R d >= 30`` the ceiling changes ``log M`` by less than ``e^{-30}`` and ``log M = R d``
    (so ``exp`` never overflows, in float32 either: ``e^{600}`` is out of float32 range).
    """
    d = _check_d(d)
    rate = jnp.asarray(rate, jnp.result_type(float))
    rd = rate * d
    small = jnp.ceil(jnp.exp(jnp.minimum(rd, 30.0)))
    return jnp.where(rd < 30.0, jnp.log(jnp.maximum(small, 1.0)), rd)


def effective_log_m_py(d: float, rate: float) -> float:
    """Host version of :func:`effective_log_m` for Python floats (exact integer ceiling)."""
    rd = float(rate) * float(d)
    if rd < 700.0:
        return math.log(max(math.ceil(math.exp(rd)), 1))
    return rd


def critical_sigma(rate, rho=1.0):
    """``sigma_c(R) = rho / sqrt(exp(2R) - 1)``, where the capacity ``C(sigma_c) = R``."""
    rate = jnp.asarray(rate, jnp.result_type(float))
    return rho / jnp.sqrt(jnp.expm1(2.0 * rate))


def capacity(sigma, rho=1.0):
    """``C(sigma) = 1/2 log(1 + rho^2/sigma^2)`` nats per dimension."""
    sigma = jnp.asarray(sigma, jnp.result_type(float))
    return 0.5 * jnp.log1p((rho / sigma) ** 2)


def norm_band(sigma, d, eps, p=2.0, rho=1.0):
    """``(lo, hi)`` of the adversary's band on ``|x|^2`` at ``sigma`` (docs/construction.md §5).

    Centred at ``r^2 + d sigma^2``; half-width ``2 sqrt((d sigma^4 + 2 r^2 sigma^2) t_sigma)`` plus
    ``2 sigma^2 t_sigma`` on the upper side, ``t_sigma = log(2/eta_sigma)``.
    """
    d = _check_d(d)
    sigma = jnp.asarray(sigma, jnp.result_type(float))
    r2 = (rho * rho) * d
    log_b = math.log(2.0) + 0.5 * jnp.log(r2) - 2.0 * jnp.log(sigma)
    log_eta = math.log(0.5) + p * (jnp.log(eps) - math.log(2.0) - log_b)
    t_sig = math.log(2.0) - log_eta
    s2 = sigma * sigma
    centre = r2 + d * s2
    half = 2.0 * jnp.sqrt((d * s2 * s2 + 2.0 * r2 * s2) * t_sig)
    return centre - half, centre + half + 2.0 * s2 * t_sig


def _query_scalars(xi, sigma, d, rate, eps, p, rho, log_m):
    """The arguments in the float dtype and the per-query scalars both sides share:
    ``r = rho sqrt(d)``, ``s2 = sigma^2``, ``kappa = r xi / sigma^2``, ``log B`` (``B = 2 r /
    sigma^2``) and ``log lambda`` (the likelihood-ratio threshold)."""
    d = _check_d(d)
    ftype = jnp.result_type(float)
    xi, sigma, eps, p, rho = (jnp.asarray(v, ftype) for v in (xi, sigma, eps, p, rho))
    log_m = jnp.asarray(effective_log_m(d, rate) if log_m is None else log_m, ftype)
    r = rho * _sqrt(d)
    s2 = sigma * sigma
    kappa = jnp.maximum(r * xi / s2, 1e-300)
    log_b = math.log(2.0) + jnp.log(r) - 2.0 * jnp.log(sigma)
    log_lambda = math.log(0.5) + p * (jnp.log(eps) - math.log(2.0) - log_b)
    return d, xi, sigma, eps, p, rho, log_m, r, s2, kappa, log_b, log_lambda


class QueryTerms(NamedTuple):
    """The pieces of ``pi`` for a batch of queries (all arrays of the broadcast shape).

    - ``prob``: the informative probability ``pi``.
    - ``log_intensity``: ``log`` of the Poisson intensity ``-log(1 - pi)``: ``log M S_d(t*)``,
      ``+inf`` where ``pi = 1`` (``t* <= 0``, or the 0/1 collective term of
      ``guard="indicator"``), ``-inf`` where ``pi = 0`` (outside the band, or ``t* >= 1``).
    - ``t_star``: the cosine ``t*`` a codeword needs (the cap threshold of this query:
      ``t(u_lo)`` condensed; liquid: the one-big-jump ``t*``, or ``t(u_hi)`` for "indicator").
    - ``in_band``: whether ``|x|^2`` lies in the adversary's norm band.
    - ``condensed``: ``C(sigma) >= Rbar``.
    - ``collective``: liquid side only; "truncated": the bulk ``m(t*)`` outweighs the jump
      ``g(t*)``; "indicator": the guarded 0/1 term fires.
    """

    prob: jax.Array
    log_intensity: jax.Array
    t_star: jax.Array
    in_band: jax.Array
    condensed: jax.Array
    collective: jax.Array


def informative_terms(
    xi,
    sigma,
    d,
    rate,
    eps,
    p=2.0,
    rho=1.0,
    *,
    log_m=None,
    t1=None,
    collective: bool = True,
    guard: str = "truncated",
    jump: str = "exact",
) -> QueryTerms:
    """All terms of ``pi(xi, sigma; d, R, eps, p)`` (module docstring); elementwise, broadcasting.

    **Arguments:**
    - ``xi``: query norms ``|x| >= 0``; ``sigma``: noise levels ``> 0``.
    - ``d``: static dimension; ``rate``: hidden rate R (``M = ceil(exp(R d))``), or pass ``log_m``
      directly (e.g. ``log`` of an explicit codebook's size).
    - ``eps``, ``p``, ``rho``: adversary accuracy, L^p exponent, radius scale.
    - ``collective``: include the collective (many-codeword) part of the liquid-side test.
    - ``guard``: ``"truncated"`` (default) the one-big-jump model of the liquid side (module
      docstring): a probability, no cosine guard; ``"indicator"`` the spec's 0/1 term
      ``max(1 - exp(-N_{u_hi}), 1_coll)`` with the guard ``A_d(2 kappa) < t1``.
    - ``t1``: the ``"indicator"`` guard's cosine; default :func:`guard_threshold` (asymptotic
      ``sqrt(1 - exp(-2 Rbar))``). Ignored by ``"truncated"``.
    - ``jump``: the single codeword's factor ``f`` in the liquid test, ``"exact"`` (default)
      ``1 - 2 A_d(kappa) t + A_d(kappa)^2`` (``|u - A x/|x||^2`` for a codeword at cosine ``t``)
      or ``"spec"`` ``1 - A_d(kappa)^2`` (docs/construction.md §7.2); ``guard="truncated"`` only.
    """
    if guard not in ("truncated", "indicator"):
        raise ValueError(f"Unknown guard {guard!r}; use 'truncated' or 'indicator'.")
    if jump not in ("spec", "exact"):
        raise ValueError(f"Unknown jump factor {jump!r}; use 'spec' or 'exact'.")
    d, xi, sigma, eps, p, rho, log_m, r, s2, kappa, log_b, log_lambda = _query_scalars(
        xi, sigma, d, rate, eps, p, rho, log_m)
    ftype = xi.dtype

    lo, hi = norm_band(sigma, d, eps, p, rho)
    x2 = xi * xi
    in_band = (x2 >= lo) & (x2 <= hi)

    lam, a_k = bessel_terms(kappa, d)
    condensed = capacity(sigma, rho) >= log_m / d

    one_minus_a2 = (1.0 - a_k) * (1.0 + a_k)
    u_lo = log_m + log_lambda
    u_hi = log_m - (log_b + 0.5 * jnp.log(one_minus_a2) - jnp.log(eps))
    u = jnp.where(condensed, u_lo, u_hi)
    t_star = (u + lam) / kappa

    coll = jnp.zeros(jnp.broadcast_shapes(xi.shape, sigma.shape, log_m.shape), bool)
    if guard == "truncated":
        t_liq, coll = _liquid_truncated(kappa, lam, a_k, log_m, log_b, eps, d, collective, jump)
        coll = coll & ~condensed
        t_star = jnp.where(condensed, t_star, t_liq)
    log_n = _log_count(t_star, d, log_m)
    if guard == "indicator" and collective:
        if t1 is None:
            t1 = guard_threshold(d, log_m)
        t1 = jnp.asarray(t1, ftype)
        lam2, a_2k = bessel_terms(2.0 * kappa, d)
        spread = (a_k - a_2k) ** 2 + (1.0 - a_2k) * (1.0 + a_2k)  # 1 - 2 A A2 + A^2
        log_fluct = (
            jnp.log(r) - jnp.log(s2) + 0.5 * jnp.log(spread) + 0.5 * (lam2 - 2.0 * lam - log_m)
        )
        coll = (a_2k < t1) & (log_fluct > jnp.log(eps) - math.log(2.0)) & ~condensed
        log_n = jnp.where(coll, jnp.inf, log_n)

    log_int = log_n
    log_int = jnp.where(in_band, log_int, -jnp.inf)
    prob = -jnp.expm1(-jnp.exp(jnp.minimum(log_int, _LOG_CAP_MAX)))
    return QueryTerms(prob, log_int, t_star, in_band, condensed, coll)


_BISECT_ITERS = 64


def _bisect(body, lo, hi, iters=_BISECT_ITERS):
    """``iters`` steps of ``(lo, hi) = body(i, (lo, hi))``, stopping early once a step changes
    no element: the body is deterministic, so from there on every step would return its input
    and the result is that of all ``iters`` steps, bit for bit (a float64 bisection reaches
    adjacent floats after ~55 of its 64 steps). NaN entries count as unchanged."""

    def same(a, b):
        return (a == b) | (jnp.isnan(a) & jnp.isnan(b))

    def cond(c):
        i, _, _, moved = c
        return (i < iters) & moved

    def step(c):
        i, lo, hi, _ = c
        nlo, nhi = body(i, (lo, hi))
        return i + 1, nlo, nhi, ~jnp.all(same(nlo, lo) & same(nhi, hi))

    _, lo, hi, _ = jax.lax.while_loop(cond, step, (jnp.asarray(0, jnp.int32), lo, hi,
                                                   jnp.asarray(True)))
    return lo, hi


# ------------------------------------------------------------------ both sides of the bracket
class QuerySides(NamedTuple):
    """Lower and upper side of ``pi(xi, sigma)`` for a batch of queries (broadcast shape).

    Likelihood-ratio test (``P_C(L >= lambda)``, rigorous bracket, docs/certified_bound.md §1):

    - ``lr_lower = 1 - exp(-N_{u*})``: some codeword alone has ``e^{i_j}/M >= lambda``
      (``P(L >= lambda) >= 1 - (1 - S_d(t(u*)))^M >= 1 - exp(-N_{u*})``);
    - ``lr_upper = min(1, N_{u*} + P_vMF(kappa T - Lambda_d(kappa) < u*)/lambda)``: union bound
      over "some ``i_j >= u``" plus Markov on the truncated sum (``E_Q[e^i 1{i<u}] =
      P_vMF(i < u)``); ``d/du`` of ``N_u + P_vMF(i < u)/lambda`` vanishes exactly at
      ``u* = log(M lambda)`` (``= u_lo``), where it is minimal. The vMF tail is bounded from
      above by the tangent line of its log-concave density (:func:`log_vmf_lower_tail_bound`),
      so ``lr_upper`` is an upper bound, not an approximation.

    Difference test (``P(D > eps/2)`` with ``D = |m_P - m_Q|/sigma^2``, liquid model ``Z = M
    e^{Lambda_d(kappa)}``, ``D^2 ~ sum_j g(T_j)``; model estimates, not bounds):

    - ``diff_lower = 1 - exp(-M S_d(t_g))``: one codeword alone has ``g(T_j) >= (eps/2)^2``;
    - ``diff_upper = min(1, M S_d(t_g) + m(t_g)/(eps/2)^2)``: union bound over "some codeword
      above ``tau``" plus Markov on the bulk ``m(tau) = M E[g(T); T < tau]``, minimal at
      ``tau = t_g`` (where ``g(tau) = (eps/2)^2``); ``m(t_g)`` is bounded from above with the
      tangent bound of the log-concave ``f e^{psi_2}`` (no normal approximation).

    Informative probability, ``lower <= upper`` everywhere:

    - condensed (``C(sigma) >= Rbar``): ``lower = band lr_lower`` (the codeword that passes the
      LR test dominates the posterior, so the difference test passes: a model step),
      ``upper = band lr_upper`` (a bound: informative implies ``L >= lambda``);
    - liquid: ``lower = band min(diff_lower, lr_upper)``, ``upper = band min(lr_upper,
      diff_upper)`` (``L ~ 1 >= lambda`` there).

    ``log_intensity_lower = log(-log(1 - lower))`` and ``t_lower`` (the cosine a codeword needs
    on the lower side) feed the cap merging of
    :func:`~jscore.lowerbound.trajectory.assemble`.
    """

    lower: jax.Array
    upper: jax.Array
    lr_lower: jax.Array
    lr_upper: jax.Array
    diff_lower: jax.Array
    diff_upper: jax.Array
    log_intensity_lower: jax.Array
    t_lower: jax.Array
    in_band: jax.Array
    condensed: jax.Array


def _log_expm1_ratio(z):
    """``log((1 - e^{-z}) / z)`` for any real ``z`` (0 at z = 0), without overflow."""
    az = jnp.abs(z)
    small = az < 1e-8
    azs = jnp.where(small, 1.0, az)
    val = jnp.log(-jnp.expm1(-azs)) - jnp.log(azs) + jnp.maximum(-z, 0.0)
    return jnp.where(small, -0.5 * z, val)


def log_vmf_lower_tail_bound(t0, kappa, d, lam=None):
    """Upper bound on ``log P_{T ~ vMF_d(kappa)}(T < t0)`` (cosine marginal), elementwise.

    The marginal density ``e^{psi(t)}``, ``psi(t) = kappa t - Lambda_d(kappa) - log B((d-1)/2,
    1/2) + (d-3)/2 log(1 - t^2)``, is log-concave for ``d >= 3``, so ``psi`` lies below its
    tangent at ``t0`` and ``P(T < t0) <= e^{psi(t0)} (1 - e^{-psi'(t0)(t0+1)}) / psi'(t0)``
    (a Mills-ratio-type bound, tight to ``1 + O(1/z^2)`` in the tail). Returns ``min(., 0)``;
    ``-inf`` for ``t0 <= -1`` and ``0`` for ``t0 >= 1``. ``lam`` = ``Lambda_d(kappa)`` if known.
    """
    from .caps import log_beta_half

    ftype = jnp.result_type(float)
    t0 = jnp.asarray(t0, ftype)
    kappa = jnp.asarray(kappa, ftype)
    if lam is None:
        lam, _ = bessel_terms(kappa, d)
    inside = (t0 > -1.0) & (t0 < 1.0)
    tc = jnp.where(inside, t0, 0.0)
    a3 = (d - 3.0) / 2.0
    log1mt2 = jnp.log1p(-tc) + jnp.log1p(tc)
    psi = kappa * tc - lam - log_beta_half((d - 1.0) / 2.0) + a3 * log1mt2
    dpsi = kappa - 2.0 * a3 * tc / ((1.0 - tc) * (1.0 + tc))
    val = psi + jnp.log1p(tc) + _log_expm1_ratio(dpsi * (1.0 + tc))
    val = jnp.minimum(val, 0.0)
    val = jnp.where(t0 >= 1.0, 0.0, val)
    return jnp.where(t0 <= -1.0, -jnp.inf, val)


def _band_terms(xi, sigma, d, eps, p, rho, kappa, log_m):
    """The pieces every side needs: ``(in_band, lam, a_k, condensed)``."""
    lo, hi = norm_band(sigma, d, eps, p, rho)
    x2 = xi * xi
    in_band = (x2 >= lo) & (x2 <= hi)
    lam, a_k = bessel_terms(kappa, d)
    return in_band, lam, a_k, capacity(sigma, rho) >= log_m / d


def _lr_upper(t_lr, log_n_lr, kappa, d, lam, log_lambda):
    """Upper side of the LR test at ``t_lr`` (count plus the vMF lower tail)."""
    log_tail = log_vmf_lower_tail_bound(t_lr, kappa, d, lam)
    log_up = jnp.logaddexp(log_n_lr, log_tail - log_lambda)
    return jnp.minimum(jnp.exp(jnp.minimum(log_up, _LOG_CAP_MAX)), 1.0)


def _difference_sides(kappa, lam, a_k, log_m, log_b, eps, d):
    """Difference test, liquid model: single-codeword threshold ``t_g`` and the bulk below it.
    Returns ``(t_g, log_n_g, diff_lower, diff_upper)``."""
    t_g, _ = _liquid_truncated(kappa, lam, a_k, log_m, log_b, eps, d, False, "exact")
    log_n_g = _log_count(t_g, d, log_m)
    diff_lower = -jnp.expm1(-jnp.exp(jnp.minimum(log_n_g, _LOG_CAP_MAX)))
    log_delta2 = 2.0 * (jnp.log(eps) - math.log(2.0))
    tau = jnp.clip(jnp.where(jnp.isnan(t_g), 1.0, t_g), -1.0, 1.0)
    log_m_tg = _bulk_log_mean_bound(tau, kappa, lam, a_k, log_m, log_b, d) - log_delta2
    log_m_tg = jnp.where(t_g <= -1.0, -jnp.inf, log_m_tg)
    log_dup = jnp.logaddexp(log_n_g, log_m_tg)
    return t_g, log_n_g, diff_lower, jnp.minimum(jnp.exp(jnp.minimum(log_dup, _LOG_CAP_MAX)), 1.0)


def informative_sides(xi, sigma, d, rate, eps, p=2.0, rho=1.0, *, log_m=None) -> QuerySides:
    """Both sides of ``pi(xi, sigma; d, R, eps, p)`` (see :class:`QuerySides`); broadcasting.

    Arguments as :func:`informative_terms`. The default estimate ``informative_terms(...).prob``
    uses the lower side on the condensed branch and the one-big-jump model with the bulk on the
    liquid branch; it lies in ``[lower, upper]`` except where the bulk model overshoots the
    Markov side (rare; a model difference, not an error).
    """
    d, xi, sigma, eps, p, rho, log_m, r, s2, kappa, log_b, log_lambda = _query_scalars(
        xi, sigma, d, rate, eps, p, rho, log_m)
    ftype = xi.dtype
    in_band, lam, a_k, condensed = _band_terms(xi, sigma, d, eps, p, rho, kappa, log_m)

    # LR test: t(u*) with u* = log M + log lambda
    t_lr = (log_m + log_lambda + lam) / kappa
    log_n_lr = _log_count(t_lr, d, log_m)
    lr_lower = -jnp.expm1(-jnp.exp(jnp.minimum(log_n_lr, _LOG_CAP_MAX)))
    lr_upper = _lr_upper(t_lr, log_n_lr, kappa, d, lam, log_lambda)
    t_g, log_n_g, diff_lower, diff_upper = _difference_sides(kappa, lam, a_k, log_m, log_b, eps, d)

    band = in_band.astype(ftype)
    lower = band * jnp.where(condensed, lr_lower, jnp.minimum(diff_lower, lr_upper))
    upper = band * jnp.where(condensed, lr_upper, jnp.minimum(lr_upper, diff_upper))
    lower = jnp.minimum(lower, upper)
    t_lower = jnp.where(condensed, t_lr, t_g)
    log_int = jnp.where(condensed, log_n_lr, log_n_g)
    capped = lower < jnp.where(condensed, lr_lower, diff_lower)  # capped by the upper side
    log_int = jnp.where(capped, jnp.log(-jnp.log1p(-jnp.minimum(lower, 1.0 - 1e-16))), log_int)
    log_int = jnp.where(in_band & (lower > 0), log_int, -jnp.inf)
    return QuerySides(lower, upper, lr_lower, lr_upper, diff_lower, diff_upper, log_int, t_lower,
                      in_band, condensed)


def estimate_and_sides(xi, sigma, d, eps, p=2.0, rho=1.0, *, log_m, branch, want="both"):
    """``(estimate, lower, upper, condensed)`` for queries that all lie on one ``branch``.

    ``estimate`` is ``informative_terms(...).prob`` (defaults: ``guard="truncated"``,
    ``collective=True``, ``jump="exact"``) and ``lower``, ``upper`` those of
    :func:`informative_sides`, value for value, computing the pieces both share once (band,
    Bessel terms; on the condensed branch the estimate's count ``N_{u_lo}`` is the LR count) and
    only the pieces of ``branch``: ``"condensed"`` (``C(sigma) >= Rbar`` for every query: no
    liquid bisections) or ``"liquid"``. ``condensed`` (the broadcast shape) lets the caller check
    the assumption; elements on the other branch get wrong values. ``log_m`` is required.
    ``want``: ``"both"``, ``"estimate"`` or ``"sides"`` (the others are returned as ``None``).
    XLA may round a fused program differently: one computing both agrees with the separate
    functions to ~1e-13 relative, one computing a single output bit for bit (tested).
    """
    if branch not in ("condensed", "liquid"):
        raise ValueError(f"Unknown branch {branch!r}; use 'condensed' or 'liquid'.")
    if want not in ("both", "estimate", "sides"):
        raise ValueError(f"Unknown want {want!r}; use 'both', 'estimate' or 'sides'.")
    est, sides = want != "sides", want != "estimate"
    d, xi, sigma, eps, p, rho, log_m, r, s2, kappa, log_b, log_lambda = _query_scalars(
        xi, sigma, d, None, eps, p, rho, log_m)
    in_band, lam, a_k, condensed = _band_terms(xi, sigma, d, eps, p, rho, kappa, log_m)
    band = in_band.astype(xi.dtype)

    # LR test: t(u*), u* = u_lo = log M + log lambda (the condensed estimate's t* too)
    t_lr = (log_m + log_lambda + lam) / kappa
    prob = lower = upper = None
    if sides:  # both branches need the LR upper side
        log_n_lr = _log_count(t_lr, d, log_m)
        lr_upper = _lr_upper(t_lr, log_n_lr, kappa, d, lam, log_lambda)
    if branch == "condensed":
        if est:  # t* = t(u_lo) = t_lr, written as informative_terms does (same rounding)
            one_minus_a2 = (1.0 - a_k) * (1.0 + a_k)
            u_hi = log_m - (log_b + 0.5 * jnp.log(one_minus_a2) - jnp.log(eps))
            t_star = (jnp.where(condensed, log_m + log_lambda, u_hi) + lam) / kappa
            log_n = log_n_lr if sides else _log_count(t_star, d, log_m)
            log_int = jnp.where(in_band, log_n, -jnp.inf)
            prob = -jnp.expm1(-jnp.exp(jnp.minimum(log_int, _LOG_CAP_MAX)))
        if sides:
            lr_lower = -jnp.expm1(-jnp.exp(jnp.minimum(log_n_lr, _LOG_CAP_MAX)))
            upper = band * lr_upper
            lower = jnp.minimum(band * lr_lower, upper)
        return prob, lower, upper, condensed

    if est:  # one-big-jump threshold with the bulk
        t_liq, _ = _liquid_truncated(kappa, lam, a_k, log_m, log_b, eps, d, True, "exact")
        log_int = jnp.where(in_band, _log_count(t_liq, d, log_m), -jnp.inf)
        prob = -jnp.expm1(-jnp.exp(jnp.minimum(log_int, _LOG_CAP_MAX)))
    if not sides:
        return prob, lower, upper, condensed
    _, _, diff_lower, diff_upper = _difference_sides(kappa, lam, a_k, log_m, log_b, eps, d)
    lower = band * jnp.minimum(diff_lower, lr_upper)
    upper = band * jnp.minimum(lr_upper, diff_upper)
    return prob, jnp.minimum(lower, upper), upper, condensed


def _bulk_log_mean_bound(tau, kappa, lam, a_k, log_m, log_b, d):
    """Upper bound on ``log m(tau)``, ``m(tau) = M E_u[g(T); T < tau]`` (liquid model, no
    approximation of the vMF(2 kappa) law): ``m = (r/sigma^2)^2 e^{Lambda(2k) - 2 Lambda(k)}/M
    E_{vMF(2k)}[f(T); T < tau]`` with ``f(t) = 1 - 2 A t + A^2``; ``f e^{psi_2}`` is log-concave,
    so the tangent bound of :func:`log_vmf_lower_tail_bound` applies to it, and the partial
    mean is at most the full one ``1 - 2 A A_d(2k) + A^2``."""
    from .caps import log_beta_half

    log_rs = log_b - math.log(2.0)
    lam2, a_2k = bessel_terms(2.0 * kappa, d)
    log_pref = 2.0 * log_rs + lam2 - 2.0 * lam - log_m
    log_full = jnp.log((a_k - a_2k) ** 2 + (1.0 - a_2k) * (1.0 + a_2k))  # 1 - 2 A A2 + A^2
    inside = (tau > -1.0) & (tau < 1.0)
    tc = jnp.where(inside, tau, 0.0)
    a3 = (d - 3.0) / 2.0
    f = 1.0 - 2.0 * a_k * tc + a_k * a_k
    h = (jnp.log(f) + 2.0 * kappa * tc - lam2 - log_beta_half((d - 1.0) / 2.0)
         + a3 * (jnp.log1p(-tc) + jnp.log1p(tc)))
    dh = -2.0 * a_k / f + 2.0 * kappa - 2.0 * a3 * tc / ((1.0 - tc) * (1.0 + tc))
    tangent = h + jnp.log1p(tc) + _log_expm1_ratio(dh * (1.0 + tc))
    part = jnp.where(inside, jnp.minimum(tangent, log_full), jnp.where(tau >= 1.0, log_full,
                                                                      -jnp.inf))
    return log_pref + part


def _bulk_log_mean(kappa, lam, a_k, log_m, log_b, d):
    """``tau -> log m(tau)``, ``m(tau) = M E[g(T); T < tau]`` (liquid model; vMF(2 kappa) taken normal)."""
    log_rs = log_b - math.log(2.0)
    lam2, a_2k = bessel_terms(2.0 * kappa, d)
    sd2 = jnp.sqrt(jnp.maximum(1.0 - a_2k * a_2k - (d - 1.0) * a_2k / (2.0 * kappa), 1e-300))
    log_pref = 2.0 * log_rs + lam2 - 2.0 * lam - log_m
    log_c0 = jnp.log((a_k - a_2k) ** 2 + (1.0 - a_2k) * (1.0 + a_2k))  # 1 - 2 A A2 + A^2
    log_c1 = jnp.log(2.0 * a_k * sd2) - 0.5 * math.log(2.0 * math.pi)

    def log_bulk(t):
        z = (t - a_2k) / sd2
        return log_pref + jnp.logaddexp(log_c0 + log_ndtr(z), log_c1 - 0.5 * z * z)

    return log_bulk


def informative_bounds(xi, sigma, d, rate, eps, p=2.0, rho=1.0, **kwargs):
    """``(lower, upper)`` of :func:`informative_sides` (the two sides of ``pi``)."""
    s = informative_sides(xi, sigma, d, rate, eps, p, rho, **kwargs)
    return s.lower, s.upper



def _log_count(t, d, log_m):
    """``log(M S_d(t))`` with ``-inf`` for ``t >= 1``, ``+inf`` for ``t <= 0`` (section 7.3)."""
    t_eval = jnp.clip(jnp.where(jnp.isnan(t), 1.0, t), 0.0, 1.0)
    a_half = (d - 1.0) / 2.0
    # Where log M >= 1400 and the cap is not tiny (S_d > ~1e-260, the slow incomplete-beta
    # region), log N >= log M - 600 >= 800 already saturates pi = 1: skip the evaluation.
    huge = (log_m >= _HUGE_LOG_M) & (-a_half * jnp.log1p(-t_eval * t_eval) < 600.0)
    t_safe = jnp.where(huge, jnp.sqrt(-jnp.expm1(-1200.0 / a_half)), t_eval)
    log_n = jnp.where(huge, log_m - 600.0, log_m + log_cap(t_safe, d))
    log_n = jnp.where(t >= 1.0, -jnp.inf, log_n)
    return jnp.where(t <= 0.0, jnp.inf, log_n)


def _liquid_truncated(kappa, lam, a_k, log_m, log_b, eps, d, collective, jump):
    """Liquid side, one-big-jump model: ``(t*, bulk dominates at t*)``; ``pi = 1 - exp(-M S_d(t*))``.

    ``D = |m_P - m_Q|/sigma^2`` with ``D^2 ~ sum_j g(T_j)``, ``g(t) = (r/sigma^2)^2 w(t)^2 f(t)``,
    ``w(t) = exp(kappa t - Lambda_d(kappa))/M`` (liquid: ``Z ~ M e^Lambda``) and ``f(t)`` the jump
    factor. Split at a cosine ``tau``: codewords below ``tau`` are many and contribute their
    mean (law of large numbers), ``m(tau) = M E[g(T); T < tau]``; the rest is a Poisson process
    of mean ``M S_d(tau)``, and one of them must supply the remainder. With
    ``h(tau) = m(tau) + g(tau)`` increasing, ``t*`` solves ``h(t*) = (eps/2)^2`` and
    ``P(D > eps/2) = 1 - exp(-M S_d(t*))``. By the change of measure
    ``m(tau) = (r/sigma^2)^2 exp(Lambda_d(2k) - 2 Lambda_d(k))/M E_{vMF(2k)}[1 - 2AT + A^2; T < tau]``,
    with the vMF(2 kappa) marginal of ``T`` taken normal (mean ``A_d(2k)``, variance
    ``A_d'(2k) = 1 - A_d(2k)^2 - (d-1) A_d(2k)/(2k)``). ``tau -> 1`` recovers the annealed second
    moment; without the bulk ``t*`` is the single-codeword threshold ``t(u_hi)``.
    """
    log_rs = log_b - math.log(2.0)  # log(r / sigma^2)
    log_delta2 = 2.0 * (jnp.log(eps) - math.log(2.0))
    log_1ma2 = jnp.log((1.0 - a_k) * (1.0 + a_k))
    lg0 = 2.0 * (log_rs - lam - log_m)

    def log_g(t):
        fac = log_1ma2 if jump == "spec" else jnp.log(1.0 - 2.0 * a_k * t + a_k * a_k)
        return lg0 + 2.0 * kappa * t + fac

    if collective:
        lam2, a_2k = bessel_terms(2.0 * kappa, d)
        sd2 = jnp.sqrt(jnp.maximum(1.0 - a_2k * a_2k - (d - 1.0) * a_2k / (2.0 * kappa), 1e-300))
        log_pref = 2.0 * log_rs + lam2 - 2.0 * lam - log_m
        log_c0 = jnp.log((a_k - a_2k) ** 2 + (1.0 - a_2k) * (1.0 + a_2k))  # 1 - 2 A A2 + A^2
        log_c1 = jnp.log(2.0 * a_k * sd2) - 0.5 * math.log(2.0 * math.pi)

        def log_bulk(t):  # log m(t): (1+A^2-2A A2) Phi(z) + 2 A sd2 phi(z), z = (t - A2)/sd2
            z = (t - a_2k) / sd2
            return log_pref + jnp.logaddexp(log_c0 + log_ndtr(z), log_c1 - 0.5 * z * z)

        def log_h(t):
            return jnp.logaddexp(log_g(t), log_bulk(t))
    else:
        log_h = log_g

    if jump == "spec":  # h >= g, so t* <= the closed-form single-codeword threshold
        t_single = (log_delta2 - lg0 - log_1ma2) / (2.0 * kappa)
        t_single = jnp.where(jnp.isnan(t_single), jnp.inf, t_single)
    else:
        t_single = jnp.full_like(kappa, jnp.inf)
    t_single = jnp.broadcast_to(
        t_single, jnp.shape(log_h(jnp.minimum(t_single, 1.0)) >= log_delta2))
    t_hi = jnp.minimum(t_single, 1.0)
    lo0 = jnp.full_like(t_hi, -1.0)

    def body(_, c):
        lo, hi = c
        mid = 0.5 * (lo + hi)
        up = log_h(mid) >= log_delta2
        return jnp.where(up, lo, mid), jnp.where(up, mid, hi)

    if collective or jump != "spec":
        lo, hi = _bisect(body, lo0, t_hi)
        # h(1) < delta^2: no codeword suffices (h(t_single) >= delta^2 holds by construction)
        never = (t_single > 1.0) & (log_h(jnp.ones_like(t_hi)) < log_delta2)
        t_star = jnp.where(never, jnp.inf, jnp.where(t_single <= -1.0, t_single, hi))
    else:
        t_star = t_hi
    if collective:
        coll = log_bulk(jnp.clip(t_star, -1.0, 1.0)) > log_g(jnp.clip(t_star, -1.0, 1.0))
    else:
        coll = jnp.zeros(t_star.shape, bool)
    return t_star, coll


def guard_threshold(d, log_m, kind: str = "asymptotic"):
    """Cosine ``t_1`` of the spec's collective-term guard ``A_d(2 kappa) < t_1`` (``guard="indicator"``).

    The default liquid term (``guard="truncated"``) needs no such cosine: the randomness of the
    largest cosines enters through the Poisson count ``M S_d(t*)`` itself.

    ``kind="asymptotic"`` (default): ``t_1 = sqrt(1 - exp(-2 Rbar))``, the d -> infinity limit of
    the typical largest cosine. ``kind="finite"``: the finite-d solution of ``M S_d(t_1) = 1``
    (:func:`~jscore.lowerbound.caps.cap_threshold`). The two agree at large d; at d = 40
    (R = 0.25, eps = 0.05) the finite-d value (0.573 vs 0.627) switches the collective term off
    too early and the formula then reads 0.89 at sigma = 2 sigma_c where exact codebooks measure
    0.99 (the asymptotic guard gives 0.995, and reproduces the reference row of docs/construction.md §11.6).
    """
    log_m = jnp.asarray(log_m, jnp.result_type(float))
    if kind == "asymptotic":
        return jnp.sqrt(-jnp.expm1(-2.0 * log_m / d))
    if kind == "finite":
        return cap_threshold(d, log_m)
    raise ValueError(f"Unknown guard kind {kind!r}; use 'asymptotic' or 'finite'.")


def informative_probability(xi, sigma, d, rate, eps, p=2.0, rho=1.0, **kwargs):
    """``pi(xi, sigma; d, R, eps, p)``: probability over the codebook that the adversary answers a
    codebook-independent query of norm ``xi`` at level ``sigma`` informatively.

    Shapes broadcast; see :func:`informative_terms` for the arguments and the module docstring
    for the formula.
    """
    return informative_terms(xi, sigma, d, rate, eps, p, rho, **kwargs).prob


# ------------------------------------------------------------------ reference-typical points
def typical_norm_draws(key, d, n):
    """Standard draws ``(g, c)`` of the two-scalar representation: ``g ~ N(0,1)``, ``c ~ chi2_{d-1}``.

    With ``xi^2 = r^2 + 2 sigma r g + sigma^2 (g^2 + c)`` they give ``|x|`` for ``x ~ Q_sigma``
    (equally ``P_sigma``) exactly at any d; shared draws give common random numbers across sigma.
    """
    d = _check_d(d)
    kg, kc = jax.random.split(key)
    ftype = jnp.result_type(float)
    g = jax.random.normal(kg, (n,), ftype)
    c = 2.0 * jax.random.gamma(kc, (d - 1.0) / 2.0, (n,), ftype)
    return g, c


def typical_norm(sigma, g, c, d, rho=1.0):
    """``|x|`` of ``x = y + sigma z``, ``y in S_r``, from the two scalars (broadcasting)."""
    r = rho * _sqrt(d)
    return jnp.sqrt(r * r + 2.0 * sigma * r * g + sigma * sigma * (g * g + c))


def profile(sigma, d, rate, eps, p=2.0, rho=1.0, *, key=None, draws=None, n=1000,
            side="estimate", **kwargs):
    """``pi_bar_d(sigma) = E_{x ~ Q_sigma} pi(|x|, sigma)`` by the two-scalar draws; shape of ``sigma``.

    Pass ``draws=(g, c)`` from :func:`typical_norm_draws` to share them (common random numbers)
    or a ``key`` and ``n``. 1e3 draws give +-0.02. ``side``: ``"estimate"`` (the default
    ``pi``), ``"lower"`` or ``"upper"`` (:func:`informative_sides`; ``log_m`` only).
    """
    if side not in ("estimate", "lower", "upper"):
        raise ValueError(f"Unknown side {side!r}; use 'estimate', 'lower' or 'upper'.")
    if draws is None:
        if key is None:
            raise ValueError("profile needs `key` (or `draws=(g, c)`) to draw reference norms.")
        draws = typical_norm_draws(key, d, n)
    g, c = draws
    sigma = jnp.asarray(sigma, jnp.result_type(float))
    xi = typical_norm(sigma[..., None], g, c, d, rho)
    if side == "estimate":
        probs = informative_probability(xi, sigma[..., None], d, rate, eps, p, rho, **kwargs)
    else:
        sd = informative_sides(xi, sigma[..., None], d, rate, eps, p, rho,
                               log_m=kwargs.get("log_m"))
        probs = sd.lower if side == "lower" else sd.upper
    return jnp.mean(probs, axis=-1)


def leading_order_window(d, rate, eps, p=2.0, rho=1.0):
    """Leading-order edges of section 6 in ``log(sigma/sigma_c)``: ``(lower, upper)`` (host floats).

    ``C - Rbar ~ sqrt(2 V_c K_lo/d) - K_lo/d`` below, ``Rbar - C ~ sqrt(2 V_c K_hi/d) + K_hi/d``
    above, with ``|dC/dlog sigma| = s/(1+s)`` at sigma_c. Used to size search ranges.
    """
    s = math.expm1(2.0 * rate)
    vc = s / (1.0 + 2.0 * s)
    b = 2.0 * math.sqrt(d) * s / rho
    k_lo = p * math.log(2.0 * b / eps) + math.log(2.0)
    k_hi = max(math.log(b / (eps * math.sqrt(1.0 + s))), 1e-3)
    dc = s / (1.0 + s)
    lower = -(math.sqrt(2.0 * vc * k_lo / d) - k_lo / d) / dc
    upper = (math.sqrt(2.0 * vc * k_hi / d) + k_hi / d) / dc
    return lower, upper


def window_edges(d, rate, eps, p=2.0, rho=1.0, *, key, n=1000, grid=64, rounds=4,
                 side="estimate"):
    """Edges of the window ``{sigma : pi_bar_d(sigma) > 1/2}`` in ``log(sigma/sigma_c(Rbar))``.

    ``side`` picks the profile (:func:`profile`): the upper side gives the wider window, the
    lower side the narrower one.

    A log-spaced scan of ``grid`` points around ``sigma_c`` (range from the leading-order edges),
    then ``rounds`` refinements of each bracketing interval by ``grid/2`` points, all with common
    random numbers (one compiled shape). Returns ``(lower, upper)`` as host floats (``nan`` if the
    profile never exceeds 1/2). ``rate`` is a host float.
    """
    d = _check_d(d)
    log_m = effective_log_m_py(d, rate)
    rbar = log_m / d
    sc = float(rho / math.sqrt(math.expm1(2.0 * rbar)))
    lo0, up0 = leading_order_window(d, rbar, float(np.max(eps)), float(np.min(p)), rho)
    span = min(3.0 * max(-lo0, up0, 1e-3), 4.0)
    draws = typical_norm_draws(key, d, n)
    ftype = jnp.result_type(float)
    t1 = guard_threshold(d, log_m)
    prof = _profile_fn(d, n, side)
    args = (draws, jnp.asarray(log_m, ftype), t1, jnp.asarray(eps, ftype), jnp.asarray(p, ftype),
            jnp.asarray(rho, ftype), jnp.asarray(sc, ftype))
    ls = np.linspace(-span, span, grid)
    vals = np.asarray(prof(jnp.asarray(ls), *args))
    inside = np.nonzero(vals > 0.5)[0]
    if inside.size == 0:
        return float("nan"), float("nan")
    i_lo, i_hi = inside[0], inside[-1]
    half = grid // 2
    # brackets (outside, inside) for each edge
    br_lo = (ls[i_lo - 1], ls[i_lo]) if i_lo > 0 else None
    br_hi = (ls[i_hi], ls[i_hi + 1]) if i_hi < grid - 1 else None
    for _ in range(rounds):
        pts = []
        for br in (br_lo, br_hi):
            pts.append(np.linspace(br[0], br[1], half) if br is not None else np.zeros(half))
        pts = np.concatenate(pts)
        v = np.asarray(prof(jnp.asarray(pts), *args)) > 0.5
        if br_lo is not None:
            seg, vin = pts[:half], v[:half]
            j = np.argmax(vin) if vin.any() else half - 1  # first inside point
            br_lo = (seg[max(j - 1, 0)], seg[j])
        if br_hi is not None:
            seg, vin = pts[half:], v[half:]
            out = np.nonzero(~vin)[0]
            j = out[0] if out.size else half - 1  # first outside point
            br_hi = (seg[max(j - 1, 0)], seg[j])
    lower = 0.5 * sum(br_lo) if br_lo is not None else -span
    upper = 0.5 * sum(br_hi) if br_hi is not None else span
    return float(lower), float(upper)


_PROFILE_FNS: dict = {}


def threshold_t1(d, log_m):
    """:func:`~jscore.lowerbound.caps.cap_threshold` through a cached jit (d traced if >= 60)."""
    d = float(d)
    traced = d >= 60.0
    key = ("t1", None if traced else d, jax.config.jax_enable_x64)
    if key not in _PROFILE_FNS:
        _PROFILE_FNS[key] = jax.jit(cap_threshold) if traced else jax.jit(
            lambda lm: cap_threshold(d, lm))
    log_m = jnp.asarray(log_m, jnp.result_type(float))
    if traced:
        return _PROFILE_FNS[key](jnp.asarray(d, log_m.dtype), log_m)
    return _PROFILE_FNS[key](log_m)


def _profile_fn(d, n, side="estimate"):
    """Jitted ``pi_bar`` at ``sc exp(ls)``; traced rate, eps, p, rho (and d when d >= 60)."""
    traced = d >= 60.0
    key = (None if traced else d, jax.config.jax_enable_x64, side)
    if key not in _PROFILE_FNS:

        def f(dd, ls, draws, log_m, t1, eps, p, rho, sc):
            if side != "estimate":
                return profile(sc * jnp.exp(ls), dd, None, eps, p, rho, draws=draws,
                               log_m=log_m, side=side)
            return profile(sc * jnp.exp(ls), dd, None, eps, p, rho, draws=draws, log_m=log_m,
                           t1=t1)

        if traced:
            _PROFILE_FNS[key] = jax.jit(f)
        else:
            _PROFILE_FNS[key] = jax.jit(lambda *a: f(d, *a))
    fn = _PROFILE_FNS[key]
    if traced:
        darr = jnp.asarray(d, jnp.result_type(float))
        return lambda *a: fn(darr, *a)
    return fn


__all__ = [
    "QueryTerms",
    "bessel_terms",
    "informative_terms",
    "informative_probability",
    "QuerySides",
    "informative_sides",
    "informative_bounds",
    "estimate_and_sides",
    "log_vmf_lower_tail_bound",
    "effective_log_m",
    "effective_log_m_py",
    "critical_sigma",
    "capacity",
    "norm_band",
    "typical_norm_draws",
    "typical_norm",
    "profile",
    "leading_order_window",
    "window_edges",
    "threshold_t1",
    "guard_threshold",
]
