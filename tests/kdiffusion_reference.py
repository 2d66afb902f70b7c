"""Independent float64 NumPy transcriptions of k-diffusion's samplers (for the tests only).

Written from k-diffusion 0.1.1's ``sampling.py`` in its own variables (``t = -log sigma``,
``sigma_fn``/``t_fn``, ``get_ancestral_step`` with its ``min``), not from jscore's EDM rewrite.
Every function takes a denoiser ``den(x, sigma)``, the grid, the start ``x`` and ``noise(i)``
(the standard normal(s) of step ``i``) and uses only linear operations on ``x``. So the same code
runs pathwise (``x`` an array of values) or on affine representations (:class:`GaussianDenoiser`
with ``rep=True``: column 0 is the constant, column 1 the coefficient of the start, further
columns those of the normals), which gives the exact law of the output on a Gaussian target.
"""

from __future__ import annotations

import math

import numpy as np


def to_d(x, sigma, denoised):
    return (x - denoised) / sigma


def get_ancestral_step(sigma_from, sigma_to, eta=1.0):
    if not eta:
        return sigma_to, 0.0
    sigma_up = min(sigma_to, eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5)
    sigma_down = (sigma_to**2 - sigma_up**2) ** 0.5
    return sigma_down, sigma_up


def sigma_fn(t):
    return math.exp(-t)


def t_fn(sigma):
    return -math.log(sigma)


