"""The exact oracle: the target's closed-form score."""

from __future__ import annotations

from ..targets.base import AbstractTarget
from .base import AbstractOracle


class Exact(AbstractOracle):
    """Answers every query with ``target.score(x, sigma)``; stateless and deterministic."""

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
        return self.target.score(x, sigma), state


__all__ = ["Exact"]
