"""Versions and device facts recorded with every result (rows, checkpoints, summaries).

:func:`versions` is what produced a file (package versions, Python); :func:`environment` adds
where it ran (device, processes, host, x64, ``EQX_ON_ERROR``, command line). Every experiment,
checkpoint and CLI command records these two dicts, so results can be compared across runs.
"""

from __future__ import annotations

import os
import platform
import sys


def versions() -> dict:
    """``{"jscore", "jax", "jaxlib", "equinox", "numpy", "python"}``: version strings."""
    import equinox
    import jax
    import jaxlib
    import numpy as np

    from . import __version__

    return {
        "jscore": __version__,
        "jax": jax.__version__,
        "jaxlib": getattr(jaxlib, "__version__", "?"),
        "equinox": equinox.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def environment(devices=None) -> dict:
    """``{"versions", "device", "x64", "eqx_on_error", "argv"}`` for a run on ``devices``.

    ``devices``: the devices the run uses (default: this process's local devices); ``device``
    holds the backend and kind of the first, their number, the process index and count, the host.
    """
    import jax

    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("environment: devices must hold at least one device, got an empty list")
    dev = devices[0]
    return {
        "versions": versions(),
        "device": {
            "backend": dev.platform,
            "device_kind": getattr(dev, "device_kind", str(dev)),
            "num_devices": len(devices),
            "process_index": jax.process_index(),
            "num_processes": jax.process_count(),
            "host": platform.node(),
        },
        "x64": bool(jax.config.jax_enable_x64),
        "eqx_on_error": os.environ.get("EQX_ON_ERROR", "raise"),
        "argv": list(sys.argv),
    }


def barrier(name: str) -> None:
    """Wait until every process of a ``jax.distributed`` run reaches the barrier ``name``
    (``multihost_utils.sync_global_devices``: an all-gather over every process's devices, so it
    also checks that all processes run the same experiment); a no-op in a single process."""
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


__all__ = ["barrier", "environment", "versions"]
