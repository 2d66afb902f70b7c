"""Exploratory: the adversary of the nested codebook (docs/experiments/rounds.md).

For :class:`~jscore.targets.NestedCodebook` (L blocks of dimension k, scales ``a_l``, codeword norm
``r``) and its reference ``Q`` (uniform spheres of radius ``a_l r``), per level sigma::

    R_tot = r sqrt(sum_l a_l^2),   B = 2 R_tot / sigma^2          (|s_P - s_Q| <= B everywhere)
    lambda = eta = (eps / (2 B))^p / 2,   t = log(2 L / eta)
    band_l = Birge's band for |x_l|^2 / sigma^2 ~ chi2_k(a_l^2 r^2 / sigma^2) at deviation t
    good   = [|x_l|^2 in band_l for every l] and [log L_l(x) >= log(lambda / L) for every l]
    block l informative = good and [|s_P,l - s_Q,l| > eps / (2 sqrt L)]
    answer, block l    = s_P,l if block l informative else s_Q,l

``L_l = p_sigma(x_l | x_{<l}) / q_{sigma,l}(x_l)`` are the chain-rule factors of the joint
likelihood ratio (``prod_l L_l = dP_sigma/dQ_sigma``). Admissibility, for every sigma, every
realisation of the stage codebooks and every p >= 1: pointwise ``|O - s_P| <= eps/2`` on ``good``
(at most L blocks each off by at most ``eps/(2 sqrt L)``) and ``<= B`` off it; the L bands fail
with ``P_sigma``-mass at most ``L * eta/L`` (each block's norm has the stated noncentral chi-square
law whatever the path), and each conditional test fails with mass at most ``lambda/L`` (change of
measure given ``x_{<l}``), so Minkowski gives ``|O - s_P|_{L^p(P_sigma)} <= eps/2 + B (lambda +
eta)^{1/p} = eps``. What is not proved is the *hiding* property the rounds argument needs (module
doc of :mod:`jscore.lowerbound.rounds`).

State per chain: ``informative`` (any block ever), ``first_informative`` (1-based query number
of the first answer with any informative block, 0 = never), and per stage
``stage_first_informative`` ``(L,)`` and ``stage_informative_count`` ``(L,)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int

from .._checks import as_real, check_range
from ..targets.nested import NestedCodebook
from .base import AbstractOracle


class NestedParams(NamedTuple):
    """Per-sigma constants: ``bound`` B, ``log_lambda`` (log lambda = log eta), ``t``, and the
    per-block bands ``band_lo``, ``band_hi`` ``(L,)`` for ``|x_l|^2``."""

    bound: Array
    log_lambda: Array
    t: Array
    band_lo: Array
    band_hi: Array


class NestedAnswer(NamedTuple):
    """One answer with its tests: ``score`` (d,), per block ``informative``, ``in_band``,
    ``log_lr`` (chain-rule factors), ``diff`` ``(L,)``; ``good`` (scalar); ``exact`` s_P (d,)."""

    score: Array
    informative: Array
    in_band: Array
    log_lr: Array
    diff: Array
    good: Array
    exact: Array
    reference: Array


class NestedState(eqx.Module):
    informative: Bool[Array, ""]
    first_informative: Int[Array, ""]
    stage_first_informative: Int[Array, " L"]
    stage_informative_count: Int[Array, " L"]
    queries: Int[Array, ""]


class NestedAdversary(AbstractOracle):
    """``NestedAdversary(nested, eps, p=2)``: per-block norm bands, chain-rule likelihood-ratio
    tests and per-block answers (module doc). Exploratory."""

    nested: NestedCodebook
    eps: Array = eqx.field(converter=as_real)
    p: Array = eqx.field(converter=as_real)

    def __init__(self, nested, eps, p=2.0):
        if not isinstance(nested, NestedCodebook):
            raise TypeError("`NestedAdversary(nested, eps, p)` needs a js.targets.NestedCodebook, "
                            f"got {type(nested).__name__}.")
        check_range("eps", eps, lo=0.0, lo_open=True, fix="eps is the L^p accuracy, > 0.")
        check_range("p", p, lo=1.0, fix="Use p in [1, inf).")
        self.nested = nested
        self.eps = eps
        self.p = p

    def __check_init__(self):
        if self.eps.shape != () or self.p.shape != ():
            raise ValueError(f"`eps` and `p` must be scalars, got shapes {self.eps.shape} and "
                             f"{self.p.shape}.")

    @property
    def dim(self) -> int:
        return self.nested.dim

    @property
    def num_stages(self) -> int:
        return self.nested.num_stages

    def parameters(self, sigma, dtype=None) -> NestedParams:
        """B, log lambda, t and the per-block bands at ``sigma``."""
        dtype = jnp.result_type(float) if dtype is None else dtype
        sigma = jnp.asarray(sigma, dtype)
        s2 = sigma * sigma
        L, k = self.nested.num_stages, self.nested.block_dim
        eps, p = self.eps.astype(dtype), self.p.astype(dtype)
        B = 2.0 * self.nested.total_radius / s2
        log_lam = -math.log(2.0) + p * (jnp.log(eps) - jnp.log(2.0 * B))
        t = jnp.maximum(math.log(2.0 * L) - log_lam, 0.0)
        a = (self.nested.scales.astype(dtype) * self.nested.radius) ** 2  # (L,)
        half = 2.0 * jnp.sqrt((k * s2 * s2 + 2.0 * a * s2) * t)
        lo = a + k * s2 - half
        hi = a + k * s2 + half + 2.0 * s2 * t
        return NestedParams(B, log_lam, t, jnp.maximum(lo, 0.0), hi)

    def answer(self, x, sigma) -> NestedAnswer:
        """Stateless answer with every test, for one point ``x`` ``(d,)``."""
        dtype = x.dtype
        sigma = jnp.asarray(sigma, dtype)
        s2 = sigma * sigma
        nc = self.nested
        L, k = nc.num_stages, nc.block_dim
        prm = self.parameters(sigma, dtype)
        xb = jnp.reshape(x, (L, k))
        n2 = jnp.sum(xb * xb, axis=-1)
        in_band = (n2 >= prm.band_lo) & (n2 <= prm.band_hi)
        res = nc.posterior(x, sigma)
        log_lr = nc.stage_log_lr(x, sigma, res)
        m_q = nc.reference.denoise(x, sigma)
        s_p = (res.mean - x) / s2
        s_q = (m_q - x) / s2
        diff = jnp.sqrt(jnp.sum(jnp.reshape(res.mean - m_q, (L, k)) ** 2, axis=-1)) / s2
        good = jnp.all(in_band) & jnp.all(log_lr >= prm.log_lambda - math.log(L))
        informative = good & (diff > 0.5 * self.eps.astype(dtype) / math.sqrt(L))
        out = jnp.where(jnp.repeat(informative, k), s_p, s_q)
        return NestedAnswer(out, informative, in_band, log_lr, diff, good, s_p, s_q)

    def init(self, key, dim):
        L = self.nested.num_stages
        zero = jnp.zeros((), jnp.int32)
        return NestedState(jnp.zeros((), bool), zero, jnp.zeros((L,), jnp.int32),
                           jnp.zeros((L,), jnp.int32), zero)

    def query(self, x, sigma, state: NestedState):
        a = self.answer(jnp.reshape(x, (-1,)), sigma)
        flags = a.informative
        anyf = jnp.any(flags)
        q = state.queries + 1
        first = jnp.where(~state.informative & anyf, q, state.first_informative)
        sfirst = jnp.where((state.stage_first_informative == 0) & flags, q,
                           state.stage_first_informative)
        new = NestedState(state.informative | anyf, first.astype(jnp.int32),
                          sfirst.astype(jnp.int32),
                          state.stage_informative_count + flags.astype(jnp.int32), q)
        return jnp.reshape(a.score, x.shape), new

    def report(self, state: NestedState) -> dict:
        return {"informative": state.informative, "first_informative": state.first_informative,
                "informative_count": jnp.sum(state.stage_informative_count),
                "stage_first_informative": state.stage_first_informative,
                "stage_informative_count": state.stage_informative_count}


__all__ = ["NestedAdversary", "NestedParams", "NestedAnswer", "NestedState"]
