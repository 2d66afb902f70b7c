"""Adapters from a model's native parameterisation to jscore's VE score.

jscore's convention is VE: ``x = x0 + sigma z`` and ``S(x, sigma) = grad_x log p_sigma(x)``.
Most published models are trained on a schedule ``x_t = alpha_t x0 + s_t eps`` (VP when
``alpha_t^2 + s_t^2 = 1``) and predict one of

- ``eps``: the noise, ``eps_hat(x_t, t) = E[eps | x_t]``;
- ``x0``: the clean point, ``x0_hat(x_t, t) = E[x0 | x_t]``;
- ``v``: ``v_hat = alpha_t eps_hat - s_t x0_hat`` (Salimans & Ho 2022).

Both conventions describe the same noisy law under ``sigma = s_t / alpha_t`` and
``x_t = alpha_t x``; for VP schedules ``alpha_t = 1 / sqrt(1 + sigma^2)``, i.e. the model's input
is ``x_vp = x_ve / sqrt(1 + sigma^2)`` (diffusers' ``scale_model_input``, k-diffusion's ``c_in``).
:class:`Prediction` looks the model's time ``t`` up from ``sigma`` with a *model schedule*
(:class:`DiscreteVP`, :class:`LinearVP`, :class:`CosineVP`, :class:`Continuous`), calls the model
on ``alpha_t x`` and returns::

    eps:  S = -eps_hat / sigma
    x0:   S = (x0_hat - x) / sigma^2
    v:    eps_hat = (s_t x_t + alpha_t v_hat) / (alpha_t^2 + s_t^2),  S = -eps_hat / sigma

:class:`EDM` wraps a raw network ``F`` trained with EDM preconditioning (Karras et al. 2022).
All adapters are stateless oracles; model weights (Equinox arrays, ``args``) and schedule arrays
are traced.
"""

from __future__ import annotations

import abc
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_option, check_range, concrete
from ..nets import edm_score
from ..ou import alpha_from_sigma
from ..schedules import _cosine_u, vp_time
from .base import check_answer
from .function import _FunctionOracle, call_model


def _float(x):
    return jnp.asarray(x, dtype=jnp.result_type(float))


# ----------------------------------------------------------------------------- model schedules


class ModelSchedule(eqx.Module):
    """How a model's time ``t`` and signal scale ``alpha_t`` follow from the VE level ``sigma``."""

    @abc.abstractmethod
    def timestep(self, sigma):
        """The model's time input at VE level ``sigma`` (a scalar)."""

    def signal_scale(self, sigma, t):
        """Signal scale ``alpha_t`` at ``sigma`` and its time ``t`` (VP: ``1 / sqrt(1 + sigma^2)``)."""
        return alpha_from_sigma(sigma)


class DiscreteVP(ModelSchedule):
    """``DiscreteVP(alphas_cumprod, timestep="interpolate")``: a DDPM-style schedule of T steps.

    Step ``k`` has ``x_k = sqrt(abar_k) x0 + sqrt(1 - abar_k) eps``, i.e. VE level
    ``sigma_k = sqrt((1 - abar_k) / abar_k)`` (increasing in k). At a level ``sigma`` the model
    gets the fractional index ``t`` found by linear interpolation of ``log sigma`` between the two
    neighbouring ``log sigma_k`` (as k-diffusion's ``sigma_to_t`` and diffusers' ``_sigma_to_t``
    do), clamped to ``[0, T - 1]``; ``timestep="nearest"`` passes the nearest index (int32) instead.
    Use grids inside ``[sigma_min, sigma_max]`` (:attr:`sigmas`): outside, ``t`` is clamped and the
    model is asked about a level it was not trained at.
    """

    alphas_cumprod: jax.Array
    mode: str = eqx.field(static=True)

    def __init__(self, alphas_cumprod, timestep: str = "interpolate"):
        a = concrete(alphas_cumprod)
        if a is not None:
            if a.ndim != 1 or a.shape[0] < 2:
                raise ValueError(f"`alphas_cumprod` must be a 1-D array of >= 2 steps, got shape {a.shape}.")
            if not (np.all(a > 0) and np.all(a < 1) and np.all(np.diff(a) < 0)):
                raise ValueError(
                    "`alphas_cumprod` must lie in (0, 1) and decrease strictly with the step index "
                    "(abar_k = prod_{j<=k} (1 - beta_j)); got values from "
                    f"{a.min():.3g} to {a.max():.3g}."
                )
        self.alphas_cumprod = _float(alphas_cumprod)
        self.mode = check_option("timestep", timestep, ("interpolate", "nearest"))

    @property
    def log_sigmas(self):
        """``log sigma_k = (log(1 - abar_k) - log abar_k) / 2``, shape ``(T,)``, increasing."""
        a = self.alphas_cumprod
        return 0.5 * (jnp.log1p(-a) - jnp.log(a))

    @property
    def sigmas(self):
        """The schedule's VE levels ``sigma_k``, shape ``(T,)``, increasing with k."""
        return jnp.exp(self.log_sigmas)

    def timestep(self, sigma):
        ls = self.log_sigmas.astype(jnp.result_type(sigma))
        log_sigma = jnp.log(sigma)
        if self.mode == "nearest":
            return jnp.argmin(jnp.abs(ls - log_sigma)).astype(jnp.int32)
        return jnp.interp(log_sigma, ls, jnp.arange(ls.shape[0], dtype=ls.dtype))


