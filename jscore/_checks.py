"""Helpers for structural input checks (ValueError/TypeError at call time, never under trace)."""

from __future__ import annotations

import numbers

import jax
import numpy as np


def concrete(x):
    """``x`` as a NumPy array when its value is known at trace time, else ``None``."""
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return np.asarray(x)
    except Exception:  # pragma: no cover - abstract values of unusual kinds
        return None


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an int, got {value!r} of type {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")
    return int(value)


def check_option(name: str, value, allowed) -> str:
    if value not in allowed:
        raise ValueError(
            f"Unknown `{name}`={value!r}; choose one of {', '.join(repr(a) for a in allowed)}."
        )
    return value


def check_range(name: str, value, lo=None, hi=None, *, lo_open=False, hi_open=False, fix=""):
    """Check a possibly-array knob when it is concrete; traced values pass through."""
    v = concrete(value)
    if v is None:
        return
    if np.any(np.isnan(v)):
        raise ValueError(f"`{name}` must not be NaN, got {v}.")
    bad = np.zeros(v.shape, bool)
    if lo is not None:
        bad |= (v <= lo) if lo_open else (v < lo)
    if hi is not None:
        bad |= (v >= hi) if hi_open else (v > hi)
    if np.any(bad):
        lo_s = "" if lo is None else ("(" if lo_open else "[") + f"{lo}"
        hi_s = "" if hi is None else f"{hi}" + (")" if hi_open else "]")
        rng = f"{lo_s or '(-inf'}, {hi_s or 'inf)'}"
        raise ValueError(f"`{name}` must lie in {rng}, got {v}.{(' ' + fix) if fix else ''}")
