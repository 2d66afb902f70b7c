"""The general (full-vector) path of the lower-bound experiment: any sampler, any catalogue name.

:class:`~jscore.lowerbound.scaling.SamplerDraws` needs a hand-written scalar reduction
(:func:`~jscore.lowerbound.scalar.scalar_spec`). :class:`FullVectorDraws` has the same interface
and the same common random numbers (randomly shifted lattices of (log-offset, rate) points, one
chain key per point, log-offsets phase-aligned per K), but runs the *real* sampler on
``d``-vectors against the reference law (:func:`~jscore.lowerbound.trajectory.reference_run`) and
turns the recorded queries into the two sides ``p_lower <= p_upper`` of ``P(some answer is
informative)`` with :func:`~jscore.lowerbound.trajectory.assemble` (docs/certified_bound.md §2).
It works for every ``AbstractSampler``, including user-defined ones.

:func:`draws_for` chooses: the scalar reduction only for samplers whose *type* is registered
(:data:`SCALAR_TYPES`, exact type match: a subclass may change the update), else the full-vector
path. See docs/experiments/lowerbound_sweep.md ("Any sampler").
"""

from __future__ import annotations

import math

import equinox as eqx

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import parse_scalar
from ..samplers import base as _base
from ..samplers import catalogue as _catalogue
from .grids import Draws, SamplerDraws, resolve_schedule
from .scalar import SCALAR_REDUCTIONS, Trajectory, scalar_spec
from .trajectory import RecordingOracle, assemble


#: Sampler types with a scalar reduction at import time (the keys of
#: :data:`jscore.lowerbound.scalar.SCALAR_REDUCTIONS`, exact type match; the reduction may still
#: refuse some field values, e.g. ``DPMSolverPP(order=3)``: then the general path is used).
SCALAR_TYPES: tuple = tuple(SCALAR_REDUCTIONS)


def resolve_sampler(sampler, **options):
    """An ``AbstractSampler`` from a catalogue name (with keyword ``options``) or an instance.

    ``sampler``: a name of :data:`jscore.samplers.catalogue.CATALOGUE`, optionally written
    ``"name:key=value,key=value"`` (values parsed as int/float/bool when they look like one), or
    an ``AbstractSampler`` (then ``options`` must be empty). Raises ``TypeError``/``ValueError``
    naming the argument otherwise.
    """
    if isinstance(sampler, _base.AbstractSampler):
        if options:
            raise ValueError(f"`options` {options} given with a sampler instance {sampler!r}; "
                             "set the fields on the instance instead.")
        return sampler
    if not isinstance(sampler, str):
        raise TypeError(
            f"`sampler` must be a catalogue name (str) or a jscore AbstractSampler instance, got "
            f"{sampler!r} of type {type(sampler).__name__}; names: "
            f"{', '.join(sorted(_catalogue.CATALOGUE))}.")
    name, _, opts = sampler.partition(":")
    parsed = dict(options)
    for item in filter(None, (s.strip() for s in opts.split(","))):
        k, eq, v = item.partition("=")
        if not eq or not k.strip():
            raise ValueError(f"`sampler` {sampler!r}: options must be 'key=value' pairs after "
                             f"':', e.g. 'heun:s_churn=40'; got {item!r}.")
        parsed[k.strip()] = parse_scalar(v)
    return _catalogue.make(name.strip(), **parsed)


def has_scalar_reduction(sampler) -> bool:
    """True if ``sampler`` (an instance) is of a registered type whose reduction accepts its fields."""
    if type(sampler) not in SCALAR_REDUCTIONS:  # the registry, so later registrations count
        return False
    try:
        scalar_spec(sampler)
    except (ValueError, TypeError):
        return False
    return True


class FullVectorDraws(Draws):
    """``SamplerDraws`` on the full-vector path: same lattice, keys and ``__call__`` contract.

    ``__call__(K)`` returns ``(lower (n_reps,), upper (n_reps,), levels)``: per replicate the
    mean over its ``n_points`` of the per-chain ``p_lower`` and ``p_upper`` of one chain run on
    the K geometric levels ``sigma_k = sigma_max exp(-(k + u) Delta_K)`` (``k = 0..K-1``) and
    then 0 (or, with a non-geometric ``schedule``, on ``family.grid(K) exp(-s)`` shifted by the
    point's hidden scale, :meth:`SamplerDraws.point_grids`), and the mean number of distinct
    levels in the critical band; per-point values in ``points[K]``. The chain for point i
    is ``js.sample_one`` against ``Reference(UniformSphere(d, sqrt d))`` with key
    ``fold_in(fold_in(key, 1), i)`` and its queries recorded (as in :func:`reference_run`, all
    points vmapped over their traced grids); its queries are assembled at the point's rate. Cost per K: ``n_reps n_points`` runs of K steps on
    ``d``-vectors (a data-dependent sampler is capped at ``max_queries``).
    """

    path = "full_vector"

    def __init__(self, sampler, d, eps, p, width, *, key, n_points=64, n_reps=8, k_max=1024,
                 rate_lo=0.15, rate_hi=0.45, max_queries=None, schedule=None):
        self.sampler = resolve_sampler(sampler)
        self.family = resolve_schedule(schedule)
        if int(d) != d or d < 2:
            raise ValueError(f"`d` must be an integer >= 2, got {d!r}.")
        for nm, v in (("n_points", n_points), ("n_reps", n_reps), ("k_max", k_max)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"`{nm}` must be an int >= 1, got {v!r}.")
        self.d, self.eps, self.p, self.width, self.k_max = float(d), eps, p, width, int(k_max)
        self.n_points, self.n_reps, self.max_queries = int(n_points), int(n_reps), max_queries
        self._draw_lattice(key, d, n_points, n_reps, rate_lo, rate_hi)

    def _sides(self, K):
        """Per point ``(p_lower, p_upper, levels)`` of the real sampler on its grid (:func:`point_sides`)."""
        return point_sides(self.sampler, self.point_grids(K), self.keys, self.d, self.log_m,
                           self.eps, self.p, self.width, self.max_queries,
                           who="FullVectorDraws / draws_for")


