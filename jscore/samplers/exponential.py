"""Exponential integrators for the OU reverse SDE (docs/sampler_reference.md §5)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_option
from ..counting import charged_query
from .base import AbstractFixedStepSampler

_FORMS = ("score", "relative")


class ExponentialIntegrator(AbstractFixedStepSampler):
    """Exponential integrator of the OU reverse SDE: the linear part exactly, the rest frozen.

    With ``rho = sqrt((1 + sigma'^2)/(1 + sigma^2)) = e^{-h}`` (``h`` = OU step):

    - ``form="score"`` (freeze ``s``): ``y' = y + 2 (1 + sigma^2)(1 - rho) S + sqrt(sigma^2 - sigma'^2) z``;
      OU: ``x' = e^h x + 2 (e^h - 1) s + sqrt(e^{2h} - 1) z``.
    - ``form="relative"`` (freeze ``r = s + x``, contractive):
      ``y' = rho^2 y + 2 rho (1 - rho)(1 + sigma^2) S_rel + rho sqrt(sigma^2 - sigma'^2) z``,
      ``S_rel = S + y/(1 + sigma^2)``; exact in law for ``p = N(0, I)``.

    The step into sigma' = 0 returns Tweedie's ``D`` (substitution). Weak order 1, stochastic.
    Per chain: Q = N queries at N levels, R = Q (any grid). ``x`` is ``(d,)``.
    """

    form: str = eqx.field(default="score", static=True)

    def __check_init__(self):
        check_option("form", self.form, _FORMS)

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
        h = 0.5 * (jnp.log1p(sigma * sigma) - jnp.log1p(sigma_next * sigma_next))
        one_m_rho = -jnp.expm1(-h)
        rho = 1.0 - one_m_rho
        one_p = 1.0 + sigma * sigma
        noise_sd = jnp.sqrt((sigma - sigma_next) * (sigma + sigma_next))
        if self.form == "score":
            x_next = x + 2.0 * one_p * one_m_rho * score + noise_sd * z
        else:
            s_rel = score + x / one_p
            x_next = rho * rho * x + 2.0 * rho * one_m_rho * one_p * s_rel + rho * noise_sd * z
        denoised = x + sigma * sigma * score
        return jnp.where(sigma_next > 0, x_next, denoised), state, ostate, ledger


__all__ = ["ExponentialIntegrator"]
