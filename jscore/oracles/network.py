"""An oracle backed by a learned denoiser network (e.g. :class:`jscore.nets.DenoiserMLP`)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from .base import AbstractOracle


class Network(AbstractOracle):
    """Score from a denoiser network: ``S(x, sigma) = (D(x, sigma) - x) / sigma^2`` (Tweedie).

    ``model(x, sigma)`` must return the denoiser ``D`` of shape ``(d,)`` for one point ``x (d,)``.
    If the model has a ``score(x, sigma)`` method (as :class:`jscore.nets.DenoiserMLP` does, in a
    form that avoids the cancellation in ``D - x`` at small sigma), it is used instead. Stateless
    and deterministic; ``dim`` is ``model.dim`` when the model has one. The model's arrays are
    traced, so swapping trained weights of one architecture never retraces.
    """

    model: eqx.Module

    def __check_init__(self):
        if not callable(self.model):
            raise TypeError(
                f"`Network(model)` needs a callable denoiser model(x, sigma) -> (d,), got "
                f"{type(self.model).__name__}."
            )

    @property
    def dim(self):
        d = getattr(self.model, "dim", None)
        return d if isinstance(d, int) else None

    def query(self, x, sigma, state):
        sigma = jnp.asarray(sigma, x.dtype)
        score_fn = getattr(self.model, "score", None)
        if callable(score_fn):
            return jnp.asarray(score_fn(x, sigma), x.dtype), state
        d = jnp.asarray(self.model(x, sigma), x.dtype)
        return (d - x) / (sigma * sigma), state


__all__ = ["Network"]
