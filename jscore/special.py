"""Special functions: stable log-mgf and mean cosine of the uniform sphere (docs/construction.md §3.3).

For ``u ~ Unif(S^{d-1})`` and ``kappa >= 0``::

    Lambda_d(kappa) = log E exp(kappa u_1) = log Gamma(d/2) + nu log(2/kappa) + log I_nu(kappa)
    A_d(kappa)      = Lambda_d'(kappa)    = I_{d/2}(kappa) / I_{d/2-1}(kappa),      nu = d/2 - 1

``A_d`` is the mean cosine of the von Mises-Fisher law vMF(kappa) on S^{d-1}. ``I_nu`` is never
formed (it over/underflows long before d = 1e6).

- Regime 1, ``nu >= NU0 = 60``: the uniform (Debye) expansion of ``I_nu(nu z)`` combined with
  Stirling's series for ``log Gamma(nu + 1)``; every term is small or positive (no O(d log d)
  cancellation). Nine Debye polynomials ``u_1..u_9`` (the spec names six; nine
  bring the truncation error at nu = 60 from ~2e-14 down to ~4e-17) (DLMF 10.41.10), generated exactly in rational
  arithmetic at import time.
- Regime 2, ``nu < NU0``: shift up by ``n = ceil(NU0 - nu)`` orders (static in ``d``), evaluate
  Regime 1 there, then run the stable backward recurrence of the minimal solution::

      Lambda_m = Lambda_{m+2} + log1p(kappa A_{m+2} / m),     A_m = kappa / (m + kappa A_{m+2}).

Accuracy in float64 (tested against a 40-digit series reference): absolute error of Lambda_d
<= ~1e-15 max(1, |Lambda_d|) and relative error of A_d <= ~1e-14 for d in [1, 1e6]. The same code
runs in float32 (the dtype follows ``kappa``) without overflow or underflow for any finite
``kappa >= 0``: large ``z = kappa/nu`` is handled with ``hypot`` and no squared quantity is formed.

``d`` is a static Python number (the dimension, ``d >= 1``); ``kappa`` is any array (elementwise).
Negative ``kappa`` is treated through symmetry: ``Lambda_d`` is even and ``A_d`` odd.
"""

from __future__ import annotations

import functools
import math
import numbers
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np

NU0 = 60.0
"""Switch order between the Debye expansion (nu >= NU0) and shift-and-recur (nu < NU0)."""

_NUM_DEBYE = 9


# ---------------------------------------------------------------- Debye polynomials (exact)
def _debye_polynomials(k_max: int) -> list[dict[int, Fraction]]:
    """u_0..u_{k_max} as {power: coefficient} with exact rational coefficients.

    u_{k+1}(t) = 1/2 t^2 (1 - t^2) u_k'(t) + 1/8 int_0^t (1 - 5 tau^2) u_k(tau) dtau.
    """
    polys = [{0: Fraction(1)}]
    for _ in range(k_max):
        u = polys[-1]
        new: dict[int, Fraction] = {}

        def add(p, c):
            new[p] = new.get(p, Fraction(0)) + c

        for p, c in u.items():
            if p > 0:  # 1/2 t^2 (1 - t^2) * p c t^{p-1}
                add(p + 1, Fraction(1, 2) * p * c)
                add(p + 3, -Fraction(1, 2) * p * c)
            # 1/8 int_0^t (tau^p - 5 tau^{p+2}) c
            add(p + 1, Fraction(1, 8) * c / (p + 1))
            add(p + 3, -Fraction(5, 8) * c / (p + 3))
        polys.append({p: c for p, c in new.items() if c != 0})
    return polys


DEBYE_POLYNOMIALS = _debye_polynomials(_NUM_DEBYE)
"""Exact rational Debye polynomials ``u_0..u_9`` as ``{power of t: Fraction}``."""


def _dense(poly: dict[int, Fraction]) -> list[float]:
    deg = max(poly)
    return [float(poly.get(p, 0)) for p in range(deg + 1)]


_U = [_dense(DEBYE_POLYNOMIALS[k]) for k in range(1, _NUM_DEBYE + 1)]
_DU = [[p * c for p, c in enumerate(coeffs)][1:] for coeffs in _U]


def _horner(coeffs: list[float], t):
    acc = jnp.zeros_like(t) + coeffs[-1]
    for c in reversed(coeffs[:-1]):
        acc = acc * t + c
    return acc


