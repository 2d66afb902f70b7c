"""Honest success metrics for the codebook family (docs/construction.md §4, 8 and 9).

Blind statistics (radii, projections, moments, generic two-sample tests) cannot see the codebook:
P and Q share their radial law and low moments, so any codebook-blind test has power at most
``level + n^2/(2M)``. Only codebook-aware statistics measure success:

- :func:`decode`: nearest codeword by cosine, ``bottom`` (-1) if the best cosine is below theta0.
- :func:`tv_lower_bound`: ``TV(Law(x_hat), P) >= P(decode = bottom)`` (P never decodes to bottom).
- :func:`hashed_chi2`: Pearson chi-square of hashed decoded indices against the exact hashed
  uniform law, and the plug-in TV minus its simulated null mean (data processing: both lower-bound
  the TV to P with a sample size independent of M).
- :func:`window_profile`: fraction of informative adversary answers at reference-typical points.
- :func:`planted_information_density` / :func:`information_density_moments`: the exact two-scalar
  law of ``i(x; y)`` under P_sigma, against ``C(sigma)``, ``V(sigma)`` and ``V_c(sigma)``.
- :func:`tv_planted`: ``TV(P_sigma, Q_sigma) = E_{P_sigma}(1 - 1/L)_+`` from an explicit codebook,
  and :func:`tv_prediction` ``Phi(sqrt(d) (C - Rbar)/sqrt(V))``.

Float64 (``jax_enable_x64``) is recommended for the information density at large d.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_positive_int

BOTTOM = -1
"""Decoded index of an output that is no codeword (cosine below the threshold)."""


# ----------------------------------------------------------------------------- closed forms
def snr(sigma, rho=1.0):
    """``s = rho^2 / sigma^2``."""
    sigma = np.asarray(sigma, np.float64)
    return (rho / sigma) ** 2


def capacity(sigma, rho=1.0):
    """``C(sigma) = 1/2 log(1 + rho^2/sigma^2)`` nats per dimension (NumPy, float64)."""
    return 0.5 * np.log1p(snr(sigma, rho))


def dispersion(sigma, rho=1.0, family: str = "sphere"):
    """``V(sigma)``: ``s(s+2)/(2(s+1)^2)`` (sphere) or ``s/(1+s)`` (Gaussian codebook)."""
    s = snr(sigma, rho)
    if family == "sphere":
        return s * (s + 2) / (2 * (s + 1) ** 2)
    if family == "gaussian":
        return s / (1 + s)
    raise ValueError(f"`family` must be 'sphere' or 'gaussian', got {family!r}.")


def conditional_dispersion(sigma, rho=1.0):
    """``V_c(sigma) = s/(1+2s)``: the sphere's dispersion given ``|x|``."""
    s = snr(sigma, rho)
    return s / (1 + 2 * s)


def tv_prediction(d, rate_bar, sigma, rho=1.0, family: str = "sphere"):
    """``Phi(sqrt(d) (C(sigma) - Rbar) / sqrt(V(sigma)))``, the predicted ``TV(P_sigma, Q_sigma)``."""
    from scipy.special import ndtr  # scipy: optional dependency of the lab

    u = math.sqrt(d) * (capacity(sigma, rho) - rate_bar) / np.sqrt(dispersion(sigma, rho, family))
    return ndtr(u)


# ----------------------------------------------------------------------------- decoder
class Decoded(NamedTuple):
    index: jax.Array  # (n,) int32 nearest codeword, or BOTTOM
    cosine: jax.Array  # (n,) best cosine


@eqx.filter_jit
def _decode(codebook, xs, theta0, batch):
    idx, cos = jax.lax.map(codebook.nearest, xs, batch_size=batch)
    return Decoded(jnp.where(cos >= theta0, idx, BOTTOM).astype(jnp.int32), cos)


