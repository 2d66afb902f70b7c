"""Sampler strategies: how one chain moves down the sigma grid.

A sampler is an Equinox module whose numeric hyper-parameters are array fields (changing their
values never retraces). It works on one chain (``x`` of shape ``(d,)``); the engine vmaps it.
Image-shaped states are flattened by the engine before ``solve`` (``d = prod(event_shape)``) and
the oracle is asked at event-shaped points, so a sampler never sees the event shape.

Every sampler implements ``solve``, which runs the whole chain and threads the oracle state and a
:class:`jscore.counting.Ledger` (the per-chain query counts) through its loop. Fixed-grid samplers
derive from :class:`AbstractFixedStepSampler` and only write ``init`` and ``step``; ``solve`` is a
``lax.scan`` over the ``N = len(sigmas) - 1`` steps. Samplers with data-dependent cost (adaptive,
Picard) write ``solve`` with a ``lax.while_loop`` bounded by the static budget.

Scores are obtained only through :func:`jscore.counting.charged_query` / ``charged_round``.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import as_real, check_real_fields
from ..counting import Ledger
from ..results import Record, Trace
from ..seeds import step_key


class Solution(NamedTuple):
    """What ``solve`` returns for one chain."""

    x: Any
    ostate: Any
    ledger: Ledger
    trace: Trace | None


def tree_select(pred, new, old):
    """Elementwise ``where(pred, new, old)`` over matching pytrees (None leaves pass through)."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), new, old)


class _StepKey(eqx.Module):
    """The step's key ``fold_in(stream, i)``, derived where it is used: ``key()``.

    Passed to :meth:`AbstractFixedStepSampler.step` instead of the key itself only by samplers
    that opt in (``_lazy_step_key = True``) because they use the key inside a branch (Heun's
    churn): the per-chain ``fold_in`` then runs only when the branch does.
    """

    stream: Any
    i: Any

    def __call__(self):
        return step_key(self.stream, self.i)


#: Converter for numeric hyper-parameters: an array of the default float dtype (see
#: :func:`jscore._checks.as_real`; a non-real value is refused by ``__check_init__``, naming the field).
as_param = as_real


def _budget_covers(sampler, num_steps, ledger) -> bool:
    """True if the ledger's remaining budget, known at trace time, covers the sampler's largest
    possible query count on this grid (whether or not it ends at 0): no chain can run out, so the
    per-step "keep the last state if exhausted" select is the identity and is left out (it is a
    separate pass over the state where the update is fused into a matrix product on CPU).
    False whenever anything is traced or unknown."""
    try:
        remaining = int(ledger.budget) - int(ledger.queries)
    except (jax.errors.ConcretizationTypeError, TypeError):
        return False
    worst = [sampler.query_capacity(num_steps, z) for z in (True, False)]
    if any(w is None for w in worst):
        return False
    return max(worst) <= remaining


class AbstractSampler(eqx.Module):
    """Base of every sampler. See the module docstring for the protocol."""

    def __check_init__(self):
        check_real_fields(self, scalar=True)

    @property
    @abc.abstractmethod
    def is_stochastic(self) -> bool:
        """Whether the sampler injects noise (beyond the initial draw)."""

    @abc.abstractmethod
    def num_queries(self, num_steps: int, ends_at_zero: bool) -> int | None:
        """Exact queries per chain on a grid of ``num_steps`` steps, or ``None`` if data-dependent."""

    def query_capacity(self, num_steps: int, ends_at_zero: bool) -> int | None:
        """Upper bound on queries per chain (sizes the level buffer); ``None``: needs ``max_queries``."""
        return self.num_queries(num_steps, ends_at_zero)

    def check_grid(self, sigmas) -> None:
        """Raise ``ValueError`` if this sampler cannot run on the concrete grid ``sigmas``."""
        return None

    @abc.abstractmethod
    def solve(self, oracle, sigmas, x, key, ostate, ledger: Ledger, record: Record | None) -> Solution:
        """Run one chain from ``x`` (at ``sigmas[0]``) down the grid."""


