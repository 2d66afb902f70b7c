"""Score oracles with a controlled error: ``S(x, sigma) = inner(x, sigma) + eps(sigma) u(x, sigma)``.

Size convention. The error ``e = S - s`` of an oracle at level sigma is measured in
``L^p(p_sigma)`` with the Euclidean norm on R^d:

    ||e||_{p, sigma} = ( E_{x ~ p_sigma} E_noise |e(x, sigma)|^p )^{1/p},   1 <= p < inf,

where ``E_noise`` averages over the oracle's own randomness (gaussian kind). Every kind below
builds a *unit* error field ``u`` with ``||u||_{p, sigma} = 1`` and answers ``inner + eps(sigma) u``,
so the added error has L^p(p_sigma) size exactly ``eps(sigma)`` (by construction or, where no
closed form exists, by a Monte-Carlo calibration done once at construction):

- ``"gaussian"``: fresh ``u = z / m_p(d)`` per query, ``z ~ N(0, I_d)``,
  ``m_p(d) = (E chi_d^p)^{1/p}`` with ``log E chi_d^p = (p/2) log 2 + lgamma((d+p)/2) - lgamma(d/2)``
  (computed in log space, traced in ``p``). Exact by construction for every ``p``. ``z`` comes from
  the oracle's own key stream: the state carries a key and a per-chain query counter, and query k
  uses ``fold_in(key, k)``, so the sampler's noise is unaffected. Uncharged (masked) calls do not
  advance the counter.
- ``"bias"``: ``u = v(sigma)``, a fixed random unit vector per noise level, drawn from the key
  stream folded with the bits of ``sigma`` (so every query at one level gets the same direction).
  ``|u| = 1`` pointwise: exact for every ``p``. By default the directions come from each chain's
  oracle stream; pass ``key=`` to share one set of directions across all chains (a systematic bias).
- ``"relative"``: ``u = s(x, sigma) / ||s||_{p, sigma}``, proportional to the true score ``s`` of
  ``target`` (default: the target of an ``Exact`` inner oracle). The norm is closed form for an
  isotropic :class:`~jscore.targets.Gaussian` (``m_p(d) / sqrt(var + sigma^2)``, exact, traced in
  ``p``); for other targets it is estimated once by Monte Carlo on a log-sigma grid (common random
  numbers, ``num_calibration`` samples per level) and interpolated linearly in log sigma, with
  linear extrapolation in log-log beyond the grid. Levels given in ``sigmas=`` (and
  ``calibration_sigmas=``) are grid points, so they are calibrated to Monte-Carlo accuracy only.
- a callable ``error_fn(x, sigma, key) -> (d,)`` (``key``: a fresh per-query key from the oracle
  stream). Contract: ``error_fn`` is a unit field, ``||error_fn||_{p, sigma} = 1`` at every sigma;
  the oracle then answers ``inner + eps(sigma) * error_fn(x, sigma, key)``. If ``target=`` is
  passed, the function is instead normalised by its Monte-Carlo calibrated L^p(p_sigma) norm (as
  for ``"relative"``), so any error shape is scaled to size ``eps``.

``eps`` is a scalar, a per-level array (with the grid ``sigmas=`` it refers to; off-grid queries
interpolate linearly in log sigma and clamp outside the grid) or a function ``eps(sigma)``. Array
values are array fields: sweeping them (or ``p``) never retraces. The MC calibration table is
built for the ``p`` given at construction: build a new ``Noisy`` to change ``p`` (that does not
retrace either), rather than editing ``p`` with ``eqx.tree_at``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln
from jaxtyping import Array, Float, Int

from .._checks import check_positive_int, check_range, check_real, concrete
from ..targets.base import AbstractTarget
from ..targets.gaussian import Gaussian
from .base import AbstractOracle, flat_call
from .exact import Exact

_KINDS = ("gaussian", "bias", "relative")
_NOISY_TAG = 0x4E6F6973  # "Nois": the Noisy oracle's own sub-stream of the chain's oracle key
_CALIB_TAG = 0x43616C69  # "Cali"


def _param(x):
    return jnp.asarray(x, dtype=jnp.result_type(float))


def _stirling_tail(z):
    # lgamma(z) - [(z - 1/2) log z - z + log(2 pi)/2]; error < 1e-10 for z >= 10
    r = 1.0 / z
    r2 = r * r
    return r * (1.0 / 12.0 - r2 * (1.0 / 360.0 - r2 / 1260.0))


def _lgamma_diff(a, h):
    """``lgamma(a + h) - lgamma(a)`` for ``a > 0``, ``h >= 0``, accurate for large ``a`` (no cancellation)."""
    big = a >= 10.0
    ab = jnp.where(big, a, 10.0)
    stirling = (ab - 0.5) * jnp.log1p(h / ab) + h * jnp.log(ab + h) - h + (
        _stirling_tail(ab + h) - _stirling_tail(ab)
    )
    direct = gammaln(a + h) - gammaln(a)
    return jnp.where(big, stirling, direct)


def chi_log_moment(d, p):
    """``log E chi_d^p = (p/2) log 2 + lgamma((d+p)/2) - lgamma(d/2)``, i.e. ``log E|z|^p``, z ~ N(0, I_d).

    The lgamma difference uses a Stirling expansion for ``d >= 20``, so it stays accurate in
    float32 at large d (a plain difference of two lgamma values loses ~``eps * d log d``).
    """
    d = jnp.asarray(d, jnp.result_type(float))
    p = jnp.asarray(p, jnp.result_type(float))
    return 0.5 * p * math.log(2.0) + _lgamma_diff(0.5 * d, 0.5 * p)


def chi_norm(d, p):
    """``m_p(d) = (E|z|^p)^{1/p}`` for ``z ~ N(0, I_d)``: the L^p norm of a standard normal vector."""
    return jnp.exp(chi_log_moment(d, p) / jnp.asarray(p, jnp.result_type(float)))


def _fold_sigma(key, sigma):
    """Fold the exact bits of the float ``sigma`` into ``key`` (one key per distinct level)."""
    sigma = jnp.asarray(sigma)
    if sigma.dtype == jnp.float64:
        words = jax.lax.bitcast_convert_type(sigma, jnp.uint32)  # (2,)
        return jax.random.fold_in(jax.random.fold_in(key, words[0]), words[1])
    bits = jax.lax.bitcast_convert_type(sigma.astype(jnp.float32), jnp.uint32)
    return jax.random.fold_in(key, bits)


def _interp_extrap(x, xp, fp):
    """Piecewise-linear interpolation with linear extrapolation from the end segments."""
    if xp.shape[0] == 1:
        return fp[0] + jnp.zeros_like(x)
    i = jnp.clip(jnp.searchsorted(xp, x, side="right") - 1, 0, xp.shape[0] - 2)
    x0, x1, f0, f1 = xp[i], xp[i + 1], fp[i], fp[i + 1]
    return f0 + (x - x0) * (f1 - f0) / (x1 - x0)


class NoisyState(eqx.Module):
    """Per-chain state: the inner oracle's state, the own key stream and the query counter."""

    inner: Any
    key: Any
    count: Int[Array, ""]


