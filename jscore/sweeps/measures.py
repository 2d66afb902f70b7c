"""Error metrics of a sweep, computed from per-chain statistics so seed chunks combine exactly.

Each metric has a kernel part, ``chain_stats(ctx) -> {name: scalar}`` computed per chain on the
device over the valid coordinates only (mask-aware), and a host part, ``from_sums(sums, n, info)``,
evaluated in float64 from the sums of those statistics over the ``n`` seeds. Bootstrap replicates
resample seeds and sum again, so ``from_sums`` is vectorised over leading axes.

- ``kl`` (Gaussian ``N(m, s^2 I)``): KL(fit || target) of the pooled isotropic Gaussian fit of the
  standardised residuals ``u = (x - m)/s``: ``d/2 (v - 1 - log v + delta^2)`` with ``delta`` and
  ``v`` the mean and variance of u over all seeds and coordinates. Consistent when the output law
  is isotropic around the target mean (e.g. a zero-mean target); bias about ``1/(2n)``.
- ``kl_affine`` (Gaussian, exact oracle, deterministic sampler): closed-form KL. Such a sampler is
  an affine map ``x = m + A (x_T - m)`` per coordinate (translation equivariance), so with
  ``x_T ~ N(0, sigma_0^2 I)`` its output law is ``N((1 - A) m, A^2 sigma_0^2 I)`` and
  ``KL = d/2 (w - 1 - log w) + A^2 |m|^2 / (2 s^2)``, ``w = A^2 sigma_0^2 / s^2``, with ``A`` read
  off the chains by least squares (exact up to rounding, whatever the number of seeds).
- ``kl_gauss`` (Gaussian, exact oracle, any fixed-grid sampler, stochastic ones included): KL of
  the output law, a Monte-Carlo estimate with standard error ``kl_gauss_se``. With the exact oracle
  on ``N(m, s^2 I)`` a fixed-grid sampler is affine in (x_T, its noise draws) and acts coordinate by
  coordinate: ``x - m = A (x_T - m) + beta m + eta`` with ``eta ~ N(0, B^2)`` independent of
  ``x_T ~ N(0, sigma_0^2)`` (``beta = 0`` for translation-equivariant steps). The output law is
  ``N(m (1 - A + beta), V)``, ``V = A^2 sigma_0^2 + B^2``, so
  ``KL = d/2 (w - 1 - log w) + (beta - A)^2 |m|^2 / (2 s^2)``, ``w = V / s^2``. ``(A, beta)`` come
  from the pooled least-squares fit of the ``N = n d`` residuals on ``(x_T - m, m)`` (only on
  ``x_T - m`` when ``m = 0``), ``B^2`` from the residual sum of squares over ``N - p`` (unbiased).
  The plug-in KL is biased upwards by about ``1/(2n)``; the estimate subtracts the second-order
  delta-method bias ``1/2 tr(H Sigma)``, and ``kl_gauss_se`` is the delta-method standard error
  ``sqrt(g' Sigma g)`` (both leave an ``O(N^-2) d`` remainder). Exact for deterministic samplers
  only up to rounding; prefer ``kl_affine`` there.
- ``w2`` (Gaussian): W2 between the pooled isotropic fit and the target,
  ``s sqrt(d (delta^2 + (sqrt v - 1)^2))``.
- ``mode_tv`` (mixture): total variation between the fraction of chains nearest to each mean and
  the weights.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax.numpy as jnp
import numpy as np

from ..targets import Gaussian, GaussianMixture


@dataclasses.dataclass(frozen=True)
class Measure:
    name: str
    stats: tuple  # names of per-chain statistics it needs
    from_sums: Callable  # (sums: dict, n, info) -> value(s)
    check: Callable  # (target, oracle_entry, sampler) -> None, raises on impossible combinations
    doc: str = ""


def _residual(ctx, x):
    t = ctx["target"]
    r = x - t.mean
    return jnp.where(ctx["mask"], r, jnp.zeros_like(r))


def chain_stats(names, ctx) -> dict:
    """Per-chain statistics ``names`` for the final point ``ctx['x']`` (one chain, ``(d_pad,)``)."""
    out = {}
    x, x0, mask, t = ctx["x"], ctx["x0"], ctx["mask"], ctx["target"]
    for nm in names:
        if nm in ("u1", "u2"):
            u = _residual(ctx, x) / jnp.sqrt(t.var)
            out["u1"], out["u2"] = jnp.sum(u), jnp.sum(u * u)
        elif nm in ("ry", "yy"):
            r, y = _residual(ctx, x), _residual(ctx, x0)
            out["ry"], out["yy"] = jnp.sum(r * y), jnp.sum(y * y)
        elif nm in ("rr", "rm", "ym"):
            r, y = _residual(ctx, x), _residual(ctx, x0)
            mv = jnp.where(mask, jnp.broadcast_to(t.mean, r.shape), jnp.zeros_like(r))
            out["rr"], out["rm"], out["ym"] = jnp.sum(r * r), jnp.sum(r * mv), jnp.sum(y * mv)
            out["ry"], out["yy"] = jnp.sum(r * y), jnp.sum(y * y)
        elif nm == "mode":
            xm = jnp.where(mask, x, jnp.zeros_like(x))
            d2 = 2.0 * t.half_sq_norms - 2.0 * (t.means @ xm)
            out["mode"] = jnp.argmin(d2).astype(jnp.int32)
    return {k: out[k] for k in names}


def _kl_sums(sums, n, info):
    d = info["dim"]
    N = n * d
    delta = sums["u1"] / N
    w = sums["u2"] / N - delta * delta - 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return 0.5 * d * (w - np.log1p(w) + delta * delta)


def _w2_sums(sums, n, info):
    d = info["dim"]
    N = n * d
    delta = sums["u1"] / N
    v = np.maximum(sums["u2"] / N - delta * delta, 0.0)
    return np.sqrt(info["var"]) * np.sqrt(d * (delta * delta + (np.sqrt(v) - 1.0) ** 2))


def _kl_affine_sums(sums, n, info):
    d = info["dim"]
    with np.errstate(invalid="ignore", divide="ignore"):
        a = sums["ry"] / sums["yy"]
        w = a * a * info["sigma0"] ** 2 / info["var"] - 1.0
        return 0.5 * d * (w - np.log1p(w)) + a * a * info["mean_sq"] / (2.0 * info["var"])


def _kl_gauss_parts(sums, n, info):
    """``(kl_plugin, bias, se)`` of the stochastic closed form (see the module docstring)."""
    d, s2, s0sq, M = info["dim"], info["var"], info["sigma0"] ** 2, info["mean_sq"]
    N = n * d
    rr, ry, yy = (np.asarray(sums[k], np.float64) for k in ("rr", "ry", "yy"))
    with np.errstate(invalid="ignore", divide="ignore"):
        if M > 0.0:  # two regressors per coordinate: (x_T - m) and m; X'X summed over seeds
            rm, ym = np.asarray(sums["rm"], np.float64), np.asarray(sums["ym"], np.float64)
            mm = n * M
            det = yy * mm - ym * ym
            a = (ry * mm - rm * ym) / det
            beta = (rm * yy - ry * ym) / det
            rss = rr - a * ry - beta * rm
            p = 2
            i_aa, i_bb, i_ab = mm / det, yy / det, -ym / det  # (X'X)^-1
        else:
            a, beta = ry / yy, np.zeros_like(ry)
            rss = rr - a * ry
            p = 1
            i_aa, i_bb, i_ab = 1.0 / yy, np.zeros_like(yy), np.zeros_like(yy)
        b2 = np.maximum(rss, 0.0) / (N - p)
        v = a * a * s0sq + b2
        w = v / s2
        c = beta - a
        kl = 0.5 * d * (w - 1.0 - np.log(w)) + c * c * M / (2.0 * s2)
        # covariance of (A, beta) is B^2 (X'X)^-1; B2_hat is independent of them, var 2 B^4 / (N - p)
        s_aa, s_bb, s_ab, s_vv = b2 * i_aa, b2 * i_bb, b2 * i_ab, 2.0 * b2 * b2 / (N - p)
        dkv = 0.5 * d * (1.0 / s2 - 1.0 / v)  # dKL/dV
        g_a = dkv * 2.0 * a * s0sq - c * M / s2
        g_b = c * M / s2
        g_v = dkv  # d/dB^2
        se = np.sqrt(g_a * g_a * s_aa + 2.0 * g_a * g_b * s_ab + g_b * g_b * s_bb + g_v * g_v * s_vv)
        h_vv = 0.5 * d / (v * v)
        h_aa = h_vv * (2.0 * a * s0sq) ** 2 + dkv * 2.0 * s0sq + M / s2
        h_ab = -M / s2
        h_bb = M / s2
        bias = 0.5 * (h_aa * s_aa + 2.0 * h_ab * s_ab + h_bb * s_bb + h_vv * s_vv)
    return kl, bias, se


def _kl_gauss_sums(sums, n, info):
    kl, bias, _ = _kl_gauss_parts(sums, n, info)
    return kl - bias


def _kl_gauss_se_sums(sums, n, info):
    return _kl_gauss_parts(sums, n, info)[2]


def _mode_tv_sums(sums, n, info):
    p = sums["mode"] / n  # (..., K) counts -> fractions
    return 0.5 * np.abs(p - info["weights"]).sum(-1)


def _need_gaussian(name, scalar_var=False):
    def check(target, oracle_entry, sampler):
        if not isinstance(target, Gaussian):
            raise ValueError(
                f"metric {name!r} needs a Gaussian target, got {type(target).__name__}; use "
                "'mode_tv' for mixtures."
            )
        if scalar_var and target.var.ndim != 0:
            raise ValueError(f"metric {name!r} needs an isotropic (scalar-variance) Gaussian.")

    return check


def _check_affine(target, oracle_entry, sampler):
    _need_gaussian("kl_affine", True)(target, oracle_entry, sampler)
    if not oracle_entry.is_exact:
        raise ValueError(
            "metric 'kl_affine' assumes the exact oracle (the sampler is then an affine map); "
            "use 'kl' with noisy or learned oracles."
        )
    if sampler.is_stochastic:
        raise ValueError(
            f"metric 'kl_affine' needs a deterministic sampler, but {type(sampler).__name__} "
            "injects noise; use 'kl' (a moment fit) instead."
        )


def _check_gauss(name):
    def check(target, oracle_entry, sampler):
        from ..samplers.base import AbstractFixedStepSampler

        _need_gaussian(name, True)(target, oracle_entry, sampler)
        if not oracle_entry.is_exact:
            raise ValueError(
                f"metric {name!r} assumes the exact oracle (the sampler is then affine in x_T and its "
                "noise); use 'kl' with noisy or learned oracles."
            )
        if not isinstance(sampler, AbstractFixedStepSampler):
            raise ValueError(
                f"metric {name!r} needs a fixed-grid sampler (affine in x_T and its noise), but "
                f"{type(sampler).__name__} is not an AbstractFixedStepSampler (an adaptive step size "
                "depends on the state); use 'kl' (a moment fit) instead."
            )

    return check


def _check_mixture(target, oracle_entry, sampler):
    if not isinstance(target, GaussianMixture):
        raise ValueError(f"metric 'mode_tv' needs a mixture target (gmm), got {type(target).__name__}.")


_GAUSS_STATS = ("rr", "ry", "yy", "rm", "ym")

MEASURES: dict[str, Measure] = {
    "kl": Measure("kl", ("u1", "u2"), _kl_sums, _need_gaussian("kl"), "pooled-fit KL"),
    "w2": Measure("w2", ("u1", "u2"), _w2_sums, _need_gaussian("w2", True), "pooled-fit W2"),
    "kl_affine": Measure("kl_affine", ("ry", "yy"), _kl_affine_sums, _check_affine, "closed-form KL"),
    "kl_gauss": Measure(
        "kl_gauss", _GAUSS_STATS, _kl_gauss_sums, _check_gauss("kl_gauss"), "closed-form KL, MC (A, B^2)"
    ),
    "kl_gauss_se": Measure(
        "kl_gauss_se", _GAUSS_STATS, _kl_gauss_se_sums, _check_gauss("kl_gauss_se"), "SE of kl_gauss"
    ),
    "mode_tv": Measure("mode_tv", ("mode",), _mode_tv_sums, _check_mixture, "mode-mass TV"),
}


def get_measure(name: str) -> Measure:
    try:
        return MEASURES[name]
    except KeyError:
        raise ValueError(f"Unknown metric {name!r}; available: {', '.join(sorted(MEASURES))}.") from None


def target_info(target, dim: int, sigma0: float) -> dict:
    """Host facts about the (unpadded) target used by ``from_sums``."""
    info = {"dim": int(dim), "sigma0": float(sigma0)}
    if isinstance(target, Gaussian):
        var = np.asarray(target.var, np.float64)
        info["var"] = float(var) if var.ndim == 0 else float("nan")
        m = np.asarray(target.mean, np.float64)
        info["mean_sq"] = float(m @ m)
    if isinstance(target, GaussianMixture):
        info["weights"] = np.asarray(target.weights, np.float64)
        info["num_components"] = target.num_components
    return info


def host_features(stats: dict, info: dict) -> dict:
    """Per-seed statistics as float64 arrays ready to sum (``mode`` becomes one-hot ``(n, K)``)."""
    out = {}
    for k, v in stats.items():
        v = np.asarray(v)
        if k == "mode":
            out[k] = np.eye(info["num_components"], dtype=np.float64)[v.astype(np.int64)]
        else:
            out[k] = v.astype(np.float64)
    return out


def evaluate(name: str, feats: dict, info: dict, idx=None):
    """Metric ``name`` over all seeds (``idx=None``) or bootstrap index arrays ``idx`` ``(B, n)``."""
    m = get_measure(name)
    if idx is None:
        n = next(iter(feats.values())).shape[0]
        sums = {k: feats[k].sum(0) for k in m.stats}
    else:
        n = idx.shape[1]
        sums = {k: feats[k][idx].sum(1) for k in m.stats}
    return m.from_sums(sums, n, info)


__all__ = ["MEASURES", "Measure", "get_measure", "chain_stats", "evaluate", "host_features", "target_info"]
