"""SDE forms of DPM-Solver++ (k-diffusion ``sample_dpmpp_2m_sde``, ``sample_dpmpp_3m_sde``,
``sample_dpmpp_sde``) in EDM variables.

``D = y + sigma^2 S`` (Tweedie), ``h = log(sigma/sigma')``, ``H = (1 + eta) h``. The stochastic
exponential step ``y' = (sigma'/sigma) e^{-eta h} y + (1 - e^{-H}) D + sigma' sqrt(1 - e^{-2 eta h}) z``
is, at ``eta = 1``, DDPM's posterior step and, at ``eta = 0``, the DPM-Solver++ (Euler) step.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_option, check_range
from ..counting import charged_query
from ._common import log_step, maybe_positive, phi2_neg, phi3_neg
from .ancestral import ancestral_coefficients
from .ancestral_2s import TwoQueryStochastic
from .base import AbstractFixedStepSampler, as_param

_SOLVER_TYPES = ("midpoint", "heun")


class DPMSolverPPMultistepSDE(AbstractFixedStepSampler):
    """Multistep SDE-DPM-Solver++ 2M / 3M (k-diffusion ``dpmpp_2m_sde`` / ``dpmpp_3m_sde``).

    Step ``i`` (``sigma = sigma_i``, ``sigma' = sigma_{i+1} > 0``), with ``D_i = D(y_i, sigma_i)``,
    ``r0 = h_{i-1}/h``, ``r1 = h_{i-2}/h`` (previous log-steps) and ``delta0 = (D_i - D_{i-1})/r0``:

    ``y' = (sigma'/sigma) e^{-eta h} y + (1 - e^{-H}) D_i + C + s_noise sigma' sqrt(1 - e^{-2 eta h}) z``

    with the correction ``C`` of the step's order ``p_i = min(order, i + 1)`` (lower-order warm-up):
    ``p = 1``: ``C = 0``; ``p = 2``: ``C = c2 delta0`` with ``c2 = (1 - e^{-H})/2``
    (``solver_type="midpoint"``) or ``c2 = phi2(H) = (e^{-H} - 1)/H + 1`` (``"heun"``; the default
    ``None`` is k-diffusion's choice: midpoint for ``order=2``, heun in 3M's warm-up); ``p = 3``:
    ``delta1 = (D_{i-1} - D_{i-2})/r1``, ``C = phi2(H) (delta0 + r0 (delta0 - delta1)/(r0 + r1))
    - phi3(H) (delta0 - delta1)/(r0 + r1)``, ``phi3 = phi2/H - 1/2`` (k-diffusion's coefficients).

    The step into sigma' = 0 returns ``D_i`` (no noise). ``z`` is a fresh normal per step from the
    sampler's key stream: k-diffusion draws it from a Brownian tree over the increments
    ``[sigma_{i+1}, sigma_i]``, which are disjoint, so the law is the same. ``eta = 0`` gives the
    ODE solver (``order=2``, midpoint: exactly ``DPMSolverPP(order=2)``).

    Order: the exponential part is exact for the linear drift; the correction is k-diffusion's
    multistep extrapolation, 2M second order and 3M (``phi3`` with coefficient 1, as in the peers'
    ``dpmpp_3m``) also second order. Weak order measured on Gaussian targets (exact law, geometric
    grids to sigma_min = 0.5): 2 for 2M (both forms) and 3M, at ``eta = 1`` and ``eta = 0``; it is
    not established for non-Gaussian targets.
    Differences from k-diffusion: none in the update (tested against a transcription to 1e-10);
    the normals come from jscore's key stream (same law), and ``order=1`` is offered too
    (at ``eta = 1`` it is :class:`EulerAncestral`).
    Per chain: Q = N_sigma = R = N on any grid. ``x`` may have any shape.
    """

    order: int = eqx.field(default=2, static=True)
    solver_type: str | None = eqx.field(default=None, static=True)
    eta: Float[Array, ""] = eqx.field(default=1.0, converter=as_param)
    s_noise: Float[Array, ""] = eqx.field(default=1.0, converter=as_param)

    def __check_init__(self):
        if self.order not in (1, 2, 3):
            raise ValueError(
                f"`order` must be 1, 2 or 3 for DPMSolverPPMultistepSDE, got {self.order!r}."
            )
        if self.solver_type is not None:
            check_option("solver_type", self.solver_type, _SOLVER_TYPES)
        check_range("eta", self.eta, 0.0)
        check_range("s_noise", self.s_noise, 0.0)

    @property
    def is_stochastic(self) -> bool:
        return maybe_positive(self.eta, self.s_noise)

    @property
    def second_order_form(self) -> str:
        """The order-2 correction used: ``solver_type``, or k-diffusion's default for this order
        (``"midpoint"`` in 2M, ``"heun"`` in 3M's warm-up step)."""
        if self.solver_type is not None:
            return self.solver_type
        return "heun" if self.order == 3 else "midpoint"

    def num_queries(self, num_steps: int, ends_at_zero: bool) -> int:
        return num_steps

    def init(self, sigmas, x):
        return jnp.zeros((max(self.order - 1, 1),) + x.shape, x.dtype)  # D_{i-1}, D_{i-2}

    def step(self, oracle, i, sigmas, x, state, ostate, ledger, key):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        score, ostate, ledger = charged_query(oracle, x, sigma, ostate, ledger)
        d0 = x + sigma * sigma * score
        pos = sigma_next > 0
        h = log_step(sigma, sigma_next)
        big_h = (1.0 + self.eta) * h
        one_m = -jnp.expm1(-big_h)
        p = jnp.minimum(self.order, i + 1)
        r0 = jnp.where(p >= 2, log_step(sigmas[jnp.maximum(i - 1, 0)], sigma) / h, 1.0)
        x_next = (sigma_next / sigma) * jnp.exp(-self.eta * h) * x + one_m * d0
        if self.order >= 2:
            delta0 = (d0 - state[0]) / r0
            c2 = 0.5 * one_m if self.second_order_form == "midpoint" else phi2_neg(big_h)
            corr = jnp.where(p >= 2, c2, 0.0) * delta0
            if self.order == 3:
                s_1, s_2 = sigmas[jnp.maximum(i - 1, 0)], sigmas[jnp.maximum(i - 2, 0)]
                r1 = jnp.where(p >= 3, log_step(s_2, s_1) / h, 1.0)
                delta1 = (state[0] - state[1]) / r1
                big1 = delta0 + (delta0 - delta1) * r0 / (r0 + r1)
                big2 = (delta0 - delta1) / (r0 + r1)
                corr3 = phi2_neg(big_h) * big1 - phi3_neg(big_h) * big2
                corr = jnp.where(p >= 3, corr3, corr)
            x_next = x_next + corr
        z = jax.random.normal(key, x.shape, x.dtype)
        noise_sd = self.s_noise * sigma_next * jnp.sqrt(-jnp.expm1(-2.0 * self.eta * h))
        x_next = jnp.where(pos, x_next + noise_sd * z, d0)
        state = jnp.concatenate([d0[None], state[:-1]], axis=0)
        return x_next, state, ostate, ledger


def bridge_normals(key, shape, dtype, frac):
    """Standard normals ``(z_sub, z_full)`` of a Brownian path over a sub-interval and the whole.

    ``z_full = W(T)/sqrt(T)`` and ``z_sub = W(tau)/sqrt(tau)`` with ``frac = tau/T`` in (0, 1]:
    ``z_sub = sqrt(frac) z_full + sqrt(1 - frac) b`` (Brownian bridge; ``corr = sqrt(frac)``),
    from two independent normals drawn from ``key``.
    """
    k_full, k_bridge = jax.random.split(key)
    z_full = jax.random.normal(k_full, shape, dtype)
    b = jax.random.normal(k_bridge, shape, dtype)
    return jnp.sqrt(frac) * z_full + jnp.sqrt(1.0 - frac) * b, z_full


class DPMSolverPPSinglestepSDE(TwoQueryStochastic):
    """Singlestep stochastic DPM-Solver++ (k-diffusion ``sample_dpmpp_sde``), two stages per step.

    Step ``sigma -> sigma' > 0``: ``sigma_s = sigma e^{-r h}``, ``D_0 = D(y, sigma)``;
    ``(sd, su) = ancestral(sigma -> sigma_s, eta)``, ``u = (sd/sigma) y + (1 - sd/sigma) D_0 + s_noise su z_1``;
    ``Dbar = (1 - 1/(2r)) D_0 + D(u, sigma_s)/(2r)``;
    ``(sd', su') = ancestral(sigma -> sigma', eta)``, ``y' = (sd'/sigma) y + (1 - sd'/sigma) Dbar + s_noise su' z_2``,
    where ``ancestral`` is :func:`jscore.samplers.ancestral.ancestral_coefficients`.

    Noise: ``z_1``, ``z_2`` are the normalised increments of one Brownian motion in sigma-time over
    ``[sigma_s, sigma]`` and ``[sigma', sigma]`` (k-diffusion's default Brownian tree), i.e.
    ``corr(z_1, z_2) = sqrt((sigma - sigma_s)/(sigma - sigma'))``; built by :func:`bridge_normals`
    from the step's key (independent across steps, whose intervals are disjoint). The step into
    sigma' = 0 returns ``D_0`` (one query). ``eta = 0``: deterministic DPM-Solver++(2S), equal to
    ``DPMSolverPP2SAncestral(eta=0)`` when ``r = 1/2``.

    Weak order measured on Gaussian targets (exact law): 2 (``eta = 1`` and ``eta = 1/2``; the
    deterministic ``eta = 0`` form has order 2). Per chain (grid ending at 0): Q = N_sigma = R =
    2N - 1; ending at sigma_N > 0: 2N (levels ``sigma_s`` are off the grid for ``r < 1``; at
    ``r = 1``, ``sigma_s = sigma'`` and N_sigma = N, or N + 1). ``x`` may have any shape.
    Differences from k-diffusion: ``eta`` is limited to [0, 1] (k-diffusion accepts ``eta > 1`` and
    clips ``su`` at the target level); the Brownian tree is replaced by the exact bridge above.
    """

    r: Float[Array, ""] = eqx.field(default=0.5, converter=as_param)

    def __check_init__(self):  # eta and s_noise are checked by the base
        check_range("r", self.r, 0.0, 1.0, lo_open=True)

    def step(self, oracle, i, sigmas, x, state, ostate, ledger, key):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        score, ostate, ledger = charged_query(oracle, x, sigma, ostate, ledger)
        d0 = x + sigma * sigma * score
        pos = sigma_next > 0
        # sigma e^{-r h}; at r = 1 exactly sigma' (so that it counts as the next grid level)
        sigma_s = jnp.where(self.r == 1, sigma_next, sigma * jnp.exp(-self.r * log_step(sigma, sigma_next)))
        z_sub, z_full = bridge_normals(key, x.shape, x.dtype, (sigma - sigma_s) / (sigma - sigma_next))
        sd, su = ancestral_coefficients(sigma, sigma_s, self.eta)
        u = (sd / sigma) * x + (1.0 - sd / sigma) * d0 + self.s_noise * su * z_sub
        score_s, ostate, ledger = charged_query(oracle, u, sigma_s, ostate, ledger, when=pos)
        fac = 0.5 / self.r
        dbar = (1.0 - fac) * d0 + fac * (u + sigma_s * sigma_s * score_s)
        sd, su = ancestral_coefficients(sigma, sigma_next, self.eta)
        x_next = (sd / sigma) * x + (1.0 - sd / sigma) * dbar + self.s_noise * su * z_full
        return jnp.where(pos, x_next, d0), state, ostate, ledger


__all__ = ["DPMSolverPPMultistepSDE", "DPMSolverPPSinglestepSDE", "bridge_normals"]
