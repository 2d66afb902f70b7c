"""The smoothed empirical law of a data set: a data point plus Gaussian noise.

``Empirical(points, bandwidth)`` is the law of ``x_I + bandwidth z`` with ``I`` uniform on the
``n`` points and ``z ~ N(0, I_d)``, i.e. the equal-weight mixture ``(1/n) sum_i N(x_i, h^2 I)``
(``h = bandwidth >= 0``; ``h = 0`` is the empirical law itself). Noised at level sigma it is the
same mixture with variance ``v = h^2 + sigma^2``, so the exact score is

    score(x, sigma) = (sum_i r_i(x) x_i - x) / v,   r = softmax_i(-|x - x_i|^2 / (2 v)),

computed by :class:`~jscore.targets.GaussianMixture` (log-sum-exp stable responsibilities). Points
may be event-shaped, ``(n, *event_shape)`` (e.g. images ``(n, H, W, C)``): they are stored as
flat ``(n, d)`` rows, ``d = prod(event_shape)``; the score takes flat ``(d,)`` points like every
target (the :class:`~jscore.oracles.Exact` oracle accepts event-shaped chains) and
:meth:`Empirical.as_events` reshapes flat rows back to images.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._checks import check_range
from .mixture import GaussianMixture


class Empirical(GaussianMixture):
    """Equal-weight Gaussian mixture on data points: ``(1/n) sum_i N(x_i, bandwidth^2 I)``.

    **Arguments:** ``points`` ``(n, *event_shape)`` (``n >= 1``; a flat data set is ``(n, d)``);
    ``bandwidth`` scalar ``>= 0``. ``dim = prod(event_shape)``; ``means`` are the flat points
    ``(n, d)`` and ``std`` is the bandwidth.
    """

    event_shape: tuple = eqx.field(static=True)

    def __init__(self, points, bandwidth):
        check_range("points", points, fix="The data points must be finite.")
        check_range("bandwidth", bandwidth, 0.0,
                    fix="The bandwidth (std of the noise added to a data point) must be >= 0.")
        pts = jnp.asarray(points, dtype=jnp.result_type(float))
        if pts.ndim < 2 or pts.shape[0] < 1 or math.prod(pts.shape[1:]) < 1:
            raise ValueError(
                f"`points` must have shape (n, *event_shape) with n >= 1 and at least one "
                f"coordinate per point, got {pts.shape}; for one point pass points[None]."
            )
        self.event_shape = tuple(int(s) for s in pts.shape[1:])
        super().__init__(pts.reshape(pts.shape[0], -1), bandwidth)

    @property
    def bandwidth(self):
        """The smoothing std ``h`` (the mixture's common ``std``)."""
        return self.std

    @property
    def num_points(self) -> int:
        """n, the number of data points."""
        return self.means.shape[0]

    @property
    def points(self):
        """The data points in their event shape, ``(n, *event_shape)``."""
        return self.as_events(self.means)

    def as_events(self, x):
        """Flat rows ``(..., d)`` as ``(..., *event_shape)`` (e.g. samples as images)."""
        x = jnp.asarray(x) if not isinstance(x, np.ndarray) else x
        if x.shape[-1:] != (self.dim,):
            raise ValueError(
                f"`x` must have a last axis of size d = {self.dim}, got shape {x.shape}."
            )
        return x.reshape(*x.shape[:-1], *self.event_shape)


__all__ = ["Empirical"]