class LinearVP(ModelSchedule):
    """``LinearVP(beta_min=0.1, beta_max=20)``: the VP-SDE of Song et al. on ``t in [0, 1]``,
    ``alpha_t = exp(-beta_min t / 2 - (beta_max - beta_min) t^2 / 4)``; ``t`` in closed form."""

    beta_min: jax.Array = eqx.field(converter=_float)
    beta_max: jax.Array = eqx.field(converter=_float)

    def __init__(self, beta_min=0.1, beta_max=20.0):
        check_range("beta_min", beta_min, 0.0, lo_open=True)
        bmin, bmax = concrete(beta_min), concrete(beta_max)
        if bmin is not None and bmax is not None and not bmax > bmin:
            raise ValueError(f"`beta_max` ({bmax}) must exceed `beta_min` ({bmin}).")
        self.beta_min, self.beta_max = beta_min, beta_max

    def timestep(self, sigma):
        dt = jnp.result_type(sigma)
        return vp_time(sigma, self.beta_min.astype(dt), self.beta_max.astype(dt))


class CosineVP(ModelSchedule):
    """``CosineVP(s=0.008)``: improved-DDPM cosine schedule on ``t in [0, 1]``,
    ``alpha_t^2 = f(t) / f(0)``, ``f(t) = cos^2(pi (t + s) / (2 (1 + s)))``; ``t`` in closed form."""

    s: jax.Array = eqx.field(converter=_float, default=0.008)

    def timestep(self, sigma):
        return _cosine_u(sigma, self.s.astype(jnp.result_type(sigma)))


class Continuous(ModelSchedule):
    """``Continuous(alpha, sigma, t_min=0, t_max=1)``: any schedule ``x_t = alpha(t) x0 + sigma(t) eps``.

    ``alpha`` and ``sigma`` are callables of a scalar ``t`` (VP or not: e.g. ``alpha = 1`` for VE
    models conditioned on ``t``). The model time at VE level ``sigma_ve`` solves
    ``sigma(t) / alpha(t) = sigma_ve`` by bisection on ``[t_min, t_max]`` (``log(sigma/alpha)`` must
    increase in ``t``; levels outside the range clamp to its ends). Pass ``t_from_sigma`` to use a
    closed-form inverse instead.
    """

    alpha_fn: Callable = eqx.field(static=True)
    sigma_fn: Callable = eqx.field(static=True)
    t_min: jax.Array = eqx.field(converter=_float)
    t_max: jax.Array = eqx.field(converter=_float)
    t_from_sigma: Callable | None = eqx.field(static=True)

    def __init__(self, alpha, sigma, t_min=0.0, t_max=1.0, *, t_from_sigma=None):
        for name, f in (("alpha", alpha), ("sigma", sigma)):
            if not callable(f):
                raise TypeError(f"`{name}` must be a callable of t, got {type(f).__name__}.")
        lo, hi = concrete(t_min), concrete(t_max)
        if lo is not None and hi is not None and not hi > lo:
            raise ValueError(f"`t_max` ({hi}) must exceed `t_min` ({lo}).")
        self.alpha_fn, self.sigma_fn = alpha, sigma
        self.t_min, self.t_max = t_min, t_max
        self.t_from_sigma = t_from_sigma

    def _log_ratio(self, t):
        return jnp.log(self.sigma_fn(t)) - jnp.log(self.alpha_fn(t))

    def timestep(self, sigma):
        if self.t_from_sigma is not None:
            return jnp.asarray(self.t_from_sigma(sigma), jnp.result_type(sigma))
        dt = jnp.result_type(sigma)
        target = jnp.log(sigma)

        def body(_, bounds):
            lo, hi = bounds
            mid = 0.5 * (lo + hi)
            below = self._log_ratio(mid) < target
            return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

        iters = 64 if dt == jnp.float64 else 32  # halves the bracket to the dtype's resolution
        lo, hi = jax.lax.fori_loop(0, iters, body, (self.t_min.astype(dt), self.t_max.astype(dt)))
        return 0.5 * (lo + hi)

    def signal_scale(self, sigma, t):
        return jnp.asarray(self.alpha_fn(t), jnp.result_type(sigma))


