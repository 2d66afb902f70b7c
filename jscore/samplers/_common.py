"""Shared numerics for the sampler library (private).

- :func:`run_fixed_steps`: the ``lax.scan`` of :class:`AbstractFixedStepSampler.solve`, starting
  from a given sampler state (for samplers that make a query before the first step, e.g. UniPC).
- :func:`langevin_step`: one Langevin step with the per-chain SNR step-size rule.
- :func:`log_step`: the log-step ``h = log(sigma/sigma')`` (placeholder 1 into sigma' = 0).
- stable phi-functions of exponential integrators.
- :func:`set_exhausted`: mark a chain's ledger as out of budget (e.g. Picard's ``max_sweeps``).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_positive_int
from ..counting import charged_query
from .base import Solution


def run_fixed_steps(sampler, oracle, sigmas, x, state, key, ostate, ledger, record) -> Solution:
    """``AbstractFixedStepSampler.solve`` from a given initial sampler ``state`` (e.g. UniPC)."""
    return sampler.scan_steps(oracle, sigmas, x, state, key, ostate, ledger, record)


def snr_step_size(snr, z, score, a=1.0):
    """Per-chain SNR rule ``eta = 2 a (snr |z| / |S|)^2`` (norms over this chain's d coordinates)."""
    zn2 = jnp.sum(z * z)
    sn2 = jnp.sum(score * score)
    tiny = jnp.finfo(score.dtype).tiny
    return 2.0 * a * snr * snr * zn2 / jnp.maximum(sn2, tiny)


def langevin_step(oracle, x, sigma, ostate, ledger, key, *, snr=None, eta=None, when=True):
    """One Langevin step ``y <- y + eta S(y, sigma) + sqrt(2 eta) z`` (one charged query).

    ``eta`` is given, or set by the per-chain SNR rule from ``snr``. Returns ``(x, ostate, ledger)``;
    when the call is masked (``when=False``) or the budget ran out, ``x`` is unchanged.
    """
    z = jax.random.normal(key, x.shape, x.dtype)
    q0 = ledger.queries
    score, ostate, ledger = charged_query(oracle, x, sigma, ostate, ledger, when=when)
    if eta is None:
        eta = snr_step_size(snr, z, score)
    eta = jnp.asarray(eta, x.dtype)
    x_new = x + eta * score + jnp.sqrt(2.0 * eta) * z
    return jnp.where(ledger.queries > q0, x_new, x), ostate, ledger


def log_step(sigma, sigma_next):
    """``h = log(sigma/sigma')`` of a step, and 1 where ``sigma' = 0`` (a placeholder for the
    branch-free updates, whose step into 0 is selected away)."""
    pos = sigma_next > 0
    return jnp.where(pos, jnp.log(sigma / jnp.where(pos, sigma_next, 1.0)), 1.0)


def _series(h, coeffs):
    out = jnp.zeros_like(h)
    for c in reversed(coeffs):
        out = out * h + c
    return out


def phi2_neg(h):
    """``(e^{-h} - 1)/h + 1`` (DPM-Solver++ phi_2), accurate for small ``h > 0``."""
    small = h < 0.1
    hs = jnp.where(small, h, 1.0)
    hl = jnp.where(small, 1.0, h)
    # h/2 - h^2/6 + h^3/24 - h^4/120 + h^5/720 - h^6/5040
    ser = hs * _series(hs, [1 / 2, -1 / 6, 1 / 24, -1 / 120, 1 / 720, -1 / 5040])
    return jnp.where(small, ser, jnp.expm1(-hl) / hl + 1.0)


def phi3_neg(h):
    """``phi2_neg(h)/h - 1/2``, accurate for small ``h > 0``."""
    small = h < 0.1
    hs = jnp.where(small, h, 1.0)
    hl = jnp.where(small, 1.0, h)
    # -h/6 + h^2/24 - h^3/120 + h^4/720 - h^5/5040 + h^6/40320
    ser = hs * _series(hs, [-1 / 6, 1 / 24, -1 / 120, 1 / 720, -1 / 5040, 1 / 40320])
    return jnp.where(small, ser, phi2_neg(hl) / hl - 0.5)


def phi1m1(a):
    """``(e^a - 1)/a - 1``, accurate for small ``|a|``."""
    small = jnp.abs(a) < 0.1
    as_ = jnp.where(small, a, 1.0)
    al = jnp.where(small, 1.0, a)
    ser = as_ * _series(as_, [1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040])
    return jnp.where(small, ser, jnp.expm1(al) / al - 1.0)


def maybe_positive(*params) -> bool:
    """Whether all ``params`` are > 0 (a sampler's ``is_stochastic``); True when any is traced."""
    try:
        return bool(all(p > 0 for p in params))
    except jax.errors.ConcretizationTypeError:
        return True


def phi2m_half(a):
    """``(e^a - 1 - a)/a^2 - 1/2`` (noise-prediction DPM-Solver's third-order weight), small-``|a|`` safe."""
    small = jnp.abs(a) < 0.1
    as_ = jnp.where(small, a, 1.0)
    al = jnp.where(small, 1.0, a)
    ser = as_ * _series(as_, [1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040, 1 / 40320])
    return jnp.where(small, ser, phi1m1(al) / al - 0.5)


def step_order(order, i, num_steps, lower_order_final, pos):
    """Multistep order of step ``i``: ``min(order, i + 1)`` (warm-up), also ``<= N - i`` with
    ``lower_order_final``, and 1 into sigma = 0 (``pos`` False)."""
    p = jnp.minimum(order, i + 1)
    if lower_order_final:
        p = jnp.minimum(p, num_steps - i)
    return jnp.where(pos, p, 1)


def set_exhausted(ledger, flag):
    """Ledger with ``exhausted |= flag``."""
    return eqx.tree_at(lambda l: l.exhausted, ledger, ledger.exhausted | jnp.asarray(flag, bool))


def check_nonneg_int(name, value):
    return check_positive_int(name, value, minimum=0)


__all__ = [
    "run_fixed_steps",
    "snr_step_size",
    "langevin_step",
    "log_step",
    "phi2_neg",
    "phi3_neg",
    "phi1m1",
    "maybe_positive",
    "phi2m_half",
    "log_step",
    "step_order",
    "set_exhausted",
    "check_nonneg_int",
]
