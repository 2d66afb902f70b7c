"""Oracles from plain functions: your own score or denoiser model.

``Score(fn)`` answers ``fn(x, sigma)``; ``Denoiser(fn)`` answers Tweedie's
``(fn(x, sigma) - x) / sigma^2``. ``fn`` is any JAX-traceable callable or Equinox module taking
one point ``x`` (the chain's event shape, e.g. ``(d,)`` or ``(H, W, C)``) and a scalar ``sigma``
in jscore's VE convention (``x = x0 + sigma z``). With ``args``, the call is ``fn(x, sigma, args)``.

Weights are traced, never baked in: an Equinox module's arrays and the ``args`` pytree are
inputs of the compiled program, so swapping trained weights of one architecture (same shapes)
reuses it. A plain Python function is part of the program's identity: pass a *new* function
object and the run is retraced; put its parameters in ``args`` instead of closing over them.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import equinox as eqx
import jax.numpy as jnp

from .base import AbstractOracle, check_answer


def _event(event_shape):
    if event_shape is None:
        return None
    shape = tuple(event_shape) if isinstance(event_shape, (tuple, list)) else (event_shape,)
    if not shape or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape):
        raise ValueError(
            f"`event_shape` must be a tuple of positive ints (the shape of one point, e.g. "
            f"(8, 8, 1)), got {event_shape!r}."
        )
    return shape


def _check_callable(fn, cls: str):
    if not callable(fn):
        raise TypeError(
            f"`{cls}(fn)` needs a callable fn(x, sigma) (a function or an Equinox module), got "
            f"{type(fn).__name__}."
        )


def call_model(fn, x, t, args):
    """``fn(x, t)`` or, when ``args`` is given, ``fn(x, t, args)``."""
    return fn(x, t) if args is None else fn(x, t, args)


class _FunctionOracle(AbstractOracle):
    fn: Callable
    args: Any
    event: tuple | None = eqx.field(static=True)

    def __init__(self, fn, args=None, *, event_shape=None):
        _check_callable(fn, type(self).__name__)
        self.fn = fn
        self.args = args
        self.event = _event(event_shape)

    @property
    def dim(self):
        return None if self.event is None else math.prod(self.event)

    @property
    def event_shape(self):
        return self.event


class Score(_FunctionOracle):
    """``Score(fn, args=None, *, event_shape=None)``: answers ``S(x, sigma) = fn(x, sigma[, args])``.

    ``fn`` returns ``grad_x log p_sigma(x)`` for one point, with ``x``'s shape. ``event_shape``
    (optional) fixes the shape of one point, so ``js.sample`` can draw the initial points without
    an ``x_init``; without it, any shape is accepted. Stateless and deterministic.
    """

    def query(self, x, sigma, state):
        sigma = jnp.asarray(sigma, x.dtype)
        out = call_model(self.fn, x, sigma, self.args)
        return check_answer(out, x, "Score(fn): fn(x, sigma)"), state


class Denoiser(_FunctionOracle):
    """``Denoiser(fn, args=None, *, event_shape=None)``: ``fn`` returns ``D(x, sigma) = E[x0 | x]``.

    The answer is Tweedie's ``S(x, sigma) = (D(x, sigma) - x) / sigma^2``. Shapes and weights as
    for :class:`Score`. Stateless and deterministic.
    """

    def query(self, x, sigma, state):
        sigma = jnp.asarray(sigma, x.dtype)
        d = check_answer(call_model(self.fn, x, sigma, self.args), x, "Denoiser(fn): fn(x, sigma)")
        return (d - x) / (sigma * sigma), state


__all__ = ["Score", "Denoiser", "call_model"]
