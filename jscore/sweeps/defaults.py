"""The embedded sweeps: ``default_spec()`` is the sqrt(d) lower-bound sweep (what ``jscore sweep``
runs without a config); ``gaussian_steps_spec()`` is the steps-to-error sweep (``jscore sweep
gaussian-steps-vs-d``).

Steps-to-error against d on an isotropic Gaussian target ``N(0, I)`` with the exact oracle, in the
closed-form KL of the output law (metric ``kl_affine``): first-order samplers (Euler) need about
``d^(1/2)`` steps for a fixed KL, second-order ones (Heun, DPM-Solver++(2M)) about ``d^(1/4)``,
because the per-coordinate KL of an order-p method is ``O(h^(2p))`` and KL adds over coordinates.
DPM-Solver++ joins when the samplers catalogue has it.

``gaussian_stochastic_steps_spec()`` (``jscore sweep gaussian-stochastic-steps-vs-d``) is the same
experiment for stochastic samplers, in metric ``kl_gauss`` (the same closed form with the noise
variance estimated from the chains, so a Monte-Carlo estimate with standard error ``kl_gauss_se``).
Its standard error near the target is about ``0.32 / sqrt(n)`` whatever d, hence 256 seeds.
"""

from __future__ import annotations

from .lowerbound import LowerBoundSweep
from .registry import find_sampler_name
from .spec import SweepSpec

DEFAULT_TARGET_KL = 0.05


def default_spec() -> LowerBoundSweep:
    """The default sweep (``jscore sweep``): the codebook-free sqrt(d) lower-bound sweep, d = 1e2
    ... 1e6, Euler, Euler ancestral and Heun against the adversary's coupling (docs/construction.md §6-8).
    """
    return LowerBoundSweep()


def gaussian_steps_spec() -> SweepSpec:
    """The steps-to-error sweep (``jscore sweep gaussian-steps-vs-d``): Euler, Heun and DPM-Solver++(2M) on
    ``N(0, I_d)``, d = 16..4096, 16 seeds, Q* for ``kl_affine <= 0.05`` by bisection over steps."""
    samplers = ["euler", "heun"]
    dpmpp = find_sampler_name("DPMSolverPP", order=2) or find_sampler_name("DPMSolverPP")
    if dpmpp is not None:
        samplers.append(dpmpp)
    return SweepSpec(
        name="gaussian-steps-vs-d",
        samplers=samplers,
        targets=["gaussian:mean=0.0,var=1.0"],
        oracles=["exact"],
        schedules=["karras:sigma_min=0.002,sigma_max=80.0,rho=7.0"],
        dims="16-4096:x4",
        seeds="0-15",
        chunk=16,
        metrics=["kl_affine"],
        qstar={"metric": "kl_affine", "target": DEFAULT_TARGET_KL, "search": "bisect", "steps": (2, 1024)},
        bootstrap=200,
    )


def gaussian_stochastic_steps_spec() -> SweepSpec:
    """The stochastic steps-to-error sweep (``jscore sweep gaussian-stochastic-steps-vs-d``): Euler
    ancestral, Euler-Maruyama and DPM-Solver++(2M) SDE on ``N(0, I_d)``, d = 16..4096, 256 seeds, Q* for
    ``kl_gauss <= 0.05`` by bisection over steps (bootstrap over seeds for the Q* interval)."""
    samplers = [s for s in ("euler_ancestral", "euler_maruyama", "dpmpp_2m_sde") if _in_catalogue(s)]
    return gaussian_steps_spec().replace(  # the same target, oracle, schedule and dimensions
        name="gaussian-stochastic-steps-vs-d",
        samplers=samplers,
        seeds="0-255",
        chunk=64,
        metrics=["kl_gauss", "kl_gauss_se"],
        qstar={"metric": "kl_gauss", "target": DEFAULT_TARGET_KL, "search": "bisect", "steps": (2, 4096)},
    )


def _in_catalogue(name: str) -> bool:
    from ..samplers.catalogue import CATALOGUE

    return name in CATALOGUE


BUILTIN_SPECS = {
    "lowerbound-sqrt-d": default_spec,
    "gaussian-steps-vs-d": gaussian_steps_spec,
    "gaussian-stochastic-steps-vs-d": gaussian_stochastic_steps_spec,
}


__all__ = ["default_spec", "gaussian_steps_spec", "gaussian_stochastic_steps_spec", "BUILTIN_SPECS", "DEFAULT_TARGET_KL"]