def _default_calibration_sigmas():
    return np.logspace(-4.0, 4.0, 97)


def _resolve_kind(kind):
    """``(kind name, error_fn)``: a named kind (``error_fn`` None) or ``"custom"`` with the callable."""
    if callable(kind) and not isinstance(kind, str):
        return "custom", kind
    if isinstance(kind, str) and kind in _KINDS:
        return kind, None
    raise ValueError(
        f"Unknown `kind`={kind!r}; choose one of 'gaussian', 'bias', 'relative' or pass a "
        "callable error_fn(x, sigma, key) -> (d,)."
    )


def _check_p(p):
    """``p`` as a scalar array parameter in ``[1, inf)``."""
    check_real("p", p)
    check_range("p", np.asarray(p, np.float64), 1.0, fix="Use 1 <= p < inf.")
    p = _param(p)
    if p.shape != ():
        raise ValueError(f"`p` must be a scalar, got shape {p.shape}.")
    check_range("p", p, 1.0, math.inf, hi_open=True, fix="Use 1 <= p < inf.")
    return p


def _resolve_eps(eps, sigmas):
    """``(eps, eps_fn, log_levels)``: a callable ``eps(sigma)`` (``eps`` None), a scalar, or
    per-level values sorted by level with the ascending ``log`` of the positive ``sigmas``."""
    if callable(eps):
        if sigmas is not None:
            raise ValueError("Pass either a callable `eps(sigma)` or per-level `eps` with `sigmas`, not both.")
        return None, eps, None
    check_real("eps", eps, fix="Pass a number >= 0, a per-level array, or a callable eps(sigma).")
    check_range("eps", np.asarray(eps, np.float64), 0.0, fix="The error size eps must be >= 0 and finite.")
    e = _param(eps)
    check_range("eps", e, 0.0, math.inf, hi_open=True, fix="The error size eps must be >= 0 and finite.")
    if e.ndim == 0:
        if sigmas is not None:
            raise ValueError("`sigmas` is only used with a per-level `eps` array; got a scalar eps.")
        return e, None, None
    if e.ndim != 1:
        raise ValueError(f"`eps` must be a scalar or a 1-D per-level array, got shape {e.shape}.")
    if sigmas is None:
        raise ValueError(
            f"A per-level `eps` of shape {e.shape} needs the grid it refers to: pass "
            "`sigmas=` (e.g. the sampler's grid)."
        )
    s = concrete(sigmas)
    if s is None:
        raise ValueError("`sigmas` for a per-level eps must be concrete (not traced).")
    s = np.asarray(s, np.float64)
    if s.ndim != 1 or not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError(f"`sigmas` must be a 1-D array of finite levels >= 0, got {s}.")
    pos = s > 0
    if e.shape[0] == s.shape[0]:
        e = e[np.nonzero(pos)[0]]
    elif e.shape[0] != int(pos.sum()):
        raise ValueError(
            f"`eps` has {e.shape[0]} entries but `sigmas` has {s.shape[0]} levels "
            f"({int(pos.sum())} positive); give one eps per level."
        )
    lv = s[pos]
    if lv.size == 0:
        raise ValueError("`sigmas` has no positive level.")
    if len(np.unique(lv)) != lv.size:
        raise ValueError(f"`sigmas` for a per-level eps must be distinct, got {lv}.")
    order = np.argsort(lv)
    return e[order], None, _param(np.log(lv[order]))


