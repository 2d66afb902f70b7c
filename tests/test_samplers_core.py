"""Euler, Heun, EulerAncestral/DDIM and EulerMaruyama against closed forms on Gaussian targets.

On a Gaussian target N(m, diag v) every step is affine per coordinate, y' = a y + b + g z, so the
output mean and variance follow scalar recursions. These are computed here in float64 NumPy from
the samplers' defining ODE/SDE formulas, independently of the JAX code.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jscore as js
from helpers import assert_within_se, mean_se, var_se

DIM = 6


def _target():
    return js.targets.Gaussian(jnp.linspace(-1.0, 2.0, DIM), jnp.linspace(0.2, 1.5, DIM))


def _np_target():
    return np.linspace(-1.0, 2.0, DIM), np.linspace(0.2, 1.5, DIM)


# ---- deterministic samplers: per-coordinate recursion of dy/dsigma = f(y, sigma) -------------
def _f(y, s, m, v):
    # PF-ODE velocity eps_hat = -sigma * score = sigma (y - m) / (v + sigma^2)
    return s * (y - m) / (v + s * s)


def _np_euler(y, sig, m, v):
    for s, s2 in zip(sig[:-1], sig[1:]):
        y = y + (s2 - s) * _f(y, s, m, v)
    return y


def _np_heun(y, sig, m, v):
    for s, s2 in zip(sig[:-1], sig[1:]):
        d = _f(y, s, m, v)
        y_pred = y + (s2 - s) * d
        if s2 > 0:
            y = y + (s2 - s) * 0.5 * (d + _f(y_pred, s2, m, v))
        else:
            y = y_pred
    return y


@pytest.mark.parametrize(
    "sampler,ref",
    [(js.samplers.Euler(), _np_euler), (js.samplers.Heun(), _np_heun), (js.samplers.DDIM(0.0), _np_euler)],
)
@pytest.mark.parametrize("append_zero", [True, False])
def test_deterministic_samplers_match_scalar_recursion(x64, sampler, ref, append_zero):
    sigmas = js.schedules.karras(12, sigma_min=0.01, sigma_max=20.0, append_zero=append_zero)
    x_init = jax.random.normal(jax.random.key(0), (5, DIM)) * 20.0
    res = js.sample(js.oracles.Exact(_target()), sampler, sigmas, jax.random.key(1), x_init=x_init)
    m, v = _np_target()
    expected = np.stack([ref(np.asarray(x), np.asarray(sigmas), m, v) for x in x_init])
    np.testing.assert_allclose(res.x, expected, rtol=1e-11, atol=1e-11)


def _exact_flow(y0, s0, s1, m, v):
    # exact PF-ODE map for a Gaussian: y(s) = m + (y0 - m) sqrt((v + s^2) / (v + s0^2))
    return m + (y0 - m) * np.sqrt((v + s1**2) / (v + s0**2))


@pytest.mark.parametrize("sampler,order", [(js.samplers.Euler(), 1), (js.samplers.Heun(), 2)])
def test_deterministic_convergence_order(x64, sampler, order):
    m, v = _np_target()
    y0 = np.linspace(-30, 30, DIM)
    errs, ns = [], [8, 16, 32, 64, 128]
    for n in ns:
        sig = js.schedules.geometric(n + 1, 0.05, 10.0, append_zero=False)
        res = js.sample_one(js.oracles.Exact(_target()), sampler, sig, jax.random.key(0), x_init=y0)
        errs.append(np.max(np.abs(np.asarray(res.x) - _exact_flow(y0, 10.0, 0.05, m, v))))
    slope = -np.polyfit(np.log(ns), np.log(errs), 1)[0]
    assert abs(slope - order) < 0.15, (slope, errs)


# ---- stochastic samplers: affine maps y' = a y + b + g z, mean/var recursions -------------------
def _np_moments(kind, sig, m, v, **kw):
    """Mean and variance per coordinate of the output, starting from y0 = sigma_0 z."""
    mean, var = np.zeros_like(m), np.full_like(m, sig[0] ** 2)
    for s, s2 in zip(sig[:-1], sig[1:]):
        c1 = v / (v + s * s)  # D = c1 y + c0
        c0 = s * s * m / (v + s * s)
        if s2 == 0:
            a, b, g2 = c1, c0, 0.0
        elif kind == "ancestral":
            eta = kw["eta"]
            s_up = eta * s2 * math.sqrt(s * s - s2 * s2) / s
            s_down = math.sqrt(s2 * s2 - s_up * s_up)
            # y' = D + s_down (y - D)/s + s_up z
            a = c1 + s_down * (1 - c1) / s
            b = c0 - s_down * c0 / s
            g2 = s_up**2
        elif kind == "em_ou":
            h = 0.5 * (math.log1p(s * s) - math.log1p(s2 * s2))
            rho = math.exp(-h)
            # y' = rho [(1+h) y + 2h (1+s^2) (m - y)/(v + s^2)] + sqrt(1+s2^2) sqrt(2h) z
            k = 2 * h * (1 + s * s) / (v + s * s)
            a = rho * ((1 + h) - k)
            b = rho * k * m
            g2 = (1 + s2 * s2) * 2 * h
        elif kind == "em_variance":
            dv = s * s - s2 * s2
            a = 1 - dv / (v + s * s)
            b = dv * m / (v + s * s)
            g2 = dv
        mean = a * mean + b
        var = a * a * var + g2
    return mean, var


def _np_moments_heun_churn(sig, m, v, s_churn, s_tmin=0.0, s_tmax=np.inf):
    n_steps = len(sig) - 1
    mean, var = np.zeros_like(m), np.full_like(m, sig[0] ** 2)
    for s, s2 in zip(sig[:-1], sig[1:]):
        gamma = min(s_churn / n_steps, math.sqrt(2) - 1) if s_tmin <= s <= s_tmax else 0.0
        sh = s * (1 + gamma)
        var = var + sh * sh - s * s
        k1 = sh / (v + sh * sh)
        h = s2 - sh
        if s2 > 0:
            k2 = s2 / (v + s2 * s2)
            A = 1 + 0.5 * h * (k1 + k2 * (1 + h * k1))
        else:
            A = 1 + h * k1
        mean = m + A * (mean - m)
        var = A * A * var
    return mean, var


STOCHASTIC = [
    ("ancestral", js.samplers.EulerAncestral(1.0), {"eta": 1.0}),
    ("ancestral", js.samplers.DDIM(0.5), {"eta": 0.5}),
    ("em_ou", js.samplers.EulerMaruyama("ou"), {}),
    ("em_variance", js.samplers.EulerMaruyama("variance"), {}),
]


@pytest.mark.parametrize("kind,sampler,kw", STOCHASTIC, ids=["ddpm", "ddim0.5", "em_ou", "em_var"])
def test_stochastic_samplers_mean_and_variance(kind, sampler, kw):
    dim = 64
    mval, vval = 1.5, 0.4
    target = js.targets.Gaussian(jnp.full((dim,), mval), vval)
    sig = js.schedules.karras(10, sigma_min=0.05, sigma_max=10.0)
    res = js.sample(js.oracles.Exact(target), sampler, sig, jax.random.key(5), num_samples=2048)
    x = np.asarray(res.x, dtype=np.float64).reshape(-1)  # all coordinates are iid
    mean, var = _np_moments(kind, np.asarray(sig, np.float64), np.array([mval]), np.array([vval]), **kw)
    m_hat, m_se = mean_se(x)
    v_hat, v_se = var_se(x)
    assert_within_se(m_hat, mean[0], m_se, what=f"{kind} mean")
    assert_within_se(v_hat, var[0], v_se, what=f"{kind} variance")


def test_heun_churn_mean_and_variance():
    dim = 64
    target = js.targets.Gaussian(jnp.full((dim,), -0.5), 0.8)
    sig = js.schedules.karras(8, sigma_min=0.05, sigma_max=10.0)
    sampler = js.samplers.Heun(s_churn=4.0, s_tmin=0.1, s_tmax=5.0)
    res = js.sample(js.oracles.Exact(target), sampler, sig, jax.random.key(2), num_samples=2048)
    x = np.asarray(res.x, dtype=np.float64).reshape(-1)
    mean, var = _np_moments_heun_churn(np.asarray(sig, np.float64), -0.5, 0.8, 4.0, 0.1, 5.0)
    m_hat, m_se = mean_se(x)
    v_hat, v_se = var_se(x)
    assert_within_se(m_hat, mean, m_se, what="heun churn mean")
    assert_within_se(v_hat, var, v_se, what="heun churn variance")


def test_ancestral_eta1_terminal_step_is_tweedie(x64):
    # into sigma = 0, every sampler returns D(y, sigma_{N-1}) with no noise
    target = _target()
    sig = jnp.array([3.0, 1.0, 0.0])
    x0 = jnp.linspace(-2, 2, DIM)
    for sampler in (js.samplers.EulerAncestral(1.0), js.samplers.EulerMaruyama(), js.samplers.EulerMaruyama("variance")):
        r_full = js.sample_one(js.oracles.Exact(target), sampler, sig, jax.random.key(3), x_init=x0)
        r_part = js.sample_one(js.oracles.Exact(target), sampler, sig[:2], jax.random.key(3), x_init=x0)
        np.testing.assert_allclose(r_full.x, target.denoise(r_part.x, 1.0), rtol=1e-12)
