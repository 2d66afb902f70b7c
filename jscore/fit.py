"""Log-log slope fits with a bootstrap interval that says what it covers.

:func:`loglog_slope` fits ``log y = a + b log x`` by least squares and returns a :class:`SlopeFit`:
the slope ``b``, the intercept ``a`` and a percentile-bootstrap interval for ``b``. Every experiment
that reports a scaling exponent (Q*(d) in the sampler sweeps, K*(d) and N(d) in the lower-bound
sweep) fits it here, so the interval means the same thing everywhere; ``SlopeFit.covers`` spells
it out.

Two sources of uncertainty can enter the interval:

- **scatter across the measured points** (``method="pairs"``): resample the ``(x, y)`` pairs with
  replacement and refit. This is the sampling variability of the slope across the dimensions that
  were measured; it needs at least three distinct ``x``.
- **Monte-Carlo error of each point** (``log_se``, the standard error of each ``log y``): every
  replicate also adds ``N(0, log_se_i^2)`` to ``log y_i`` (``method="pairs+noise"``, or
  ``"noise"`` alone with two points). This is conservative when combined with pairs: the scatter
  already contains part of that noise.

Neither covers model error (the law not being a power law, e.g. a log factor).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

#: What the interval of each ``SlopeFit.method`` covers.
_COVERS = COVERS = {
    "pairs": ("pairs bootstrap over the (x, y) points: sampling variability of the fitted slope across the "
              "measured points; not Monte-Carlo error of each y, not model error"),
    "pairs+noise": ("pairs bootstrap over the (x, y) points plus Gaussian Monte-Carlo error of each log y "
                    "(log_se): scatter across the measured points and per-point Monte-Carlo error "
                    "(conservative); not model error"),
    "noise": ("Gaussian Monte-Carlo error of each log y (log_se) at the measured points: per-point "
              "Monte-Carlo error only; not scatter across points, not model error"),
    "none": "no interval: fewer than 3 points and no log_se (or fewer than 2 points)",
}


@dataclasses.dataclass(frozen=True)
class SlopeFit:
    """A least-squares fit ``log y = intercept + slope log x`` with a bootstrap interval for ``slope``.

    ``ci_low``/``ci_high`` are the ``(1 - level)/2`` and ``(1 + level)/2`` percentiles of the
    bootstrap slopes (NaN when ``method == "none"``); ``n`` is the number of finite points used;
    ``n_boot`` the number of non-degenerate replicates; ``covers`` says what the interval covers.
    """

    slope: float
    intercept: float
    ci_low: float
    ci_high: float
    level: float
    n: int
    method: str
    covers: str
    n_boot: int = 0

    def to_dict(self, prefix: str = "slope") -> dict:
        """Flat record for tables: ``slope``, ``intercept``, ``slope_ci_low`` ... ``slope_ci_covers``."""
        return {
            prefix: self.slope,
            "intercept": self.intercept,
            f"{prefix}_ci_low": self.ci_low,
            f"{prefix}_ci_high": self.ci_high,
            f"{prefix}_ci_level": self.level,
            f"{prefix}_ci_method": self.method,
            f"{prefix}_ci_covers": self.covers,
            "num_points": self.n,
        }


def _ols(lx, ly):
    """Slopes and intercepts of ``ly`` on ``lx`` along the last axis (NaN where ``lx`` is constant)."""
    xm = lx.mean(-1, keepdims=True)
    ym = ly.mean(-1, keepdims=True)
    sxx = ((lx - xm) ** 2).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        b = np.where(sxx > 0, ((lx - xm) * (ly - ym)).sum(-1) / np.where(sxx > 0, sxx, 1.0), np.nan)
    a = ym[..., 0] - b * xm[..., 0]
    return b, a


def loglog_slope(x, y, *, log_se=None, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> SlopeFit:
    """Fit ``log y = a + b log x`` and a percentile-bootstrap interval for ``b``.

    **Arguments:**
    - ``x``, ``y``: positive values, shape ``(n,)``; pairs where either log is not finite are dropped.
    - ``log_se``: optional standard error of each ``log y``, shape ``(n,)``, finite and >= 0.
    - ``n_boot``: bootstrap replicates (>= 1); ``seed``: NumPy seed; ``level``: in ``(0, 1)``.

    Replicates: ``idx = default_rng(seed).integers(0, n, (n_boot, n))`` resamples pairs (when
    ``n >= 3``), then ``log y`` gets ``log_se * z`` with ``z`` standard normal (when ``log_se`` is
    given); replicates with constant ``x`` are dropped. See the module docstring for what each
    ``method`` covers.
    """
    if not isinstance(n_boot, (int, np.integer)) or isinstance(n_boot, bool) or n_boot < 1:
        raise ValueError(f"n_boot must be an integer >= 1, got {n_boot!r}")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}; e.g. level=0.95")
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x and y must be 1-D of the same length, got shapes {x.shape} and {y.shape}")
    se = None
    if log_se is not None:
        se = np.asarray(log_se, np.float64)
        if se.shape != x.shape or not np.all(np.isfinite(se)) or np.any(se < 0):
            raise ValueError(f"log_se must be finite, >= 0 and of shape {x.shape}, got {log_se!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        lx, ly = np.log(x), np.log(y)
    ok = np.isfinite(lx) & np.isfinite(ly)
    lx, ly = lx[ok], ly[ok]
    se = se[ok] if se is not None else None
    n = int(lx.size)
    nan = math.nan
    if n < 2 or np.ptp(lx) == 0:
        return SlopeFit(nan, nan, nan, nan, float(level), n, "none", _COVERS["none"])
    b, a = _ols(lx, ly)
    pairs = n >= 3
    if not pairs and se is None:
        return SlopeFit(float(b), float(a), nan, nan, float(level), n, "none", _COVERS["none"])
    method = ("pairs+noise" if se is not None else "pairs") if pairs else "noise"
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, (n_boot, n)) if pairs else np.broadcast_to(np.arange(n), (n_boot, n))
    bx, by = lx[idx], ly[idx]
    if se is not None:
        by = by + se[idx] * rng.standard_normal((n_boot, n))
    bs, _ = _ols(bx, by)
    bs = bs[np.isfinite(bs)]
    alpha = (1.0 - float(level)) / 2.0
    lo, hi = np.quantile(bs, [alpha, 1.0 - alpha])
    return SlopeFit(float(b), float(a), float(lo), float(hi), float(level), n, method, _COVERS[method], int(bs.size))


__all__ = ["COVERS", "SlopeFit", "loglog_slope"]
