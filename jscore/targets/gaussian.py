"""Gaussian target N(mean, diag(var)): p_sigma = N(mean, diag(var + sigma^2))."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import as_real, check_real_fields, check_positive_int, check_range, concrete
from ..typing import Key, Sample, Score, Sigma
from .base import AbstractTarget


_float_array = as_real


class Gaussian(AbstractTarget):
    """``N(mean, var)`` with isotropic (scalar) or diagonal (``(d,)``) variance ``var >= 0``.

    Closed forms: ``score = (mean - x) / (var + sigma^2)``,
    ``denoise = (sigma^2 mean + var x) / (var + sigma^2)``. ``var = 0`` is a point mass (then
    ``sigma > 0`` is required for the score).
    """

    mean: Float[Array, " d"] = eqx.field(converter=_float_array)
    var: Float[Array, "*d"] = eqx.field(converter=_float_array)

    def __check_init__(self):
        check_real_fields(self)  # types first: the shape checks below need arrays
        if self.mean.ndim != 1 or self.mean.shape[0] < 1:
            raise ValueError(
                f"`mean` must have shape (d,) with d >= 1, got {self.mean.shape}; for an "
                "isotropic standard normal use Gaussian(jnp.zeros(d), 1.0)."
            )
        if self.var.shape not in ((), self.mean.shape):
            raise ValueError(
                f"`var` must be a scalar or have the shape of `mean` {self.mean.shape}, got "
                f"{self.var.shape}."
            )
        check_range("mean", self.mean, fix="The mean must be finite.")
        check_range("var", self.var, 0.0, fix="The variance must be finite and >= 0.")

    @classmethod
    def isotropic(cls, dim: int, mean=0.0, var=1.0) -> "Gaussian":
        """``N(mean * 1, var * I)`` in ``dim`` dimensions."""
        dim = check_positive_int("dim", dim)
        return cls(jnp.full((dim,), mean, dtype=jnp.result_type(float)), var)

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    def _noised_var(self, sigma):
        return self.var + sigma * sigma

    def score(self, x: Sample, sigma: Sigma) -> Score:
        sigma = jnp.asarray(sigma, x.dtype)
        return (self.mean - x) / self._noised_var(sigma)

    def denoise(self, x: Sample, sigma: Sigma) -> Sample:
        sigma = jnp.asarray(sigma, x.dtype)
        v = self._noised_var(sigma)
        return (sigma * sigma * self.mean + self.var * x) / v

    def log_prob(self, x: Sample, sigma: Sigma = 0.0):
        """``log p_sigma(x)``, a scalar."""
        sigma = jnp.asarray(sigma, x.dtype)
        v = jnp.broadcast_to(self._noised_var(sigma), x.shape)
        r = x - self.mean
        return -0.5 * jnp.sum(r * r / v + jnp.log(v)) - 0.5 * self.dim * math.log(2 * math.pi)

    def sample(self, key: Key, n: int):
        n = check_positive_int("n", n)
        z = jax.random.normal(key, (n, self.dim), self.mean.dtype)
        return self.mean + jnp.sqrt(self.var) * z

    def noised_moments(self, sigma):
        """Mean ``(d,)`` and variance ``(d,)`` of p_sigma."""
        sigma = jnp.asarray(sigma, self.mean.dtype)
        return self.mean, jnp.broadcast_to(self._noised_var(sigma), self.mean.shape)


__all__ = ["Gaussian"]
