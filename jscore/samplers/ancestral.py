"""Euler ancestral = DDIM(eta) = DDPM (eta = 1): one query per step plus fresh noise."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_option, check_range
from ..counting import charged_query
from .base import AbstractFixedStepSampler, as_param

_VARIANCES = ("posterior", "large")


def ancestral_coefficients(sigma, sigma_next, eta):
    """``(sigma_down, sigma_up)`` of an ancestral step (docs/sampler_reference.md §3).

    ``sigma_up = eta sigma' sqrt(sigma^2 - sigma'^2) / sigma``; ``sigma_down = sqrt(sigma'^2 - sigma_up^2)``,
    computed as ``sigma' sqrt((1 - eta^2) + eta^2 (sigma'/sigma)^2)`` so it never goes negative.
    """
    ratio = sigma_next / sigma
    sigma_up = eta * sigma_next * jnp.sqrt((1.0 - ratio) * (1.0 + ratio))
    sigma_down = sigma_next * jnp.sqrt((1.0 - eta * eta) + eta * eta * ratio * ratio)
    return sigma_down, sigma_up


def _ancestral_step(oracle, i, sigmas, x, ostate, ledger, key, eta, variance):
    sigma, sigma_next = sigmas[i], sigmas[i + 1]
    score, ostate, ledger = charged_query(oracle, x, sigma, ostate, ledger)
    denoised = x + sigma * sigma * score
    eps_hat = -sigma * score
    z = jax.random.normal(key, x.shape, x.dtype)
    if variance == "posterior":
        sigma_down, sigma_up = ancestral_coefficients(sigma, sigma_next, eta)
        x_next = denoised + sigma_down * eps_hat + sigma_up * z
    else:  # DDPM "large" variance beta: the eta = 1 mean with noise var (s^2 - s'^2)(1 + s'^2)/(1 + s^2)
        sigma_down, _ = ancestral_coefficients(sigma, sigma_next, jnp.ones_like(sigma))
        noise_var = (sigma - sigma_next) * (sigma + sigma_next) * (1.0 + sigma_next**2) / (1.0 + sigma**2)
        noise_var = jnp.where(sigma_next > 0, noise_var, 0.0)
        x_next = denoised + sigma_down * eps_hat + jnp.sqrt(noise_var) * z
    return x_next, ostate, ledger


class EulerAncestral(AbstractFixedStepSampler):
    """Ancestral step ``y' = D + sigma_down eps_hat + sigma_up z`` (k-diffusion ``sample_euler_ancestral``).

    ``eta = 1`` is DDPM with the posterior (beta-tilde) variance: ``y' = (s'^2/s^2) y +
    (1 - s'^2/s^2) D + sigma_up z``; ``eta = 0`` is :class:`Euler`. ``variance="large"`` uses DDPM's
    beta variance with the eta = 1 mean. Into sigma' = 0 the step returns D (no noise).

    Per chain: Q = N queries at N levels, R = Q. Stochastic for eta > 0. ``x`` is ``(d,)``.
    """

    eta: Float[Array, ""] = eqx.field(default=1.0, converter=as_param)
    variance: str = eqx.field(default="posterior", static=True)

    def __check_init__(self):
        check_range("eta", self.eta, 0.0, 1.0)
        check_option("variance", self.variance, _VARIANCES)

    @property
    def is_stochastic(self) -> bool:
        return True

    def num_queries(self, num_steps: int, ends_at_zero: bool) -> int:
        return num_steps

    def init(self, sigmas, x):
        return None

    def step(self, oracle, i, sigmas, x, state, ostate, ledger, key):
        x, ostate, ledger = _ancestral_step(
            oracle, i, sigmas, x, ostate, ledger, key, self.eta, self.variance
        )
        return x, state, ostate, ledger


class DDIM(AbstractFixedStepSampler):
    """DDIM(eta): the same map as :class:`EulerAncestral` (docs/sampler_reference.md §3), default eta = 0.

    ``x' = alpha' x0_hat + sqrt(sigmabar'^2 - s_eta^2) eps_hat + s_eta z`` in OU variables equals the
    ancestral step with ``sigma_up = s_eta / alpha'``. Per chain: Q = N, N_sigma = N, R = Q.
    """

    eta: Float[Array, ""] = eqx.field(default=0.0, converter=as_param)

    def __check_init__(self):
        check_range("eta", self.eta, 0.0, 1.0)

    @property
    def is_stochastic(self) -> bool:
        try:
            return bool(self.eta > 0)
        except jax.errors.ConcretizationTypeError:
            return True

    def num_queries(self, num_steps: int, ends_at_zero: bool) -> int:
        return num_steps

    def init(self, sigmas, x):
        return None

    def step(self, oracle, i, sigmas, x, state, ostate, ledger, key):
        x, ostate, ledger = _ancestral_step(
            oracle, i, sigmas, x, ostate, ledger, key, self.eta, "posterior"
        )
        return x, state, ostate, ledger


__all__ = ["EulerAncestral", "DDIM", "ancestral_coefficients"]
