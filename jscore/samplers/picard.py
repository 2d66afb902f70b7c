"""Parallel Picard iteration over a sliding window (ParaDiGMS, docs/sampler_reference.md §11)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_positive_int, check_range
from ..counting import charged_round
from ..results import Trace
from ..seeds import step_key
from ._common import set_exhausted
from .ancestral import ancestral_coefficients
from .base import AbstractSampler, Solution, as_param


def picard_query_bound(num_steps: int, window: int) -> int:
    """Most queries a chain can make: the ``tol = 0`` count ``sum_b min(p, N - b)``."""
    return sum(min(window, num_steps - b) for b in range(num_steps))


class ParallelPicard(AbstractSampler):
    """ParaDiGMS sliding-window Picard iteration of the base map ``EulerAncestral(eta)`` (eta = 0: Euler).

    Base: ``y_{j+1} = y_j + Delta_j(y_j) + xi_j``, ``Delta_j(y) = (sigma_down,j - sigma_j) eps_hat(y, sigma_j)``,
    ``xi_j = sigma_up,j z_j`` with ``z_j`` drawn from ``fold_in(key, j)`` (the base sampler's step
    noise). Window ``[b, e)``, ``e = min(b + p, N)``; one round queries ``eps_hat(y_j, sigma_j)`` for all
    ``j`` in the window (``e - b`` queries) and sets ``y_{j+1}^new = y_b + sum_{l=b}^{j}(Delta_l(y_l^old) + xi_l)``
    (the first entry is computed exactly as the base step). Error
    ``err_j = |y_j^new - y_j^old|^2 / (d v_j)``, ``v_j = sigma_j^2 (sigma_{j-1}^2 - sigma_j^2)/sigma_{j-1}^2``
    (``v_N = 0`` when sigma_N = 0: err is 0 if equal, else inf); ``k`` = leading ``j = b+1, ...`` with
    ``err_j < tol^2``; ``b <- min(b + min(1 + k, p), N)``; entries entering the window start at
    ``y_e^new``. Each chain slides its own window (``lax.while_loop``), never the batch maximum.

    Per chain: Q = sum over sweeps of (e - b), R = sweeps, N_sigma = N. ``tol = 0``: R = N,
    Q = sum_b min(p, N - b), output equal to the base sampler; ``tol = inf``: R = ceil(N/p), Q = N.
    After ``max_sweeps`` sweeps without reaching the end the chain stops with status
    ``budget_exhausted`` and returns its last exact entry ``y_b``. Stochastic iff ``eta > 0``.
    ``record`` writes one trace entry per sweep (level ``sigma_b`` reached).
    """

    window: int = eqx.field(default=10, static=True)
    tol: Float[Array, ""] = eqx.field(default=0.1, converter=as_param)
    max_sweeps: int | None = eqx.field(default=None, static=True)
    eta: Float[Array, ""] = eqx.field(default=0.0, converter=as_param)

    def __check_init__(self):
        check_positive_int("window", self.window)
        check_range("tol", self.tol, 0.0, allow_inf=True)  # tol = inf: never stop early
        check_range("eta", self.eta, 0.0, 1.0)
        if self.max_sweeps is not None:
            check_positive_int("max_sweeps", self.max_sweeps)

    @property
    def is_stochastic(self) -> bool:
        try:
            return bool(self.eta > 0)
        except jax.errors.ConcretizationTypeError:
            return True

    def num_queries(self, num_steps: int, ends_at_zero: bool) -> None:
        return None

    def query_capacity(self, num_steps: int, ends_at_zero: bool) -> int:
        return picard_query_bound(num_steps, self.window)

    def solve(self, oracle, sigmas, x, key, ostate, ledger, record):
        n = sigmas.shape[0] - 1
        p = min(self.window, n)
        d = x.shape[-1]
        dtype = x.dtype
        max_sweeps = n if self.max_sweeps is None else self.max_sweeps
        # padded per-step constants, index j = 0..n-1 (+ p padding entries)
        sig = jnp.concatenate([sigmas[:-1], jnp.ones((p,), dtype)])
        sig_next = jnp.concatenate([sigmas[1:], jnp.ones((p,), dtype)])
        s_down, s_up = ancestral_coefficients(sig, sig_next, self.eta)
        # v_j for entries j = 0..n (+ padding): variance of the eta = 1 step into level j
        prev = jnp.concatenate([sigmas[:1], sigmas[:-1]])
        v = sigmas**2 * ((prev - sigmas) * (prev + sigmas)) / prev**2
        v = jnp.concatenate([v, jnp.ones((p,), dtype)])
        ys0 = jnp.broadcast_to(x, (n + 1 + p, d))
        trace = None
        if record is not None:
            trace = Trace.empty(-(-max_sweeps // record.every), d, dtype, record.x)

        def noise(j):
            return jax.random.normal(step_key(key, j), (d,), dtype)

        def cond(c):
            b, sweeps, ys, ostate, ledger, trace = c
            return (b < n) & (sweeps < max_sweeps) & ~ledger.exhausted

        def body(c):
            b, sweeps, ys, ostate, ledger, trace = c
            e = jnp.minimum(b + p, n)
            js = b + jnp.arange(p)
            active = js < e
            y_old = jax.lax.dynamic_slice_in_dim(ys, b, p + 1)  # entries b..b+p
            s_j, sn_j = sig[js], sig_next[js]
            scores, ostate2, ledger2 = charged_round(
                oracle, y_old[:p], s_j, ostate, ledger, when=active
            )
            eps = -s_j[:, None] * scores
            denoised = y_old[:p] + (s_j * s_j)[:, None] * scores
            z = jax.vmap(noise)(js)
            base = denoised + s_down[js][:, None] * eps + s_up[js][:, None] * z
            base = jnp.where((sn_j > 0)[:, None], base, denoised)  # step into 0: Tweedie
            inc = jnp.where(active[:, None], base - y_old[:p], 0.0)
            # y_{j+1}^new = base_b(y_b) + sum_{l=b+1}^{j} inc_l
            y_new = base[0] + jnp.concatenate([jnp.zeros((1, d), dtype), jnp.cumsum(inc[1:], 0)])
            y_new = jnp.where(active[:, None], y_new, y_old[1:])  # entries b+1..b+p
            diff2 = jnp.sum((y_new - y_old[1:]) ** 2, axis=-1)
            vj = v[js + 1]
            err = jnp.where(vj > 0, diff2 / (d * jnp.where(vj > 0, vj, 1.0)),
                            jnp.where(diff2 == 0, 0.0, jnp.inf))
            ok = (err < self.tol * self.tol) & active
            k = jnp.sum(jnp.cumprod(ok.astype(jnp.int32))).astype(jnp.int32)  # int32 under x64 too
            b_new = jnp.minimum(b + jnp.minimum(1 + k, p), n)
            ys_new = jax.lax.dynamic_update_slice_in_dim(ys, y_new, b + 1, 0)
            y_e = y_new[e - b - 1]
            tail = jnp.arange(ys.shape[0]) > e
            ys_new = jnp.where(tail[:, None], y_e, ys_new)
            done = ~ledger2.exhausted
            b = jnp.where(done, b_new, b)
            ys = jnp.where(done, ys_new, ys)
            sweeps = sweeps + done.astype(jnp.int32)
            if trace is not None:
                slot = (sweeps - 1) // record.every
                due = done & ((sweeps % record.every == 0) | (b == n))
                trace = trace.write(slot, due, sigmas[b], ledger2, ys[b])
            return b, sweeps, ys, ostate2, ledger2, trace

        zero = jnp.zeros((), jnp.int32)
        b, sweeps, ys, ostate, ledger, trace = jax.lax.while_loop(
            cond, body, (zero, zero, ys0, ostate, ledger, trace)
        )
        ledger = set_exhausted(ledger, b < n)
        return Solution(ys[b], ostate, ledger, trace)


__all__ = ["ParallelPicard", "picard_query_bound"]
