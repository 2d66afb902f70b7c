"""Euler in sigma for the probability-flow ODE (= DDIM eta=0 = DPM-Solver-1)."""

from __future__ import annotations

from ..counting import charged_query
from .base import OneQueryPerStep


class Euler(OneQueryPerStep):
    """Euler step of ``dy/dsigma = eps_hat(y, sigma)``, ``eps_hat = -sigma S``:

    ``y' = (sigma'/sigma) y + (1 - sigma'/sigma) D(y, sigma)``; into sigma' = 0 this is Tweedie's D.

    Per chain: Q = N queries at N levels, R = Q. Deterministic, order 1. ``x`` is ``(d,)``.
    """

    def init(self, sigmas, x):
        return None

    def step(self, oracle, i, sigmas, x, state, ostate, ledger, key):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        score, ostate, ledger = charged_query(oracle, x, sigma, ostate, ledger)
        # = (sigma'/sigma) x + (1 - sigma'/sigma) D with D = x + sigma^2 S, in one multiply-add per
        # coordinate; into sigma' = 0 the factor is exactly sigma^2, i.e. Tweedie's D.
        return x + (sigma * (sigma - sigma_next)) * score, state, ostate, ledger


__all__ = ["Euler"]
