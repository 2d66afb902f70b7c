"""The oracle protocol: what a sampler sees of the data.

``state = oracle.init(key, dim)`` (``None`` for stateless oracles), then
``score, state = oracle.query(x, sigma, state)`` for one point ``x`` and a level ``sigma > 0``.
``x`` has the chain's *event shape*: ``(d,)`` for flat states, e.g. ``(H, W, C)`` for images
(``dim = prod(event_shape)``); the answer has the same shape. Oracles built on flat targets
(:class:`Exact`, ...) flatten internally, so they accept any event shape of their dimension. State in, state out: an oracle with memory (an adversary's record, its own random
stream) returns its new state from every query. ``report(state)`` returns per-chain statistics
(a dict of scalars) that the engine places in ``res.stats`` (e.g. ``stats.informative``).

Samplers never call ``query`` directly: they go through :func:`jscore.counting.charged_query`.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax.numpy as jnp

from .._checks import check_real_fields
from ..typing import Key, Sample, Score, Sigma


class AbstractOracle(eqx.Module):
    """Answers score queries ``S(x, sigma) ~ grad_x log p_sigma(x)``."""

    def __check_init__(self):
        check_real_fields(self)

    @property
    def dim(self) -> int | None:
        """Dimension the oracle answers in, or ``None`` if it accepts any d."""
        return None

    @property
    def event_shape(self) -> tuple[int, ...] | None:
        """Shape of one point the oracle requires, or ``None`` if any shape of size ``dim`` works."""
        return None

    def init(self, key: Key, dim: int) -> Any:
        """Initial per-chain state (default: ``None``)."""
        return None

    @abc.abstractmethod
    def query(self, x: Sample, sigma: Sigma, state: Any) -> tuple[Score, Any]:
        """Return ``(score, new_state)`` for one point ``x`` (event-shaped; see the module doc)."""

    def report(self, state: Any) -> dict:
        """Per-chain statistics from the final state (default: none)."""
        return {}


def flat_call(fn, x, *args):
    """``fn(x.reshape(-1), *args)`` reshaped back to ``x.shape``: a flat ``(d,)`` function applied
    to an event-shaped point (how oracles of flat targets accept image-shaped states)."""
    return jnp.reshape(fn(jnp.reshape(x, (-1,)), *args), x.shape)


def check_answer(out, x, what: str):
    """``out`` as an array of ``x``'s shape and dtype, or a clear error naming ``what``.

    A model returning a scalar, a batch, or a differently shaped array is a mistake that
    broadcasting would hide; it is raised when the run is traced (before anything is computed).
    """
    out = jnp.asarray(out)
    if out.shape != x.shape:
        raise ValueError(
            f"{what} must return one array of the point's shape {tuple(x.shape)}, got shape "
            f"{tuple(out.shape)}. The model is called on one point at a time (jscore vmaps over "
            "chains): return the score/denoiser/prediction for that point, not a scalar or a batch."
        )
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise TypeError(f"{what} must return a floating-point array, got dtype {out.dtype}.")
    return out.astype(x.dtype)


class InShape(AbstractOracle):
    """``inner`` asked at flat points: ``query`` reshapes ``x (d,)`` to ``shape``, asks ``inner``,
    checks the answer's shape and flattens it back (how the engine runs samplers, which work on
    flat ``(d,)`` states, against oracles of event-shaped points)."""

    inner: AbstractOracle
    shape: tuple = eqx.field(static=True)

    @property
    def dim(self):
        return self.inner.dim

    def init(self, key, dim):
        return self.inner.init(key, dim)

    def query(self, x, sigma, state):
        xs = jnp.reshape(x, self.shape)
        score, state = self.inner.query(xs, sigma, state)
        score = check_answer(score, xs, f"{type(self.inner).__name__}.query(x, sigma, state)")
        return jnp.reshape(score, x.shape), state

    def report(self, state) -> dict:
        return self.inner.report(state)


def in_shape(oracle, shape) -> AbstractOracle:
    """``oracle`` asked at flat points of a chain whose points have ``shape`` (identity if flat)."""
    shape = tuple(shape)
    return oracle if len(shape) == 1 else InShape(oracle, shape)


__all__ = ["AbstractOracle", "InShape", "in_shape", "flat_call", "check_answer"]
