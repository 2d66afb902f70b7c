"""The exact oracle: the target's closed-form score."""

from __future__ import annotations

import jax.numpy as jnp

from ..targets.base import AbstractTarget
from .base import AbstractOracle, flat_call


class Exact(AbstractOracle):
    """Answers every query with ``target.score(x, sigma)``; stateless and deterministic.

    Event-shaped points (e.g. ``(8, 8, 1)`` for a target of dim 64) are flattened for the target."""

    target: AbstractTarget

    def __check_init__(self):
        if not isinstance(self.target, AbstractTarget):
            raise TypeError(
                f"`Exact(target)` needs a jscore target (e.g. js.targets.Gaussian), got "
                f"{type(self.target).__name__}."
            )

    @property
    def dim(self) -> int:
        return self.target.dim

    def query(self, x, sigma, state):
        return flat_call(self.target.score, x, sigma), state


class Reference(AbstractOracle):
    """Hypothesis-independent control: answers ``reference.score(x, sigma)`` (e.g. ``s_Q``).

    For the lower-bound lab pass the codebook's reference law (``codebook.reference``, the uniform
    sphere or N(0, rho^2 I)). Its answers never depend on the hidden codebook, so its per-chain
    report is ``informative = False``, ``first_informative = 0`` and ``informative_count = 0``
    (the same statistics as :class:`~jscore.oracles.LRAdversary`, for side-by-side runs).
    """

    target: AbstractTarget

    def __check_init__(self):
        if not isinstance(self.target, AbstractTarget):
            raise TypeError(
                "`Reference(reference_target)` needs a jscore target (e.g. codebook.reference), "
                f"got {type(self.target).__name__}."
            )

    @property
    def dim(self) -> int:
        return self.target.dim

    def query(self, x, sigma, state):
        return flat_call(self.target.score, x, sigma), state

    def report(self, state) -> dict:
        zero = jnp.zeros((), jnp.int32)
        return {"informative": jnp.zeros((), bool), "first_informative": zero,
                "informative_count": zero}


__all__ = ["Exact", "Reference"]
