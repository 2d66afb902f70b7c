"""The entry points: :func:`sample` (a batch of independent chains) and :func:`sample_one`.

``res = sample(oracle, sampler, sigmas, key, num_samples=n)`` runs ``n`` chains. Chain ``i`` uses
the key ``fold_in(key, i)``; it is bitwise identical whatever the batch size or the chain's position
(chains run in fixed blocks, :func:`chain_block`), and equal to ``sample_one(oracle, sampler,
sigmas, fold_in(key, i))``, which runs one chain without ``vmap``: bitwise for coordinate-wise
targets, to float rounding where XLA batches a target's products (the mixture). Inside a chain, the initial draw
``y_0 = sigmas[0] * z``, the sampler's noise and the oracle's randomness come from separate named
streams (:mod:`jscore.seeds`).

States may have any *event shape*: ``x_init`` of shape ``(n, *event_shape)`` (e.g. ``(n, 8, 8, 1)``
for images) gives samples of that shape. Samplers run on the flattened ``(d,)`` state,
``d = prod(event_shape)`` (so every sampler works unchanged and counts do not depend on the
shape); the oracle is asked at points of the event shape.

Both functions are jitted with ``eqx.filter_jit``: array fields of the oracle and sampler, the grid
values and the key are traced, so changing them does not recompile; shapes, ``num_samples``,
``max_queries``, ``record`` and ``chunk_size`` are static.
"""

from __future__ import annotations

import collections
import math
import numbers

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_bool, check_fits, check_positive_int, check_range, concrete, is_real
from .counting import Ledger
from .oracles.base import AbstractOracle, in_shape
from .results import Record, Result, Status
from .samplers.base import AbstractSampler
from .schedules import check_sigmas
from .seeds import INIT, ORACLE, SAMPLER, as_key, chain_key, stream

#: Number of times each jitted entry point was traced (for retrace tests and diagnostics).
TRACE_COUNTS: collections.Counter = collections.Counter()


class _Plan(eqx.Module):
    """Static facts about one run, validated on the host before anything is traced."""

    dim: int = eqx.field(static=True)
    event_shape: tuple = eqx.field(static=True)
    budget: int = eqx.field(static=True)
    capacity: int = eqx.field(static=True)


def _check_types(oracle, sampler) -> None:
    if not isinstance(oracle, AbstractOracle):
        raise TypeError(
            f"`oracle` must be a jscore oracle (e.g. js.oracles.Exact(target)), got "
            f"{type(oracle).__name__}. Wrap a target with js.oracles.Exact."
        )
    if not isinstance(sampler, AbstractSampler):
        raise TypeError(
            f"`sampler` must be a jscore sampler (e.g. js.samplers.Euler()), got "
            f"{type(sampler).__name__}."
        )


def _plan(oracle, sampler, sigmas, event_shape, max_queries) -> _Plan:
    num_steps = sigmas.shape[0] - 1
    values = concrete(sigmas)
    if values is not None:
        sampler.check_grid(values)
        ends_at_zero = bool(values[-1] == 0)
        exact = sampler.num_queries(num_steps, ends_at_zero)
        capacity = sampler.query_capacity(num_steps, ends_at_zero)
    else:  # traced grid (e.g. vmapped offsets): size buffers for the larger case
        exact = None
        capacity = max(
            (c for c in (sampler.query_capacity(num_steps, z) for z in (True, False)) if c),
            default=None,
        )
    if max_queries is not None:
        check_positive_int("max_queries", max_queries)
        if exact is not None and max_queries < exact:
            raise ValueError(
                f"`max_queries={max_queries}` is below the {exact} queries "
                f"{type(sampler).__name__} needs for a {num_steps}-step grid; increase "
                "`max_queries` or use a shorter grid."
            )
        budget = int(max_queries)
        capacity = budget if capacity is None else min(capacity, budget)
    else:
        if capacity is None:
            raise ValueError(
                f"{type(sampler).__name__} makes a data-dependent number of queries; pass "
                "`max_queries` to bound it."
            )
        budget = int(capacity)
    if isinstance(event_shape, numbers.Integral):  # a flat dimension d means (d,)
        event_shape = (int(event_shape),)
    dim = math.prod(event_shape)
    return _Plan(dim=dim, event_shape=tuple(event_shape), budget=budget, capacity=int(capacity))


