"""UniPC (bh2 / bh1) multistep predictor with a free corrector (docs/sampler_reference.md §8)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from .._checks import check_option
from ..counting import charged_query
from ._common import run_fixed_steps
from .base import OneQueryPerStep

_VARIANTS = ("bh2", "bh1")


def _coefficients(q, rks, h, variant):
    """``(B, rho_P, rho_C)`` of a UniPC step of static order ``q`` (wl-zhao/UniPC bh update).

    ``rks``: ``(q,)`` with ``r_k`` (k < q) and ``r_q = 1``; ``h > 0`` the log-SNR step.
    ``rho_P`` has ``q - 1`` entries, ``rho_C`` has ``q``.
    """
    hh = -h
    b_h = jnp.expm1(hh) if variant == "bh2" else hh
    g = jnp.expm1(hh) / hh - 1.0
    bs = []
    fact = 1
    for k in range(1, q + 1):
        bs.append(g * fact / b_h)
        fact *= k + 1
        g = g / hh - 1.0 / fact
    b = jnp.stack(bs)
    vander = jnp.stack([rks ** (k - 1) for k in range(1, q + 1)])  # rows k, columns j
    if q == 1:
        rho_p = jnp.zeros((0,), h.dtype)
        rho_c = jnp.full((1,), 0.5, h.dtype)
    else:
        if q == 2:
            rho_p = jnp.full((1,), 0.5, h.dtype)
        else:
            rho_p = jnp.linalg.solve(vander[: q - 1, : q - 1], b[: q - 1])
        rho_c = jnp.linalg.solve(vander, b)
    return b_h, rho_p, rho_c


class UniPC(OneQueryPerStep):
    """UniPC with the bh2 predictor and the free UniC corrector (2302.04867), data prediction, EDM form.

    History ``m_0 = D`` at ``lambda_i``, ``m_k`` at ``lambda_{i-k}``; ``r_k = (lambda_{i-k} - lambda_i)/h``,
    ``delta_k = (m_k - m_0)/r_k``. With ``B = e^{-h} - 1`` (bh2; bh1: ``B = -h``) and the Vandermonde
    solves of the reference for ``rho^P``, ``rho^C`` (overrides ``rho^P = 1/2`` for order 2,
    ``rho^C = 1/2`` for order 1):

    ``ybar = (sigma'/sigma) y + (1 - e^{-h}) m_0``, ``y^P = ybar - B sum_k rho^P_k delta_k``,
    ``m' = D(y^P, sigma')`` (the step's only query),
    ``y' = ybar - B [sum_k rho^C_k delta_k + rho^C_p (m' - m_0)]``; ``m'`` is pushed to the history.

    The first query is ``D(y_0, sigma_0)``. Step orders ``p_i = min(order, i + 1)``
    (``lower_order_final``: also ``<= N - i``). The last step makes no query and has no corrector:
    into sigma = 0 it returns ``m_0`` (D at the previous predicted point); on a grid ending at
    sigma_N > 0 it returns ``y^P``. Deterministic; order ``order + 1``.
    Per chain: Q = N_sigma = N, R = Q, on any grid.
    """

    order: int = eqx.field(default=2, static=True)
    variant: str = eqx.field(default="bh2", static=True)
    lower_order_final: bool = eqx.field(default=False, static=True)

    def __check_init__(self):
        if not isinstance(self.order, int) or not 1 <= self.order <= 5:
            raise ValueError(f"`order` must be an int in 1..5 for UniPC, got {self.order!r}.")
        check_option("variant", self.variant, _VARIANTS)

    def init(self, sigmas, x):
        # history of D values (newest first) at the levels sigmas[i], sigmas[i-1], ...
        return jnp.zeros((self.order,) + x.shape, x.dtype)

    def solve(self, oracle, sigmas, x, key, ostate, ledger, record):
        score, ostate, ledger = charged_query(oracle, x, sigmas[0], ostate, ledger)
        hist = self.init(sigmas, x).at[0].set(x + sigmas[0] * sigmas[0] * score)
        return run_fixed_steps(self, oracle, sigmas, x, hist, key, ostate, ledger, record)

    def step(self, oracle, i, sigmas, x, state, ostate, ledger, key):
        num_steps = sigmas.shape[0] - 1
        p = self.order
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        pos = sigma_next > 0
        h = jnp.where(pos, jnp.log(sigma / jnp.where(pos, sigma_next, 1.0)), 1.0)
        m0 = state[0]
        ratio = sigma_next / sigma
        ybar = ratio * x + (1.0 - ratio) * m0
        order_i = jnp.minimum(p, i + 1)
        if self.lower_order_final:
            order_i = jnp.minimum(order_i, num_steps - i)
        # r_k, delta_k for k = 1..p-1 (entries beyond order_i - 1 are unused)
        ks = jnp.arange(1, p)
        s_prev = sigmas[jnp.maximum(i - ks, 0)]
        rks = jnp.log(sigma / s_prev) / h  # (lambda_{i-k} - lambda_i)/h < 0
        rks_safe = jnp.where(ks < order_i, rks, -1.0)
        deltas = (state[1:] - m0) / rks_safe[:, None]
        last = i == num_steps - 1
        coeffs = [
            _coefficients(
                q, jnp.concatenate([rks_safe[: q - 1], jnp.ones((1,), h.dtype)]), h, self.variant
            )
            for q in range(1, p + 1)
        ]
        y_preds, y_corrs = [], []
        for q, (b_h, rho_p, _) in enumerate(coeffs, start=1):
            y_preds.append(ybar - b_h * (rho_p @ deltas[: q - 1]))
        y_pred = y_preds[0]
        for q in range(2, p + 1):
            y_pred = jnp.where(order_i == q, y_preds[q - 1], y_pred)
        need = pos & ~last
        score, ostate, ledger = charged_query(oracle, y_pred, sigma_next, ostate, ledger, when=need)
        m_new = y_pred + sigma_next * sigma_next * score
        for q, (b_h, _, rho_c) in enumerate(coeffs, start=1):
            corr = rho_c[: q - 1] @ deltas[: q - 1] + rho_c[q - 1] * (m_new - m0)
            y_corrs.append(ybar - b_h * corr)
        y_corr = y_corrs[0]
        for q in range(2, p + 1):
            y_corr = jnp.where(order_i == q, y_corrs[q - 1], y_corr)
        x_next = jnp.where(pos, jnp.where(last, y_pred, y_corr), m0)
        new_hist = jnp.concatenate([m_new[None], state[:-1]], axis=0)
        state = jnp.where(need, new_hist, state)
        return x_next, state, ostate, ledger


__all__ = ["UniPC"]
