"""Spherical caps: ``log S_d(t)`` and the typical largest cosine ``t_1`` (docs/construction.md §7.3).

For ``u ~ Unif(S^{d-1})``::

    S_d(t) = P(u_1 >= t) = 1/2 I_{1-t^2}((d-1)/2, 1/2)          (t in [0, 1])
    S_d(t) = 1 - S_d(-t)                                          (t < 0)

Two evaluations of ``log S_d`` are provided and cross-checked where they overlap:

- *incomplete-beta branch* (:func:`log_cap_betainc`): the regularised incomplete beta function
  ``I_x(a, 1/2)``, ``a = (d-1)/2``, ``x = 1 - t^2``, from its continued fraction run to
  convergence, with the symmetry ``I_x(a, b) = 1 - I_{1-x}(b, a)`` on the side where the direct
  fraction converges slowly (near the cap centre, ``t^2 < (b+1)/(a+b+2)``). This is accurate for
  every ``t``; used where ``a (-log x) < 600`` (``S_d > 1e-260``).
- *continued-fraction branch* (:func:`log_cap_cf`): the same fraction with a fixed 40 terms in
  log space, ``log S_d = log 1/2 + a log x + 1/2 log(1-x) - log a - log B(a, 1/2) + log CF``.
  It converges fast for tiny caps (``x`` far below ``(a+1)/(a+3/2)``), where the direct
  ``betainc`` would underflow.

Every piece is formed without cancellation: ``log x = log1p(-t^2)``, ``log(1-x) = 2 log t`` and
``log B(a, 1/2)`` uses Stirling's series for ``log Gamma(a + 1/2) - log Gamma(a)`` at large ``a``
(the plain ``lgamma`` difference loses ~1e-9 absolute at a = 5e5). Use float64
(``jax_enable_x64``): near an edge of the adversary's window ``log M`` and ``log S_d`` cancel
to O(1), and float32 then gives O(0.1) errors in ``log N`` at d = 1e6.

``d`` is a static Python number (``d >= 2``); ``t`` is any float array (elementwise).
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp

CF_TERMS = 40
"""Terms of the fixed log-space Lentz fraction of the continued-fraction branch."""

BRANCH_SWITCH = 600.0
"""Use the incomplete-beta branch where ``a (-log x) < BRANCH_SWITCH`` (there ``S_d > 1e-260``)."""

_MAX_ITER = 20000
_TINY = 1e-300


def _check_d(d):
    """A static dimension (Python number >= 2) as float, or a traced/array dimension as is.

    Array dimensions are allowed so one compiled function serves a whole dimension sweep (the
    caller guarantees d >= 2; the Bessel layer additionally needs d >= 60 when d is traced).
    """
    if isinstance(d, (jax.Array, jax.core.Tracer)) and not isinstance(d, bool):
        return jnp.asarray(d, jnp.result_type(float))
    if isinstance(d, bool) or not isinstance(d, numbers.Real):
        raise TypeError(f"`d` must be a number (the dimension), got {type(d).__name__}.")
    d = float(d)
    if not (d >= 2 and math.isfinite(d)):
        raise ValueError(f"`d` must be a finite number >= 2 for a spherical cap, got {d}.")
    return d


def _log(v):
    return math.log(v) if isinstance(v, float) else jnp.log(v)


def _as_float(t):
    t = jnp.asarray(t)
    if not jnp.issubdtype(t.dtype, jnp.floating):
        t = t.astype(jnp.result_type(float))
    return t


def log_beta_half(a):
    """``log B(a, 1/2) = log Gamma(a) + log Gamma(1/2) - log Gamma(a + 1/2)`` for ``a > 0``.

    For ``a >= 30`` the difference ``log Gamma(a + 1/2) - log Gamma(a)`` comes from Stirling's
    series (absolute error < 1e-16), avoiding the O(a log a) cancellation of two ``lgamma``.
    ``a`` is a Python float (host math) or an array (jnp, elementwise).
    """
    half_log_pi = 0.5 * math.log(math.pi)

    def phi(z):  # Stirling remainder of log Gamma(z)
        iz2 = 1.0 / (z * z)
        return (1.0 / z) * (
            1.0 / 12.0 - iz2 * (1.0 / 360.0 - iz2 * (1.0 / 1260.0 - iz2 * (1.0 / 1680.0)))
        )

    if isinstance(a, (int, float)):
        a = float(a)
        if a < 30.0:
            return math.lgamma(a) + half_log_pi - math.lgamma(a + 0.5)
        diff = (a * math.log1p(0.5 / a) - 0.5) + 0.5 * math.log(a) + (phi(a + 0.5) - phi(a))
        return half_log_pi - diff
    a = jnp.asarray(a)
    big = a >= 30.0
    ab = jnp.where(big, a, 30.0)
    diff = (ab * jnp.log1p(0.5 / ab) - 0.5) + 0.5 * jnp.log(ab) + (phi(ab + 0.5) - phi(ab))
    asm = jnp.where(big, 1.0, a)
    small = jax.scipy.special.gammaln(asm) - jax.scipy.special.gammaln(asm + 0.5)
    return half_log_pi + jnp.where(big, -diff, small)


def _lentz_step(c, dd, aa):
    dd = 1.0 + aa * dd
    dd = jnp.where(jnp.abs(dd) < _TINY, _TINY, dd)
    c = 1.0 + aa / c
    c = jnp.where(jnp.abs(c) < _TINY, _TINY, c)
    dd = 1.0 / dd
    return c, dd, c * dd


def _betacf_log(a, b, x, num_terms=None):
    """``log`` of the incomplete-beta continued fraction ``I_x(a,b) = pref * CF / a`` (NR betacf).

    ``a, b`` are static floats; ``x`` an array. ``num_terms=None`` iterates to convergence (a
    ``while_loop``); an int runs exactly that many terms. Returns ``log CF`` (CF includes the
    leading ``1/(1 - (a+b)x/(a+1))``).
    """
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = jnp.ones_like(x)
    dd = 1.0 - qab * x / qap
    dd = jnp.where(jnp.abs(dd) < _TINY, _TINY, dd)
    dd = 1.0 / dd
    logh = jnp.log(dd)
    eps = jnp.finfo(x.dtype).eps

    def term(m, c, dd, logh):
        m = jnp.asarray(m, x.dtype)
        m2 = 2.0 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        c, dd, de1 = _lentz_step(c, dd, aa)
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        c, dd, de2 = _lentz_step(c, dd, aa)
        de = de1 * de2
        return c, dd, logh + jnp.log(de), de

    if num_terms is not None:

        def body(m, carry):
            c, dd, logh = carry
            c, dd, logh, _ = term(m, c, dd, logh)
            return c, dd, logh

        _, _, logh = jax.lax.fori_loop(1, num_terms + 1, body, (c, dd, logh))
        return logh

    def cond(carry):
        m, _, _, _, done = carry
        return (m <= _MAX_ITER) & ~jnp.all(done)

    def body(carry):
        m, c, dd, logh, done = carry
        c2, dd2, logh2, de = term(m, c, dd, logh)
        upd = ~done
        c = jnp.where(upd, c2, c)
        dd = jnp.where(upd, dd2, dd)
        logh = jnp.where(upd, logh2, logh)
        done = done | (jnp.abs(de - 1.0) < 2.0 * eps) | ~jnp.isfinite(de)  # NaN input: stop
        return m + 1, c, dd, logh, done

    init = (jnp.asarray(1, jnp.int32), c, dd, logh, jnp.zeros(x.shape, bool))
    _, _, _, logh, _ = jax.lax.while_loop(cond, body, init)
    return logh


def _log_cap_pos_betainc(t, d):
    """log S_d(t) for t in (0, 1) by the converged fraction with symmetry."""
    a, b = (d - 1.0) / 2.0, 0.5
    lbeta = log_beta_half(a)
    y = t * t
    x = (1.0 - t) * (1.0 + t)
    logx = jnp.log1p(-t) + jnp.log1p(t)
    logy = 2.0 * jnp.log(t)
    direct = y > (b + 1.0) / (a + b + 2.0)  # x < (a+1)/(a+b+2): fraction in x converges fast
    x_d = jnp.where(direct, x, 0.5 * (b + 1.0) / (a + b + 2.0))
    y_s = jnp.where(direct, 0.5 * (b + 1.0) / (a + b + 2.0), y)
    # I_x(a, b) = x^a y^b / (a B) * CF(a, b, x)
    log_i_direct = a * logx + b * logy - _log(a) - lbeta + _betacf_log(a, b, x_d)
    # I_y(b, a) = y^b x^a / (b B) * CF(b, a, y);  I_x(a, b) = 1 - I_y(b, a)
    log_j = b * logy + a * logx - math.log(b) - lbeta + _betacf_log(b, a, y_s)
    log_i_sym = jnp.log1p(-jnp.exp(jnp.minimum(log_j, 0.0)))
    return math.log(0.5) + jnp.where(direct, log_i_direct, log_i_sym)


def _log_cap_pos_cf(t, d, num_terms=CF_TERMS):
    """log S_d(t) for t in (0, 1) by the fixed-length log-space fraction (tiny caps)."""
    a, b = (d - 1.0) / 2.0, 0.5
    x = (1.0 - t) * (1.0 + t)
    logx = jnp.log1p(-t) + jnp.log1p(t)
    return (
        math.log(0.5)
        + a * logx
        + b * 2.0 * jnp.log(t)
        - _log(a)
        - log_beta_half(a)
        + _betacf_log(a, b, x, num_terms=num_terms)
    )


def _extend(t, d, pos_fn):
    """Apply ``pos_fn`` on (0, 1) and extend to all real t (S = 1/2 at 0, symmetry for t < 0)."""
    t = _as_float(t)
    at = jnp.clip(jnp.abs(t), 1e-300, 1.0 - jnp.finfo(t.dtype).epsneg)
    lpos = pos_fn(at, d)
    lneg = jnp.log1p(-jnp.exp(lpos))  # log S_d(-|t|) = log(1 - S_d(|t|))
    out = jnp.where(t > 0, lpos, lneg)
    out = jnp.where(t == 0, math.log(0.5), out)
    out = jnp.where(t >= 1.0, -jnp.inf, out)
    return jnp.where(t <= -1.0, 0.0, out)


def log_cap_betainc(t, d):
    """``log S_d(t)`` by the incomplete-beta branch alone (any ``t``; slow for tiny caps at large d)."""
    d = _check_d(d)
    return _extend(t, d, _log_cap_pos_betainc)


def log_cap_cf(t, d, num_terms: int = CF_TERMS):
    """``log S_d(t)`` by the fixed-length continued-fraction branch alone (accurate for tiny caps)."""
    d = _check_d(d)
    return _extend(t, d, lambda at, d: _log_cap_pos_cf(at, d, num_terms))


def log_cap(t, d):
    """``log S_d(t) = log P_{u ~ Unif(S^{d-1})}(u_1 >= t)``, elementwise in ``t``; ``d`` static.

    Incomplete-beta branch where ``a (-log(1 - t^2)) < 600`` (``a = (d-1)/2``), continued-fraction
    branch beyond (tiny caps). ``log S_d(t) = -inf`` for ``t >= 1`` and ``0`` for ``t <= -1``.
    Float64 relative accuracy ~1e-14 for d <= 1e3 (tests compare with mpmath).
    """
    d = _check_d(d)
    a = (d - 1.0) / 2.0

    def pos(at, d):
        big = -a * (jnp.log1p(-at) + jnp.log1p(at)) >= BRANCH_SWITCH
        # keep each branch's input inside its domain so the unused one stays finite and cheap
        t_cf = jnp.where(big, at, jnp.sqrt(-jnp.expm1(-BRANCH_SWITCH / a)))
        t_bi = at  # tiny caps converge in a few terms, so the unused branch stays cheap
        return jnp.where(big, _log_cap_pos_cf(t_cf, d), _log_cap_pos_betainc(t_bi, d))

    return _extend(t, d, pos)


def cap_threshold(d, log_m, iters: int = 64):
    """``t_1`` solving ``log S_d(t_1) = -log M`` (typical largest cosine of M random directions).

    Bisection on [0, 1] (``log S_d`` is decreasing); ``log_m`` may be an array (elementwise).
    Returns 0 where ``log M <= log 2``.
    """
    d = _check_d(d)
    log_m = _as_float(log_m)
    lo = jnp.zeros_like(log_m)
    hi = jnp.ones_like(log_m)

    def body(_, carry):
        lo, hi = carry
        mid = 0.5 * (lo + hi)
        above = log_cap(mid, d) > -log_m  # cap still too large: move right
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    lo, hi = jax.lax.fori_loop(0, iters, body, (lo, hi))
    return 0.5 * (lo + hi)


__all__ = [
    "CF_TERMS",
    "BRANCH_SWITCH",
    "log_cap",
    "log_cap_betainc",
    "log_cap_cf",
    "cap_threshold",
    "log_beta_half",
]
