"""Euler-Maruyama for the reverse SDE."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_option
from ..counting import charged_query
from .base import AbstractFixedStepSampler

_VARIANTS = ("ou", "variance")


class EulerMaruyama(AbstractFixedStepSampler):
    """Euler-Maruyama step of the reverse SDE (docs/sampler_reference.md §4).

    ``variant="ou"`` (default; the form analysed in theory): EM in OU time,
    ``x' = x + h (x + 2 s(x, t)) + sqrt(2h) z`` with ``h = t - t'``, written in EDM variables as
    ``y' = rho [(1 + h) y + 2h (1 + sigma^2) S] + sqrt(1 + sigma'^2) sqrt(2h) z``,
    ``rho = sqrt((1 + sigma'^2)/(1 + sigma^2))``.
    ``variant="variance"``: VE reverse diffusion in v = sigma^2,
    ``y' = y + (sigma^2 - sigma'^2) S + sqrt(sigma^2 - sigma'^2) z``.
    The step into sigma' = 0 returns Tweedie's D (substitution).

    Per chain: Q = N queries at N levels, R = Q. Stochastic. ``x`` is ``(d,)``.
    """

    variant: str = eqx.field(default="ou", static=True)

    def __check_init__(self):
        check_option("variant", self.variant, _VARIANTS)

    @property
    def is_stochastic(self) -> bool:
        return True

    def num_queries(self, num_steps: int, ends_at_zero: bool) -> int:
        return num_steps

    def init(self, sigmas, x):
        return None

    def step(self, oracle, i, sigmas, x, state, ostate, ledger, key):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        score, ostate, ledger = charged_query(oracle, x, sigma, ostate, ledger)
        z = jax.random.normal(key, x.shape, x.dtype)
        if self.variant == "ou":
            h = 0.5 * (jnp.log1p(sigma * sigma) - jnp.log1p(sigma_next * sigma_next))
            rho = jnp.exp(-h)
            x_next = rho * ((1.0 + h) * x + 2.0 * h * (1.0 + sigma * sigma) * score)
            x_next = x_next + jnp.sqrt(1.0 + sigma_next * sigma_next) * jnp.sqrt(2.0 * h) * z
        else:
            dv = (sigma - sigma_next) * (sigma + sigma_next)
            x_next = x + dv * score + jnp.sqrt(dv) * z
        denoised = x + sigma * sigma * score
        return jnp.where(sigma_next > 0, x_next, denoised), state, ostate, ledger


__all__ = ["EulerMaruyama"]
