"""Negative controls (docs/sampler_reference.md §13)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_option, check_range
from ..counting import charged_query
from ..results import Trace
from ._common import check_nonneg_int, langevin_step
from .base import AbstractSampler, Solution, as_param

_RULES = ("snr", "fixed")


class SingleLevel(AbstractSampler):
    """Walk-jump at one noise level: Langevin at ``sigma`` only, then Tweedie (negative control).

    ``y_0 = sigmas[0] z`` (or ``x_init``; no query); ``M = steps`` Langevin steps at the fixed level
    ``sigma``: ``y <- y + eta S(y, sigma) + sqrt(2 eta) z`` with the per-chain SNR rule
    ``eta = 2 (snr |z|/|S|)^2`` (``rule="snr"``) or ``eta = step_size sigma^2`` (``rule="fixed"``);
    output ``D(y_M, sigma)``. The grid only sets the initial draw.

    Per chain: Q = R = M + 1, N_sigma = 1, on any grid. Stochastic.
    ``record`` writes one entry per query (Langevin steps, then the Tweedie call).
    """

    sigma: Float[Array, ""] = eqx.field(default=1.0, converter=as_param)
    steps: int = eqx.field(default=10, static=True)
    snr: Float[Array, ""] = eqx.field(default=0.16, converter=as_param)
    rule: str = eqx.field(default="snr", static=True)
    step_size: Float[Array, ""] = eqx.field(default=0.1, converter=as_param)

    def __check_init__(self):
        check_range("sigma", self.sigma, 0.0, lo_open=True)
        check_nonneg_int("steps", self.steps)
        check_range("snr", self.snr, 0.0)
        check_range("step_size", self.step_size, 0.0)
        check_option("rule", self.rule, _RULES)

    @property
    def is_stochastic(self) -> bool:
        return True

    def num_queries(self, num_steps: int, ends_at_zero: bool) -> int:
        return self.steps + 1

    def solve(self, oracle, sigmas, x, key, ostate, ledger, record):
        sigma = jnp.asarray(self.sigma, x.dtype)
        total = self.steps + 1
        trace = None
        if record is not None:
            trace = Trace.empty(-(-total // record.every), x.shape[-1], x.dtype, record.x)

        def write(trace, k, ledger, x):
            if trace is None:
                return trace
            due = (((k + 1) % record.every) == 0) | (k == total - 1)
            return trace.write(k // record.every, due & ~ledger.exhausted, sigma, ledger, x)

        def body(carry, k):
            x, ostate, ledger, trace = carry
            if self.rule == "snr":
                x, ostate, ledger = langevin_step(
                    oracle, x, sigma, ostate, ledger, jax.random.fold_in(key, k), snr=self.snr
                )
            else:
                x, ostate, ledger = langevin_step(
                    oracle, x, sigma, ostate, ledger, jax.random.fold_in(key, k),
                    eta=self.step_size * sigma * sigma,
                )
            return (x, ostate, ledger, write(trace, k, ledger, x)), None

        (x, ostate, ledger, trace), _ = jax.lax.scan(
            body, (x, ostate, ledger, trace), jnp.arange(self.steps)
        )
        q0 = ledger.queries
        score, ostate, ledger = charged_query(oracle, x, sigma, ostate, ledger)
        x = jnp.where(ledger.queries > q0, x + sigma * sigma * score, x)
        trace = write(trace, jnp.asarray(self.steps), ledger, x)
        return Solution(x, ostate, ledger, trace)


__all__ = ["SingleLevel"]