def decode(codebook, xs, theta0: float = 0.9, *, batch_size: int = 256) -> Decoded:
    """Nearest-codeword decoder ``D(x) = argmax_j cos(x, y_j)`` if the max cosine >= ``theta0``.

    ``xs``: ``(n, d)`` outputs. Returns :class:`Decoded` with ``index`` ``(n,)`` (BOTTOM = -1 when
    the best cosine is below ``theta0``) and ``cosine`` ``(n,)``. Streaming over the codebook.
    """
    xs = jnp.asarray(xs)
    if xs.ndim != 2 or xs.shape[1] != codebook.dim:
        raise ValueError(f"`xs` must have shape (n, {codebook.dim}), got {xs.shape}.")
    if not -1.0 <= float(theta0) <= 1.0:
        raise ValueError(f"`theta0` is a cosine in [-1, 1], got {theta0}.")
    return _decode(codebook, xs, jnp.asarray(theta0, xs.dtype), check_positive_int(
        "batch_size", batch_size))


def decoder_false_alarm(d: int, num_codewords: int, theta0: float = 0.9) -> float:
    """``M S_d(theta0)``: expected number of codewords with cosine >= theta0 to a codebook-free
    point, an upper bound on the decoder's pass rate for outputs independent of the codebook.
    Choose ``theta0`` so this is <= 1e-3 (section 9)."""
    from .caps import log_cap

    with jax.enable_x64(True):
        lc = float(log_cap(jnp.float64(theta0), float(d)))
    return float(math.exp(math.log(num_codewords) + lc))


def tv_lower_bound(decoded) -> tuple[float, float]:
    """``P(D(x_hat) = bottom)`` and its standard error: a lower bound on ``TV(Law(x_hat), P)``."""
    idx = np.asarray(decoded.index if isinstance(decoded, Decoded) else decoded)
    fail = (idx == BOTTOM).astype(np.float64)
    n = fail.size
    m = fail.mean()
    return float(m), float(math.sqrt(max(m * (1 - m), 0.0) / n))


class HashedTest(NamedTuple):
    chi2: float  # Pearson statistic over the H hash bins (bottom outputs excluded)
    dof: int  # H - 1
    pvalue: float  # chi-square survival probability (0 if any output is bottom)
    tv_plugin: float  # 1/2 sum_b |c_b/n - pi_b| including the bottom bin (mass 0)
    tv_null_mean: float  # mean of the same statistic under Multinomial(n, pi)
    tv_excess: float  # tv_plugin - tv_null_mean (a lower-bound estimate of TV to P)
    num_bottom: int
    num_distinct: int  # distinct decoded codewords (mode-collapse diagnostic)