class AbstractFixedStepSampler(AbstractSampler):
    """A sampler making one ``step`` per grid interval ``sigmas[i] -> sigmas[i+1]``.

    ``init(sigmas, x)`` returns the sampler's carried state (multistep history; ``None`` if none),
    and ``step(oracle, i, sigmas, x, state, ostate, ledger, key)`` returns
    ``(x, state, ostate, ledger)``. ``key`` is this step's key, ``fold_in(sampler_stream, i)``.
    A chain whose ledger becomes exhausted keeps the state of its last completed step.
    """

    # Internal: pass the step key as a lazy ``_StepKey`` (call it to get the key).
    _lazy_step_key: ClassVar[bool] = False
    # Internal: ``step`` itself returns the input state of a chain whose ledger is exhausted after
    # the step (so the loop's own select is left out). Such a ``step`` takes a keyword
    # ``may_exhaust``: False when the budget provably covers the grid, so that the select is the
    # identity and the step need not keep its input state alive (the update can be in place).
    _selects_on_exhaustion: ClassVar[bool] = False

    @abc.abstractmethod
    def init(self, sigmas, x) -> Any:
        """Initial sampler state for one chain."""

    @abc.abstractmethod
    def step(self, oracle, i, sigmas, x, state, ostate, ledger: Ledger, key):
        """One step ``sigmas[i] -> sigmas[i + 1]``; returns ``(x, state, ostate, ledger)``."""

    def solve(self, oracle, sigmas, x, key, ostate, ledger: Ledger, record: Record | None) -> Solution:
        return self.scan_steps(oracle, sigmas, x, self.init(sigmas, x), key, ostate, ledger, record)

    def scan_steps(self, oracle, sigmas, x, state, key, ostate, ledger: Ledger, record) -> Solution:
        """The ``lax.scan`` of :meth:`solve` over the N grid intervals, from a given sampler state
        (samplers that query before their first step, e.g. multistep warm-up, call it directly)."""
        num_steps = sigmas.shape[0] - 1
        never_exhausts = _budget_covers(self, num_steps, ledger)
        trace = None
        if record is not None:
            length = -(-num_steps // record.every)
            trace = Trace.empty(length, x.shape[-1], x.dtype, record.x)

        def body(carry, i):
            x, state, ostate, ledger, trace = carry
            k = _StepKey(key, i) if self._lazy_step_key else step_key(key, i)
            extra = {"may_exhaust": not never_exhausts} if self._selects_on_exhaustion else {}
            x_new, state_new, ostate, ledger = self.step(
                oracle, i, sigmas, x, state, ostate, ledger, k, **extra
            )
            keep = ~ledger.exhausted
            if never_exhausts or self._selects_on_exhaustion:  # select is the identity / done
                x, state = x_new, state_new
            else:
                x = jnp.where(keep, x_new, x)
                state = tree_select(keep, state_new, state)
            if trace is not None:
                due = ((i + 1) % record.every == 0) | (i == num_steps - 1)
                trace = trace.write(i // record.every, due & keep, sigmas[i + 1], ledger, x)
            return (x, state, ostate, ledger, trace), None

        (x, _, ostate, ledger, trace), _ = jax.lax.scan(
            body, (x, state, ostate, ledger, trace), jnp.arange(num_steps)
        )
        return Solution(x, ostate, ledger, trace)


class OneQueryPerStep(AbstractFixedStepSampler):
    """Base of deterministic fixed-grid samplers that make exactly one query per step: Q = N."""

    @property
    def is_stochastic(self) -> bool:
        return False

    def num_queries(self, num_steps: int, ends_at_zero: bool) -> int:
        return num_steps


__all__ = ["AbstractSampler", "AbstractFixedStepSampler", "OneQueryPerStep", "Solution", "tree_select",
           "as_param"]