def _resolve_target(kind, target, inner):
    """The target of the relative kind (default: an ``Exact`` inner oracle's) or of a custom
    kind's calibration; checked against the inner oracle's dimension."""
    if target is not None and not isinstance(target, AbstractTarget):
        raise TypeError(f"`target` must be a jscore target, got {type(target).__name__}.")
    if kind == "relative" and target is None:
        if isinstance(inner, Exact):
            target = inner.target
        else:
            raise ValueError(
                "kind='relative' needs the true score: pass `target=` (or wrap an Exact oracle)."
            )
    if target is not None and inner.dim is not None and inner.dim != target.dim:
        raise ValueError(
            f"`target` has dim {target.dim} but the inner oracle answers in dim {inner.dim}."
        )
    return target


def _calibration(kind, error_fn, target, p, key, sigmas, num_calibration, calibration_sigmas):
    """``(log sigmas, log norms)`` of the Monte-Carlo calibration of the unit error field, on the
    calibration grid plus the positive ``sigmas``; ``(None, None)`` where no calibration is needed
    (closed form or no target)."""
    needs_mc = (kind == "relative" and not _closed_form(target)) or (
        kind == "custom" and target is not None
    )
    if not needs_mc:
        return None, None
    num_calibration = check_positive_int("num_calibration", num_calibration, 2)
    grid = _default_calibration_sigmas() if calibration_sigmas is None else np.asarray(
        concrete(calibration_sigmas), np.float64
    )
    if sigmas is not None:
        sv = np.asarray(concrete(sigmas), np.float64)
        grid = np.concatenate([grid, sv[sv > 0]])
    grid = np.unique(grid[grid > 0])
    if grid.size == 0:
        raise ValueError("`calibration_sigmas` must contain a positive level.")
    ckey = jax.random.key(0) if key is None else key
    ckey = jax.random.fold_in(ckey, _CALIB_TAG)
    log_norms = _calibrate(kind, error_fn, target, _param(grid), ckey, p, num_calibration)
    return _param(np.log(grid)), log_norms