def point_sides(sampler, levels, keys, d, log_m, eps, p, width, max_queries=None, *, who="this call"):
    """Per point ``(p_lower, p_upper, levels_in_band)``, each ``(N,)``: chain n of ``sampler`` on
    its own levels ``levels[n]`` (``(N, K)``, decreasing, then a final 0) against the reference
    law with key ``keys[n]`` (:func:`_run_points`), assembled at its ``log_m[n]``
    (:func:`_assemble_points`). The query buffer holds the sampler's capacity for K steps
    (``max_queries`` caps it; required for a data-dependent sampler, ``who`` names the caller in
    that error)."""
    levels = np.asarray(levels, np.float64)
    K = levels.shape[1]
    ftype = jnp.result_type(float)
    grids = np.concatenate([levels, np.zeros((levels.shape[0], 1))], axis=1)
    caps = [sampler.query_capacity(K, z) for z in (True, False)]
    if max_queries is not None:
        cap = int(max_queries) if None in caps else min(max(caps), int(max_queries))
    elif None in caps:
        raise ValueError(f"{type(sampler).__name__} makes a data-dependent number of queries; "
                         f"pass `max_queries` to {who}.")
    else:
        cap = int(max(caps))
    traj = _run_points(sampler, jnp.asarray(grids, ftype), keys, int(d), cap, max_queries)
    return _assemble_points(traj, jnp.asarray(log_m, ftype), int(d), jnp.asarray(eps, ftype),
                            jnp.asarray(p, ftype), jnp.asarray(width, ftype))


@eqx.filter_jit
def _run_points(sampler, grids, keys, d, cap, max_queries):
    """Per point one chain of ``sampler`` on its own (traced) grid against the reference law,
    its queries recorded in a ``cap``-slot buffer: a ``Trajectory`` of ``(points, q)`` arrays
    (``q`` = ``cap`` rounded up to a power of two, padding invalid). Points run
    ``chain_block(d)`` at a time (``lax.map``): memory is one block of ``d``-vectors."""
    from ..oracles import Reference
    from ..sampling import chain_block, sample_one
    from ..targets import UniformSphere

    oracle = RecordingOracle(Reference(UniformSphere(d, math.sqrt(d))), cap)

    def one(a):
        sig, key = a
        st = sample_one(oracle, sampler, sig, key, max_queries=max_queries, throw=False).stats
        valid = jnp.arange(cap) < jnp.minimum(st.query_count, cap)
        return Trajectory(st.query_norm, st.query_sigma, st.query_overlap, valid)

    traj = jax.lax.map(one, (grids, keys), batch_size=chain_block(d))
    # pad the query axis to a power of two: one compile of the assembly per bucket, not per K
    q = 1 << max(0, (cap - 1).bit_length())
    traj = jax.tree.map(lambda x: jnp.pad(x, ((0, 0), (0, q - cap))), traj)
    return traj


@eqx.filter_jit
def _assemble_points(traj, log_m, d, eps, p, width):
    """The sides of every point's trajectory ``(points, q)`` at its own ``log_m`` ``(points,)``."""
    def one(t, lm):
        t1 = jax.tree.map(lambda x: x[None], t)
        b = assemble(t1, float(d), None, eps, p, log_m=lm, width=width, estimate=False)
        return b.p_lower[0], b.p_upper[0], b.levels_in_band[0]
    return jax.lax.map(lambda a: one(*a), (traj, log_m), batch_size=256)


def draws_for(sampler, d, eps, p, width, *, key, **kwargs):
    """``SamplerDraws`` where the sampler has a registered scalar reduction, else ``FullVectorDraws``.

    ``sampler``: a catalogue name (``"name:key=value"`` options allowed) or an ``AbstractSampler``.
    ``kwargs``: ``n_points``, ``n_reps``, ``k_max``, ``rate_lo``, ``rate_hi``, ``schedule`` (and
    ``max_queries`` for the full-vector path). Both have the same ``__call__(K)`` contract and
    work with :func:`~jscore.lowerbound.scaling.kstar_sides`.
    """
    s = resolve_sampler(sampler)
    if has_scalar_reduction(s):
        kwargs.pop("max_queries", None)
        return SamplerDraws(s, d, eps, p, width, key=key, **kwargs)
    return FullVectorDraws(s, d, eps, p, width, key=key, **kwargs)


__all__ = ["SCALAR_TYPES", "resolve_sampler", "has_scalar_reduction", "FullVectorDraws", "point_sides",
           "draws_for"]
