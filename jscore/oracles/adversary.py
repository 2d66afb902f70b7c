"""The likelihood-ratio adversary: an eps-accurate score oracle that hides the codebook (spec section 5).

Per level sigma (sphere family, ``r`` the codeword norm)::

    B       = 2 r / sigma^2                              (|s_P - s_Q| <= B everywhere)
    lambda  = eta = (eps / (2 B))^p / 2,   t = log(2 / eta)
    band    = [r^2 + d s^2 - 2 sqrt((d s^4 + 2 r^2 s^2) t),  r^2 + d s^2 + 2 sqrt((d s^4 + 2 r^2 s^2) t) + 2 s^2 t]

    informative(x, sigma) = [|x|^2 in band] and [log L(x) >= log lambda] and [|s_P - s_Q| > eps/2]
    answer                = s_P if informative else s_Q

Admissibility: ``|O - s_P|_{L^p(P_sigma)} <= eps/2 + B (lambda + eta)^{1/p} = eps`` for every sigma,
codebook and p >= 1 (band: Birge's noncentral chi-square bound; LR: ``P_sigma(L < lambda) <= lambda``).
The oracle answers deterministically from (x, sigma); its per-chain state only records whether
and when an informative answer was given (``report`` -> ``res.stats.informative``,
``res.stats.first_informative`` (1-based query number, 0 = never), ``res.stats.informative_count``).

Gaussian codebooks (section 3.4) are accepted with the norm-band constant
``B = (max_j |y_j| + rho^2 sqrt(band_hi) / (rho^2 + sigma^2)) / sigma^2`` (solved jointly with the
band by fixed-point iteration) and the band built from the extreme codeword norms; that variant is
only *effectively* admissible (unbounded support), so use the sphere family for certified results.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int

from .._checks import as_real, check_range
from ..targets.base import AbstractTarget
from ..targets.codebook import GaussianCodebook, SphereCodebook
from .base import AbstractOracle


_float_array = as_real


class AdversaryParams(NamedTuple):
    """Per-sigma constants of the adversary (all scalars in the query dtype)."""

    bound: Array  # B_sigma
    log_lambda: Array  # log lambda_sigma = log eta_sigma
    t: Array  # t_sigma = log(2/eta_sigma)
    band_lo: Array  # lower end for |x|^2
    band_hi: Array  # upper end for |x|^2


class Answer(NamedTuple):
    """Full record of one adversary answer (for audits and diagnostics)."""

    score: Array  # what the oracle returns
    informative: Array  # bool flag
    in_band: Array
    log_lr: Array  # log L_sigma(x)
    diff: Array  # |s_P - s_Q|
    exact: Array  # s_P(x, sigma)


class AdversaryState(eqx.Module):
    """Per-chain record: any informative answer yet, first one's query number, counts."""

    informative: Bool[Array, ""]
    first_informative: Int[Array, ""]
    informative_count: Int[Array, ""]
    queries: Int[Array, ""]


