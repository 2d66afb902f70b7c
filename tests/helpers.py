"""Test helpers: Monte-Carlo tolerances derived from standard errors."""

from __future__ import annotations

import numpy as np


def assert_within_se(estimate, expected, se, k: float = 5.0, what: str = "estimate"):
    """Assert ``|estimate - expected| <= k * se`` elementwise.

    With a Gaussian sampling distribution, k = 5 has a two-sided false-alarm rate of 5.7e-7 per
    comparison, so a failure means a real discrepancy, not bad luck. Keys are fixed, so tests are
    deterministic; the SE bound keeps them valid when keys change.
    """
    estimate, expected, se = (np.asarray(a, dtype=np.float64) for a in (estimate, expected, se))
    dev = np.abs(estimate - expected)
    bad = dev > k * se
    if np.any(bad):
        raise AssertionError(
            f"{what}: |estimate - expected| exceeds {k} standard errors at {int(bad.sum())} "
            f"entries; worst deviation {np.max(dev / np.maximum(se, 1e-300)):.2f} SE "
            f"(estimate {estimate[bad][:5] if estimate.ndim else estimate}, expected "
            f"{expected[bad][:5] if expected.ndim else expected})."
        )


def mean_se(x, axis=0):
    """Mean and its standard error sd / sqrt(n) along ``axis``."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[axis]
    return x.mean(axis), x.std(axis, ddof=1) / np.sqrt(n)


def var_se(x, axis=0):
    """Unbiased variance and its standard error under normality, ``var * sqrt(2 / (n - 1))``."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[axis]
    v = x.var(axis, ddof=1)
    return v, v * np.sqrt(2.0 / (n - 1))
