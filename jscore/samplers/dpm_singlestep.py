"""Singlestep DPM-Solver(++) on the grid's own levels (diffusers' ``DPMSolverSinglestepScheduler``)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._checks import check_option
from ..counting import charged_query
from ._common import log_step, phi1m1, phi2_neg, phi2m_half, phi3_neg
from .base import OneQueryPerStep
from .dpm_solver import SOLVER_TYPES

_ALGORITHMS = ("dpmsolver++", "dpmsolver")


def singlestep_orders(order: int, num_steps: int, lower_order_final: bool) -> list[int]:
    """Per-step orders: groups ``[1, .., order]`` (diffusers' ``get_order_list``).

    With ``lower_order_final`` the tail is ``[1, 2] + [1]`` (order 3, N % 3 == 0), ``[1]``
    (N % 3 == 1), ``[1, 2]`` (N % 3 == 2); ``[1, 1]`` (order 2, N even), ``[1]`` (N odd).
    Without it the last group is cut short (``[1]`` or ``[1, 2]``).
    """
    n, p = num_steps, order
    if lower_order_final and p == 3 and n % 3 == 0 and n >= 3:
        return [1, 2, 3] * (n // 3 - 1) + [1, 2, 1]
    if lower_order_final and p == 2 and n % 2 == 0 and n >= 2:
        return [1, 2] * (n // 2 - 1) + [1, 1]
    return (list(range(1, p + 1)) * (n // p + 1))[:n]


class DPMSolverSinglestep(OneQueryPerStep):
    """Singlestep DPM-Solver++ (``algorithm_type="dpmsolver++"``, data prediction ``m = D``) or
    DPM-Solver (``"dpmsolver"``, noise prediction ``m = eps_hat = -sigma S``), orders 2 and 3, as
    diffusers' ``DPMSolverSinglestepScheduler``, in EDM variables.

    The grid is cut into groups of :func:`singlestep_orders`. A group starts at ``y_a`` (level
    ``s_a``); its intermediate levels are the grid's next points, reached by the group's lower-order
    updates from ``y_a``. Each step makes one query ``m_i = m(y_i, sigma_i)`` and moves from ``y_a``
    to ``t = sigma_{i+1}``; ``h = log(s_a/t)``, ``ratio = t/s_a``:

    - order 1: ``y' = ratio y_a + (1 - ratio) m_a`` (++); ``y' = y_a - (s_a - t) m_a`` (eps);
    - order 2 (``a = i - 1``): ``r0 = log(s_a/sigma_i)/h``, ``D0 = m_a``, ``D1 = (m_i - m_a)/r0``;
      ++: ``y' = ratio y_a + (1 - ratio) D0 + c D1``, ``c = (1 - ratio)/2`` (``solver_type=
      "midpoint"``) or ``phi2(h) = (e^{-h} - 1)/h + 1`` (``"heun"``); eps:
      ``y' = y_a - (s_a - t) D0 - c D1``, ``c = (s_a - t)/2`` or ``t ((e^h - 1)/h - 1)``;
    - order 3 (``a = i - 2``): ``r1 = log(s_a/sigma_{i-1})/h``, ``r0 = log(s_a/sigma_i)/h``,
      ``D1_0 = (m_{i-1} - m_a)/r1``, ``D1_1 = (m_i - m_a)/r0``, ``D1 = (r0 D1_0 - r1 D1_1)/(r0 - r1)``,
      ``D2 = 2 (D1_1 - D1_0)/(r0 - r1)``. "midpoint": ++ ``ratio y_a + (1 - ratio) D0 + phi2 D1_1``,
      eps ``y_a - (s_a - t) D0 - t phi1m1(h) D1_1``; "heun": ++ ``... + phi2 D1 - phi3 D2`` with
      ``phi3 = phi2/h - 1/2``, eps ``... - t phi1m1(h) D1 - t ((e^h - 1 - h)/h^2 - 1/2) D2``.

    Where the forms differ: diffusers' "midpoint" order-3 step is not a midpoint rule but the
    DPM-Solver-3 paper's final step (heun-type phi weight on the one difference ``D1_1``), exact to
    third order only when ``r0 = 2/3`` (uniform-in-lambda grids, and asymptotically on smooth
    grids); "heun" uses both differences and is third order for any ``r0, r1``. jscore implements
    both exactly as diffusers does (default "midpoint", diffusers' default). The paper-style
    singlestep solver with its own off-grid intermediate levels is :class:`DPMSolver`.

    ``lower_order_final`` (default True, as diffusers) shortens the last group (see
    :func:`singlestep_orders`); the step into sigma = 0 is order 1 (returns Tweedie's ``D``).
    Deterministic; global order ``order`` on full groups. A trailing order-1 step (the
    ``lower_order_final`` tails, or the forced first-order step into sigma = 0 on a grid ending
    at 0) has local error O(h^2), so at large N such runs converge at order 2 in the last step's
    size (measured: order 3 needs N % 3 == 0 without ``lower_order_final`` on a grid ending at
    sigma_N > 0). Per chain: Q = N_sigma = R = N, on any grid.
    """

    order: int = eqx.field(default=2, static=True)
    solver_type: str = eqx.field(default="midpoint", static=True)
    algorithm_type: str = eqx.field(default="dpmsolver++", static=True)
    lower_order_final: bool = eqx.field(default=True, static=True)

    def __check_init__(self):
        if self.order not in (1, 2, 3):
            raise ValueError(f"`order` must be 1, 2 or 3 for DPMSolverSinglestep, got {self.order!r}.")
        check_option("solver_type", self.solver_type, SOLVER_TYPES)
        check_option("algorithm_type", self.algorithm_type, _ALGORITHMS)

    def init(self, sigmas, x):
        return jnp.zeros((3,) + x.shape, x.dtype)  # y_a, m_a, m_{a+1}

    def step(self, oracle, i, sigmas, x, state, ostate, ledger, key):
        sigma, t = sigmas[i], sigmas[i + 1]
        orders = singlestep_orders(self.order, sigmas.shape[0] - 1, self.lower_order_final)
        pos = t > 0
        o = jnp.where(pos, jnp.asarray(np.asarray(orders, np.int32))[i], 1)
        score, ostate, ledger = charged_query(oracle, x, sigma, ostate, ledger)
        m_i = x + sigma * sigma * score if self.algorithm_type == "dpmsolver++" else -sigma * score
        y_a = jnp.where(o == 1, x, state[0])
        m_a = jnp.where(o == 1, m_i, state[1])
        s_a = sigmas[jnp.maximum(i - o + 1, 0)]
        h = log_step(s_a, t)
        r0 = jnp.where(o >= 2, jnp.log(s_a / sigma) / h, 1.0)
        r1 = jnp.where(o >= 3, jnp.log(s_a / sigmas[jnp.maximum(i - 1, 0)]) / h, 0.5)
        d1_1 = (m_i - m_a) / r0
        d1_0 = (state[2] - m_a) / r1
        d1 = (r0 * d1_0 - r1 * d1_1) / (r0 - r1)
        d2 = 2.0 * (d1_1 - d1_0) / (r0 - r1)
        ratio = t / s_a
        heun = self.solver_type == "heun"
        if self.algorithm_type == "dpmsolver++":
            x1 = ratio * y_a + (1.0 - ratio) * m_a
            x2 = x1 + (phi2_neg(h) if heun else 0.5 * (1.0 - ratio)) * d1_1
            x3 = x1 + phi2_neg(h) * d1 - phi3_neg(h) * d2 if heun else x1 + phi2_neg(h) * d1_1
        else:
            x1 = y_a - (s_a - t) * m_a
            x2 = x1 - (t * phi1m1(h) if heun else 0.5 * (s_a - t)) * d1_1
            x3 = x1 - t * (phi1m1(h) * d1 + phi2m_half(h) * d2) if heun else x1 - t * phi1m1(h) * d1_1
        x_next = jnp.where(o >= 3, x3, jnp.where(o == 2, x2, x1))
        state = jnp.stack([y_a, m_a, jnp.where(o == 2, m_i, state[2])])
        return x_next, state, ostate, ledger


__all__ = ["DPMSolverSinglestep", "singlestep_orders"]