def hashed_chi2(decoded, num_codewords: int, key, num_bins: int | None = None,
                null_sims: int = 200) -> HashedTest:
    """Hashed-index test of the decoded law against uniform on ``[M]`` (section 9).

    A random hash ``h: [M] -> [H]`` (``H = max(2, n // 20)`` by default) gives exact bin masses
    ``pi_b = |h^{-1}(b)|/M``; bottom gets its own bin with mass 0. Returns the Pearson chi-square
    (``H - 1`` degrees of freedom) and the plug-in TV minus its null mean (``null_sims``
    Multinomial(n, pi) draws). By data processing both lower-bound ``TV(Law(x_hat), P)``.
    """
    from scipy.stats import chi2 as _chi2

    idx = np.asarray(decoded.index if isinstance(decoded, Decoded) else decoded).astype(np.int64)
    n = idx.size
    M = int(num_codewords)
    H = max(2, n // 20) if num_bins is None else check_positive_int("num_bins", num_bins, 2)
    seed = np.asarray(jax.random.key_data(key)).ravel().astype(np.uint64)
    rng = np.random.default_rng(seed)
    h = rng.integers(0, H, size=M)
    pi = np.bincount(h, minlength=H) / M
    good = idx != BOTTOM
    counts = np.bincount(h[idx[good]], minlength=H).astype(np.float64)
    nb = int(n - good.sum())
    expected = n * pi
    pos = expected > 0
    chi2 = float(np.sum((counts[pos] - expected[pos]) ** 2 / expected[pos]))
    # bins with zero mass: any count there is impossible under P
    if np.any(counts[~pos] > 0):
        chi2 = math.inf
    pval = 0.0 if nb > 0 or not math.isfinite(chi2) else float(_chi2.sf(chi2, H - 1))
    tv = 0.5 * (np.abs(counts / n - pi).sum() + nb / n)
    sims = rng.multinomial(n, pi, size=null_sims) / n
    tv0 = float(np.mean(0.5 * np.abs(sims - pi).sum(axis=1)))
    return HashedTest(chi2, H - 1, pval, float(tv), tv0, float(tv - tv0), nb,
                      int(np.unique(idx[good]).size))


# ----------------------------------------------------------------------------- window profile
@eqx.filter_jit
def _profile_one(oracle, codebook, sigma, key, n, batch):
    x = codebook.reference.sample_noised(key, sigma, n)
    return jax.lax.map(lambda xi: oracle.answer(xi, sigma).informative, x, batch_size=batch)


def window_profile(oracle, codebook, sigmas, n: int, key, *, batch_size: int = 256):
    """Fraction of informative answers of ``oracle`` (an LRAdversary) at reference-typical points
    ``x = y' + sigma z``, ``y' ~ Q`` (independent of the codebook), per sigma.

    Returns ``(fraction (S,), standard_error (S,))`` as NumPy arrays.
    """
    n = check_positive_int("n", n)
    sig = np.asarray(sigmas, np.float64).reshape(-1)
    dtype = jnp.result_type(float)
    frac = []
    for i, s in enumerate(sig):
        flags = _profile_one(oracle, codebook, jnp.asarray(s, dtype), jax.random.fold_in(key, i),
                             n, batch_size)
        frac.append(float(np.mean(np.asarray(flags))))
    frac = np.asarray(frac)
    return frac, np.sqrt(frac * (1 - frac) / n)


# ----------------------------------------------------------------------------- information density
class PlantedDensity(NamedTuple):
    i: jax.Array  # information density i(x; y) of planted pairs, (n,)
    norm: jax.Array  # |x|, (n,)
    kappa: jax.Array  # r |x| / sigma^2 (sphere) -- zeros for the Gaussian family


def planted_information_density(key, d: int, sigma, n: int, rho=1.0,
                                family: str = "sphere") -> PlantedDensity:
    """Exact draws of ``i(x; y)`` for planted pairs ``x = y + sigma z`` at any d (O(1) per draw).

    Sphere (section 4): ``g ~ N(0,1)``, ``c ~ chi2_{d-1}``; ``<x,y> = r^2 + sigma r g``,
    ``|x|^2 = r^2 + 2 sigma r g + sigma^2 (g^2 + c)``, ``i = <x,y>/sigma^2 - Lambda_d(r|x|/sigma^2)``.
    Gaussian (section 3.4, Bartlett): ``a^2 ~ chi2_d``, ``b ~ N(0,1)``, ``c ~ chi2_{d-1}``;
    ``i = -|z|^2/2 + |x|^2/(2(rho^2+sigma^2)) + (d/2) log(1+s)``.
    """
    from .bessel import log_bessel_mgf

    n = check_positive_int("n", n)
    d = check_positive_int("d", d, 2)
    dtype = jnp.result_type(float)
    sigma = jnp.asarray(sigma, dtype)
    kg, kc, ka = jax.random.split(key, 3)
    g = jax.random.normal(kg, (n,), dtype)
    c = 2.0 * jax.random.gamma(kc, (d - 1) / 2.0, (n,), dtype)
    s2 = sigma * sigma
    if family == "sphere":
        r = jnp.asarray(rho * math.sqrt(d), dtype)
        n2 = r * r + 2 * sigma * r * g + s2 * (g * g + c)
        norm = jnp.sqrt(n2)
        kappa = r * norm / s2
        i = (r * r + sigma * r * g) / s2 - log_bessel_mgf(kappa, d)
        return PlantedDensity(i, norm, kappa)
    if family == "gaussian":
        a = jnp.sqrt(2.0 * jax.random.gamma(ka, d / 2.0, (n,), dtype))
        rho_ = jnp.asarray(rho, dtype)
        z2 = g * g + c
        n2 = rho_**2 * a * a + 2 * sigma * rho_ * a * g + s2 * z2
        i = -0.5 * z2 + 0.5 * n2 / (rho_**2 + s2) + 0.5 * d * jnp.log1p(rho_**2 / s2)
        return PlantedDensity(i, jnp.sqrt(n2), jnp.zeros_like(i))
    raise ValueError(f"`family` must be 'sphere' or 'gaussian', got {family!r}.")


def information_density_moments(key, d: int, sigma, n: int, rho=1.0, family: str = "sphere"):
    """Monte-Carlo moments of ``i/d`` from :func:`planted_information_density` vs closed forms.

    Returns a dict with ``mean`` (E i/d), ``mean_se``, ``var`` (Var i / d), ``var_se``,
    ``capacity`` C, ``dispersion`` V and, for the sphere, ``cond_var`` = E[kappa^2 A_d'(kappa)]/d
    (the variance given |x|) and ``cond_dispersion`` V_c.
    """
    from .bessel import bessel_ratio_derivative

    pd = planted_information_density(key, d, sigma, n, rho, family)
    i = np.asarray(pd.i, np.float64)
    out = {
        "mean": i.mean() / d,
        "mean_se": i.std(ddof=1) / math.sqrt(n) / d,
        "var": i.var(ddof=1) / d,
        "var_se": i.var(ddof=1) * math.sqrt(2.0 / (n - 1)) / d,
        "capacity": float(capacity(sigma, rho)),
        "dispersion": float(dispersion(sigma, rho, family)),
    }
    if family == "sphere":
        k = pd.kappa
        cv = np.asarray(k * k * bessel_ratio_derivative(k, d), np.float64)
        out["cond_var"] = cv.mean() / d
        out["cond_var_se"] = cv.std(ddof=1) / math.sqrt(n) / d
        out["cond_dispersion"] = float(conditional_dispersion(sigma, rho))
    return out


# ----------------------------------------------------------------------------- TV from a codebook
@eqx.filter_jit
def _planted_lr(codebook, sigma, key, n, batch):
    x, j = codebook.sample_noised_with_index(key, sigma, n)

    def one(args):
        xi, ji = args
        res = codebook.posterior(xi, sigma)
        log_l = codebook.log_lr_from_lse(xi, sigma, res.lse)
        # information density of the planted codeword: log(phi(x - y_J)/q(x)) = log L - (lse -
        # log M) + l_J (the normalising constants of p_sigma cancel)
        i = log_l - res.lse + codebook_logit(codebook, xi, ji, sigma) + codebook.log_num_codewords
        return log_l, i

    return jax.lax.map(one, (x, j), batch_size=batch)


def codebook_logit(codebook, x, j, sigma):
    """The logit ``l_J(x)`` of codeword ``j`` (same convention as the streaming pass)."""
    y = codebook.codebook[j].astype(x.dtype)
    dot = jnp.dot(y, x, precision=jax.lax.Precision.HIGHEST)
    if hasattr(codebook, "half_sq_norms"):
        dot = dot - codebook.half_sq_norms[j].astype(x.dtype)
    return dot / (sigma * sigma)


class PlantedTV(NamedTuple):
    tv: float  # E_{P_sigma} (1 - 1/L)_+
    tv_se: float
    planted_exceed: float  # P_planted(i > log M)
    planted_exceed_se: float


def tv_planted(codebook, sigma, n: int, key, *, batch_size: int = 256) -> PlantedTV:
    """``TV(P_sigma, Q_sigma) = E_{P_sigma}[(1 - 1/L_sigma)_+]`` from ``n`` planted points, and the
    planted exceedance ``P(i(x; y_J) > log M)`` (the quantity ``Phi(...)`` predicts)."""
    n = check_positive_int("n", n)
    log_l, i = _planted_lr(codebook, jnp.asarray(sigma, jnp.result_type(float)), key, n,
                           check_positive_int("batch_size", batch_size))
    log_l = np.asarray(log_l, np.float64)
    i = np.asarray(i, np.float64)
    v = np.maximum(-np.expm1(-log_l), 0.0)
    e = (i > codebook.log_num_codewords).astype(np.float64)
    return PlantedTV(float(v.mean()), float(v.std(ddof=1) / math.sqrt(n)), float(e.mean()),
                     float(e.std(ddof=1) / math.sqrt(n)))


__all__ = [
    "BOTTOM", "Decoded", "HashedTest", "PlantedDensity", "PlantedTV",
    "capacity", "dispersion", "conditional_dispersion", "snr", "tv_prediction",
    "decode", "decoder_false_alarm", "tv_lower_bound", "hashed_chi2", "window_profile",
    "planted_information_density", "information_density_moments", "tv_planted",
    "codebook_logit",
]