def _series_in_inv_nu(polys, t, inv_nu: float):
    """sum_k poly_k(t) / nu^k for k = 1..len(polys), Horner in 1/nu."""
    acc = jnp.zeros_like(t)
    for coeffs in reversed(polys):
        acc = (acc + _horner(coeffs, t)) * inv_nu
    return acc


def _combined(polys, inv_nu: float) -> list[float]:
    """Coefficients in t of sum_k poly_k(t) / nu^k for a static order (float64 host arithmetic)."""
    deg = max(len(c) for c in polys)
    out = np.zeros(deg)
    for k, coeffs in enumerate(polys, start=1):
        out[: len(coeffs)] += np.asarray(coeffs) * inv_nu**k
    return [float(c) for c in out]


# ---------------------------------------------------------------- the two regimes
def _check_dim(d) -> float:
    if isinstance(d, bool) or not isinstance(d, numbers.Real) or isinstance(d, jax.Array):
        raise TypeError(
            f"`d` must be a static Python number (the sphere's dimension), got {type(d).__name__}; "
            "it sets the static recurrence length and cannot be traced."
        )
    d = float(d)
    if not d >= 1 or not math.isfinite(d):
        raise ValueError(f"`d` must be a finite number >= 1, got {d}.")
    return d


def _regime1(kappa, nu: float):
    """(Lambda, A) at order nu >= NU0 by the uniform expansion (kappa >= 0)."""
    z = kappa / nu
    s = jnp.hypot(jnp.ones_like(z), z)  # sqrt(1 + z^2), no overflow
    t = 1.0 / s
    zr = z / (1.0 + s)  # z / (1 + sqrt(1 + z^2)) in [0, 1)
    a = z * zr  # sqrt(1 + z^2) - 1 without cancellation
    inv = 1.0 / nu
    if isinstance(nu, (int, float)):  # static order: one polynomial in t (fast to compile)
        U = _horner(_combined(_U, inv), t)
        dU = _horner(_combined(_DU, inv), t)
    else:  # traced order
        U = _series_in_inv_nu(_U, t, inv)
        dU = _series_in_inv_nu(_DU, t, inv)
    stirling = inv / 12.0 - inv**3 / 360.0 + inv**5 / 1260.0 - inv**7 / 1680.0
    lam = nu * (a - jnp.log1p(0.5 * a)) - 0.5 * jnp.log(s) + jnp.log1p(U) + stirling
    corr = t * t * inv * (0.5 + t * dU / (1.0 + U))  # A = z (1/(1+s) - corr)
    # small z: factor z out so no intermediate is subnormal (XLA flushes them to zero);
    # large z: 1/(1+s) would underflow, so keep z/(1+s) and z t (<= 1) separate.
    A_small = z * (1.0 / (1.0 + s) - corr)
    A_large = zr - (z * t) * (t * inv * (0.5 + t * dU / (1.0 + U)))
    A = jnp.where(z < 1.0, A_small, A_large)
    return lam, jnp.clip(A, 0.0, 1.0)


def _shift(d: float) -> int:
    nu = d / 2.0 - 1.0
    return max(0, math.ceil(NU0 - nu))


def log_bessel_mgf_and_ratio(kappa, d):
    """``(Lambda_d(kappa), A_d(kappa))`` in one pass; shapes follow ``kappa``.

    ``Lambda_d(k) = log E_{u~Unif(S^{d-1})} exp(k u_1)`` and ``A_d = Lambda_d' = I_{d/2}/I_{d/2-1}``.
    ``d`` is a static number >= 1; the dtype follows ``kappa`` (float32 unless x64 is on).
    """
    d = _check_dim(d)
    kappa = jnp.asarray(kappa)
    if not jnp.issubdtype(kappa.dtype, jnp.floating):
        kappa = kappa.astype(jnp.result_type(float))
    return _lam_and_ratio(kappa, d)


@functools.partial(jax.jit, static_argnums=1)
def _lam_and_ratio(kappa, d: float):
    sign = jnp.where(kappa < 0, -1.0, 1.0).astype(kappa.dtype)
    k = jnp.abs(kappa)
    n = _shift(d)
    nu_top = d / 2.0 - 1.0 + n
    lam, A = _regime1(k, nu_top)
    if n > 0:
        m_top = d + 2.0 * n  # dimension whose (Lambda, A) we hold

        def body(i, carry):
            inc, A = carry
            m = jnp.asarray(m_top, k.dtype) - 2.0 * (i + 1).astype(k.dtype)
            kA = k * A
            return inc + jnp.log1p(kA / m), k / (m + kA)

        # sum the (small) increments separately, then add once: one rounding at |Lambda|
        inc, A = jax.lax.fori_loop(0, n, body, (jnp.zeros_like(lam), A))
        lam = lam + inc
    return lam, sign * jnp.clip(A, 0.0, 1.0)


