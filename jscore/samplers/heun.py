"""EDM's second-order sampler (Algorithm 2) with optional churn."""

from __future__ import annotations

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_range
from ..counting import charged_query
from .base import AbstractFixedStepSampler, _StepKey, as_param


class Heun(AbstractFixedStepSampler):
    """EDM Heun for ``dy/dsigma = eps_hat(y, sigma)`` with stochastic churn.

    Step i: ``gamma_i = min(s_churn/N, sqrt2 - 1)`` if ``s_tmin <= sigma_i <= s_tmax`` else 0;
    ``sigma_hat = sigma_i (1 + gamma_i)``; ``y_hat = y + s_noise sqrt(sigma_hat^2 - sigma_i^2) z``;
    Euler predictor from ``sigma_hat`` to ``sigma_{i+1}`` and, if ``sigma_{i+1} > 0``, the
    trapezoidal corrector; the step into sigma = 0 is Euler (= Tweedie at ``y_hat``).

    Per chain (N steps, grid ending at 0): Q = 2N - 1, R = Q; N_sigma = N without churn,
    ``N - 1 + n_c + [gamma_0 = 0]`` with ``n_c`` churned steps. Ending at sigma_N > 0: Q = 2N.
    Deterministic iff no step is churned. ``x`` is ``(d,)``.
    """

    s_churn: Float[Array, ""] = eqx.field(default=0.0, converter=as_param)
    s_tmin: Float[Array, ""] = eqx.field(default=0.0, converter=as_param)
    s_tmax: Float[Array, ""] = eqx.field(default=float("inf"), converter=as_param)
    s_noise: Float[Array, ""] = eqx.field(default=1.0, converter=as_param)

    _lazy_step_key: ClassVar[bool] = True  # the key is only needed with churn
    _selects_on_exhaustion: ClassVar[bool] = True  # fused into the update

    def __check_init__(self):
        check_range("s_churn", self.s_churn, 0.0)
        check_range("s_tmin", self.s_tmin, 0.0)
        check_range("s_noise", self.s_noise, 0.0)

    @property
    def is_stochastic(self) -> bool:
        try:
            return bool(self.s_churn > 0)
        except jax.errors.ConcretizationTypeError:  # traced: assume it may be
            return True

    def num_queries(self, num_steps: int, ends_at_zero: bool) -> int:
        return 2 * num_steps - 1 if ends_at_zero else 2 * num_steps

    def init(self, sigmas, x):
        return None

    def gammas(self, sigmas):
        """Churn factors ``gamma_i`` for the N steps of ``sigmas``, shape ``(N,)``."""
        num_steps = sigmas.shape[0] - 1
        s = sigmas[:-1]
        in_window = (self.s_tmin <= s) & (s <= self.s_tmax)
        g = jnp.minimum(self.s_churn / num_steps, math.sqrt(2.0) - 1.0)
        return jnp.where(in_window, g, jnp.zeros_like(s)).astype(sigmas.dtype)

    def step(self, oracle, i, sigmas, x, state, ostate, ledger, key, *, may_exhaust: bool = True):
        """One EDM step. ``may_exhaust=False`` (passed by the engine when the budget provably
        covers the grid) leaves out the exhaustion select, so the input state need not outlive
        the step."""
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        gamma = self.gammas(sigmas)[i]
        sigma_hat = sigma * (1.0 + gamma)  # = sigma exactly when gamma = 0
        # Churn noise is drawn in a while loop of 0 or 1 iterations (1 iff s_churn > 0, which does
        # not depend on the chain or the grid, so under the engine's vmap the loop stays real):
        # without churn (the PF-ODE) no noise is drawn, the per-chain key derivation (a lazy
        # _StepKey) is skipped, and x_hat is x itself, updated in place (a cond around the step
        # would return the new state in a separate buffer: one more state-sized temporary and a
        # copy per step). With churn, x_hat is the same formula as before; with gamma = 0 (a step
        # outside the churn window) it adds exactly 0.
        churn_on = jnp.minimum(self.s_churn / (sigmas.shape[0] - 1), math.sqrt(2.0) - 1.0) > 0

        def perturb(carry):
            n, y = carry
            # the barrier ties the key to the loop counter: without it XLA hoists the
            # (loop-invariant) draw out of the loop, drawing noise every step even without churn
            n, k = jax.lax.optimization_barrier((n, key))
            k = k() if isinstance(k, _StepKey) else k
            z = jax.random.normal(k, y.shape, y.dtype)
            # sqrt(sigma_hat^2 - sigma^2) = sigma sqrt(gamma (2 + gamma)), exact 0 when gamma = 0
            return n + 1, y + self.s_noise * sigma * jnp.sqrt(gamma * (2.0 + gamma)) * z

        _, x_hat = jax.lax.while_loop(
            lambda c: c[0] < churn_on.astype(jnp.int32), perturb, (jnp.zeros((), jnp.int32), x)
        )

        score, ostate, ledger = charged_query(oracle, x_hat, sigma_hat, ostate, ledger)
        d = -sigma_hat * score  # eps_hat(x_hat, sigma_hat)
        x_pred = x_hat + (sigma_next - sigma_hat) * d

        not_last = sigma_next > 0
        score2, ostate, ledger = charged_query(
            oracle, x_pred, sigma_next, ostate, ledger, when=not_last
        )
        d2 = -sigma_next * score2
        x_corr = x_hat + (sigma_next - sigma_hat) * 0.5 * (d + d2)
        x_new = jnp.where(not_last, x_corr, x_pred)
        if may_exhaust:
            # an exhausted chain keeps its input state (the engine's rule, applied here so that
            # it fuses with the update instead of costing a pass of its own)
            x_new = jnp.where(ledger.exhausted, x, x_new)
        return x_new, state, ostate, ledger


__all__ = ["Heun"]