class Noisy(AbstractOracle):
    """``inner`` plus an error of L^p(p_sigma) size ``eps(sigma)`` (see the module docstring).

    **Arguments:**
    - ``inner``: the oracle to perturb (usually ``Exact(target)``).
    - ``eps``: error size ``>= 0``: scalar, ``(L,)`` per-level values (with ``sigmas=``), or a
      callable ``eps(sigma)``.
    - ``p``: the exponent of the L^p(p_sigma) size, ``1 <= p < inf``.
    - ``kind``: ``"gaussian"`` | ``"bias"`` | ``"relative"`` | callable ``error_fn(x, sigma, key)``.
    - ``sigmas``: the levels of a per-level ``eps`` (zeros are dropped; eps may have the length
      of the full grid or of its positive entries).
    - ``target``: the target whose true score defines ``"relative"`` errors (default: the target
      of an ``Exact`` inner oracle), or, for a callable kind, the target used to calibrate it.
    - ``key``: shared key for ``"bias"`` directions (default: per-chain directions); also seeds
      the Monte-Carlo calibration (default ``jax.random.key(0)``).
    - ``num_calibration``, ``calibration_sigmas``: Monte-Carlo calibration size and grid.

    State: :class:`NoisyState`. ``query`` returns ``(inner_score + eps(sigma) u, state)``.

    **Raises:** ``ValueError`` for negative/non-finite ``eps``, ``p`` outside ``[1, inf)``, an
    unknown kind, mismatched ``eps``/``sigmas`` shapes, or a relative kind without a target.
    """

    inner: AbstractOracle
    eps: Float[Array, "*L"] | None
    p: Float[Array, ""]
    kind: str = eqx.field(static=True)
    eps_fn: Callable | None
    error_fn: Callable | None
    log_levels: Float[Array, " L"] | None
    target: AbstractTarget | None
    key: Any
    calib_log_sigmas: Float[Array, " M"] | None
    calib_log_norms: Float[Array, " M"] | None

    def __init__(
        self,
        inner: AbstractOracle,
        eps,
        p=2,
        kind="gaussian",
        *,
        sigmas=None,
        target: AbstractTarget | None = None,
        key=None,
        num_calibration: int = 8192,
        calibration_sigmas=None,
    ):
        if not isinstance(inner, AbstractOracle):
            raise TypeError(
                f"`inner` must be a jscore oracle (e.g. js.oracles.Exact(target)), got "
                f"{type(inner).__name__}."
            )
        self.inner = inner
        self.kind, self.error_fn = _resolve_kind(kind)
        self.p = _check_p(p)
        self.eps, self.eps_fn, self.log_levels = _resolve_eps(eps, sigmas)
        target = _resolve_target(self.kind, target, inner)
        self.target = target if self.kind in ("relative", "custom") else None
        if key is not None:
            from ..seeds import as_key

            key = as_key(key)
        self.key = key
        self.calib_log_sigmas, self.calib_log_norms = _calibration(
            self.kind, self.error_fn, target, self.p, key, sigmas, num_calibration,
            calibration_sigmas)

    # ------------------------------------------------------------------ protocol
    @property
    def dim(self):
        return self.inner.dim

    @property
    def event_shape(self):
        return self.inner.event_shape

    def init(self, key, dim) -> NoisyState:
        return NoisyState(
            inner=self.inner.init(key, dim),
            key=jax.random.fold_in(key, _NOISY_TAG),
            count=jnp.zeros((), jnp.int32),
        )

    def report(self, state: NoisyState) -> dict:
        return self.inner.report(state.inner)

    def eps_at(self, sigma):
        """The nominal error size ``eps(sigma)`` (scalar)."""
        sigma = jnp.asarray(sigma, jnp.result_type(float))
        if self.eps_fn is not None:
            e = jnp.asarray(self.eps_fn(sigma), sigma.dtype)
            # a negative or NaN error size makes this answer NaN: the chain ends with status
            # `nonfinite` (per chain), never a batch-wide exception
            return jnp.where(e >= 0, e, jnp.nan)
        if self.log_levels is None:
            return self.eps
        return jnp.interp(jnp.log(sigma), self.log_levels, self.eps)

    def _raw_error(self, x, sigma, key):
        """The un-normalised error field of the relative / custom kinds."""
        return _raw_error(self.kind, self.error_fn, self.target, x, sigma, key)

    def _log_norm(self, sigma, d, dtype):
        """log ||raw error||_{p, sigma} for relative / calibrated custom kinds."""
        if self.calib_log_norms is not None:
            return _interp_extrap(jnp.log(sigma), self.calib_log_sigmas, self.calib_log_norms)
        # relative kind, isotropic Gaussian target: |s| = chi_d / sqrt(var + sigma^2)
        var = jnp.mean(jnp.asarray(self.target.var, dtype))
        return chi_log_moment(d, self.p) / self.p - 0.5 * jnp.log(var + sigma * sigma)

    def unit_error(self, x, sigma, state: NoisyState):
        """The unit error field ``u(x, sigma)`` (``||u||_{p, sigma} = 1``) of this query."""
        d = x.shape[-1]
        qkey = jax.random.fold_in(state.key, state.count)
        if self.kind == "gaussian":
            z = jax.random.normal(qkey, (d,), x.dtype)
            return z * jnp.exp(-chi_log_moment(d, self.p) / self.p).astype(x.dtype)
        if self.kind == "bias":
            base = state.key if self.key is None else jax.random.fold_in(self.key, _NOISY_TAG)
            v = jax.random.normal(_fold_sigma(base, sigma), (d,), x.dtype)
            return v / jnp.linalg.norm(v)
        raw = self._raw_error(x, sigma, qkey)
        if self.kind == "custom" and self.calib_log_norms is None:
            return raw
        return raw * jnp.exp(-self._log_norm(sigma, d, x.dtype)).astype(x.dtype)

    def query(self, x, sigma, state: NoisyState):
        sigma = jnp.asarray(sigma, x.dtype)
        score, inner_state = self.inner.query(x, sigma, state.inner)
        # the error field is drawn on the flattened point (d = prod(event_shape)); an error_fn
        # sees that (d,) vector
        e = flat_call(lambda v: self.unit_error(v, sigma, state), x)
        e = self.eps_at(sigma).astype(x.dtype) * e
        new_state = NoisyState(inner=inner_state, key=state.key, count=state.count + 1)
        return score + e, new_state


