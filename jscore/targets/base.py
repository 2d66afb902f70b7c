"""Abstract data distribution with a closed-form noised score.

Convention: ``p_sigma = p * N(0, sigma^2 I)``; ``score(x, sigma) = grad_x log p_sigma(x)``;
``denoise(x, sigma) = E[x0 | x0 + sigma z = x] = x + sigma^2 score(x, sigma)`` (Tweedie).
All methods take one point ``x`` of shape ``(d,)``; batch with ``jax.vmap``.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp

from .._checks import check_real_fields
from ..typing import Key, Sample, Score, Sigma


class AbstractTarget(eqx.Module):
    """A distribution on R^d whose noised score is known in closed form at every sigma >= 0."""

    def __check_init__(self):
        check_real_fields(self)

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Dimension d (a static Python int)."""

    @abc.abstractmethod
    def score(self, x: Sample, sigma: Sigma) -> Score:
        """Exact ``grad_x log p_sigma(x)``, shape ``(d,)``."""

    def denoise(self, x: Sample, sigma: Sigma) -> Sample:
        """Tweedie denoiser ``x + sigma^2 score(x, sigma)``, shape ``(d,)``."""
        sigma = jnp.asarray(sigma, x.dtype)
        return x + sigma * sigma * self.score(x, sigma)

    @abc.abstractmethod
    def sample(self, key: Key, n: int):
        """``n`` exact samples of the clean target (sigma = 0), shape ``(n, d)``."""


def check_point(target: AbstractTarget, x) -> None:
    if x.shape[-1:] != (target.dim,):
        raise ValueError(
            f"`x` has shape {x.shape} but the target has dim {target.dim}; pass one point of "
            f"shape ({target.dim},) and vmap over a batch."
        )


__all__ = ["AbstractTarget"]
