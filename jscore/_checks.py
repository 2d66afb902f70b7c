"""Helpers for structural input checks (ValueError/TypeError at call time, never under trace)."""

from __future__ import annotations

import dataclasses
import numbers
import os

import jax
import jax.numpy as jnp
import numpy as np

#: Largest count a per-chain int32 ledger can hold (queries, budgets, steps).
INT32_MAX = 2**31 - 1


def concrete(x):
    """``x`` as a NumPy array when its value is known at trace time, else ``None``."""
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return np.asarray(x)
    except Exception:  # pragma: no cover - abstract values of unusual kinds
        return None


def _kind(x):
    """NumPy dtype kind of ``x`` ('f', 'i', 'b', 'c', 'U', 'O', ...), or None if it has none."""
    if isinstance(x, (str, bytes)):
        return "U"
    if x is None:
        return "O"
    if isinstance(x, bool):
        return "b"
    dtype = getattr(x, "dtype", None)
    if dtype is not None:
        return np.dtype(dtype).kind
    try:
        return np.asarray(x).dtype.kind
    except Exception:  # ragged lists and other unconvertible values
        return "O"


def is_real(x) -> bool:
    """True for a real (integer or floating, not bool) number or array, traced or concrete."""
    return _kind(x) in ("i", "u", "f")


def as_real(x):
    """Converter for numeric module fields: a real number/array -> array of the default float dtype.

    Anything else (a string, a bool, a complex number, None) is returned unchanged, so that the
    module's ``__check_init__`` (:func:`check_real_fields`) can reject it naming the field.
    """
    if not is_real(x):
        return x
    dtype = jnp.result_type(float)
    v = concrete(x)
    if v is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            cast = v.astype(dtype)
        if np.any(np.isfinite(v) & ~np.isfinite(cast)):
            return _TooLarge(v)  # refused by check_real_fields, naming the field
    return jnp.asarray(x, dtype=dtype)


class _TooLarge:
    """Marker left by :func:`as_real` for a finite value that overflows the float dtype."""

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return repr(self.value)


def check_real(name: str, value, *, fix: str = ""):
    """TypeError unless ``value`` is a real number or array (bools, strings, complex, None refused)."""
    if not is_real(value):
        raise TypeError(
            f"`{name}` must be a real number or array of real numbers, got {value!r} of type "
            f"{type(value).__name__}.{(' ' + fix) if fix else ''}"
        )


def check_real_fields(module, *, scalar: bool = False) -> None:
    """Check a module's fields at construction, naming the field on failure.

    - fields converted by :func:`as_real`: real-valued (no bool, str, complex, None), never NaN;
    - static fields annotated ``bool``: a real bool (``"False"`` or ``0`` refused);
    - static fields annotated ``int``: an int, not a bool or a float such as ``2.0``;
    - with ``scalar=True`` (samplers), numeric fields must be scalars (vmap to sweep them).
    """
    for f in dataclasses.fields(module):
        value = getattr(module, f.name)
        where = f"{type(module).__name__}(`{f.name}`)"
        if f.metadata.get("converter") is as_real:
            if isinstance(value, _TooLarge):
                raise ValueError(
                    f"{where} = {value} does not fit in {np.dtype(jnp.result_type(float)).name}; "
                    "use a smaller value or enable jax_enable_x64."
                )
            if not is_real(value):
                raise TypeError(
                    f"{where} must be a real number or array, got {value!r} of type "
                    f"{type(value).__name__}; pass e.g. {f.name}=0.5."
                )
            v = concrete(value)
            if v is not None and np.any(np.isnan(v)):
                raise ValueError(f"{where} must not be NaN, got {v}.")
            if scalar and np.shape(value) != ():
                raise ValueError(
                    f"{where} must be a scalar, got shape {np.shape(value)}; vmap over samplers "
                    "to sweep it."
                )
        elif f.metadata.get("static") and f.type in ("bool", bool):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{where} must be True or False, got {value!r} of type {type(value).__name__}.")
        elif f.metadata.get("static") and f.type in ("int", int):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{where} must be an int, got {value!r} of type {type(value).__name__}.")


def check_bool(name: str, value) -> bool:
    """TypeError unless ``value`` is a bool (``"False"`` or 0 are not accepted)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False, got {value!r} of type {type(value).__name__}.")
    return bool(value)


def check_positive_int(name: str, value, minimum: int = 1, maximum: int = INT32_MAX) -> int:
    """An int in ``[minimum, maximum]`` (bools and floats such as ``2.0`` are refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an int, got {value!r} of type {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")
    if value > maximum:
        raise ValueError(f"`{name}` must be <= {maximum}, got {value}.")
    return int(value)


def _memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX hosts
        return None


def check_fits(what: str, nbytes: float, fix: str) -> None:
    """ValueError if an allocation of ``nbytes`` cannot fit in this host's physical memory."""
    total = _memory_bytes()
    if total is not None and nbytes > total:
        raise ValueError(
            f"{what} needs about {nbytes / 2**30:.3g} GiB, more than this machine's "
            f"{total / 2**30:.3g} GiB of memory; {fix}"
        )


def _category(x) -> str:
    """'bool', 'int', 'float', 'str' or the type name: so that True never passes for 1, nor 2.0 for 2."""
    if isinstance(x, (bool, np.bool_)):
        return "bool"
    if isinstance(x, numbers.Integral):
        return "int"
    if isinstance(x, numbers.Real):
        return "float"
    return type(x).__name__


def check_option(name: str, value, allowed) -> str:
    try:
        ok = value in allowed and _category(value) in {_category(a) for a in allowed}
    except TypeError:  # unhashable values
        ok = False
    if not ok:
        raise ValueError(
            f"Unknown `{name}`={value!r}; choose one of {', '.join(repr(a) for a in allowed)}."
        )
    return value


def check_scalar(name: str, value) -> None:
    """ValueError unless ``value`` is a scalar (0-d); traced scalars (under ``vmap``) pass."""
    shape = np.shape(value) if not hasattr(value, "shape") else value.shape
    if shape != ():
        raise ValueError(
            f"`{name}` must be a scalar, got shape {tuple(shape)}; vmap over it to sweep values."
        )


def check_range(name: str, value, lo=None, hi=None, *, lo_open=False, hi_open=False, fix="",
                allow_inf=False):
    """Check a possibly-array knob when it is concrete; traced values pass through.

    The value must be real (TypeError otherwise), not NaN, finite unless ``allow_inf``, and in the
    interval given by ``lo``/``hi``.
    """
    check_real(name, value, fix=fix)
    v = concrete(value)
    if v is None:
        return
    if np.any(np.isnan(v)):
        raise ValueError(f"`{name}` must not be NaN, got {v}.")
    if not allow_inf and np.any(np.isinf(v)):
        raise ValueError(f"`{name}` must be finite, got {v}.{(' ' + fix) if fix else ''}")
    dtype = jnp.result_type(float)
    if np.any(np.isfinite(v) & (np.abs(v.astype(np.float64)) > np.finfo(dtype).max)):
        raise ValueError(
            f"`{name}` = {v} does not fit in {np.dtype(dtype).name}; use a smaller value or enable "
            "jax_enable_x64."
        )
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


def parse_scalar(text: str):
    """A ``key=value`` option's value from text: ``true``/``false`` (any case) as bool, then int,
    then float, else the stripped string (``"40"`` -> 40, ``"0.5"`` -> 0.5, ``"ou"`` -> ``"ou"``)."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text.strip()