class LRAdversary(AbstractOracle):
    """``LRAdversary(codebook, eps, p=2)``: the section-5 adversary for a codebook target.

    **Arguments:** ``codebook``: :class:`~jscore.targets.SphereCodebook` (certified) or
    :class:`~jscore.targets.GaussianCodebook`; ``eps > 0`` the L^p(P_sigma) accuracy; ``p >= 1``.
    ``eps`` and ``p`` are array fields (sweeping them does not retrace).
    """

    codebook: AbstractTarget
    eps: Array = eqx.field(converter=_float_array)
    p: Array = eqx.field(converter=_float_array)

    def __init__(self, codebook, eps, p=2.0):
        if not isinstance(codebook, (SphereCodebook, GaussianCodebook)):
            raise TypeError(
                "`LRAdversary(codebook, eps, p)` needs a js.targets.SphereCodebook or "
                f"GaussianCodebook, got {type(codebook).__name__}."
            )
        check_range("eps", eps, lo=0.0, lo_open=True, fix="eps is the L^p accuracy, > 0.")
        check_range("p", p, lo=1.0, fix="Use p in [1, inf).")
        self.codebook = codebook
        self.eps = eps
        self.p = p

    def __check_init__(self):
        if self.eps.shape != () or self.p.shape != ():
            raise ValueError(
                f"`eps` and `p` must be scalars, got shapes {self.eps.shape} and {self.p.shape}; "
                "vmap over oracles to sweep them."
            )

    @property
    def dim(self) -> int:
        return self.codebook.dim

    # ------------------------------------------------------------------ constants
    def parameters(self, sigma, dtype=None) -> AdversaryParams:
        """``B_sigma``, ``log lambda_sigma``, ``t_sigma`` and the band for ``|x|^2`` at ``sigma``."""
        dtype = jnp.result_type(float) if dtype is None else dtype
        sigma = jnp.asarray(sigma, dtype)
        eps = self.eps.astype(dtype)
        p = self.p.astype(dtype)
        d = self.codebook.dim
        s2 = sigma * sigma
        log_half = -math.log(2.0)

        def from_bound(B):
            log_lam = log_half + p * (jnp.log(eps) - jnp.log(2.0 * B))
            # t <= 0 only when B < eps/2 (any answer is eps/2-accurate); clip so the band is a
            # point (always failing -> answer s_Q) instead of NaN.
            return log_lam, jnp.maximum(math.log(2.0) - log_lam, 0.0)

        def band(a, t):  # Birge: |x|^2/s^2 ~ chi2_d(a/s^2)
            v = d * s2 * s2 + 2.0 * a * s2
            half = 2.0 * jnp.sqrt(v * t)
            return a + d * s2 - half, a + d * s2 + half + 2.0 * s2 * t

        if isinstance(self.codebook, SphereCodebook):
            r = self.codebook.radius.astype(dtype)
            B = 2.0 * r / s2
            log_lam, t = from_bound(B)
            lo, hi = band(r * r, t)
        else:
            cb = self.codebook
            rho2 = cb.rho.astype(dtype) ** 2
            a_max = (2.0 * jnp.max(cb.half_sq_norms)).astype(dtype)
            a_min = (2.0 * jnp.min(cb.half_sq_norms)).astype(dtype)
            ymax = jnp.sqrt(a_max)

            def bands(t):
                # lower end: min over norms in [a_min, a_max] of the (convex) Birge lower end
                a_star = jnp.clip(s2 * (4.0 * t - d) / 2.0, a_min, a_max)
                return band(a_star, t)[0], band(a_max, t)[1]

            B = (ymax + rho2 * jnp.sqrt(a_max + d * s2) / (rho2 + s2)) / s2
            for _ in range(6):  # B depends on the band through log(1/eta): converges fast
                log_lam, t = from_bound(B)
                lo, hi = bands(t)
                B = (ymax + rho2 * jnp.sqrt(hi) / (rho2 + s2)) / s2
            log_lam, t = from_bound(B)
            lo, hi = bands(t)
        return AdversaryParams(B, log_lam, t, jnp.maximum(lo, 0.0), hi)

    # ------------------------------------------------------------------ answers
    def answer(self, x, sigma) -> Answer:
        """Stateless answer with all intermediate quantities for one point ``x`` ``(d,)``."""
        dtype = x.dtype
        sigma = jnp.asarray(sigma, dtype)
        s2 = sigma * sigma
        prm = self.parameters(sigma, dtype)
        cb = self.codebook
        n2 = jnp.sum(x * x)
        in_band = (n2 >= prm.band_lo) & (n2 <= prm.band_hi)
        res = cb.posterior(x, sigma)
        log_lr = cb.log_lr_from_lse(x, sigma, res.lse)
        m_q = cb.reference.denoise(x, sigma)
        diff = jnp.sqrt(jnp.sum((res.mean - m_q) ** 2)) / s2
        s_p = (res.mean - x) / s2
        s_q = (m_q - x) / s2
        informative = in_band & (log_lr >= prm.log_lambda) & (diff > 0.5 * self.eps.astype(dtype))
        return Answer(jnp.where(informative, s_p, s_q), informative, in_band, log_lr, diff, s_p)

    def score_and_flag(self, x, sigma):
        """``(O(x, sigma), informative)`` as in the spec."""
        a = self.answer(x, sigma)
        return a.score, a.informative

    # ------------------------------------------------------------------ oracle protocol
    def init(self, key, dim):
        zero = jnp.zeros((), jnp.int32)
        return AdversaryState(jnp.zeros((), bool), zero, zero, zero)

    def query(self, x, sigma, state: AdversaryState):
        score, flag = self.score_and_flag(x, sigma)
        k = state.queries + 1
        first = jnp.where(~state.informative & flag, k, state.first_informative)
        new = AdversaryState(
            state.informative | flag,
            first.astype(jnp.int32),
            state.informative_count + flag.astype(jnp.int32),
            k,
        )
        return score, new

    def report(self, state: AdversaryState) -> dict:
        return {
            "informative": state.informative,
            "first_informative": state.first_informative,
            "informative_count": state.informative_count,
        }


__all__ = ["LRAdversary", "AdversaryParams", "AdversaryState", "Answer"]
