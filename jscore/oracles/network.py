"""An oracle backed by a learned denoiser network (e.g. :class:`jscore.nets.DenoiserMLP`)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from .base import AbstractOracle, check_answer


class Network(AbstractOracle):
    """Score from a denoiser network: ``S(x, sigma) = (D(x, sigma) - x) / sigma^2`` (Tweedie).

    ``model(x, sigma)`` must return the denoiser ``D`` of shape ``(d,)`` for one point ``x (d,)``.
    If the model has a ``score(x, sigma)`` method (as :class:`jscore.nets.DenoiserMLP` does, in a
    form that avoids the cancellation in ``D - x`` at small sigma), it is used instead. Stateless
    and deterministic; ``dim`` is ``model.dim`` when the model has one (its points are then flat
    ``(dim,)`` vectors). The model's arrays are traced, so swapping trained weights of one
    architecture never retraces. For any other model (image-shaped, a plain function, a
    parameterisation other than a denoiser) use :class:`Denoiser`, :class:`Score` or the adapters.
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

    @property
    def event_shape(self):
        d = self.dim
        return None if d is None else (d,)

    def query(self, x, sigma, state):
        sigma = jnp.asarray(sigma, x.dtype)
        score_fn = getattr(self.model, "score", None)
        if callable(score_fn):
            return check_answer(score_fn(x, sigma), x, "Network(model): model.score(x, sigma)"), state
        d = check_answer(self.model(x, sigma), x, "Network(model): model(x, sigma)")
        return (d - x) / (sigma * sigma), state


__all__ = ["Network"]
