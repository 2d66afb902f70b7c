"""Error metrics between samples and targets, with standard errors where they are estimates.

Sample metrics take batches: ``samples`` of shape ``(n, d)`` or ``(n, *event_shape)`` (image-shaped
samples are flattened to ``(n, d)`` rows, ``d = prod(event_shape)``). Score-error metrics
(:func:`score_error`, :func:`score_error_profile`) measure an oracle against a target's exact score,
under the target's own noised law ``P_sigma`` or, with ``law=``, under another noised law ``Q_sigma``.
"""

from __future__ import annotations

import numbers
import statistics
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .oracles.base import in_shape


def gaussian_w2(mean_a, var_a, mean_b, var_b):
    """Closed-form W2 between diagonal Gaussians ``N(mean_a, diag var_a)`` and ``N(mean_b, diag var_b)``.

    ``W2^2 = |mean_a - mean_b|^2 + sum (sqrt(var_a) - sqrt(var_b))^2``. Shapes ``(d,)`` (or scalars).
    """
    ma, mb = jnp.asarray(mean_a), jnp.asarray(mean_b)
    sa, sb = jnp.sqrt(jnp.asarray(var_a)), jnp.sqrt(jnp.asarray(var_b))
    d = jnp.broadcast_shapes(ma.shape, mb.shape, sa.shape, sb.shape)
    w2sq = jnp.sum(jnp.broadcast_to((ma - mb) ** 2, d)) + jnp.sum(jnp.broadcast_to((sa - sb) ** 2, d))
    return jnp.sqrt(w2sq)


def flat_rows(samples):
    """``samples (n, *event_shape)`` as ``(n, d)`` rows (unchanged when already 2-D)."""
    x = samples if hasattr(samples, "reshape") else np.asarray(samples)
    if x.ndim < 2:
        raise ValueError(f"`samples` must have shape (n, d) or (n, *event_shape), got {x.shape}.")
    return x if x.ndim == 2 else x.reshape(x.shape[0], -1)


def moment_fit_w2(samples, mean, var):
    """W2 between the diagonal-Gaussian moment fit of ``samples (n, d)`` and ``N(mean, diag var)``
    (``mean``/``var`` flat ``(d,)`` or scalars)."""
    x = flat_rows(jnp.asarray(samples))
    return gaussian_w2(x.mean(0), x.var(0, ddof=1), mean, var)


def _mean_pair_dist(a, b, same: bool, block: int = 2048):
    # mean Euclidean distance over pairs (i != j when same), float64 on the host, in row blocks so
    # memory stays O(block * m)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    sq_b = np.sum(b * b, -1)
    total = 0.0
    for start in range(0, a.shape[0], block):
        rows = a[start : start + block]
        d2 = np.sum(rows * rows, -1)[:, None] + sq_b[None, :] - 2.0 * rows @ b.T
        if same:  # exclude i == j (U-statistic), whose value is rounding noise
            idx = np.arange(rows.shape[0])
            d2[idx, start + idx] = 0.0
        total += np.sqrt(np.maximum(d2, 0.0)).sum()
    n, m = a.shape[0], b.shape[0]
    return total / (n * (n - 1)) if same else total / (n * m)


