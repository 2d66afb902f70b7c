"""Predictor-corrector with a Langevin corrector, and annealed Langevin dynamics (docs/sampler_reference.md §9)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_option, check_range
from ..counting import charged_query
from ._common import check_nonneg_int, langevin_step
from .ancestral import EulerAncestral
from .base import AbstractFixedStepSampler, as_param

_RULES = ("snr", "ncsn")


def _langevin_block(oracle, x, sigma, ostate, ledger, key, num, *, snr=None, eta=None):
    """``num`` (static) Langevin steps at the fixed level ``sigma``; keys ``fold_in(key, j)``."""
    if num == 0:
        return x, ostate, ledger

    def body(carry, j):
        x, ostate, ledger = carry
        x, ostate, ledger = langevin_step(
            oracle, x, sigma, ostate, ledger, jax.random.fold_in(key, j), snr=snr, eta=eta
        )
        return (x, ostate, ledger), None

    (x, ostate, ledger), _ = jax.lax.scan(body, (x, ostate, ledger), jnp.arange(num))
    return x, ostate, ledger


class PredictorCorrector(AbstractFixedStepSampler):
    """Score-SDE predictor-corrector: ``M`` Langevin corrector steps at ``sigma_i``, then a predictor step.

    Corrector (per chain, norms over this chain's coordinates only):
    ``z ~ N(0, I)``, ``eta = 2 a (snr |z| / |S(y, sigma_i)|)^2`` with ``a = 1`` (VE rule),
    ``y <- y + eta S + sqrt(2 eta) z``. Predictor: any one-query fixed-step sampler (default
    ``EulerAncestral(1.0)``, the reverse-diffusion step); into sigma = 0 it returns Tweedie's D.

    Per chain: Q = N (M + 1), N_sigma = N (correctors stay on the level), R = Q, on any grid.
    Stochastic; the predictor's order plus an O(eta) corrector bias.
    """

    corrector_steps: int = eqx.field(default=1, static=True)
    snr: Float[Array, ""] = eqx.field(default=0.16, converter=as_param)
    predictor: AbstractFixedStepSampler = eqx.field(default_factory=lambda: EulerAncestral(1.0))

    def __check_init__(self):
        check_nonneg_int("corrector_steps", self.corrector_steps)
        check_range("snr", self.snr, 0.0)
        if not isinstance(self.predictor, AbstractFixedStepSampler) or any(
            self.predictor.num_queries(n, z) != n for n in (1, 3) for z in (True, False)
        ):
            raise ValueError(
                "`predictor` must be a one-query-per-step fixed-grid sampler (e.g. "
                f"EulerAncestral(), Euler(), EulerMaruyama()), got {type(self.predictor).__name__}."
            )

    @property
    def is_stochastic(self) -> bool:
        return True

    def num_queries(self, num_steps: int, ends_at_zero: bool) -> int:
        return num_steps * (self.corrector_steps + 1)

    def init(self, sigmas, x):
        return self.predictor.init(sigmas, x)

    def step(self, oracle, i, sigmas, x, state, ostate, ledger, key):
        x, ostate, ledger = _langevin_block(
            oracle, x, sigmas[i], ostate, ledger, jax.random.fold_in(key, 1), self.corrector_steps,
            snr=self.snr,
        )
        return self.predictor.step(
            oracle, i, sigmas, x, state, ostate, ledger, jax.random.fold_in(key, 0)
        )


class AnnealedLangevin(AbstractFixedStepSampler):
    """Annealed Langevin dynamics (NCSN / score-SDE ``ald``) with a final Tweedie denoising step.

    For each positive level ``sigma_i`` (i = 0..N-1): ``M`` steps ``y <- y + eta_i S(y, sigma_i) +
    sqrt(2 eta_i) z`` with ``eta_i = 2 (snr sigma_i)^2`` (``rule="snr"``, score-SDE) or
    ``eta_i = (step_size/2)(sigma_i/sigma_{N-1})^2`` (``rule="ncsn"``, 1907.05600); then one Tweedie
    query ``D(y, sigma_{N-1})`` (NCSNv2). The predictor is the identity (no query).

    Requires a grid ending at sigma_N = 0. Per chain: Q = N M + 1, N_sigma = N, R = Q. Stochastic.
    """

    steps_per_level: int = eqx.field(default=5, static=True)
    snr: Float[Array, ""] = eqx.field(default=0.16, converter=as_param)
    rule: str = eqx.field(default="snr", static=True)
    step_size: Float[Array, ""] = eqx.field(default=2e-5, converter=as_param)

    def __check_init__(self):
        check_nonneg_int("steps_per_level", self.steps_per_level)
        check_range("snr", self.snr, 0.0)
        check_range("step_size", self.step_size, 0.0)
        check_option("rule", self.rule, _RULES)

    @property
    def is_stochastic(self) -> bool:
        return True

    def num_queries(self, num_steps: int, ends_at_zero: bool) -> int:
        return num_steps * self.steps_per_level + 1

    def check_grid(self, sigmas) -> None:
        if not sigmas[-1] == 0:
            raise ValueError(
                "AnnealedLangevin ends with a Tweedie step and requires a grid ending at sigma = 0; "
                "build it with append_zero=True (the default of js.schedules)."
            )

    def init(self, sigmas, x):
        return None

    def step(self, oracle, i, sigmas, x, state, ostate, ledger, key):
        num_steps = sigmas.shape[0] - 1
        sigma = sigmas[i]
        if self.rule == "snr":
            eta = 2.0 * (self.snr * sigma) ** 2
        else:
            eta = 0.5 * self.step_size * (sigma / sigmas[num_steps - 1]) ** 2
        x, ostate, ledger = _langevin_block(
            oracle, x, sigma, ostate, ledger, key, self.steps_per_level, eta=eta
        )
        last = i == num_steps - 1
        score, ostate, ledger = charged_query(oracle, x, sigma, ostate, ledger, when=last)
        x = jnp.where(last, x + sigma * sigma * score, x)
        return x, state, ostate, ledger


__all__ = ["PredictorCorrector", "AnnealedLangevin"]