def _resolve_event_shape(oracle, x_event, batched: bool = True) -> tuple:
    """The event shape of one point: from ``x_init`` (checked against the oracle) or the oracle."""
    odim = oracle.dim
    oshape = oracle.event_shape
    if x_event is not None:
        x_event = tuple(x_event)
        if not x_event:
            raise ValueError("`x_init` points must have at least one axis, e.g. (d,) or (H, W, C).")
        lead = "n, " if batched else ""
        if oshape is not None and x_event != tuple(oshape):
            raise ValueError(
                f"`x_init` points have shape {x_event} but the oracle answers at points of shape "
                f"{tuple(oshape)}; pass x_init of shape ({lead}{', '.join(map(str, oshape))})."
            )
        if odim is not None and math.prod(x_event) != odim:
            raise ValueError(
                f"`x_init` has dimension {math.prod(x_event)} but the oracle answers in dimension "
                f"{odim} (x_init points have shape {x_event}); pass x_init of shape ({lead}d,) = "
                f"({lead}{odim},) or ({lead}*event_shape) with {odim} elements per point."
            )
        return x_event
    if oshape is not None:
        return tuple(oshape)
    if odim is None:
        raise ValueError(
            "This oracle accepts any dimension, so the shape of a point must come from `x_init`; "
            "pass x_init of shape (n, *event_shape), e.g. (n, d), or give the oracle an event_shape."
        )
    return (odim,)


def _float_dtype():
    return jnp.result_type(float)


def initial_point(sigmas, key, dim: int, mask=None):
    """A chain's start ``sigmas[0] z``, ``z ~ N(0, I_dim)`` from the chain key's ``INIT`` stream
    (``(dim,)``, default float dtype); zero off ``mask`` (``(dim,)`` bool) when one is given."""
    x0 = sigmas[0] * jax.random.normal(stream(key, INIT), (dim,), _float_dtype())
    return x0 if mask is None else jnp.where(mask, x0, jnp.zeros_like(x0))


def run_chain(oracle, sampler, sigmas, key, x0=None, *, dim: int, budget, capacity: int,
              event_shape=None, mask=None, record=None, budget_is_cost: bool = False) -> Result:
    """One chain of ``sampler`` against ``oracle`` on the grid ``sigmas``: the chain loop that
    :func:`sample`, :func:`sample_one`, the sweeps' kernels and the lower-bound reference runs share.

    - ``key``: the chain's key (``chain_key(key, seed)``); its ``INIT``, ``ORACLE`` and ``SAMPLER``
      streams draw the start, the oracle state and the sampler's noise.
    - ``x0``: ``(dim,)`` start, or None for :func:`initial_point`.
    - ``budget``: query budget (an int, or a traced int32 scalar); ``capacity``: ledger slots.
    - ``event_shape``: the oracle sees points of this shape (None: flat ``(dim,)``).
    - ``mask``: ``(dim,)`` bool of the valid coordinates of a zero-padded state (the sweeps' shape
      buckets; ``oracle`` must already answer on the mask, ``js.sweeps.padding.Masked``): the start is
      zero off the mask and only valid coordinates decide the non-finite status.
    - ``budget_is_cost``: the budget is the exact cost of the run and the grid may be padded with
      extra steps that the spent budget refuses (the sweeps' padded step counts): success means the
      budget was spent exactly, ``budget_exhausted`` that it was not.

    Status: ``nonfinite`` if a (valid) output coordinate is not finite; else ``budget_exhausted``
    if a query was refused (``budget_is_cost``: if fewer than ``budget`` were made); else ``success``.
    """
    dtype = _float_dtype()
    if x0 is None:
        x0 = initial_point(sigmas, key, dim, mask)
    ostate = oracle.init(stream(key, ORACLE), dim)
    if event_shape is not None:
        oracle = in_shape(oracle, event_shape)
    ledger = Ledger.empty(budget, capacity, dtype)
    sol = sampler.solve(oracle, sigmas, x0, stream(key, SAMPLER), ostate, ledger, record)
    ok = jnp.isfinite(sol.x) if mask is None else jnp.where(mask, jnp.isfinite(sol.x), True)
    short = (sol.ledger.queries != budget) if budget_is_cost else sol.ledger.exhausted
    status = jnp.where(
        ~jnp.all(ok),
        jnp.int32(Status.nonfinite),
        jnp.where(short, jnp.int32(Status.budget_exhausted), jnp.int32(Status.success)),
    )
    return Result(sol.x, sol.ledger.stats(oracle.report(sol.ostate)), status, sol.trace)


