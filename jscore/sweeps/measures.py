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


def _check_mixture(target, oracle_entry, sampler):
    if not isinstance(target, GaussianMixture):
        raise ValueError(f"metric 'mode_tv' needs a mixture target (gmm), got {type(target).__name__}.")


MEASURES: dict[str, Measure] = {
    "kl": Measure("kl", ("u1", "u2"), _kl_sums, _need_gaussian("kl"), "pooled-fit KL"),
    "w2": Measure("w2", ("u1", "u2"), _w2_sums, _need_gaussian("w2", True), "pooled-fit W2"),
    "kl_affine": Measure("kl_affine", ("ry", "yy"), _kl_affine_sums, _check_affine, "closed-form KL"),
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
