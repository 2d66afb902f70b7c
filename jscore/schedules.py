"""Noise-level grids: strictly decreasing 1-D arrays of sigma, ending in 0 by default.

Every function returns ``n`` positive levels ``sigma_0 > ... > sigma_{n-1}`` and, with
``append_zero=True`` (the default, as in EDM and k-diffusion), a final ``0.0``: length ``n + 1``.
Numeric arguments may be traced (e.g. ``vmap`` over a per-chain ``offset``); ``n`` is static.
Formulas: docs/sampler_reference.md §14.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_bool, check_positive_int, check_range, check_real, check_scalar, concrete, is_real

_COSINE_S = 0.008


def _float(x):
    return jnp.asarray(x, dtype=jnp.result_type(float))


def _namespace(*args):
    """``(xp, as_float)``: NumPy in float64 when every argument is concrete, else jax.numpy.

    Concrete grids are computed in float64 and cast once to the default float dtype: more
    accurate, and no small kernels are compiled for every new grid length.
    """
    if all(concrete(a) is not None for a in args):
        return np, (lambda x: np.asarray(x, dtype=np.float64))
    return jnp, _float


#: Longest grid a schedule builds (a grid is host-side float64 first): 10^8 levels, 800 MB.
MAX_LEVELS = 10**8


def _host_quiet(fn):
    """Run a schedule with NumPy's overflow warnings off: :func:`_finish` refuses the result."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return fn(*args, **kwargs)

    return wrapper


def _start(n, append_zero, **scalars):
    """Validate the arguments every schedule shares (``scalars``: real scalars); returns ``n``."""
    n = check_positive_int("n", n, maximum=MAX_LEVELS)
    check_bool("append_zero", append_zero)
    for name, value in scalars.items():
        check_real(name, value)
        check_scalar(name, value)
    return n


def _finish(xp, sig, append_zero, args):
    """Append the final 0 and cast; a concrete grid that over- or underflows the float dtype
    (e.g. sigma_max = 1e39 in float32) is refused, naming the arguments that made it."""
    if append_zero:
        sig = xp.concatenate([sig, xp.zeros((1,), sig.dtype)])
    out = jnp.asarray(sig, dtype=jnp.result_type(float))
    v = concrete(out) if xp is np else None
    if v is not None:
        pos = v[:-1] if append_zero else v
        if not np.all(np.isfinite(v)) or np.any(pos <= 0) or np.any(np.diff(v) >= 0):
            given = ", ".join(f"{k}={a!r}" for k, a in args.items())
            raise ValueError(
                f"These arguments ({given}) give a grid that is not finite, positive and strictly "
                f"decreasing in {out.dtype} (got {v[:3]} ... {v[-3:]}); use a smaller range or "
                "enable jax_enable_x64."
            )
    return out


def _check_min_max(sigma_min, sigma_max):
    check_range("sigma_min", sigma_min, 0.0, lo_open=True)
    check_range("sigma_max", sigma_max, 0.0, lo_open=True)
    smin, smax = concrete(sigma_min), concrete(sigma_max)
    if smin is not None and smax is not None and not np.all(smin < smax):
        raise ValueError(
            f"`sigma_min` ({smin}) must be smaller than `sigma_max` ({smax}); swap them."
        )


@_host_quiet
def karras(n: int, sigma_min=0.002, sigma_max=80.0, rho=7.0, append_zero: bool = True):
    """EDM grid: ``sigma_i = (smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho``."""
    n = _start(n, append_zero, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho)
    _check_min_max(sigma_min, sigma_max)
    check_range("rho", rho, 0.0, lo_open=True)
    xp, f = _namespace(sigma_min, sigma_max, rho)
    smin, smax, rho = f(sigma_min), f(sigma_max), f(rho)
    frac = xp.arange(n, dtype=smin.dtype) / max(n - 1, 1)
    lo, hi = smin ** (1.0 / rho), smax ** (1.0 / rho)
    sig = (hi + frac * (lo - hi)) ** rho
    return _finish(xp, sig, append_zero, dict(n=n, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho))