def _run_chain(oracle, sampler, sigmas, key, x0, plan: _Plan, record):
    """:func:`run_chain` with the sizes of a validated :class:`_Plan`."""
    return run_chain(oracle, sampler, sigmas, key, x0, dim=plan.dim, budget=plan.budget,
                     capacity=plan.capacity, event_shape=plan.event_shape, record=record)


#: Per-chain state elements per block of chains (see :func:`chain_block`), by platform.
_BLOCK_ELEMENTS = {"cpu": 2**14}
_BLOCK_ELEMENTS_DEFAULT = 2**22
_MAX_BLOCK = {"cpu": 256}
_MAX_BLOCK_DEFAULT = 2**16


def chain_block(dim: int, platform: str | None = None) -> int:
    """Chains evaluated together in one vmapped block: a power of two set by ``dim`` and the
    platform only (CPU: about 2^14 state elements per block, at most 256 chains; accelerators:
    2^22 elements, at most 2^16 chains).

    :func:`sample` pads the batch to whole blocks and runs them one after another, so every chain
    is computed by the same ``vmap``-of-``block`` program whatever the batch size, ``chunk_size``
    or the chain's position: chain ``i`` is bitwise identical across all of them, even for targets
    whose per-chain arithmetic XLA would otherwise fuse into batch-shaped matrix products (the
    mixture's ``(n, d) @ (d, K)``).
    """
    platform = platform or jax.default_backend()
    elems = _BLOCK_ELEMENTS.get(platform, _BLOCK_ELEMENTS_DEFAULT)
    cap = _MAX_BLOCK.get(platform, _MAX_BLOCK_DEFAULT)
    b = 1 << max(0, (max(elems // max(int(dim), 1), 1)).bit_length() - 1)
    return int(min(b, cap))


@eqx.filter_jit
def _sample_batch(oracle, sampler, sigmas, key, x_init, seeds, plan, record, block):
    TRACE_COUNTS["sample"] += 1

    def one(seed, x0):
        return _run_chain(oracle, sampler, sigmas, chain_key(key, seed), x0, plan, record)

    n = seeds.shape[0]
    num_blocks = -(-n // block)
    pad = num_blocks * block - n
    # padding chains take the next seeds (their results are dropped)
    seeds = jnp.concatenate([seeds, n + jnp.arange(pad, dtype=seeds.dtype)]).reshape(num_blocks, block)
    if x_init is not None:
        x_init = jnp.concatenate([x_init, jnp.zeros((pad,) + x_init.shape[1:], x_init.dtype)])
        x_init = x_init.reshape((num_blocks, block) + x_init.shape[1:])
    out = jax.lax.map(lambda a: jax.vmap(one)(*a), (seeds, x_init))
    res = jax.tree_util.tree_map(lambda a: a.reshape((num_blocks * block,) + a.shape[2:])[:n], out)
    return _with_event_shape(res, plan.event_shape)


def _with_event_shape(res: Result, event_shape) -> Result:
    """``res`` with its flat samples (and recorded states) reshaped to ``(..., *event_shape)``."""
    if len(event_shape) == 1:
        return res
    def unflatten(a):
        return jnp.reshape(a, a.shape[:-1] + tuple(event_shape))

    res = eqx.tree_at(lambda r: r.x, res, unflatten(res.x))
    if res.trace is not None and res.trace.x is not None:
        res = eqx.tree_at(lambda r: r.trace.x, res, unflatten(res.trace.x))
    return res


@eqx.filter_jit
def _sample_single(oracle, sampler, sigmas, key, x0, plan, record, throw):
    TRACE_COUNTS["sample_one"] += 1
    res = _run_chain(oracle, sampler, sigmas, key, x0, plan, record)
    if throw:
        x = eqx.error_if(
            res.x, res.status == Status.budget_exhausted, Status.budget_exhausted.message
        )
        x = eqx.error_if(x, res.status == Status.nonfinite, Status.nonfinite.message)
        res = eqx.tree_at(lambda r: r.x, res, x)
    return _with_event_shape(res, plan.event_shape)


def _check_points(x_init):
    """``x_init`` as a real array of the default float dtype (finite where concrete)."""
    if not is_real(x_init):
        raise TypeError(
            f"`x_init` must be a real array of initial points, got {type(x_init).__name__}"
            f"{' of dtype ' + str(x_init.dtype) if hasattr(x_init, 'dtype') else ''}."
        )
    if not isinstance(x_init, jax.Array):
        x_init = np.asarray(x_init, np.float64)
    check_range("x_init", x_init, fix="Initial points must be finite.")
    if any(s == 0 for s in np.shape(x_init)):
        raise ValueError(f"`x_init` must not be empty, got shape {np.shape(x_init)}.")
    return jnp.asarray(x_init, dtype=_float_dtype())


def _check_record(record):
    if record is not None and not isinstance(record, Record):
        raise TypeError(f"`record` must be a js.Record or None, got {type(record).__name__}.")


def _chains(oracle, x_init, num_samples):
    """``(x_init (n, d) or None, n, event_shape)`` of :func:`sample` from ``x_init`` rows or
    ``num_samples`` (they must agree when both are given)."""
    if x_init is not None:
        x_init = _check_points(x_init)
        if x_init.ndim < 2:
            raise ValueError(
                f"`x_init` must have shape (n, d) or (n, *event_shape) for js.sample, got "
                f"{x_init.shape}; use js.sample_one for a single point."
            )
        if num_samples is not None and num_samples != x_init.shape[0]:
            raise ValueError(
                f"`num_samples={num_samples}` disagrees with `x_init` of {x_init.shape[0]} rows; "
                "pass one of them."
            )
        num_samples = x_init.shape[0]
        event_shape = _resolve_event_shape(oracle, x_init.shape[1:])
        x_init = x_init.astype(_float_dtype()).reshape(num_samples, -1)
    else:
        if num_samples is None:
            raise ValueError(
                "Pass `num_samples` (number of chains) or `x_init` of shape (n, *event_shape)."
            )
        event_shape = _resolve_event_shape(oracle, None)
    return x_init, check_positive_int("num_samples", num_samples), event_shape


def sample(
    oracle,
    sampler,
    sigmas,
    key,
    *,
    num_samples: int | None = None,
    x_init=None,
    max_queries: int | None = None,
    record: Record | None = None,
    chunk_size: int | None = None,
) -> Result:
    """Run independent chains of ``sampler`` against ``oracle`` down the grid ``sigmas``.

    Convention: ``x_sigma = x0 + sigma z``; the oracle answers ``score(x, sigma) = grad_x log
    p_sigma(x)``; chains start at ``sigmas[0] * z`` and a step into ``sigma = 0`` returns Tweedie's
    ``D(x, sigma) = x + sigma^2 score(x, sigma)``. Every oracle call is charged to its chain.

    **Arguments:**
    - ``oracle``: a :class:`jscore.oracles.AbstractOracle`, e.g. ``Exact(target)``.
    - ``sampler``: a :class:`jscore.samplers.AbstractSampler`, e.g. ``Heun()``.
    - ``sigmas``: strictly decreasing grid ``(N + 1,)``; ``sigmas[-1] = 0`` ends with Tweedie.
    - ``key``: a PRNG key; chain i uses ``fold_in(key, i)``.
    - ``num_samples``: number of chains n (or give ``x_init``).
    - ``x_init``: ``(n, *event_shape)`` initial points replacing ``sigmas[0] * z``, e.g. ``(n, d)``
      or ``(n, H, W, C)``; without it, points have the oracle's ``event_shape`` (or ``(dim,)``).
    - ``max_queries``: static per-chain budget. For fixed-grid samplers it must be at least their
      exact cost; for adaptive ones it bounds the loop. A chain that runs out keeps its last
      completed state and gets status ``budget_exhausted``.
    - ``record``: ``js.Record(every=k, x=False)`` to return a per-step trace.
    - ``chunk_size``: chains run in blocks of this many chains, one block after another
      (``lax.map`` over ``vmap``-ped blocks; the last block is padded), which bounds memory;
      default :func:`chain_block` ``(d)``, set by the dimension and the platform only. Chain ``i``
      is bitwise identical for every batch size at a given block size. Another block size
      regroups the arithmetic XLA batches for batch-coupled targets (the mixture's matrix
      products): float rounding only, measured at most 1.1e-5 on a 16-component mixture at d = 64
      in float32 (coordinate-wise targets stay bitwise equal).

    **Returns:** a :class:`jscore.Result` with ``x (n, *event_shape)``, ``stats.queries/levels/rounds (n,)``,
    ``status (n,)`` and ``trace``.

    **Raises:** ``ValueError``/``TypeError`` on structural mistakes (shapes, grid order, budget
    below a fixed-grid sampler's cost, unknown types).
    """
    _check_types(oracle, sampler)
    key = as_key(key)
    sigmas = check_sigmas(sigmas)
    _check_record(record)
    if chunk_size is not None:
        chunk_size = check_positive_int("chunk_size", chunk_size)
    x_init, num_samples, event_shape = _chains(oracle, x_init, num_samples)
    dim = math.prod(event_shape)
    itemsize = np.dtype(_float_dtype()).itemsize
    # the initial points, the final samples and the running state of a block, at the least
    check_fits(f"`num_samples` = {num_samples} chains in dimension {dim}", 3.0 * num_samples * dim * itemsize,
               "use fewer chains per call (results do not depend on how chains are split).")
    plan = _plan(oracle, sampler, sigmas, event_shape, max_queries)
    seeds = jnp.arange(num_samples, dtype=jnp.uint32)
    block = chain_block(dim) if chunk_size is None else min(chunk_size, num_samples)
    return _sample_batch(oracle, sampler, sigmas, key, x_init, seeds, plan, record, block)


def sample_one(
    oracle,
    sampler,
    sigmas,
    key,
    x_init=None,
    max_queries: int | None = None,
    *,
    record: Record | None = None,
    throw: bool = True,
) -> Result:
    """Run one chain; the unbatched form of :func:`sample` (``x`` has the event shape, e.g. ``(d,)``).

    ``sample(..., key, num_samples=n).x[i] == sample_one(..., jax.random.fold_in(key, i)).x``.
    With ``throw=True`` (default) a chain that exhausts its budget or becomes non-finite raises at
    run time (under ``vmap``, if any chain does); pass ``throw=False`` to read ``status`` instead.
    Vmap it over keys or over traced grids (e.g. per-chain ``geometric`` offsets).
    """
    _check_types(oracle, sampler)
    key = as_key(key)
    sigmas = check_sigmas(sigmas)
    _check_record(record)
    if x_init is not None:
        x_init = _check_points(x_init)
        if x_init.ndim < 1:
            raise ValueError(
                f"`x_init` must be one point of shape event_shape (e.g. (d,)) for js.sample_one, "
                "got a scalar; use js.sample for a batch."
            )
        event_shape = _resolve_event_shape(oracle, x_init.shape, batched=False)
        x_init = x_init.astype(_float_dtype()).reshape(-1)
    else:
        event_shape = _resolve_event_shape(oracle, None)
    plan = _plan(oracle, sampler, sigmas, event_shape, max_queries)
    return _sample_single(oracle, sampler, sigmas, key, x_init, plan, record, check_bool("throw", throw))


__all__ = ["sample", "sample_one", "run_chain", "initial_point", "chain_block", "TRACE_COUNTS"]