def energy_distance(x, y):
    """Unbiased energy distance ``2 E|X-Y| - E|X-X'| - E|Y-Y'|`` between sample sets ``(n, d)``, ``(m, d)``.

    Zero in expectation when both sets come from the same law (U-statistics for the within terms);
    it can therefore be slightly negative. Computed on the host in float64, O(n m d) in blocks;
    returns a Python float.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim > 2 or y.ndim > 2:
        x, y = flat_rows(x), flat_rows(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(x.shape[0], y.shape[0]) < 2:
        raise ValueError(
            f"energy_distance needs (n, d) and (m, d) arrays with n, m >= 2, got {x.shape} and {y.shape}."
        )
    return float(
        2.0 * _mean_pair_dist(x, y, False) - _mean_pair_dist(x, x, True) - _mean_pair_dist(y, y, True)
    )


def mode_tv(samples, means, weights=None):
    """Total-variation distance between mode masses and ``weights``; samples go to the nearest mean.

    Returns ``(tv, se)`` where ``se`` is the delta-method standard error of the empirical masses'
    TV under multinomial sampling (a rough scale of the TV's sampling noise floor).
    """
    x = flat_rows(np.asarray(samples, dtype=np.float64))
    m = flat_rows(np.asarray(means, dtype=np.float64))
    k = m.shape[0]
    w = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, np.float64) / np.sum(weights)
    d2 = (x * x).sum(1)[:, None] - 2.0 * x @ m.T + (m * m).sum(1)[None, :]
    counts = np.bincount(np.argmin(d2, 1), minlength=k)
    p_hat = counts / x.shape[0]
    tv = 0.5 * np.abs(p_hat - w).sum()
    se = 0.5 * np.sqrt((w * (1 - w)).sum() / x.shape[0])
    return float(tv), float(se)


# --------------------------------------------------------------------------------------------
# Score error in L^p(p_sigma)


class ScoreError(NamedTuple):
    """Estimate of ``||S - s||_{L^p(q_sigma)} = (E_{x~q_sigma} |S(x, sigma) - s(x, sigma)|^p)^{1/p}``.

    ``q_sigma`` is the noised law the points were drawn from: the target's own ``p_sigma`` by
    default, ``law * N(0, sigma^2 I)`` when a ``law=`` was given. Fields are floats for
    :func:`score_error` and ``(L,)`` NumPy arrays for :func:`score_error_profile`: ``estimate``, the
    ``level`` confidence interval ``[lower, upper]``, the delta-method standard error ``se`` of the
    estimate, the settings ``sigma``, ``p``, ``n``, ``level``, and ``law``: ``"target"`` or the
    class name of the law the points came from.
    """

    estimate: Any
    lower: Any
    upper: Any
    se: Any
    sigma: Any
    p: float
    n: int
    level: float
    law: str = "target"


def _check_law(law, target):
    """``law`` (None: the target itself) as the target whose noised samples are drawn."""
    from .targets.base import AbstractTarget

    if law is None:
        return target
    if not isinstance(law, AbstractTarget):
        raise TypeError(
            f"`law` must be a jscore target whose noised samples are drawn (e.g. "
            f"js.targets.UniformSphere(d, r) as the reference Q of a SphereCodebook), or None for the "
            f"target's own law; got {type(law).__name__}."
        )
    if law.dim != target.dim:
        raise ValueError(
            f"`law` has dim {law.dim} but the target has dim {target.dim}; draw from a law on the same space."
        )
    return law


def _check_score_error_args(oracle, target, p, n, level):
    from .oracles.base import AbstractOracle
    from .targets.base import AbstractTarget

    if not isinstance(oracle, AbstractOracle):
        raise TypeError(f"`oracle` must be a jscore oracle, got {type(oracle).__name__}.")
    if not isinstance(target, AbstractTarget):
        raise TypeError(f"`target` must be a jscore target (the truth), got {type(target).__name__}.")
    if oracle.dim is not None and oracle.dim != target.dim:
        raise ValueError(
            f"The oracle answers in dim {oracle.dim} but the target has dim {target.dim}."
        )
    p = float(p)
    if not (1.0 <= p < np.inf):
        raise ValueError(f"`p` must satisfy 1 <= p < inf, got {p}.")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2:
        raise ValueError(f"`n` must be an int >= 2 (Monte-Carlo sample size), got {n!r}.")
    if not (0.0 < float(level) < 1.0):
        raise ValueError(f"`level` must lie in (0, 1), got {level}.")
    return p, int(n), float(level)


def _check_sigma_values(sigma, name):
    s = np.asarray(sigma, dtype=np.float64)
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError(f"`{name}` must be finite and > 0 (scores are queried at sigma > 0), got {s}.")
    return s


@eqx.filter_jit
def _draw_points(target, key, n):
    """Exact samples ``x0 (n, d)``, noise ``z (n, d)`` and per-sample oracle keys (kept apart from the
    oracle-specific jit so they compile once per target type and ``n``)."""
    from .seeds import DATA, ORACLE, stream

    kx, kz = jax.random.split(stream(key, DATA))
    x0 = target.sample(kx, n)
    z = jax.random.normal(kz, x0.shape, x0.dtype)
    okeys = jax.vmap(lambda j: jax.random.fold_in(stream(key, ORACLE), j))(jnp.arange(n))
    return x0, z, okeys


@eqx.filter_jit
def _error_norms(oracle, target, sigmas, x0, z, okeys, batch_size):
    """``|S(x_j, sigma) - s(x_j, sigma)|`` for ``x_j = x0_j + sigma z_j`` (``x0`` from the target or
    a ``law``); shape ``(L, n)``.

    Common random numbers across sigmas: the same ``x0_j``, ``z_j`` and oracle state keys; each
    ``x_j`` is queried once with a fresh oracle state ``oracle.init(okeys[j], d)``.
    """
    dim = target.dim
    n = x0.shape[0]
    oracle = in_shape(oracle, oracle.event_shape or (dim,))  # image-shaped oracles see their shape

    def at(sigma):
        def one(xj0, zj, kj):
            x = xj0 + sigma * zj
            s_hat, _ = oracle.query(x, sigma, oracle.init(kj, dim))
            return jnp.linalg.norm(s_hat - target.score(x, sigma))

        if batch_size >= n:
            return jax.vmap(one)(x0, z, okeys)
        return jax.lax.map(lambda a: one(*a), (x0, z, okeys), batch_size=batch_size)

    if batch_size >= n * sigmas.shape[0]:
        return jax.vmap(at)(sigmas)
    return jax.lax.map(at, sigmas)


def _summarise(r, p, level):
    """Estimate and CI of (mean r^p)^{1/p} from ``r (..., n)``, in float64 with a scale guard."""
    r = np.asarray(r, dtype=np.float64)
    n = r.shape[-1]
    scale = np.max(r, axis=-1, keepdims=True)
    scale = np.where(scale > 0, scale, 1.0)
    u = (r / scale) ** p
    m = u.mean(-1)
    sd = u.std(-1, ddof=1)
    z = statistics.NormalDist().inv_cdf(0.5 + 0.5 * level)
    se_m = sd / np.sqrt(n)
    sc = scale[..., 0]
    est = sc * m ** (1.0 / p)
    lower = sc * np.maximum(m - z * se_m, 0.0) ** (1.0 / p)
    upper = sc * (m + z * se_m) ** (1.0 / p)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.where(m > 0, sc * se_m * m ** (1.0 / p - 1.0) / p, 0.0)
    return est, lower, upper, se


def score_error(oracle, target, sigma, key, p=2, n: int = 4096, *, level: float = 0.95,
                batch_size: int | None = None, law=None) -> ScoreError:
    """Monte-Carlo estimate of an oracle's score error ``||S - s||_{L^p(p_sigma)}`` with a CI.

    ``x_j = x0_j + sigma z_j`` with ``x0_j`` exact target samples (``j < n``); each ``x_j`` is
    queried once with a fresh oracle state ``oracle.init(fold_in(stream(key, ORACLE), j), d)``
    (``x0_j`` and ``z_j`` come from ``stream(key, DATA)``),
    so random errors are averaged jointly with ``x``. The estimate is ``m^{1/p}`` with
    ``m = mean_j |S(x_j) - s(x_j)|^p``; the CI maps the normal CI ``m +- z se(m)`` through
    ``t -> t^{1/p}`` (clipped at 0), and ``se`` is the delta-method standard error
    ``se(m) m^{1/p - 1} / p``. Valid when ``|e|^p`` has a finite variance (``|e|^{2p}`` integrable).

    **Arguments:** ``oracle``; ``target`` (the truth, with its exact score); ``sigma > 0``;
    ``key``; ``p`` in ``[1, inf)``; ``n`` samples; ``level`` of the two-sided CI;
    ``batch_size``: at most this many queries are vmapped at once (memory bound; default 2^16);
    ``law``: a target on the same space whose exact samples replace the ``x0_j`` (None: ``target``),
    so the error is measured in ``L^p(law * N(0, sigma^2 I))``; the truth stays ``target.score``.

    **Returns:** a :class:`ScoreError` with float fields.
    """
    from .seeds import as_key

    p, n, level = _check_score_error_args(oracle, target, p, n, level)
    s = float(_check_sigma_values(sigma, "sigma"))
    prof = score_error_profile(oracle, target, [s], as_key(key), p, n, level=level, batch_size=batch_size,
                               law=law)
    return ScoreError(float(prof.estimate[0]), float(prof.lower[0]), float(prof.upper[0]),
                      float(prof.se[0]), s, p, n, level, prof.law)


def score_error_profile(oracle, target, sigmas, key, p=2, n: int = 4096, *, level: float = 0.95,
                        batch_size: int | None = None, law=None) -> ScoreError:
    """:func:`score_error` on a grid of levels ``sigmas (L,)`` (zeros are not allowed) in one jit.

    Uses common random numbers across levels, so entry ``i`` equals
    ``score_error(oracle, target, sigmas[i], key, p, n, law=law)``. ``law`` (a target on the same
    space, default ``target``) is the law whose noised samples are drawn, e.g.
    ``UniformSphere(d, r)`` to measure a ``SphereCodebook`` score under the reference ``Q_sigma``.
    Returns a :class:`ScoreError` whose
    ``estimate``, ``lower``, ``upper``, ``se`` and ``sigma`` are ``(L,)`` NumPy arrays.
    """
    from .seeds import as_key

    p, n, level = _check_score_error_args(oracle, target, p, n, level)
    draw = _check_law(law, target)
    s = _check_sigma_values(sigmas, "sigmas")
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"`sigmas` must be a non-empty 1-D array of levels, got shape {s.shape}.")
    bs = 1 << 16 if batch_size is None else int(batch_size)
    if bs < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    x0, z, okeys = _draw_points(draw, as_key(key), n)
    r = _error_norms(oracle, target, jnp.asarray(s, jnp.result_type(float)), x0, z, okeys, bs)
    est, lo, up, se = _summarise(r, p, level)
    return ScoreError(est, lo, up, se, s, p, n, level, "target" if law is None else type(law).__name__)


__all__ = [
    "gaussian_w2",
    "moment_fit_w2",
    "energy_distance",
    "mode_tv",
    "ScoreError",
    "score_error",
    "score_error_profile",
]
