"""Uniform distribution on the sphere S_r = {y : |y| = r} in R^d (docs/construction.md §3.3).

The posterior of ``y / r`` given ``x = y + sigma z`` is von Mises-Fisher with mean direction
``x/|x|`` and concentration ``kappa = r |x| / sigma^2``, so with ``A_d = I_{d/2}/I_{d/2-1}``::

    denoise(x, sigma)  = r A_d(kappa) x / |x|                  (= (r^2/(d sigma^2)) x as x -> 0)
    score(x, sigma)    = (r A_d(kappa) x/|x| - x) / sigma^2
    log_prob(x, sigma) = -(|x|^2 + r^2)/(2 sigma^2) - (d/2) log(2 pi sigma^2) + Lambda_d(kappa)

``Lambda_d`` and ``A_d`` come from :mod:`jscore.special` (no Bessel function is formed), so
this is accurate and finite for d up to 1e6 and beyond, in float32 and float64.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import as_real, check_positive_int, check_range
from ..special import log_bessel_mgf_and_ratio
from ..typing import Key, Sample, Score, Sigma
from .base import AbstractTarget


_float_array = as_real


def _ratio_over_kappa(kappa, A, d):
    """``A_d(kappa)/kappa`` with its limit ``1/d`` at kappa -> 0 (relative correction < 1e-16)."""
    small = kappa < 1e-8
    return jnp.where(small, 1.0 / d, A / jnp.where(small, 1.0, kappa))


class UniformSphere(AbstractTarget):
    """``Unif(S_r)``: uniform on the sphere of radius ``radius`` in ``dim`` dimensions.

    The reference law Q of the lower-bound lab. Queries need ``sigma > 0`` (the clean law is
    singular). All formulas in the dtype of ``x``.
    """

    _dim: int = eqx.field(static=True)
    radius: jax.Array = eqx.field(converter=_float_array)

    def __init__(self, dim: int, radius=1.0):
        self._dim = check_positive_int("dim", dim)
        check_range("radius", radius, lo=0.0, lo_open=True, fix="Use a positive radius.")
        self.radius = radius

    def __check_init__(self):
        if self.radius.shape != ():
            raise ValueError(f"`radius` must be a scalar, got shape {self.radius.shape}.")

    @property
    def dim(self) -> int:
        return self._dim

    def _kappa_norm(self, x, sigma):
        n2 = jnp.sum(x * x)
        norm = jnp.sqrt(n2)
        r = self.radius.astype(x.dtype)
        kappa = r * norm / (sigma * sigma)
        return kappa, norm, n2, r

    def mean_cosine(self, x: Sample, sigma: Sigma):
        """``A_d(kappa)``, the posterior mean of the cosine between y and x."""
        sigma = jnp.asarray(sigma, x.dtype)
        kappa, *_ = self._kappa_norm(x, sigma)
        return log_bessel_mgf_and_ratio(kappa, self._dim)[1]

    def denoise(self, x: Sample, sigma: Sigma) -> Sample:
        sigma = jnp.asarray(sigma, x.dtype)
        kappa, _, _, r = self._kappa_norm(x, sigma)
        A = log_bessel_mgf_and_ratio(kappa, self._dim)[1]
        # r A x/|x| = (r^2/sigma^2) (A/kappa) x, finite at x = 0
        return (r * r / (sigma * sigma)) * _ratio_over_kappa(kappa, A, self._dim) * x

    def score(self, x: Sample, sigma: Sigma) -> Score:
        sigma = jnp.asarray(sigma, x.dtype)
        return (self.denoise(x, sigma) - x) / (sigma * sigma)

    def log_prob(self, x: Sample, sigma: Sigma):
        """``log q_sigma(x)`` (Lebesgue density of Q * N(0, sigma^2 I)), a scalar; ``sigma > 0``."""
        sigma = jnp.asarray(sigma, x.dtype)
        kappa, _, n2, r = self._kappa_norm(x, sigma)
        lam = log_bessel_mgf_and_ratio(kappa, self._dim)[0]
        s2 = sigma * sigma
        return -(n2 + r * r) / (2 * s2) - 0.5 * self._dim * jnp.log(2 * math.pi * s2) + lam

    def sample(self, key: Key, n: int):
        """``n`` uniform points on the sphere, ``(n, d)``: ``r g/|g|`` with ``g ~ N(0, I)``."""
        n = check_positive_int("n", n)
        g = jax.random.normal(key, (n, self._dim), self.radius.dtype)
        return self.radius * g / jnp.linalg.norm(g, axis=-1, keepdims=True)

    def sample_noised(self, key: Key, sigma: Sigma, n: int):
        """``n`` draws of ``Q_sigma``: ``y + sigma z``, ``(n, d)``."""
        n = check_positive_int("n", n)
        ky, kz = jax.random.split(key)
        sigma = jnp.asarray(sigma, self.radius.dtype)
        return self.sample(ky, n) + sigma * jax.random.normal(kz, (n, self._dim), self.radius.dtype)


__all__ = ["UniformSphere"]
