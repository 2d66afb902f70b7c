"""Isotropic Gaussian mixture sum_k w_k N(m_k, std^2 I).

Noised: ``p_sigma = sum_k w_k N(m_k, v I)`` with ``v = std^2 + sigma^2``. With responsibilities
``r_k(x) = softmax_k(log w_k + (m_k . x - |m_k|^2 / 2) / v)`` (the ``|x|^2`` term is common to all k
and dropped), the posterior mean of the component mean is ``mbar = r @ means`` and

    score(x, sigma)   = (mbar - x) / v
    denoise(x, sigma) = (sigma^2 mbar + std^2 x) / v.

Per query this costs one ``(K, d) @ (d,)`` product and one ``(K,) @ (K, d)`` product; no ``K x d``
temporary is formed per chain, so under ``vmap`` both become matrix products. Scalars (``1/v``,
``sigma^2``) are folded into the ``(K,)`` responsibilities before the second product, so the only
per-coordinate work after it is one multiply-add: ``score = (r / v) @ means - x / v``.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import as_real, check_real, check_real_fields, check_positive_int, check_range, concrete
from ..typing import Key, Sample, Score, Sigma
from .base import AbstractTarget


_float_array = as_real


class GaussianMixture(AbstractTarget):
    """Mixture of ``K`` isotropic Gaussians with common ``std >= 0``.

    **Arguments:** ``means`` ``(K, d)``; ``std`` scalar; ``weights`` ``(K,)`` non-negative (normalised
    here; default uniform).
    """

    means: Float[Array, "K d"] = eqx.field(converter=_float_array)
    std: Float[Array, ""] = eqx.field(converter=_float_array)
    log_weights: Float[Array, " K"]
    half_sq_norms: Float[Array, " K"]

    def __init__(self, means, std, weights=None):
        self.means = means
        self.std = std
        check_range("means", means, fix="The component means must be finite.")
        check_range("std", std, 0.0, fix="The component std must be finite and >= 0.")
        if weights is not None:
            check_real("weights", weights)
        m = jnp.asarray(self.means, dtype=jnp.result_type(float))
        if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
            raise ValueError(
                f"`means` must have shape (K, d) with K, d >= 1, got {m.shape}; for one "
                "component pass means[None]."
            )
        k = m.shape[0]
        if weights is None:
            log_w = jnp.full((k,), -math.log(k), dtype=m.dtype)
        else:
            check_range("weights", weights, 0.0, fix="Weights must be finite and >= 0.")
            wv = concrete(weights)
            if wv is not None:  # normalise on the host in float64 (no overflow for huge weights)
                wv = np.asarray(wv, np.float64)
                if wv.shape != (k,):
                    raise ValueError(f"`weights` must have shape ({k},), got {wv.shape}.")
                if not np.sum(wv) > 0:
                    raise ValueError(f"`weights` must have a positive sum, got {wv}.")
                with np.errstate(divide="ignore"):
                    log_w = jnp.asarray(np.log(wv / np.sum(wv)), m.dtype)
            else:
                w = jnp.asarray(weights, dtype=m.dtype)
                if w.shape != (k,):
                    raise ValueError(f"`weights` must have shape ({k},), got {w.shape}.")
                log_w = jnp.log(w) - jnp.log(jnp.sum(w))
        self.log_weights = log_w
        self.half_sq_norms = 0.5 * jnp.sum(m * m, axis=-1)

    def __check_init__(self):
        check_real_fields(self)  # types first: the shape checks below need arrays
        if self.std.shape != ():
            raise ValueError(f"`std` must be a scalar, got shape {self.std.shape}.")
        check_range("std", self.std, 0.0, fix="The component std must be finite and >= 0.")
        check_range("means", self.means, fix="The component means must be finite.")

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def num_components(self) -> int:
        """K, the number of mixture components."""
        return self.means.shape[0]

    @property
    def weights(self):
        """``(K,)`` normalised component weights (``exp`` of the stored log-weights)."""
        return jnp.exp(self.log_weights)

    def _logits(self, x, v):
        return self.log_weights + (self.means @ x - self.half_sq_norms) / v

    def responsibilities(self, x: Sample, sigma: Sigma):
        """Posterior component probabilities ``(K,)`` at the noised point x."""
        sigma = jnp.asarray(sigma, x.dtype)
        v = self.std * self.std + sigma * sigma
        return jax.nn.softmax(self._logits(x, v))

    def _combine(self, x, sigma, a, b):
        """``a (r @ means) + b x`` with ``r`` the responsibilities at ``(x, sigma)``.

        Fused formulation of the hot path: the scalar ``a`` multiplies the ``(K,)`` responsibilities
        before the product with the means (not the ``(d,)`` result), and ``1/v`` is computed once,
        so after the ``(K,) @ (K, d)`` product only one multiply-add per coordinate remains and no
        coordinate is divided. Equal to the textbook ``(mbar - x) / v`` to float rounding
        (tests/test_perf_equivalence.py).
        """
        v = self.std * self.std + sigma * sigma
        inv_v = 1.0 / v
        r = jax.nn.softmax(self.log_weights + (self.means @ x - self.half_sq_norms) * inv_v)
        return (r * (a * inv_v)) @ self.means + (b * inv_v) * x

    def score(self, x: Sample, sigma: Sigma) -> Score:
        sigma = jnp.asarray(sigma, x.dtype)
        return self._combine(x, sigma, 1.0, -1.0)

    def denoise(self, x: Sample, sigma: Sigma) -> Sample:
        sigma = jnp.asarray(sigma, x.dtype)
        return self._combine(x, sigma, sigma * sigma, self.std * self.std)

    def log_prob(self, x: Sample, sigma: Sigma = 0.0):
        """``log p_sigma(x)`` by a log-sum-exp over components, a scalar."""
        sigma = jnp.asarray(sigma, x.dtype)
        v = self.std * self.std + sigma * sigma
        lse = jax.nn.logsumexp(self._logits(x, v))
        return lse - 0.5 * jnp.dot(x, x) / v - 0.5 * self.dim * (jnp.log(v) + math.log(2 * math.pi))

    def sample(self, key: Key, n: int):
        n = check_positive_int("n", n)
        kc, kz = jax.random.split(key)
        comp = jax.random.categorical(kc, self.log_weights, shape=(n,))
        z = jax.random.normal(kz, (n, self.dim), self.means.dtype)
        return self.means[comp] + self.std * z

    def sample_with_labels(self, key: Key, n: int):
        """Exact samples ``(n, d)`` and their component labels ``(n,)``."""
        n = check_positive_int("n", n)
        kc, kz = jax.random.split(key)
        comp = jax.random.categorical(kc, self.log_weights, shape=(n,))
        z = jax.random.normal(kz, (n, self.dim), self.means.dtype)
        return self.means[comp] + self.std * z, comp


__all__ = ["GaussianMixture"]