def dpm_2_ancestral(den, sigmas, x, noise, eta=1.0, s_noise=1.0):
    for i in range(len(sigmas) - 1):
        denoised = den(x, sigmas[i])
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        d = to_d(x, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + d * (sigma_down - sigmas[i])
        else:
            sigma_mid = math.exp(0.5 * (math.log(sigmas[i]) + math.log(sigma_down)))
            x_2 = x + d * (sigma_mid - sigmas[i])
            d_2 = to_d(x_2, sigma_mid, den(x_2, sigma_mid))
            x = x + d_2 * (sigma_down - sigmas[i])
            x = x + noise(i) * s_noise * sigma_up
    return x


def dpmpp_2s_ancestral(den, sigmas, x, noise, eta=1.0, s_noise=1.0):
    for i in range(len(sigmas) - 1):
        denoised = den(x, sigmas[i])
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        if sigma_down == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            t, t_next = t_fn(sigmas[i]), t_fn(sigma_down)
            h = t_next - t
            s = t + 0.5 * h
            x_2 = (sigma_fn(s) / sigma_fn(t)) * x - math.expm1(-h * 0.5) * denoised
            denoised_2 = den(x_2, sigma_fn(s))
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - math.expm1(-h) * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise(i) * s_noise * sigma_up
    return x


def dpmpp_sde(den, sigmas, x, noise, eta=1.0, s_noise=1.0, r=0.5):
    """``noise(i)`` returns two independent normals ``(a, b)``; the Brownian increments over
    ``[sigma_s, sigma]`` and ``[sigma', sigma]`` (sigma-time, k-diffusion's default tree) are built
    from them here: ``W_full = sqrt(T) a``, ``W_sub = (tau/T) W_full + sqrt(tau (T - tau)/T) b``."""
    for i in range(len(sigmas) - 1):
        denoised = den(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
            continue
        t, t_next = t_fn(sigmas[i]), t_fn(sigmas[i + 1])
        h = t_next - t
        s = t + h * r
        fac = 1 / (2 * r)
        a, b = noise(i)
        big_t, tau = sigmas[i] - sigmas[i + 1], sigmas[i] - sigma_fn(s)
        w_full = math.sqrt(big_t) * a
        w_sub = (tau / big_t) * w_full + math.sqrt(tau * (big_t - tau) / big_t) * b
        sd, su = get_ancestral_step(sigma_fn(t), sigma_fn(s), eta)
        s_ = t_fn(sd)
        x_2 = (sigma_fn(s_) / sigma_fn(t)) * x - math.expm1(t - s_) * denoised
        x_2 = x_2 + (w_sub / math.sqrt(tau)) * s_noise * su
        denoised_2 = den(x_2, sigma_fn(s))
        sd, su = get_ancestral_step(sigma_fn(t), sigma_fn(t_next), eta)
        t_next_ = t_fn(sd)
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (sigma_fn(t_next_) / sigma_fn(t)) * x - math.expm1(t - t_next_) * denoised_d
        x = x + (w_full / math.sqrt(big_t)) * s_noise * su
    return x


def dpmpp_2m_sde(den, sigmas, x, noise, eta=1.0, s_noise=1.0, solver_type="midpoint"):
    old_denoised, h_last, h = None, None, None
    for i in range(len(sigmas) - 1):
        denoised = den(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -math.log(sigmas[i]), -math.log(sigmas[i + 1])
            h = s - t
            eta_h = eta * h
            x = sigmas[i + 1] / sigmas[i] * math.exp(-eta_h) * x + (-math.expm1(-h - eta_h)) * denoised
            if old_denoised is not None:
                r = h_last / h
                if solver_type == "heun":
                    c = (-math.expm1(-h - eta_h)) / (-h - eta_h) + 1
                    x = x + c * (1 / r) * (denoised - old_denoised)
                else:
                    x = x + 0.5 * (-math.expm1(-h - eta_h)) * (1 / r) * (denoised - old_denoised)
            if eta:
                x = x + noise(i) * sigmas[i + 1] * math.sqrt(-math.expm1(-2 * eta_h)) * s_noise
        old_denoised = denoised
        h_last = h
    return x


def dpmpp_3m_sde(den, sigmas, x, noise, eta=1.0, s_noise=1.0):
    denoised_1, denoised_2 = None, None
    h, h_1, h_2 = None, None, None
    for i in range(len(sigmas) - 1):
        denoised = den(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -math.log(sigmas[i]), -math.log(sigmas[i + 1])
            h = s - t
            h_eta = h * (eta + 1)
            x = math.exp(-h_eta) * x + (-math.expm1(-h_eta)) * denoised
            phi_2 = math.expm1(-h_eta) / h_eta + 1
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None:
                x = x + phi_2 * (denoised - denoised_1) / (h_1 / h)
            if eta:
                x = x + noise(i) * sigmas[i + 1] * math.sqrt(-math.expm1(-2 * h * eta)) * s_noise
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x


def lms_coeff(order, t, i, j):
    """Exact integral of the Lagrange basis polynomial (k-diffusion uses ``quad``)."""
    poly = np.poly1d([1.0])
    for k in range(order):
        if j != k:
            poly = poly * np.poly1d([1.0, -t[i - k]]) / (t[i - j] - t[i - k])
    prim = np.polyint(poly)
    return prim(t[i + 1]) - prim(t[i])


def lms(den, sigmas, x, noise=None, order=4):
    ds = []
    for i in range(len(sigmas) - 1):
        ds.append(to_d(x, sigmas[i], den(x, sigmas[i])))
        if len(ds) > order:
            ds.pop(0)
        cur_order = min(i + 1, order)
        coeffs = [lms_coeff(cur_order, sigmas, i, j) for j in range(cur_order)]
        x = x + sum(c * d for c, d in zip(coeffs, reversed(ds)))
    return x


class GaussianDenoiser:
    """Tweedie's denoiser of ``N(m, diag v)``: ``D(x, s) = m + v/(v + s^2) (x - m)``.

    ``rep=True``: ``x`` is an affine representation ``(d, K)`` (column 0 constant)."""

    def __init__(self, m, v, rep=False):
        self.m, self.v, self.rep = np.asarray(m, float), np.asarray(v, float), rep

    def __call__(self, x, s):
        k = self.v / (self.v + s * s)
        if not self.rep:
            return self.m + k * (x - self.m)
        out = k[:, None] * x
        out[:, 0] += (1.0 - k) * self.m
        return out


def exact_law(fn, sigmas, m, v, var0, noises_per_step=1, **kw):
    """Mean and variance ``(d,)`` of ``fn``'s output for ``x_0 ~ N(m, var0)`` and exact noise."""
    d, n = len(m), len(sigmas) - 1
    cols = 2 + noises_per_step * n

    def unit(c):
        e = np.zeros((d, cols))
        e[:, c] = 1.0
        return e

    def noise(i):
        units = [unit(2 + noises_per_step * i + k) for k in range(noises_per_step)]
        return units[0] if noises_per_step == 1 else tuple(units)

    out = fn(GaussianDenoiser(m, v, rep=True), list(map(float, sigmas)), unit(1), noise, **kw)
    mean = out[:, 0] + out[:, 1] * np.asarray(m, float)
    var = out[:, 1] ** 2 * var0 + np.sum(out[:, 2:] ** 2, axis=1)
    return mean, var
