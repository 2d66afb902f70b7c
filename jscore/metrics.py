"""Error metrics between samples and targets, with standard errors where they are estimates.

All functions take batches: ``samples`` of shape ``(n, d)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def gaussian_w2(mean_a, var_a, mean_b, var_b):
    """Closed-form W2 between diagonal Gaussians ``N(mean_a, diag var_a)`` and ``N(mean_b, diag var_b)``.

    ``W2^2 = |mean_a - mean_b|^2 + sum (sqrt(var_a) - sqrt(var_b))^2``. Shapes ``(d,)`` (or scalars).
    """
    ma, mb = jnp.asarray(mean_a), jnp.asarray(mean_b)
    sa, sb = jnp.sqrt(jnp.asarray(var_a)), jnp.sqrt(jnp.asarray(var_b))
    d = jnp.broadcast_shapes(ma.shape, mb.shape, sa.shape, sb.shape)
    w2sq = jnp.sum(jnp.broadcast_to((ma - mb) ** 2, d)) + jnp.sum(jnp.broadcast_to((sa - sb) ** 2, d))
    return jnp.sqrt(w2sq)


def moment_fit_w2(samples, mean, var):
    """W2 between the diagonal-Gaussian moment fit of ``samples (n, d)`` and ``N(mean, diag var)``."""
    x = jnp.asarray(samples)
    return gaussian_w2(x.mean(0), x.var(0, ddof=1), mean, var)


def _mean_pair_dist(a, b, same: bool):
    # mean Euclidean distance over pairs, in row blocks so memory stays O(block * n)
    a = jnp.asarray(a)
    b = jnp.asarray(b)
    sq_b = jnp.sum(b * b, -1)

    def row(x):
        d2 = jnp.maximum(jnp.dot(x, x) + sq_b - 2.0 * (b @ x), 0.0)
        return jnp.sum(jnp.sqrt(d2))

    total = jnp.sum(jax.lax.map(row, a, batch_size=256))
    n, m = a.shape[0], b.shape[0]
    return total / (n * (n - 1)) if same else total / (n * m)


def energy_distance(x, y):
    """Unbiased energy distance ``2 E|X-Y| - E|X-X'| - E|Y-Y'|`` between sample sets ``(n, d)``, ``(m, d)``.

    Zero in expectation when both sets come from the same law (U-statistics for the within terms);
    it can therefore be slightly negative. Cost O(n m d) in blocks.
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"energy_distance needs (n, d) and (m, d) arrays, got {x.shape} and {y.shape}.")
    return 2.0 * _mean_pair_dist(x, y, False) - _mean_pair_dist(x, x, True) - _mean_pair_dist(y, y, True)


def mode_tv(samples, means, weights=None):
    """Total-variation distance between mode masses and ``weights``; samples go to the nearest mean.

    Returns ``(tv, se)`` where ``se`` is the delta-method standard error of the empirical masses'
    TV under multinomial sampling (a rough scale of the TV's sampling noise floor).
    """
    x = np.asarray(samples, dtype=np.float64)
    m = np.asarray(means, dtype=np.float64)
    k = m.shape[0]
    w = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, np.float64) / np.sum(weights)
    d2 = (x * x).sum(1)[:, None] - 2.0 * x @ m.T + (m * m).sum(1)[None, :]
    counts = np.bincount(np.argmin(d2, 1), minlength=k)
    p_hat = counts / x.shape[0]
    tv = 0.5 * np.abs(p_hat - w).sum()
    se = 0.5 * np.sqrt((w * (1 - w)).sum() / x.shape[0])
    return float(tv), float(se)


__all__ = ["gaussian_w2", "moment_fit_w2", "energy_distance", "mode_tv"]