def log_bessel_mgf(kappa, d):
    """``Lambda_d(kappa) = log E_{u~Unif(S^{d-1})} exp(kappa u_1)`` (even in kappa; 0 at 0).

    Equals ``log Gamma(d/2) + (d/2-1) log(2/kappa) + log I_{d/2-1}(kappa)``, evaluated without
    forming the Bessel function (see module docstring). ``d``: static number >= 1.
    """
    return log_bessel_mgf_and_ratio(kappa, d)[0]


def bessel_ratio(kappa, d):
    """``A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa) = Lambda_d'(kappa)`` in [0, 1).

    The mean cosine of vMF(kappa) on S^{d-1}; ``A_d(kappa) ~ kappa/d`` as kappa -> 0 and
    ``1 - (d-1)/(2 kappa)`` as kappa -> inf. ``d``: static number >= 1.
    """
    return log_bessel_mgf_and_ratio(kappa, d)[1]


def bessel_ratio_derivative(kappa, d):
    """``A_d'(kappa) = 1 - A_d^2 - (d-1) A_d / kappa`` (``= 1/d`` at kappa = 0).

    ``kappa^2 A_d'(kappa)`` is the variance of ``kappa T`` for T the vMF(kappa) cosine. Relative
    accuracy ~ d * machine epsilon (the three terms cancel to O(1/d) at small kappa).
    """
    d = _check_dim(d)
    kappa = jnp.asarray(kappa)
    A = bessel_ratio(kappa, d)
    k = jnp.abs(kappa)
    tiny = jnp.finfo(A.dtype).tiny
    safe = jnp.maximum(k, tiny)
    # At kappa -> 0, A/kappa -> 1/d; use that limit below the float resolution of kappa.
    ratio = jnp.where(k > 0, jnp.abs(A) / safe, 1.0 / d)
    return 1.0 - A * A - (d - 1.0) * ratio


def debye_polynomial(k: int, t):
    """Evaluate the Debye polynomial ``u_k(t)`` (k = 0..9) in the dtype of ``t``."""
    if not 0 <= k <= _NUM_DEBYE:
        raise ValueError(f"`k` must be in [0, {_NUM_DEBYE}], got {k}.")
    t = jnp.asarray(t)
    if k == 0:
        return jnp.ones_like(t)
    return _horner(_U[k - 1], t)


def log_bessel_mgf_np_reference(kappa: float, d: float, digits: int = 40):
    """High-precision ``(Lambda_d, A_d)`` for testing, from the positive series (slow, exact).

    ``E exp(kappa u_1) = 0F1(; nu+1; kappa^2/4) = sum_k (kappa^2/4)^k / (k! (nu+1)_k)`` and
    ``A_d = (kappa/d) 0F1(; nu+2; kappa^2/4) / 0F1(; nu+1; kappa^2/4)``. All terms are positive, so
    summing in ``decimal`` at ``digits`` significant digits has no cancellation. Cost is about
    ``kappa/2 + 10 sqrt(kappa)`` terms; keep ``kappa`` below ~1e6 in tests.
    """
    import decimal

    ctx = decimal.Context(prec=digits, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
    D = ctx.create_decimal
    kap = D(repr(float(kappa)))
    q = ctx.divide(ctx.multiply(kap, kap), D(4))
    nu = ctx.subtract(ctx.divide(D(repr(float(d))), D(2)), D(1))
    one = D(1)

    def f01(b):
        total = one
        term = one
        k = 0
        while True:
            k += 1
            term = ctx.divide(ctx.multiply(term, q), ctx.multiply(D(k), ctx.add(b, D(k - 1))))
            total = ctx.add(total, term)
            # past the peak and negligible
            if term < ctx.multiply(total, D("1e-45")) and ctx.multiply(D(k), ctx.add(b, D(k))) > q:
                return total

    f1 = f01(ctx.add(nu, one))
    f2 = f01(ctx.add(nu, D(2)))
    lam = float(f1.ln(ctx))
    A = float(ctx.multiply(ctx.divide(kap, D(repr(float(d)))), ctx.divide(f2, f1)))
    return lam, A


__all__ = [
    "NU0",
    "DEBYE_POLYNOMIALS",
    "log_bessel_mgf",
    "bessel_ratio",
    "log_bessel_mgf_and_ratio",
    "bessel_ratio_derivative",
    "debye_polynomial",
    "log_bessel_mgf_np_reference",
]
