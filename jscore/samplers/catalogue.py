"""Named sampler configurations used by the CLI, the demo and sweeps.

``CATALOGUE`` maps a short name to a zero-argument factory. ``make("heun", s_churn=40)`` builds
one with keyword overrides. Add new samplers here to make them available everywhere.
"""

from __future__ import annotations

from functools import partial

from .ancestral import DDIM, EulerAncestral
from .euler import Euler
from .heun import Heun
from .sde import EulerMaruyama

from .adaptive import Adaptive
from .ancestral_2s import DPM2Ancestral, DPMSolverPP2SAncestral
from .controls import SingleLevel
from .deis import DEIS
from .dpm_singlestep import DPMSolverSinglestep
from .dpm_solver import DPMSolver, DPMSolverPP
from .dpmpp_sde import DPMSolverPPMultistepSDE, DPMSolverPPSinglestepSDE
from .exponential import ExponentialIntegrator
from .langevin import AnnealedLangevin, PredictorCorrector
from .lms import LMS
from .midpoint import RandomizedMidpoint
from .picard import ParallelPicard
from .pndm import IPNDM, PNDM
from .unipc import UniPC

CATALOGUE = {
    "euler": Euler,
    "heun": Heun,
    "euler_ancestral": EulerAncestral,
    "ddim": DDIM,
    "euler_maruyama": EulerMaruyama,
    # docs/sampler_reference.md §5-13; data-dependent ones (adaptive, picard) need max_queries
    "exponential_integrator": ExponentialIntegrator,
    "ei_relative": partial(ExponentialIntegrator, form="relative"),
    "dpm_solver_2": partial(DPMSolver, order=2),
    "dpm_solver_3": partial(DPMSolver, order=3),
    "dpmpp_2m": partial(DPMSolverPP, order=2),
    # the peers' (diffusers, k-diffusion, DPM-Solver code) 3M coefficient c3 = 1 under their name;
    # the exact Taylor coefficient c3 = 2 as dpmpp_3m_exact (trade-off: DPMSolverPP docstring)
    "dpmpp_3m": partial(DPMSolverPP, order=3, reference_coeffs=True),
    "dpmpp_3m_exact": partial(DPMSolverPP, order=3),
    # k-diffusion's samplers under k-diffusion's names
    "dpmpp_2m_sde": partial(DPMSolverPPMultistepSDE, order=2, solver_type="midpoint"),
    "dpmpp_2m_sde_heun": partial(DPMSolverPPMultistepSDE, order=2, solver_type="heun"),
    "dpmpp_3m_sde": partial(DPMSolverPPMultistepSDE, order=3),
    "dpmpp_2s_ancestral": DPMSolverPP2SAncestral,
    "dpmpp_sde": DPMSolverPPSinglestepSDE,
    "dpm_2_ancestral": DPM2Ancestral,
    "lms": partial(LMS, order=4),
    "dpmpp_2m_heun": partial(DPMSolverPP, order=2, solver_type="heun"),
    # diffusers' DEIS, singlestep DPM-Solver++, SDE-DPM-Solver++ and (i)PNDM schedulers
    "deis_2": partial(DEIS, order=2),
    "deis_3": partial(DEIS, order=3),
    "dpmpp_2s": partial(DPMSolverSinglestep, order=2),
    "dpmpp_3s": partial(DPMSolverSinglestep, order=3),
    "dpmpp_2s_heun": partial(DPMSolverSinglestep, order=2, solver_type="heun"),
    "dpmpp_3s_heun": partial(DPMSolverSinglestep, order=3, solver_type="heun"),
    # diffusers' SDE-DPM-Solver++ 2M is k-diffusion's dpmpp_2m_sde (eta = 1): one class, both names
    "sde_dpmpp_2m": partial(DPMSolverPPMultistepSDE, order=2, solver_type="midpoint"),
    "ipndm": IPNDM,
    "pndm": PNDM,
    "unipc": partial(UniPC, order=2),
    "unipc_3": partial(UniPC, order=3),
    "pc": PredictorCorrector,
    "annealed_langevin": partial(AnnealedLangevin, steps_per_level=2, snr=0.16),
    "randomized_midpoint": RandomizedMidpoint,
    "randomized_midpoint_parallel": partial(RandomizedMidpoint, num_points=4, picard_iters=2),
    "parallel_picard": partial(ParallelPicard, window=8, tol=0.1),
    "adaptive": partial(Adaptive, order=2),
    "adaptive_3": partial(Adaptive, order=3),
    "adaptive_ggf": partial(Adaptive, pair="ggf"),
    "single_level": partial(SingleLevel, sigma=0.5, steps=10),
}


def make(name: str, **kwargs):
    """Build the catalogue sampler ``name`` with keyword overrides of its fields."""
    if not isinstance(name, str):
        raise TypeError(
            f"`name` must be a sampler name (str), got {name!r} of type {type(name).__name__}; "
            f"available: {', '.join(sorted(CATALOGUE))}."
        )
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
