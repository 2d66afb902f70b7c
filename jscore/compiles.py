"""Count XLA compilations and the seconds spent in them, through ``jax.monitoring``.

JAX records a duration event each time it hands a program to the backend compiler
(``/jax/core/compile/backend_compile_duration`` in jax 0.4-0.12) and for the tracing and lowering
that precede it. :class:`CompileCounter` listens to those events while it is open::

    with CompileCounter() as cc:
        run_sweep()
    print(cc.summary())          # "12 compilations, 30.1 s compiling"

A count is the number of backend compile requests: a program served from the persistent
compilation cache still counts (its seconds are then the cache retrieval time). One listener is
registered once per process and dispatches to every open counter (counters may nest).

:func:`setup_compilation_cache` turns on JAX's persistent compilation cache in a private folder
(:func:`default_cache_dir`), so a second run skips most compiling.
Ground floor: imports only the standard library and jax.
"""

from __future__ import annotations

import os
import stat
import threading

import jax

# Event names across jax versions: matched by suffix, so a renamed prefix still counts.
_COMPILE_SUFFIXES = ("backend_compile_duration", "backend_compile_time")
_TRACE_SUFFIXES = ("jaxpr_trace_duration", "jaxpr_to_mlir_module_duration")

_lock = threading.Lock()
_open: list["CompileCounter"] = []
_registered = False


def _kind(event: str) -> str | None:
    if event.endswith(_COMPILE_SUFFIXES):
        return "compile"
    if event.endswith(_TRACE_SUFFIXES):
        return "trace"
    return None


def _listener(event, duration, *args, **kwargs):
    kind = _kind(str(event))
    if kind is None:
        return
    with _lock:
        for c in _open:
            c._record(kind, float(duration))


def _ensure_registered() -> None:
    global _registered
    with _lock:
        if not _registered:
            jax.monitoring.register_event_duration_secs_listener(_listener)
            _registered = True


class CompileCounter:
    """Context manager: XLA compilations and seconds while open.

    Attributes: ``compilations`` (int, backend compile requests), ``compile_s`` (float, seconds in
    the backend compiler), ``trace_s`` (float, seconds tracing and lowering to MLIR).
    """

    def __init__(self):
        self.compilations = 0
        self.compile_s = 0.0
        self.trace_s = 0.0

    def _record(self, kind: str, duration: float) -> None:
        if kind == "compile":
            self.compilations += 1
            self.compile_s += duration
        else:
            self.trace_s += duration

    def __enter__(self) -> "CompileCounter":
        _ensure_registered()
        with _lock:
            _open.append(self)
        return self

    def __exit__(self, *exc) -> None:
        with _lock:
            if self in _open:
                _open.remove(self)

    def as_dict(self) -> dict:
        """``{"compilations": int, "compile_s": float, "trace_s": float}`` (JSON-ready)."""
        return {"compilations": int(self.compilations), "compile_s": float(self.compile_s),
                "trace_s": float(self.trace_s)}

    def summary(self) -> str:
        """One log line: ``"N compilations, S s compiling"``."""
        return f"{self.compilations} compilations, {self.compile_s:.1f} s compiling"


def default_cache_dir() -> str:
    base = os.environ.get("JSCORE_CACHE_DIR")
    if base:
        return base
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "jscore", "xla")


def setup_compilation_cache(path: str | None = "default") -> str | None:
    """Turn on JAX's persistent compilation cache in a private directory (mode 0700).

    JAX treats the cache as trusted code, so a directory that others can write is refused.
    ``path=None`` leaves the cache as it is. Returns the directory used.
    """
    import jax

    try:
        from jax.experimental.compilation_cache.compilation_cache import reset_cache
    except ImportError:  # pragma: no cover - older/newer layouts: the setting applies at first use
        reset_cache = None
    if path is None:
        return None
    if path == "default":
        path = default_cache_dir()
    path = os.path.abspath(os.path.expanduser(path))
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.stat(path)
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise ValueError(f"compilation cache {path!r} belongs to another user; pick a private directory.")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ValueError(
            f"compilation cache {path!r} is writable by others (mode {oct(st.st_mode & 0o777)}); "
            f"JAX runs what it finds there. Run `chmod 700 {path}` or pick another directory."
        )
    if jax.config.jax_compilation_cache_dir != path:
        jax.config.update("jax_compilation_cache_dir", path)
        if reset_cache is not None:
            reset_cache()
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 1)
    return path


__all__ = ["CompileCounter", "default_cache_dir", "setup_compilation_cache"]