@_host_quiet
def geometric(n: int, sigma_min, sigma_max, offset=0.0, append_zero: bool = True):
    """Log-uniform grid ``log sigma_i = log smax - (i + offset) * Delta``, ``Delta = log(smax/smin)/(n-1)``.

    ``offset`` in ``[0, 1)`` shifts the whole grid down by a fraction of one log-step; drawing it
    uniformly per chain makes the union of grids cover ``[smin e^-Delta, smax]`` uniformly in log
    sigma while each chain keeps n levels (docs/sampler_reference.md §14).
    """
    n = _start(n, append_zero, sigma_min=sigma_min, sigma_max=sigma_max, offset=offset)
    _check_min_max(sigma_min, sigma_max)
    check_range("offset", offset, 0.0, 1.0, hi_open=True)
    xp, f = _namespace(sigma_min, sigma_max, offset)
    smin, smax, offset = f(sigma_min), f(sigma_max), f(offset)
    delta = xp.log(smax / smin) / max(n - 1, 1)
    i = xp.arange(n, dtype=smin.dtype)
    sig = xp.exp(xp.log(smax) - (i + offset) * delta)
    return _finish(xp, sig, append_zero, dict(n=n, sigma_min=sigma_min, sigma_max=sigma_max))


def vp_sigma(u, beta_min=0.1, beta_max=20.0):
    """VP-linear noise level at VP time u: ``sqrt(expm1(beta_min u + (beta_max-beta_min) u^2 / 2))``."""
    u = _float(u)
    return jnp.sqrt(jnp.expm1(beta_min * u + 0.5 * (beta_max - beta_min) * u * u))


def vp_time(sigma, beta_min=0.1, beta_max=20.0):
    """Inverse of :func:`vp_sigma`."""
    sigma = _float(sigma)
    db = beta_max - beta_min
    return (-beta_min + jnp.sqrt(beta_min**2 + 2.0 * db * jnp.log1p(sigma * sigma))) / db


@_host_quiet
def vp_linear(n: int, beta_min=0.1, beta_max=20.0, t_min=1e-3, append_zero: bool = True):
    """Score-SDE VP-linear grid: VP time ``u_i`` uniform from 1 to ``t_min``, ``sigma = vp_sigma(u)``."""
    n = _start(n, append_zero, beta_min=beta_min, beta_max=beta_max, t_min=t_min)
    check_range("beta_min", beta_min, 0.0, lo_open=True)
    check_range("beta_max", beta_max, 0.0, lo_open=True)
    check_range("t_min", t_min, 0.0, 1.0, lo_open=True, hi_open=True)
    bmin, bmax = concrete(beta_min), concrete(beta_max)
    if bmin is not None and bmax is not None and not np.all(bmax > bmin):
        raise ValueError(f"`beta_max` ({bmax}) must exceed `beta_min` ({bmin}).")
    xp, f = _namespace(beta_min, beta_max, t_min)
    bmin, bmax, t_min = f(beta_min), f(beta_max), f(t_min)
    u = xp.linspace(1.0, t_min, n) if n > 1 else xp.ones((1,), bmin.dtype)
    sig = xp.sqrt(xp.expm1(bmin * u + 0.5 * (bmax - bmin) * u * u))
    return _finish(xp, sig, append_zero, dict(n=n, beta_min=beta_min, beta_max=beta_max, t_min=t_min))


def _cosine_u(sigma, s, xp=jnp):
    c = xp.cos(xp.pi * s / (2.0 * (1.0 + s)))
    return (2.0 * (1.0 + s) / xp.pi) * xp.arccos(c / xp.sqrt(1.0 + sigma * sigma)) - s


def _cosine_sigma(u, s, xp=jnp):
    f0 = xp.cos(xp.pi * s / (2.0 * (1.0 + s))) ** 2
    fu = xp.cos(xp.pi * (u + s) / (2.0 * (1.0 + s))) ** 2
    return xp.sqrt(f0 / fu - 1.0)


