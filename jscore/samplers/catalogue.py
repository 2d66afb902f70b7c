"""Named sampler configurations used by the CLI, the demo and sweeps.

``CATALOGUE`` maps a short name to a zero-argument factory. ``make("heun", s_churn=40)`` builds
one with keyword overrides. Add new samplers here to make them available everywhere.
"""

from __future__ import annotations

from .ancestral import DDIM, EulerAncestral
from .euler import Euler
from .heun import Heun
from .sde import EulerMaruyama

CATALOGUE = {
    "euler": Euler,
    "heun": Heun,
    "euler_ancestral": EulerAncestral,
    "ddim": DDIM,
    "euler_maruyama": EulerMaruyama,
}


def make(name: str, **kwargs):
    """Build the catalogue sampler ``name`` with keyword overrides of its fields."""
    try:
        factory = CATALOGUE[name]
    except KeyError:
        raise ValueError(
            f"Unknown sampler {name!r}; available: {', '.join(sorted(CATALOGUE))}."
        ) from None
    try:
        return factory(**kwargs)
    except TypeError as e:
        raise TypeError(f"Bad options {kwargs} for sampler {name!r}: {e}") from None


__all__ = ["CATALOGUE", "make"]