def _closed_form(target) -> bool:
    """Relative kind has a closed-form norm: isotropic Gaussian (scalar var or equal diagonal)."""
    if not isinstance(target, Gaussian):
        return False
    v = concrete(target.var)
    return v is not None and (v.ndim == 0 or bool(np.all(v == v.flat[0])))


def _raw_error(kind, error_fn, target, x, sigma, key):
    if kind == "relative":
        return target.score(x, sigma)
    e = jnp.asarray(error_fn(x, sigma, key), x.dtype)
    if e.shape != x.shape:
        raise ValueError(f"`error_fn(x, sigma, key)` must return shape {x.shape}, got {e.shape}.")
    return e


@eqx.filter_jit
def _calibrate(kind, error_fn, target, grid, key, p, n):
    """log ||raw_error||_{p, sigma} on ``grid``, Monte Carlo with common random numbers."""
    kx, kz, ke = jax.random.split(key, 3)
    x0 = target.sample(kx, n)
    z = jax.random.normal(kz, x0.shape, x0.dtype)
    keys = jax.random.split(ke, n)

    def at(sigma):
        x = x0 + sigma * z
        e = jax.vmap(lambda xi, ki: _raw_error(kind, error_fn, target, xi, sigma, ki))(x, keys)
        logr = jnp.log(jnp.linalg.norm(e, axis=-1))
        return (jax.nn.logsumexp(p * logr) - math.log(n)) / p

    return jax.lax.map(at, grid)


__all__ = ["Noisy", "NoisyState", "chi_log_moment", "chi_norm"]
