"""Whole trajectories against the reference oracle (docs/construction.md §7.1 and 7.4).

Until its first informative answer, a sampler run against ``LRAdversary`` follows exactly the
trajectory it follows against ``Reference`` (``s_Q``), and every query of that run is independent
of the hidden codebook. So any sampler can run at any d against the reference oracle while the
probability that each query would have been informative is computed in closed form
(:mod:`jscore.lowerbound.informative`). Per chain, with ``pi_k = pi(|x_k|, sigma_k)``::

    max_k pi_k  <=  P(exists informative)  <=  1 - prod_k (1 - pi_k)  <=  sum_k pi_k

and the single-codeword-model estimate ``1 - exp(-sum_clusters max_{k in cluster} N_k)``, where
successive queries whose caps nest are merged into one cluster: the caps
``{u : <u, x_k/|x_k|> >= t_k}`` of queries k-1 and k nest (to exponential order) when their
overlap ``gamma_k >= min(t_{k-1}, t_k) / max(t_{k-1}, t_k)``. A deterministic sampler moves on one
ray (``gamma = 1``), so its estimate is ``max_k pi_k``; fresh independent queries give the product.

:class:`RecordingOracle` wraps any oracle and records ``(|x|, sigma, overlap with the previous
query)`` for each charged query; :func:`reference_run` runs any ``js.samplers`` sampler against
``Reference(UniformSphere(d, rho sqrt(d)))`` with it (full vectors, O(d) per query);
:func:`jscore.lowerbound.scalar.simulate` produces the same record in O(1) per step.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..oracles.base import AbstractOracle
from .informative import (
    critical_sigma,
    effective_log_m,
    guard_threshold,
    informative_sides,
    informative_terms,
)
from .scalar import Trajectory


class RecordingOracle(AbstractOracle):
    """Wraps ``inner`` and records each answered query: ``|x|``, ``sigma`` and the cosine between
    ``x`` and the previous query point (1 for the first). Keeps the first ``capacity`` queries.

    ``report(state)`` adds ``query_norm``, ``query_sigma``, ``query_overlap`` (arrays
    ``(capacity,)``) and ``query_count`` to the inner oracle's report. Only charged queries advance
    the state (``charged_query`` discards the state of uncharged calls), so the record is exactly
    the chain's charged queries.
    """

    inner: AbstractOracle
    capacity: int = eqx.field(static=True)

    @property
    def dim(self):
        return self.inner.dim

    def init(self, key, dim):
        ftype = jnp.result_type(float)
        return {
            "inner": self.inner.init(key, dim),
            "count": jnp.zeros((), jnp.int32),
            "xi": jnp.zeros((self.capacity,), ftype),
            "sigma": jnp.zeros((self.capacity,), ftype),
            "overlap": jnp.ones((self.capacity,), ftype),
            "prev": jnp.zeros((dim,), ftype),
        }

    def query(self, x, sigma, state):
        score, inner = self.inner.query(x, sigma, state["inner"])
        nrm = jnp.sqrt(jnp.sum(x * x))
        unit = x / jnp.maximum(nrm, jnp.finfo(x.dtype).tiny)
        k = state["count"]
        ov = jnp.where(k > 0, jnp.sum(unit * state["prev"].astype(x.dtype)), 1.0)
        slot = jnp.minimum(k, self.capacity - 1)
        keep = k < self.capacity

        def put(buf, v):
            return buf.at[slot].set(jnp.where(keep, v.astype(buf.dtype), buf[slot]))

        new = {
            "inner": inner,
            "count": k + 1,
            "xi": put(state["xi"], nrm),
            "sigma": put(state["sigma"], jnp.asarray(sigma)),
            "overlap": put(state["overlap"], ov),
            "prev": unit.astype(state["prev"].dtype),
        }
        return score, new

    def report(self, state) -> dict:
        out = dict(self.inner.report(state["inner"]))
        out.update(
            query_norm=state["xi"],
            query_sigma=state["sigma"],
            query_overlap=state["overlap"],
            query_count=state["count"],
        )
        return out


def reference_run(sampler, sigmas, key, d: int, num_chains: int, rho=1.0, *, max_queries=None,
                  x_init=None):
    """Run ``sampler`` against ``Reference(UniformSphere(d, rho sqrt(d)))`` with full vectors.

    Chain i is ``js.sample``'s chain i (``fold_in(key, i)``); ``x_init`` ``(n, d)`` overrides the
    initial points. Returns ``(Trajectory, result)``
    with trajectory arrays ``(num_chains, capacity)``; ``capacity`` is the sampler's query
    capacity (or ``max_queries`` for data-dependent samplers).
    """
    from ..oracles import Reference
    from ..sampling import sample
    from ..schedules import check_sigmas
    from ..targets import UniformSphere

    sigmas = check_sigmas(sigmas)
    n_steps = sigmas.shape[0] - 1
    ends = bool(np.asarray(sigmas)[-1] == 0)
    cap = sampler.query_capacity(n_steps, ends)
    if cap is None:
        if max_queries is None:
            raise ValueError(
                f"{type(sampler).__name__} makes a data-dependent number of queries; pass "
                "`max_queries`."
            )
        cap = int(max_queries)
    elif max_queries is not None:
        cap = min(cap, int(max_queries))
    target = UniformSphere(int(d), rho * math.sqrt(d))
    oracle = RecordingOracle(Reference(target), int(cap))
    res = sample(oracle, sampler, sigmas, key, num_samples=None if x_init is not None else num_chains,
                 x_init=x_init, max_queries=max_queries)
    st = res.stats
    count = st.query_count
    valid = jnp.arange(cap)[None, :] < jnp.minimum(count, cap)[:, None]
    traj = Trajectory(st.query_norm, st.query_sigma, st.query_overlap, valid)
    return traj, res


class TrajectoryBounds(NamedTuple):
    """Per-chain probabilities that a run against the adversary ever gets an informative answer.

    From the default per-query estimate ``pi_k`` (:func:`~jscore.lowerbound.informative.informative_terms`):
    ``lower = max_k pi_k``; ``upper = 1 - prod_k (1 - pi_k)``; ``estimate``: single-codeword
    model with nested caps merged; ``levels_in_band``: distinct levels (resolution ``delta`` in
    ``log sigma``) among the chain's queries inside the critical band.

    The two sides of the bracket (docs/certified_bound.md §2), from the per-query sides
    ``pi_k^lo <= pi_k^hi`` of :func:`~jscore.lowerbound.informative.informative_sides`:

    - ``p_upper = min(1, sum_k pi_k^hi)``: union bound over the queries (no independence or
      cap model is used: an upper bound whenever the ``pi_k^hi`` are);
    - ``p_lower``: the single-codeword cap model on the lower intensities, nested caps merged
      by their max, disjoint caps multiplied; ``max_k pi_k^lo <= p_lower`` always, with equality
      on one ray (deterministic samplers: then it rests only on the per-query lower side, since
      ``P(exists informative) >= max_k P(informative_k)``).

    ``p_lower <= p_upper`` for every chain.
    """

    lower: jax.Array
    upper: jax.Array
    estimate: jax.Array
    levels_in_band: jax.Array
    p_lower: jax.Array
    p_upper: jax.Array


def _merge_chain(log_int, t_star, overlap, valid):
    """log of sum over clusters of the cluster-max intensity (one chain, arrays (q,))."""
    tt = jnp.clip(t_star, 1e-12, 1.0)
    prev_t = jnp.concatenate([tt[:1], tt[:-1]])
    ratio = jnp.minimum(tt, prev_t) / jnp.maximum(tt, prev_t)
    empty = (t_star >= 1.0) | (jnp.concatenate([t_star[:1], t_star[:-1]]) >= 1.0)
    merge = (overlap >= ratio) | empty | ~valid
    merge = merge.at[0].set(True)
    li = jnp.where(valid, log_int, -jnp.inf)

    def body(carry, inp):
        total, cur = carry
        m, l = inp
        total = jnp.where(m, total, jnp.logaddexp(total, cur))
        cur = jnp.where(m, jnp.maximum(cur, l), l)
        return (total, cur), None

    ninf = jnp.asarray(-jnp.inf, li.dtype)
    (total, cur), _ = jax.lax.scan(body, (ninf, ninf), (merge, li))
    return jnp.logaddexp(total, cur)


def _levels_chain(sigma, valid, lo, hi, delta):
    ls = jnp.where(valid & (sigma >= lo) & (sigma <= hi), jnp.log(jnp.maximum(sigma, 1e-300)), jnp.inf)
    ls = jnp.sort(ls)

    def body(carry, v):
        last, n = carry
        take = jnp.isfinite(v) & (v - last >= delta)
        return (jnp.where(take, v, last), n + take.astype(jnp.int32)), None

    (_, n), _ = jax.lax.scan(body, (jnp.asarray(-jnp.inf, ls.dtype), jnp.zeros((), jnp.int32)), ls)
    return n


def critical_band(d, width, rate_lo=0.15, rate_hi=0.45, rho=1.0):
    """``[sigma_c(R_hi) e^{-w}, sigma_c(R_lo) e^{w}]`` (docs/construction.md §1); ``width`` may be traced."""
    lo = critical_sigma(rate_hi, rho) * jnp.exp(-width)
    hi = critical_sigma(rate_lo, rho) * jnp.exp(width)
    return lo, hi


def assemble(traj: Trajectory, d, rate, eps, p=2.0, rho=1.0, *, log_m=None, t1=None,
             width=None, rate_lo=0.15, rate_hi=0.45, collective=True,
             guard="truncated", estimate=True) -> TrajectoryBounds:
    """Per-chain sides and estimate of ``P(exists informative)`` for a reference trajectory.

    ``traj`` arrays ``(n, q)``; ``rate`` a scalar hidden rate (or ``log_m``). ``width``: window
    width ``w(d)`` in log sigma for the level count (resolution ``w/2`` inside the critical band
    ``[sigma_c(R_hi) e^{-w}, sigma_c(R_lo) e^{w}]``); without it ``levels_in_band`` is -1.
    ``guard``, ``collective``, ``t1``: the liquid-side model of
    :func:`~jscore.lowerbound.informative.informative_terms` (the default estimate);
    ``estimate=False`` skips that estimate (``lower``, ``upper``, ``estimate`` are then NaN) and
    computes only the two sides ``p_lower``, ``p_upper``.
    """
    ftype = jnp.result_type(float)
    if log_m is None:
        log_m = effective_log_m(d, rate)
    log_m = jnp.asarray(log_m, ftype)
    valid = traj.valid
    merge = jax.vmap(_merge_chain) if traj.xi.ndim == 2 else _merge_chain
    if estimate:
        if t1 is None and collective and guard == "indicator":
            t1 = guard_threshold(d, log_m)
        terms = informative_terms(traj.xi, traj.sigma, d, None, eps, p, rho, log_m=log_m, t1=t1,
                                  collective=collective, guard=guard)
        prob = jnp.where(valid, terms.prob, 0.0)
        lower = jnp.max(prob, axis=-1)
        log1m = jnp.where(valid, jnp.log1p(-jnp.minimum(prob, 1.0)), 0.0)
        upper = -jnp.expm1(jnp.sum(log1m, axis=-1))
        log_tot = merge(terms.log_intensity, terms.t_star, traj.overlap, valid)
        est = -jnp.expm1(-jnp.exp(jnp.minimum(log_tot, 700.0)))
    sides = informative_sides(traj.xi, traj.sigma, d, None, eps, p, rho, log_m=log_m)
    p_upper = jnp.minimum(jnp.sum(jnp.where(valid, sides.upper, 0.0), axis=-1), 1.0)
    log_lo = merge(sides.log_intensity_lower, sides.t_lower, traj.overlap, valid)
    p_lower = jnp.minimum(-jnp.expm1(-jnp.exp(jnp.minimum(log_lo, 700.0))), p_upper)
    if not estimate:
        lower = upper = est = jnp.full(p_lower.shape, jnp.nan, ftype)
    if width is None:
        levels = -jnp.ones(lower.shape, jnp.int32)
    else:
        lo, hi = critical_band(d, width, rate_lo, rate_hi, rho)
        fn = lambda s, v: _levels_chain(s, v, lo, hi, 0.5 * width)  # noqa: E731
        levels = jax.vmap(fn)(traj.sigma, valid) if traj.xi.ndim == 2 else fn(traj.sigma, valid)
    return TrajectoryBounds(lower, upper, est, levels, p_lower, p_upper)


__all__ = [
    "RecordingOracle",
    "reference_run",
    "TrajectoryBounds",
    "assemble",
    "critical_band",
]
