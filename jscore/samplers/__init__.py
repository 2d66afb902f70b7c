"""How to move down the sigma grid. Every sampler works on one chain; ``js.sample`` batches."""

from .ancestral import DDIM as DDIM
from .ancestral import EulerAncestral as EulerAncestral
from .base import AbstractFixedStepSampler as AbstractFixedStepSampler
from .base import AbstractSampler as AbstractSampler
from .euler import Euler as Euler
from .heun import Heun as Heun
from .sde import EulerMaruyama as EulerMaruyama
from .catalogue import CATALOGUE as CATALOGUE
from .catalogue import make as make
from .exponential import ExponentialIntegrator as ExponentialIntegrator
from .dpm_solver import DPMSolver as DPMSolver
from .dpm_solver import DPMSolverPP as DPMSolverPP
from .unipc import UniPC as UniPC
from .dpmpp_sde import DPMSolverPPMultistepSDE as DPMSolverPPMultistepSDE
from .dpmpp_sde import DPMSolverPPSinglestepSDE as DPMSolverPPSinglestepSDE
from .ancestral_2s import DPM2Ancestral as DPM2Ancestral
from .ancestral_2s import DPMSolverPP2SAncestral as DPMSolverPP2SAncestral
from .lms import LMS as LMS
from .langevin import PredictorCorrector as PredictorCorrector
from .langevin import AnnealedLangevin as AnnealedLangevin
from .midpoint import RandomizedMidpoint as RandomizedMidpoint
from .picard import ParallelPicard as ParallelPicard
from .adaptive import Adaptive as Adaptive
from .controls import SingleLevel as SingleLevel
