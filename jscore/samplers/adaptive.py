"""Adaptive step size by an embedded pair, per chain (docs/sampler_reference.md §12)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_option, check_range
from ..counting import charged_query
from ..results import Trace
from ._common import phi1m1
from .base import AbstractSampler, Solution, as_param

_PAIRS = ("dpm", "ggf")
_SPACES = ("ou", "ve")


class _Carry(eqx.Module):
    x: Array  # current state y at level sigma
    x_prev: Array  # low solution of the last accepted step (error scale)
    sigma: Array  # current level
    h: Array  # proposed log-SNR step
    cache: Array  # answer at (x, sigma) when valid (eps_hat for "dpm", D for "ggf")
    cache_ok: Array
    attempts: Array
    n_acc: Array
    n_rej: Array


class Adaptive(AbstractSampler):
    """Embedded-pair step-size control in the clock ``lambda = -log sigma``, one ``lax.while_loop`` per chain.

    An attempt proposes ``sigma' = sigma e^{-h}`` (exactly ``sigma_min`` when ``h`` is capped at
    ``lambda_end - lambda``).

    - ``pair="dpm"``, ``order=2`` (DPM-Solver-12): low = Euler, high = DPM-Solver-2 reusing
      ``eps_hat(y, sigma)``; ``order=3`` (DPM-Solver-23): low = DPM-Solver-2 with ``r1 = 1/3``, high =
      DPM-Solver-3 reusing both earlier evaluations. ``order`` queries per attempt.
    - ``pair="ggf"`` (Gotta Go Fast): ``K1 = 2h (D(y, sigma) - y) + sigma sqrt(2h) z``,
      ``K2 = 2h (D(y + K1, sigma') - (y + K1)) + sigma' sqrt(2h) z``; low ``y + K1``, high
      ``y + (K1 + K2)/2``. 2 queries per attempt, weak order 1.

    ``sc = max(atol, rtol max(|y_low|, |y_prev|))``, ``E = RMS((y_high - y_low)/sc)`` per chain
    (``error_space="ou"``: on ``x = alpha y``, each state scaled at its own level); accept iff
    ``E <= 1`` (``y <- y_high``, ``y_prev <- y_low``); ``h <- min(theta h E^{-1/order}, lambda_end - lambda)``
    (GGF: exponent ``-0.9``); stop when ``lambda_end - lambda < 1e-5``. A non-finite ``E`` rejects
    with ``h <- h/5``. With ``reuse_start`` the start evaluation is cached across retries.

    The grid gives ``sigma_max = sigmas[0]`` and ``sigma_min`` = its smallest positive level; a grid
    ending at 0 adds the Tweedie query ``D(y, sigma_min)``. Per chain (ending at 0), with
    ``n_acc``/``n_rej`` accepted/rejected attempts: ``dpm``: Q = k n_acc + (k - 1) n_rej + 1
    (``reuse_start=False``: k (n_acc + n_rej) + 1), N_sigma = k n_acc + (k - 1) n_rej + 1 a.s.;
    ``ggf``: Q = 2 n_acc + n_rej + 1 (``reuse_start=False``: 2 (n_acc + n_rej) + 1),
    N_sigma = n_acc + n_rej + 2 - n_min a.s. R = Q. A grid ending at sigma_min > 0 makes no Tweedie
    query (one query fewer). The number of queries is data-dependent: pass ``max_queries``; every
    attempt is charged, and a chain out of budget stops with status ``budget_exhausted``.
    ``record`` writes one trace entry per accepted step.
    """

    order: int = eqx.field(default=2, static=True)
    rtol: Float[Array, ""] = eqx.field(default=0.05, converter=as_param)
    atol: Float[Array, ""] = eqx.field(default=0.0078, converter=as_param)
    pair: str = eqx.field(default="dpm", static=True)
    reuse_start: bool = eqx.field(default=True, static=True)
    error_space: str = eqx.field(default="ou", static=True)
    h_init: Float[Array, ""] = eqx.field(default=0.05, converter=as_param)
    theta: Float[Array, ""] = eqx.field(default=0.9, converter=as_param)

    def __check_init__(self):
        check_option("pair", self.pair, _PAIRS)
        check_option("error_space", self.error_space, _SPACES)
        if self.pair == "dpm" and self.order not in (2, 3):
            raise ValueError(f"`order` must be 2 or 3 for Adaptive(pair='dpm'), got {self.order!r}.")
        check_range("rtol", self.rtol, 0.0)
        check_range("atol", self.atol, 0.0)
        check_range("h_init", self.h_init, 0.0, lo_open=True)
        check_range("theta", self.theta, 0.0, lo_open=True)

    @property
    def is_stochastic(self) -> bool:
        return self.pair == "ggf"

    @property
    def _stages(self) -> int:
        return 2 if self.pair == "ggf" else self.order

    def num_queries(self, num_steps: int, ends_at_zero: bool) -> None:
        return None

    def query_capacity(self, num_steps: int, ends_at_zero: bool) -> None:
        return None

    # --- one attempt -------------------------------------------------------------------------
    def _attempt_dpm(self, oracle, c, sigma_next, h, ostate, ledger, key):
        x, sigma = c.x, c.sigma
        need0 = ~(c.cache_ok & self.reuse_start)
        s0, ostate, ledger = charged_query(oracle, x, sigma, ostate, ledger, when=need0)
        eps0 = jnp.where(need0, -sigma * s0, c.cache)
        r1 = 0.5 if self.order == 2 else 1.0 / 3.0
        sigma1 = sigma * jnp.exp(-r1 * h)
        u1 = x - (sigma - sigma1) * eps0
        s1, ostate, ledger = charged_query(oracle, u1, sigma1, ostate, ledger)
        eps1 = -sigma1 * s1
        if self.order == 2:
            y_low = x + (sigma_next - sigma) * eps0
            y_high = x + (sigma_next - sigma) * eps1
        else:
            r2 = 2.0 / 3.0
            y_low = x - (sigma - sigma_next) * (eps0 + (eps1 - eps0) / (2.0 * r1))
            sigma2 = sigma * jnp.exp(-r2 * h)
            u2 = x - (sigma - sigma2) * eps0 - (r2 / r1) * sigma2 * phi1m1(r2 * h) * (eps1 - eps0)
            s2, ostate, ledger = charged_query(oracle, u2, sigma2, ostate, ledger)
            eps2 = -sigma2 * s2
            y_high = x - (sigma - sigma_next) * eps0 - (1.0 / r2) * sigma_next * phi1m1(h) * (eps2 - eps0)
        return y_low, y_high, eps0, ostate, ledger

    def _attempt_ggf(self, oracle, c, sigma_next, h, ostate, ledger, key):
        x, sigma = c.x, c.sigma
        need0 = ~(c.cache_ok & self.reuse_start)
        s0, ostate, ledger = charged_query(oracle, x, sigma, ostate, ledger, when=need0)
        d0 = jnp.where(need0, x + sigma * sigma * s0, c.cache)
        z = jax.random.normal(key, x.shape, x.dtype)
        k1 = 2.0 * h * (d0 - x) + sigma * jnp.sqrt(2.0 * h) * z
        x1 = x + k1
        s1, ostate, ledger = charged_query(oracle, x1, sigma_next, ostate, ledger)
        k2 = 2.0 * h * (sigma_next * sigma_next * s1) + sigma_next * jnp.sqrt(2.0 * h) * z
        return x1, x + 0.5 * (k1 + k2), d0, ostate, ledger

    def _alpha(self, s):
        """The error-space scale at level ``s``: ``1/sqrt(1 + s^2)`` in OU space, else 1."""
        return jax.lax.rsqrt(1.0 + s * s) if self.error_space == "ou" else jnp.ones_like(s)

    def _control(self, c, h, sigma_next, y_low, y_high, start, remaining, exponent):
        """``(next carry, accepted)`` after one attempt of size ``h``: accept iff the scaled RMS
        error of ``y_high - y_low`` is at most 1; the next step ``h theta err^exponent`` (0.2 h
        after a non-finite attempt), capped at what ``remaining`` leaves; x is NaN when ``start`` is."""
        a_next, a_cur = self._alpha(sigma_next), self._alpha(c.sigma)
        sc = jnp.maximum(self.atol, self.rtol * jnp.maximum(jnp.abs(a_next * y_low), jnp.abs(a_cur * c.x_prev)))
        err = jnp.sqrt(jnp.mean((a_next * (y_high - y_low) / sc) ** 2))
        finite = jnp.isfinite(err) & jnp.all(jnp.isfinite(y_high))
        accept = finite & (err <= 1.0)
        factor = jnp.where(err > 0, self.theta * jnp.where(finite, err, 1.0) ** exponent, jnp.inf)
        factor = jnp.where(finite, factor, 0.2)
        new_sigma = jnp.where(accept, sigma_next, c.sigma)
        h_new = jnp.minimum(h * factor, remaining(new_sigma))
        new = _Carry(
            x=jnp.where(accept, y_high, c.x),
            x_prev=jnp.where(accept, y_low, c.x_prev),
            sigma=new_sigma,
            h=h_new,
            cache=start,
            cache_ok=~accept,
            attempts=c.attempts + 1,
            n_acc=c.n_acc + accept.astype(jnp.int32),
            n_rej=c.n_rej + (~accept).astype(jnp.int32),
        )
        # A non-finite answer at the accepted state itself (the start of the step) cannot be
        # cured by a smaller step: the chain is marked non-finite instead of retrying until the
        # budget runs out (which would hide the NaN behind `budget_exhausted`).
        broken = ~jnp.all(jnp.isfinite(start))
        return eqx.tree_at(lambda k: k.x, new, jnp.where(broken, jnp.nan, new.x)), accept

    def solve(self, oracle, sigmas, x, key, ostate, ledger, record):
        dtype = x.dtype
        ends_at_zero = sigmas[-1] == 0
        sigma_max = sigmas[0]
        sigma_min = jnp.where(ends_at_zero, sigmas[-2] if sigmas.shape[0] > 2 else sigmas[0], sigmas[-1])
        lam_end = -jnp.log(sigma_min)
        exponent = (-0.9 if self.pair == "ggf" else -1.0 / self.order)
        attempt = self._attempt_ggf if self.pair == "ggf" else self._attempt_dpm
        trace = None
        if record is not None:
            length = -(-ledger.seen.shape[0] // record.every)
            trace = Trace.empty(length, x.shape[-1], dtype, record.x)

        def remaining(sigma):
            return jnp.log(sigma / sigma_min)  # lambda_end - lambda

        def cond(st):
            c, ostate, ledger, trace = st
            # a chain whose state became non-finite stops (status `nonfinite`, not a budget run-out)
            return (remaining(c.sigma) >= 1e-5) & ~ledger.exhausted & jnp.all(jnp.isfinite(c.x))

        def body(st):
            c, ostate, ledger, trace = st
            rem = remaining(c.sigma)
            capped = c.h >= rem
            h = jnp.minimum(c.h, rem)
            sigma_next = jnp.where(capped, sigma_min, c.sigma * jnp.exp(-h))
            akey = jax.random.fold_in(key, c.attempts)
            y_low, y_high, start, ostate, ledger = attempt(oracle, c, sigma_next, h, ostate, ledger, akey)
            new, accept = self._control(c, h, sigma_next, y_low, y_high, start, remaining,
                                        exponent)
            ok = ~ledger.exhausted  # an attempt cut short by the budget is discarded
            c = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, c)
            if trace is not None:
                due = ok & accept & ((c.n_acc % record.every == 0) | (remaining(c.sigma) < 1e-5))
                trace = trace.write((c.n_acc - 1) // record.every, due, c.sigma, ledger, c.x)
            return c, ostate, ledger, trace

        zero = jnp.zeros((), jnp.int32)
        c0 = _Carry(
            x=x,
            x_prev=x,
            sigma=jnp.asarray(sigma_max, dtype),
            h=jnp.minimum(jnp.asarray(self.h_init, dtype), remaining(sigma_max)),
            cache=jnp.zeros_like(x),
            cache_ok=jnp.zeros((), bool),
            attempts=zero,
            n_acc=zero,
            n_rej=zero,
        )
        c, ostate, ledger, trace = jax.lax.while_loop(cond, body, (c0, ostate, ledger, trace))
        score, ostate, ledger = charged_query(oracle, c.x, sigma_min, ostate, ledger, when=ends_at_zero)
        done = ~ledger.exhausted & ends_at_zero
        x_out = jnp.where(done, c.x + sigma_min * sigma_min * score, c.x)
        return Solution(x_out, ostate, ledger, trace)


__all__ = ["Adaptive"]