# ----------------------------------------------------------------------------- adapters

_KINDS = ("eps", "v", "x0")


class Prediction(_FunctionOracle):
    """``Prediction(fn, schedule, kind="eps", args=None, *, event_shape=None)``.

    ``fn(x_t, t[, args])`` is a model trained on ``schedule`` (a :class:`ModelSchedule`) to
    predict ``kind``: ``"eps"``, ``"v"`` or ``"x0"``. At a query ``(x, sigma)`` it is called on
    ``x_t = alpha_t x`` at ``t = schedule.timestep(sigma)``; the answer is the VE score (formulas
    in the module docstring). Shapes and weights as for :class:`Score`.
    """

    schedule: ModelSchedule
    kind: str = eqx.field(static=True)

    def __init__(self, fn, schedule, kind: str = "eps", args=None, *, event_shape=None):
        super().__init__(fn, args, event_shape=event_shape)
        if not isinstance(schedule, ModelSchedule):
            raise TypeError(
                "`schedule` must be a js.oracles model schedule (DiscreteVP(alphas_cumprod), "
                f"LinearVP(), CosineVP() or Continuous(alpha, sigma)), got {type(schedule).__name__}."
            )
        self.schedule = schedule
        self.kind = check_option("kind", kind, _KINDS)

    def query(self, x, sigma, state):
        sigma = jnp.asarray(sigma, x.dtype)
        t = self.schedule.timestep(sigma)
        a = jnp.asarray(self.schedule.signal_scale(sigma, t), x.dtype)
        x_t = a * x
        out = call_model(self.fn, x_t, t, self.args)
        out = check_answer(out, x, f"Prediction(fn, kind={self.kind!r}): fn(x_t, t)")
        if self.kind == "x0":
            return (out - x) / (sigma * sigma), state
        if self.kind == "v":
            s = a * sigma
            out = (s * x_t + a * out) / (a * a + s * s)
        return -out / sigma, state


class EDM(_FunctionOracle):
    """``EDM(fn, sigma_data=0.5, args=None, *, event_shape=None)``: a raw EDM network ``F``.

    ``D(x, sigma) = c_skip x + c_out F(c_in x, c_noise)`` with ``c_skip = sd^2 / (sigma^2 + sd^2)``,
    ``c_out = sigma sd / sqrt(sigma^2 + sd^2)``, ``c_in = 1 / sqrt(sigma^2 + sd^2)``,
    ``c_noise = log(sigma) / 4`` (Karras et al. 2022, VE, ``sd = sigma_data``). The score is
    ``S = (D - x) / sigma^2 = -c_in^2 x + (sd c_in / sigma) F``, formed without the cancellation
    of ``D - x`` at small sigma. ``sigma_data`` is an array field.
    """

    sigma_data: jax.Array = eqx.field(converter=_float)

    def __init__(self, fn, sigma_data=0.5, args=None, *, event_shape=None):
        super().__init__(fn, args, event_shape=event_shape)
        check_range("sigma_data", sigma_data, 0.0, lo_open=True)
        self.sigma_data = sigma_data

    def query(self, x, sigma, state):
        sigma = jnp.asarray(sigma, x.dtype)
        def raw(x_in, c_noise):
            out = call_model(self.fn, x_in, c_noise, self.args)
            return check_answer(out, x, "EDM(fn): fn(c_in x, c_noise)")

        return edm_score(raw, x, sigma, self.sigma_data.astype(x.dtype)), state


__all__ = ["ModelSchedule", "DiscreteVP", "LinearVP", "CosineVP", "Continuous", "Prediction", "EDM"]
