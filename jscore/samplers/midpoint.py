"""Randomized midpoint for the reverse SDE, relative-score form (docs/sampler_reference.md §10)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_positive_int
from ..counting import charged_query, charged_round
from .base import AbstractFixedStepSampler


class RandomizedMidpoint(AbstractFixedStepSampler):
    """Randomized-midpoint step of the relative-score reverse SDE with coupled Brownian increments.

    EDM form of ``y_tau = rho_tau^2 y + 2 (1 + sigma_tau^2) int_0^tau S_rel(y_s, sigma_s) ds + nu_tau``
    (OU clock s, ``rho_tau = e^{-tau}``, ``S_rel = S + y/(1 + sigma^2)``). Per step of OU length ``h``,
    with ``K = num_points`` random times ``tau_k = (k - 1 + U_k) h / K`` at levels
    ``sigma_k = sqrt(expm1(2 (t - tau_k)))`` and ``J = picard_iters`` Picard rounds:

    - round 0: ``g_0 = S_rel(y, sigma)``;
      init ``y_k = rho_{tau_k}^2 y + 2 (1 + sigma_k^2)(e^{tau_k} - 1) g_0 + nu_{tau_k}``;
    - rounds 1..J: ``g_k = S_rel(y_k, sigma_k)`` for all k at once, then
      ``y_k <- rho_{tau_k}^2 y + 2 (1 + sigma_k^2)[(h/K) sum_{1<=l<k} g_l
      + (e^{tau_k - tau_{k-1}} - e^{tau_k^- - tau_{k-1}}) g_{k-1}] + nu_{tau_k}`` (``tau_0 = 0``);
    - ``y' = rho^2 y + 2 (1 + sigma'^2)(h/K) sum_k g_k + nu_h``.

    The noise ``nu_tau = e^{t - tau} N_tau`` comes from ONE OU path ``N`` sampled at
    ``tau_1 < ... < tau_K < h`` (midpoint and endpoint share the Brownian increments).
    ``K = J = 1`` is the sequential method:
    ``y_m = rho1^2 y + 2 rho1 (1 - rho1)(1 + sigma^2) S_rel(y, sigma) + n1``,
    ``y' = rho^2 y + 2h (1 + sigma'^2) S_rel(y_m, sigma_m) + rho2^2 n1 + rho2 sqrt(sigma_m^2 - sigma'^2) w2``.
    The step into sigma = 0 is Tweedie (one query). Stochastic, weak order 1.

    Per chain, grid ending at 0: Q = (N - 1)(1 + J K) + 1, N_sigma = N + (N - 1) K a.s.,
    R = (N - 1)(1 + J) + 1; ending at sigma_N > 0: Q = N (1 + J K), N_sigma = N (1 + K),
    R = N (1 + J). Sequential (R = Q) iff K = J = 1.
    """

    num_points: int = eqx.field(default=1, static=True)
    picard_iters: int = eqx.field(default=1, static=True)

    def __check_init__(self):
        check_positive_int("num_points", self.num_points)
        check_positive_int("picard_iters", self.picard_iters)

    @property
    def is_stochastic(self) -> bool:
        return True

    def num_queries(self, num_steps: int, ends_at_zero: bool) -> int:
        per = 1 + self.picard_iters * self.num_points
        return (num_steps - 1) * per + 1 if ends_at_zero else num_steps * per

    def init(self, sigmas, x):
        return None

    def step(self, oracle, i, sigmas, x, state, ostate, ledger, key):
        K, J = self.num_points, self.picard_iters
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        dtype = x.dtype
        pos = sigma_next > 0
        t = 0.5 * jnp.log1p(sigma * sigma)
        t_next = 0.5 * jnp.log1p(sigma_next * sigma_next)
        h = jnp.where(pos, t - t_next, 1.0)
        one_p = 1.0 + sigma * sigma

        score0, ostate, ledger = charged_query(oracle, x, sigma, ostate, ledger)
        g0 = score0 + x / one_p
        denoised = x + sigma * sigma * score0

        k_u, k_w = jax.random.split(key)
        u = jax.random.uniform(k_u, (K,), dtype)
        tau_lo = jnp.arange(K, dtype=dtype) * h / K
        tau = tau_lo + u * h / K  # (K,), increasing, < h
        sig_k = jnp.sqrt(jnp.expm1(2.0 * (t - tau)))
        one_pk = 1.0 + sig_k * sig_k
        rho2_k = jnp.exp(-2.0 * tau)

        # one OU path N at tau_1 < ... < tau_K < h, started at N_0 = 0
        w = jax.random.normal(k_w, (K + 1,) + x.shape, dtype)
        times = jnp.concatenate([tau, h[None]])
        gaps = jnp.diff(jnp.concatenate([jnp.zeros((1,), dtype), times]))

        def ou(n_prev, inp):
            gap, wk = inp
            n = jnp.exp(-gap) * n_prev + jnp.sqrt(-jnp.expm1(-2.0 * gap)) * wk
            return n, n

        _, path = jax.lax.scan(ou, jnp.zeros_like(x), (gaps, w))
        nu = jnp.exp(t - times)[:, None] * path  # (K + 1, d) EDM-variable noise
        nu_k, nu_h = nu[:K], nu[K]

        ys = rho2_k[:, None] * x + (2.0 * one_pk * jnp.expm1(tau))[:, None] * g0 + nu_k
        tau_prev = jnp.concatenate([jnp.zeros((1,), dtype), tau[:-1]])
        c_part = jnp.expm1(tau - tau_prev) - jnp.expm1(tau_lo - tau_prev)

        gs = jnp.zeros((K,) + x.shape, dtype)
        for _ in range(J):
            scores, ostate, ledger = charged_round(oracle, ys, sig_k, ostate, ledger, when=pos)
            gs = scores + ys / one_pk[:, None]
            prefix = (h / K) * (jnp.cumsum(gs, axis=0) - gs)  # sum over 1 <= l < k
            g_prev = jnp.concatenate([g0[None], gs[:-1]], axis=0)
            ys = rho2_k[:, None] * x + (2.0 * one_pk)[:, None] * (prefix + c_part[:, None] * g_prev) + nu_k

        rho = jnp.exp(-h)
        x_next = rho * rho * x + 2.0 * (1.0 + sigma_next * sigma_next) * (h / K) * jnp.sum(gs, 0) + nu_h
        return jnp.where(pos, x_next, denoised), state, ostate, ledger


__all__ = ["RandomizedMidpoint"]
