"""The oracle protocol: what a sampler sees of the data.

``state = oracle.init(key, dim)`` (``None`` for stateless oracles), then
``score, state = oracle.query(x, sigma, state)`` for one point ``x`` of shape ``(d,)`` and a level
``sigma > 0``. State in, state out: an oracle with memory (an adversary's record, its own random
stream) returns its new state from every query. ``report(state)`` returns per-chain statistics
(a dict of scalars) that the engine places in ``res.stats`` (e.g. ``stats.informative``).

Samplers never call ``query`` directly: they go through :func:`jscore.counting.charged_query`.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx

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

    def init(self, key: Key, dim: int) -> Any:
        """Initial per-chain state (default: ``None``)."""
        return None

    @abc.abstractmethod
    def query(self, x: Sample, sigma: Sigma, state: Any) -> tuple[Score, Any]:
        """Return ``(score, new_state)`` for one point ``x`` of shape ``(d,)``."""

    def report(self, state: Any) -> dict:
        """Per-chain statistics from the final state (default: none)."""
        return {}


__all__ = ["AbstractOracle"]
