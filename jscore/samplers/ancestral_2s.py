"""Second-order ancestral samplers (k-diffusion ``sample_dpm_2_ancestral``, ``sample_dpmpp_2s_ancestral``).

Each step takes a deterministic two-stage step from ``sigma`` to ``sigma_down`` and adds
``s_noise sigma_up z``, with ``(sigma_down, sigma_up)`` of
:func:`jscore.samplers.ancestral.ancestral_coefficients` (``sigma_down^2 + sigma_up^2 = sigma'^2``).
Both equal k-diffusion's updates (tested against a transcription to 1e-10) with fresh normals from
jscore's key stream; the midpoint level at ``eta = 1`` is taken as ``sigma'`` itself (equal to
k-diffusion's ``exp(lerp(log sigma, log sigma_down, 1/2))`` up to rounding), so it is counted as
the next grid level.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_range
from ..counting import charged_query
from ._common import maybe_positive
from .ancestral import ancestral_coefficients
from .base import AbstractFixedStepSampler, as_param


def _midpoint(sigma, sigma_down, sigma_next, eta):
    """``sigma_m = sqrt(sigma sigma_down)``; at ``eta = 1`` (``sigma_down = sigma'^2/sigma``) this is
    ``sigma'`` exactly, so it is selected as the grid value itself (the level coincides with the
    next step's, whatever the rounding). Into sigma' = 0 a placeholder ``sigma`` (masked query)."""
    mid = jnp.where(eta == 1, sigma_next, jnp.sqrt(sigma * sigma_down))
    return jnp.where(sigma_next > 0, mid, sigma)


class TwoQueryStochastic(AbstractFixedStepSampler):
    """Base of the two-query-per-step stochastic samplers: ``eta`` in [0, 1] (the ancestral
    split; k-diffusion also accepts ``eta > 1``, clipping ``sigma_up`` at ``sigma'``, which jscore
    does not), ``s_noise``; Q = 2N - 1 on a grid ending at 0 (the step into 0 is one query), else 2N."""

    eta: Float[Array, ""] = eqx.field(default=1.0, converter=as_param)
    s_noise: Float[Array, ""] = eqx.field(default=1.0, converter=as_param)

    def __check_init__(self):
        check_range("eta", self.eta, 0.0, 1.0)
        check_range("s_noise", self.s_noise, 0.0)

    @property
    def is_stochastic(self) -> bool:
        return maybe_positive(self.eta, self.s_noise)

    def num_queries(self, num_steps: int, ends_at_zero: bool) -> int:
        return 2 * num_steps - 1 if ends_at_zero else 2 * num_steps

    def init(self, sigmas, x):
        return None


class _TwoStageAncestral(TwoQueryStochastic):
    """Shared step; subclasses give the stages ``_first`` (to the midpoint ``u``) and ``_second``
    (from ``u`` and ``D(u, sigma_m)`` to ``sigma_down``)."""

    @abc.abstractmethod
    def _first(self, x, d0, sigma, sigma_mid):
        """The first stage, from ``(x, sigma)`` to the midpoint ``u`` at ``sigma_mid``."""

    @abc.abstractmethod
    def _second(self, x, u, d_mid, sigma, sigma_mid, sigma_down):
        """The second stage, from ``x`` to ``sigma_down`` using ``D(u, sigma_mid) = d_mid``."""

    def step(self, oracle, i, sigmas, x, state, ostate, ledger, key):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        score, ostate, ledger = charged_query(oracle, x, sigma, ostate, ledger)
        d0 = x + sigma * sigma * score
        pos = sigma_next > 0  # for eta <= 1, sigma_down > 0 exactly when sigma' > 0
        sigma_down, sigma_up = ancestral_coefficients(sigma, sigma_next, self.eta)
        sigma_mid = _midpoint(sigma, sigma_down, sigma_next, self.eta)
        u = self._first(x, d0, sigma, sigma_mid)
        score_m, ostate, ledger = charged_query(oracle, u, sigma_mid, ostate, ledger, when=pos)
        d_mid = u + sigma_mid * sigma_mid * score_m
        x_next = self._second(x, u, d_mid, sigma, sigma_mid, sigma_down)
        z = jax.random.normal(key, x.shape, x.dtype)
        x_next = x_next + self.s_noise * sigma_up * z
        return jnp.where(pos, x_next, d0), state, ostate, ledger


class DPM2Ancestral(_TwoStageAncestral):
    """Ancestral DPM-Solver-2 (k-diffusion ``dpm_2_ancestral``), noise prediction in sigma.

    ``eps_0 = (y - D_0)/sigma``, ``sigma_m = sqrt(sigma sigma_down)``, ``u = y + (sigma_m - sigma) eps_0``,
    ``y' = y + (sigma_down - sigma) (u - D(u, sigma_m))/sigma_m + s_noise sigma_up z``.

    The step into sigma' = 0 (``sigma_down = 0``) is Euler, i.e. returns ``D_0`` (one query, no
    noise). ``eta = 0`` is ``DPMSolver(order=2)`` (k-diffusion ``dpm_2`` without churn), order 2.
    Weak order measured on Gaussian targets (exact law, ``eta = 1``): 2; not established for
    non-Gaussian targets.
    Per chain: Q = R = 2N - 1 (grid ending at 0) or 2N (ending at sigma_N > 0); N_sigma = Q for
    ``eta < 1``, and N_sigma = N (ending at 0) or N + 1 for ``eta = 1``, where the midpoint level is
    the next grid level (``sigma_m = sigma'``).
    """

    def _first(self, x, d0, sigma, sigma_mid):
        return x + (sigma_mid - sigma) * (x - d0) / sigma

    def _second(self, x, u, d_mid, sigma, sigma_mid, sigma_down):
        return x + (sigma_down - sigma) * (u - d_mid) / sigma_mid


class DPMSolverPP2SAncestral(_TwoStageAncestral):
    """Ancestral DPM-Solver++(2S) (k-diffusion ``dpmpp_2s_ancestral``), data prediction.

    ``sigma_m = sqrt(sigma sigma_down)``, ``u = (sigma_m/sigma) y + (1 - sigma_m/sigma) D_0``,
    ``y' = (sigma_down/sigma) y + (1 - sigma_down/sigma) D(u, sigma_m) + s_noise sigma_up z``.

    The step into sigma' = 0 returns ``D_0`` (one query, no noise). ``eta = 0`` is the
    deterministic DPM-Solver++(2S), order 2. Weak order measured on Gaussian targets (exact law,
    ``eta = 1``): 2; not established for non-Gaussian targets.
    Per chain: Q = R = 2N - 1 (grid ending at 0) or 2N (ending at sigma_N > 0); N_sigma = Q for
    ``eta < 1``, and N_sigma = N (ending at 0) or N + 1 for ``eta = 1``, where the midpoint level is
    the next grid level (``sigma_m = sigma'``).
    """

    def _first(self, x, d0, sigma, sigma_mid):
        ratio = sigma_mid / sigma
        return ratio * x + (1.0 - ratio) * d0

    def _second(self, x, u, d_mid, sigma, sigma_mid, sigma_down):
        return self._first(x, d_mid, sigma, sigma_down)


__all__ = ["DPM2Ancestral", "DPMSolverPP2SAncestral"]
