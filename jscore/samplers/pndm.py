"""iPNDM and PNDM (diffusers' ``IPNDMScheduler`` / ``PNDMScheduler(skip_prk_steps=True)``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..counting import charged_query
from .base import AbstractFixedStepSampler, OneQueryPerStep

# Adams-Bashforth weights on eps_i, eps_{i-1}, ... (equal steps), orders 1-4
_AB = ((1.0,), (1.5, -0.5), (23 / 12, -16 / 12, 5 / 12), (55 / 24, -59 / 24, 37 / 24, -9 / 24))


def adams_bashforth(k, eps, hist):
    """``sum_j b^{(k)}_j eps_{i-j}`` for traced order ``k`` in 1..4; ``hist``: ``(3, ...)``, newest first."""
    vals = (eps, hist[0], hist[1], hist[2])
    combos = [sum(b * v for b, v in zip(w, vals)) for w in _AB]
    out = combos[0]
    for q in range(2, 5):
        out = jnp.where(k == q, combos[q - 1], out)
    return out


def _push(eps, hist):
    return jnp.concatenate([eps[None], hist[:-1]], axis=0)


class IPNDM(OneQueryPerStep):
    """Improved PNDM (Zhang & Chen 2204.13902; diffusers' ``IPNDMScheduler``), EDM form.

    ``eps_i = -sigma_i S(y_i, sigma_i)``; ``y' = y + (sigma' - sigma) ebar`` (the DDIM step with the
    Adams-Bashforth combination ``ebar`` of order ``min(i + 1, 4)``: ``eps_i``,
    ``(3 eps_i - eps_{i-1})/2``, ``(23, -16, 5)/12``, ``(55, -59, 37, -9)/24``). The weights are those
    of equal steps in sigma whatever the grid, as in diffusers. The step into sigma = 0 uses the same
    rule (``y - sigma ebar``, diffusers' behaviour; not Tweedie). Deterministic. Global order: 4 on
    grids uniform in sigma apart from the warm-up (whose Euler first step is O(h^2)); on a grid with
    smoothly varying steps (geometric, Karras) the fixed weights make it order 2.
    Per chain: Q = N_sigma = R = N, on any grid.
    """

    def init(self, sigmas, x):
        return jnp.zeros((3,) + x.shape, x.dtype)  # eps_{i-1}, eps_{i-2}, eps_{i-3}

    def step(self, oracle, i, sigmas, x, state, ostate, ledger, key):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        score, ostate, ledger = charged_query(oracle, x, sigma, ostate, ledger)
        eps = -sigma * score
        ebar = adams_bashforth(jnp.minimum(i + 1, 4), eps, state)
        return x + (sigma_next - sigma) * ebar, _push(eps, state), ostate, ledger


class PNDM(AbstractFixedStepSampler):
    """PNDM with pseudo linear multistep steps (Liu et al. 2202.09778) as diffusers'
    ``PNDMScheduler(skip_prk_steps=True)`` runs it (the Stable Diffusion configuration), EDM form.

    The transfer step is DDIM, ``y' = y + (sigma' - sigma) e``. Step 0 is Heun: ``e_0 = eps(y_0,
    sigma_0)``, ``u = y_0 + (sigma_1 - sigma_0) e_0``, ``e = (e_0 + eps(u, sigma_1))/2`` (the second
    answer is not kept in the history; skipped, i.e. Euler/Tweedie, when ``sigma_1 = 0``). Step
    ``i >= 1`` queries ``e_i = eps(y_i, sigma_i)`` and uses the Adams-Bashforth combination of order
    ``min(i + 1, 4)`` of ``e_i, e_{i-1}, ...`` (equal-step weights, as iPNDM); the step into sigma = 0
    uses the same rule; the Heun branch runs only at step 0 (``lax.cond`` on the step index). The pseudo Runge-Kutta warm-up of ``skip_prk_steps=False`` needs diffusers'
    integer timesteps (half-steps in t) and is not implemented. Deterministic; global order 2 on
    smoothly varying grids (fixed weights), 3 on grids uniform in sigma (Heun warm-up).
    Per chain: Q = R = N + 1 (N if sigma_1 = 0), N_sigma = N (the Heun query re-uses sigma_1).
    """

    @property
    def is_stochastic(self) -> bool:
        return False

    def num_queries(self, num_steps: int, ends_at_zero: bool) -> int:
        return num_steps + (0 if num_steps == 1 and ends_at_zero else 1)

    def init(self, sigmas, x):
        return jnp.zeros((3,) + x.shape, x.dtype)

    def step(self, oracle, i, sigmas, x, state, ostate, ledger, key):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        score, ostate, ledger = charged_query(oracle, x, sigma, ostate, ledger)
        eps = -sigma * score
        pos = sigma_next > 0

        def heun(ostate, ledger):  # step 0 only: the scan index is the same for every chain
            u = x + (sigma_next - sigma) * eps
            score_u, ostate, ledger = charged_query(oracle, u, sigma_next, ostate, ledger, when=pos)
            return jnp.where(pos, 0.5 * (eps - sigma_next * score_u), eps), ostate, ledger

        def multistep(ostate, ledger):
            return adams_bashforth(jnp.minimum(i + 1, 4), eps, state), ostate, ledger

        ebar, ostate, ledger = jax.lax.cond(i == 0, heun, multistep, ostate, ledger)
        return x + (sigma_next - sigma) * ebar, _push(eps, state), ostate, ledger


__all__ = ["IPNDM", "PNDM", "adams_bashforth"]
