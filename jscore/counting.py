"""Per-chain query accounting carried through every sampler loop.

Definitions (docs/sampler_reference.md §15), per chain:

- ``queries`` (Q): oracle calls charged to the chain: every stage, corrector step, rejected
  adaptive attempt and the terminal Tweedie call. Values derived from an answer (D, eps-hat,
  relative score, cached evaluations) are free.
- ``rounds`` (R): depth of the dependency graph of the chain's oracle calls. Sequential samplers
  issue one call per round (R = Q); parallel samplers issue several calls per round.
- ``levels`` (N_sigma): distinct sigma values among the chain's queries, compared as the exact floats
  passed to the oracle (off-grid levels count individually; re-queries count once).

Samplers obtain scores only through :func:`charged_query` and :func:`charged_round` ("one door"),
so no score is seen without being counted. Increments are branch-free (``jnp.where``), so counts
are exact under ``jit`` and ``vmap``: a masked call that still executes is not charged, and an
uncharged call never advances the oracle's state.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int


class QueryStats(eqx.Module):
    """Counts returned with every result: arrays of shape ``(n,)`` for a batch, ``()`` for one chain.

    ``extra`` holds oracle-specific per-chain statistics (e.g. an adversary's ``informative``);
    they are also readable as attributes (``stats.informative``).
    """

    queries: Int[Array, "*batch"]
    levels: Int[Array, "*batch"]
    rounds: Int[Array, "*batch"]
    extra: dict = eqx.field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "extra":
            raise AttributeError(name)
        extra = self.__dict__.get("extra", {})
        if name in extra:
            return extra[name]
        raise AttributeError(f"QueryStats has no field or oracle statistic {name!r}.")


def _tree_select(pred, new, old):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), new, old)


class Ledger(eqx.Module):
    """One chain's running counts (the loop carry behind :class:`QueryStats`).

    ``seen`` is a buffer of the distinct sigma values queried so far (``+inf`` = empty slot); its
    static length bounds the number of distinct levels and is sized by the engine from the
    sampler's query capacity. ``budget`` is the chain's ``max_queries``; a query that would exceed
    it is not made and sets ``exhausted``, after which nothing is charged.
    """

    queries: Int[Array, ""]
    rounds: Int[Array, ""]
    levels: Int[Array, ""]
    seen: Float[Array, " L"]
    exhausted: Bool[Array, ""]
    budget: Int[Array, ""]

    @classmethod
    def empty(cls, budget: int, capacity: int, dtype) -> "Ledger":
        """A fresh ledger: zero counts, ``budget`` queries allowed, room for ``capacity`` levels."""
        # The scalar counters start as NumPy constants so that a sampler's solve can read the
        # fresh budget at trace time (AbstractFixedStepSampler drops its exhaustion select when
        # the budget provably covers the grid); they become JAX arrays at the first charge.
        # A traced budget (e.g. a sweep passing it as data) stays a JAX array.
        zero = np.zeros((), np.int32)
        budget = (
            jnp.asarray(budget, jnp.int32)
            if isinstance(budget, jax.core.Tracer) or isinstance(budget, jax.Array)
            else np.asarray(budget, np.int32)
        )
        return cls(
            queries=zero,
            rounds=zero,
            levels=zero,
            seen=jnp.full((max(int(capacity), 1),), jnp.inf, dtype),
            exhausted=np.zeros((), bool),
            budget=budget,
        )

    @property
    def active(self) -> Bool[Array, ""]:
        """False once the chain has run out of budget."""
        return ~self.exhausted

    def remaining(self) -> Int[Array, ""]:
        """Queries left before the budget is exhausted: ``budget - queries`` (scalar int32)."""
        return self.budget - self.queries

    def stats(self, extra: dict | None = None) -> QueryStats:
        """The chain's :class:`QueryStats` (queries, levels, rounds) plus oracle statistics ``extra``."""
        return QueryStats(self.queries, self.levels, self.rounds, dict(extra or {}))

    def _mark_level(self, sigma, charged) -> "Ledger":
        sigma = jnp.asarray(sigma, self.seen.dtype)
        is_new = charged & ~jnp.any(self.seen == sigma)
        slot = jnp.minimum(self.levels, self.seen.shape[0] - 1)
        old = self.seen[slot]
        seen = self.seen.at[slot].set(jnp.where(is_new, sigma, old))
        return eqx.tree_at(
            lambda l: (l.seen, l.levels), self, (seen, self.levels + is_new.astype(jnp.int32))
        )

    def charge(self, sigma, wanted) -> tuple["Ledger", Bool[Array, ""]]:
        """Charge one call at ``sigma`` if ``wanted`` and within budget; no round is added.

        Returns the new ledger and whether the call was charged.
        """
        wanted = jnp.asarray(wanted, bool) & ~self.exhausted
        charged = wanted & (self.queries < self.budget)
        ledger = eqx.tree_at(
            lambda l: (l.queries, l.exhausted),
            self,
            (self.queries + charged.astype(jnp.int32), self.exhausted | (wanted & ~charged)),
        )
        return ledger._mark_level(sigma, charged), charged

    def add_round(self, made) -> "Ledger":
        """Add ``made`` (0 or 1, traced) rounds: one per group of calls issued together (``charged_round``)."""
        return eqx.tree_at(lambda l: l.rounds, self, self.rounds + jnp.asarray(made, jnp.int32))


def _safe_sigma(sigma, when):
    # A masked-off call may sit at sigma = 0 (e.g. Heun's corrector on the step into 0); evaluate
    # it at sigma = 1 instead so the discarded answer is finite.
    return jnp.where(when, sigma, jnp.ones_like(sigma))


def charged_query(oracle, x, sigma, ostate, ledger: Ledger, *, when=True, new_round: bool = True):
    """Ask ``oracle`` for ``S(x, sigma)`` and charge it to ``ledger``.

    **Arguments:**
    - ``x``: ``(d,)`` point; ``sigma``: scalar level (> 0 when the call is wanted).
    - ``when``: traced bool; a call with ``when=False`` still executes (branch-free) but is not
      charged and does not advance the oracle state. Callers must discard its answer.
    - ``new_round``: count the call as a new adaptive round (sequential samplers: always).

    **Returns:** ``(score, ostate, ledger)``. If the chain's budget is exhausted the call is not
    charged, ``ledger.exhausted`` becomes True, and the caller's step is discarded by the engine.
    """
    sigma = jnp.asarray(sigma, x.dtype)
    ledger, charged = ledger.charge(sigma, when)
    score, new_state = oracle.query(x, _safe_sigma(sigma, jnp.asarray(when, bool)), ostate)
    ostate = _tree_select(charged, new_state, ostate)
    if new_round:
        ledger = ledger.add_round(charged)
    return score, ostate, ledger


def charged_round(oracle, xs, sigmas, ostate, ledger: Ledger, *, when=True):
    """Ask for ``K`` scores issued together as one adaptive round.

    ``xs``: ``(K, d)``; ``sigmas``: ``(K,)``; ``when``: bool or ``(K,)`` mask. Charges one query per
    wanted call and one round if any call was charged. The oracle state is threaded through the
    calls in order (it is bookkeeping, not a dependency between them).
    """
    k = xs.shape[0]
    sigmas = jnp.broadcast_to(jnp.asarray(sigmas, xs.dtype), (k,))
    when = jnp.broadcast_to(jnp.asarray(when, bool), (k,))

    def body(carry, inp):
        ostate, ledger, any_charged = carry
        x, s, w = inp
        q0 = ledger.queries
        score, ostate, ledger = charged_query(oracle, x, s, ostate, ledger, when=w, new_round=False)
        return (ostate, ledger, any_charged | (ledger.queries > q0)), score

    (ostate, ledger, any_charged), scores = jax.lax.scan(
        body, (ostate, ledger, jnp.zeros((), bool)), (xs, sigmas, when)
    )
    return scores, ostate, ledger.add_round(any_charged)


__all__ = ["QueryStats", "Ledger", "charged_query", "charged_round"]
