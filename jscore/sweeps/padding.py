"""Dimension buckets: pad targets to a power-of-two ``d_pad`` and mask oracles to the valid ``d``.

A run at dimension ``d`` inside the bucket ``d_pad >= d`` uses the mask ``m = arange(d_pad) < d``
(``d`` is traced, so every d of a bucket shares one compilation):

- the target's parameters are zero-padded (means 0; a diagonal variance 1 on padding), so dot
  products ``means @ x`` and squared norms see only valid coordinates;
- :class:`Masked` zeroes the padded coordinates of the point before the inner oracle sees it and of
  the score it returns, so padded coordinates have zero score;
- the sweep engine starts chains at ``sigma_0 z * m`` (zero on padding).

Deterministic samplers then keep padding at exactly 0 and the valid coordinates follow the
unpadded run: bitwise for coordinate-separable oracles (``Exact(Gaussian)``), to rounding for
mixtures (a dot product over ``d_pad`` entries instead of ``d``). Stochastic samplers also put noise
on padding, which never reaches valid coordinates. The initial draw relies on
``normal(k, (d_pad,))[:d] == normal(k, (d,))`` (threefry, partitionable mode, the default since
jax 0.5), which is tested in ``tests/test_sweeps.py``.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool

from ..oracles.base import AbstractOracle
from ..targets import Gaussian, GaussianMixture


def next_pow2(d: int) -> int:
    """Smallest power of two >= d."""
    return 1 << max(int(d) - 1, 0).bit_length()


def _pad_last(a, d_pad, value):
    a = jnp.asarray(a)
    extra = d_pad - a.shape[-1]
    if extra < 0:
        raise ValueError(f"cannot pad dimension {a.shape[-1]} down to {d_pad}.")
    if extra == 0:
        return a
    widths = [(0, 0)] * (a.ndim - 1) + [(0, extra)]
    return jnp.pad(a, widths, constant_values=value)


def pad_target(target, d_pad: int):
    """Zero-pad a Gaussian or mixture target to ``d_pad`` coordinates (see module docstring).

    Raises ``TypeError`` for targets without a padding rule (compile those per d instead).
    """
    if target.dim == d_pad:
        return target
    if isinstance(target, Gaussian):
        var = target.var if target.var.ndim == 0 else _pad_last(target.var, d_pad, 1.0)
        return eqx.tree_at(lambda t: (t.mean, t.var), target, (_pad_last(target.mean, d_pad, 0.0), var))
    if isinstance(target, GaussianMixture):
        # keep log_weights and half_sq_norms bit-identical: padding adds zeros to |m_k|^2
        return eqx.tree_at(lambda t: t.means, target, _pad_last(target.means, d_pad, 0.0))
    raise TypeError(
        f"{type(target).__name__} has no padding rule; run it with dims_mode='exact' (one "
        "compilation per d)."
    )


class Masked(AbstractOracle):
    """Restrict ``inner`` to the valid coordinates ``mask`` (padded ones are zero in and out).

    ``query(x, sigma, state)`` returns ``(where(mask, S_inner(where(mask, x, 0)), 0), state)``.
    Correct only for inner oracles whose answer on valid coordinates does not depend on padded
    coordinates once those are zero (exact oracles of zero-padded targets); the sweep engine
    uses it only for oracles registered as ``bucketable``.
    """

    inner: AbstractOracle
    mask: Bool[Array, " d_pad"]

    @property
    def dim(self):
        return self.mask.shape[0]

    def init(self, key, dim):
        return self.inner.init(key, dim)

    def query(self, x, sigma, state):
        x = jnp.where(self.mask, x, jnp.zeros_like(x))
        score, state = self.inner.query(x, sigma, state)
        return jnp.where(self.mask, score, jnp.zeros_like(score)), state

    def report(self, state):
        return self.inner.report(state)


def prefix_stable_normal(key, d: int, d_pad: int) -> bool:
    """Whether ``normal(key, (d_pad,))[:d] == normal(key, (d,))`` on this jax (host check)."""
    import jax

    a = np.asarray(jax.random.normal(key, (d_pad,)))[:d]
    b = np.asarray(jax.random.normal(key, (d,)))
    return bool(np.array_equal(a, b))


__all__ = ["Masked", "pad_target", "next_pow2", "prefix_stable_normal"]
