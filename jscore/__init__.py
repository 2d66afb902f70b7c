"""jscore: diffusion-model sampling as a score-oracle problem, in JAX.

The supported API is what this file and the sub-packages' ``__init__`` files re-export.
Convention: ``x_sigma = x0 + sigma z``; ``score(x, sigma) = grad_x log p_sigma(x)``.

Sub-packages and top-level names load on first use (PEP 562), so ``import jscore`` and
``jscore --help`` do not import JAX; ``js.sample``, ``js.targets`` ... import what they need.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# sub-modules reachable as attributes, in dependency order
_SUBMODULES = ("ou", "schedules", "seeds", "counting", "fit", "store", "special", "targets", "oracles",
               "samplers", "metrics", "sweeps", "plot", "nets", "train", "lowerbound", "data")
# top-level names: name -> (module, attribute)
_NAMES = {
    "QueryStats": ("counting", "QueryStats"),
    "Record": ("results", "Record"),
    "Result": ("results", "Result"),
    "Status": ("results", "Status"),
    "Trace": ("results", "Trace"),
    "summarize": ("results", "summarize"),
    "sample": ("sampling", "sample"),
    "sample_one": ("sampling", "sample_one"),
    "chain_block": ("sampling", "chain_block"),
    "sweep": ("sweeps", "sweep"),
}

__all__ = ["__version__", *_SUBMODULES, *_NAMES]


def __getattr__(name: str):
    if name in _NAMES:
        module, attr = _NAMES[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
