"""What a run returns: samples, per-chain counts, status codes and an optional trace."""

from __future__ import annotations

import enum

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .counting import QueryStats


class Status(enum.IntEnum):
    """Per-chain result codes; ``res.status`` holds their integer values."""

    success = 0
    budget_exhausted = 1
    nonfinite = 2

    @property
    def message(self) -> str:
        """What the code means for a chain and how to fix it (empty for ``success``)."""
        return {
            Status.success: "",
            Status.budget_exhausted: (
                "The chain ran out of `max_queries` before reaching the end of the grid; its "
                "sample is the state after the last completed step. Increase `max_queries`."
            ),
            Status.nonfinite: (
                "The chain's state became NaN or inf. Check the oracle's answers and the grid; "
                "enable jax_enable_x64 for tiny sigma_min or very large d."
            ),
        }[self]


class Record(eqx.Module):
    """Ask for a per-step trace: every ``every``-th step (and the last), optionally with ``x``."""

    every: int = eqx.field(static=True, default=1)
    x: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if not isinstance(self.every, int) or isinstance(self.every, bool) or self.every < 1:
            raise ValueError(f"`Record(every=...)` must be a positive int, got {self.every!r}.")


class Trace(eqx.Module):
    """Per recorded step: the level reached, cumulative queries/rounds/levels, optionally x.

    Shapes (one chain): ``sigma (T,)``, counts ``(T,)``, ``x (T, d)``; a batch adds a leading axis.
    Steps that were not reached (budget exhausted, adaptive runs that ended early) have
    ``sigma = nan``.
    """

    sigma: Float[Array, "*batch T"]
    queries: Int[Array, "*batch T"]
    rounds: Int[Array, "*batch T"]
    levels: Int[Array, "*batch T"]
    x: Float[Array, "*batch T d"] | None = None

    @classmethod
    def empty(cls, length: int, dim: int, dtype, with_x: bool) -> "Trace":
        """A trace of ``length`` unreached entries (``sigma = nan``, counts 0) for one chain."""
        z = jnp.zeros((length,), jnp.int32)
        return cls(
            sigma=jnp.full((length,), jnp.nan, dtype),
            queries=z,
            rounds=z,
            levels=z,
            x=jnp.full((length, dim), jnp.nan, dtype) if with_x else None,
        )

    def write(self, slot, when, sigma, ledger, x) -> "Trace":
        """Store ``sigma``, the ledger's cumulative counts and ``x`` at index ``slot`` if ``when``."""
        def put(buf, val):
            val = jnp.asarray(val, buf.dtype)
            return buf.at[slot].set(jnp.where(when, val, buf[slot]))

        return Trace(
            sigma=put(self.sigma, sigma),
            queries=put(self.queries, ledger.queries),
            rounds=put(self.rounds, ledger.rounds),
            levels=put(self.levels, ledger.levels),
            x=None if self.x is None else put(self.x, x),
        )


class Result(eqx.Module):
    """Output of :func:`jscore.sample` (batch axis first) or :func:`jscore.sample_one`.

    - ``x``: ``(n, d)`` final samples.
    - ``stats``: :class:`QueryStats` with ``queries``, ``levels``, ``rounds`` of shape ``(n,)``.
    - ``status``: ``(n,)`` int32 codes of :class:`Status`; ``status_names`` reads them.
    - ``trace``: :class:`Trace` when a :class:`Record` was passed, else ``None``.
    """

    x: Float[Array, "*batch d"]
    stats: QueryStats
    status: Int[Array, "*batch"]
    trace: Trace | None = None

    @property
    def status_names(self) -> list[str]:
        """``res.status`` as a list of :class:`Status` names, e.g. ``['success', ...]``."""
        codes = np.atleast_1d(np.asarray(self.status))
        return [Status(int(c)).name for c in codes]

    @property
    def ok(self):
        """Boolean array: which chains finished successfully."""
        return self.status == Status.success


def summarize(result: Result) -> dict:
    """Host-side summary in plain Python numbers (int64 totals, so large batches cannot overflow)."""
    out: dict = {}
    for name in ("queries", "levels", "rounds"):
        v = np.atleast_1d(np.asarray(getattr(result.stats, name), dtype=np.int64))
        out[name] = {
            "mean": float(v.mean()),
            "min": int(v.min()),
            "max": int(v.max()),
            "total": int(v.sum()),
        }
    codes = np.atleast_1d(np.asarray(result.status))
    out["num_samples"] = int(codes.size)
    out["status"] = {s.name: int(np.sum(codes == s.value)) for s in Status}
    return out


__all__ = ["Status", "Record", "Trace", "Result", "summarize"]