@_host_quiet
def cosine(n: int, sigma_min=0.002, sigma_max=80.0, s=_COSINE_S, append_zero: bool = True):
    """Improved-DDPM cosine grid, ``abar(u) = f(u)/f(0)``, ``f(u) = cos^2(pi (u + s) / (2 (1 + s)))``.

    VP time u is uniform on ``[u(sigma_max), u(sigma_min)]`` (sigma -> inf as u -> 1, so sigma_max
    caps it; u(80) = 0.99198).
    """
    n = _start(n, append_zero, sigma_min=sigma_min, sigma_max=sigma_max, s=s)
    _check_min_max(sigma_min, sigma_max)
    check_range("s", s, 0.0, lo_open=True)
    xp, f = _namespace(sigma_min, sigma_max, s)
    smin, smax, s = f(sigma_min), f(sigma_max), f(s)
    u_hi, u_lo = _cosine_u(smax, s, xp), _cosine_u(smin, s, xp)
    frac = xp.arange(n, dtype=smin.dtype) / max(n - 1, 1)
    u = u_hi + frac * (u_lo - u_hi)
    sig = _cosine_sigma(u, s, xp)
    # pin the end points to their exact values (the round trip loses a few ulps)
    first = xp.arange(n) == 0
    last = (xp.arange(n) == n - 1) & (n > 1)
    sig = xp.where(first, smax, xp.where(last, smin, sig))
    return _finish(xp, sig, append_zero, dict(n=n, sigma_min=sigma_min, sigma_max=sigma_max))


@_host_quiet
def ou_uniform(n: int, t_min, t_max, append_zero: bool = True):
    """OU-time-uniform grid: ``t_i`` uniform from ``t_max`` to ``t_min``, ``sigma_i = sqrt(expm1(2 t_i))``."""
    n = _start(n, append_zero, t_min=t_min, t_max=t_max)
    check_range("t_min", t_min, 0.0, lo_open=True)
    check_range("t_max", t_max, 0.0, lo_open=True)
    tmin, tmax = concrete(t_min), concrete(t_max)
    if tmin is not None and tmax is not None and not np.all(tmin < tmax):
        raise ValueError(f"`t_min` ({tmin}) must be smaller than `t_max` ({tmax}).")
    xp, f = _namespace(t_min, t_max)
    t_min, t_max = f(t_min), f(t_max)
    t = xp.linspace(t_max, t_min, n) if n > 1 else t_max[None]
    return _finish(xp, xp.sqrt(xp.expm1(2.0 * t)), append_zero, dict(n=n, t_min=t_min, t_max=t_max))


def check_sigmas(sigmas, name: str = "sigmas"):
    """Validate a grid: 1-D, at least 2 entries, strictly decreasing, non-negative, finite.

    Returns the grid as an array of the default float dtype. Traced grids pass unchecked.
    """
    if not is_real(sigmas):
        raise TypeError(
            f"`{name}` must be a 1-D array of real noise levels, got {sigmas!r} of type "
            f"{type(sigmas).__name__}; build one with js.schedules.karras(n)."
        )
    if not isinstance(sigmas, jax.Array):  # host values: checked in float64 before the cast
        sigmas = np.asarray(sigmas, dtype=np.float64)
        if sigmas.ndim == 1:
            check_range(name, sigmas, 0.0, fix="Noise levels are finite and >= 0.")
    arr = jnp.asarray(sigmas) if isinstance(sigmas, jax.Array) else sigmas
    if arr.ndim != 1:
        raise ValueError(
            f"`{name}` must be a 1-D array of noise levels, got shape {arr.shape}; build one with "
            "js.schedules.karras(n)."
        )
    if arr.shape[0] < 2:
        raise ValueError(
            f"`{name}` needs at least 2 entries (one step), got {arr.shape[0]}; e.g. "
            "js.schedules.karras(n) returns n + 1 levels ending at 0."
        )
    arr = jnp.asarray(arr, dtype=jnp.result_type(float))
    v = concrete(arr)
    if v is not None:
        if not np.all(np.isfinite(v)):
            raise ValueError(f"`{name}` must be finite, got {v}.")
        if np.any(v < 0):
            raise ValueError(f"`{name}` must be non-negative, got min {v.min()}.")
        diffs = np.diff(v)
        if np.any(diffs >= 0):
            j = int(np.argmax(diffs >= 0))
            raise ValueError(
                f"`{name}` must be strictly decreasing (samplers integrate from sigmas[0] down to "
                f"sigmas[-1]), but sigmas[{j}] = {v[j]} <= sigmas[{j + 1}] = {v[j + 1]}; reverse "
                "or sort the grid."
            )
    return arr


__all__ = [
    "karras",
    "geometric",
    "vp_linear",
    "cosine",
    "ou_uniform",
    "vp_sigma",
    "vp_time",
    "check_sigmas",
]
