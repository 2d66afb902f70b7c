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
from .deis import DEIS as DEIS
from .dpm_singlestep import DPMSolverSinglestep as DPMSolverSinglestep
from .sde_dpm_solver import SDEDPMSolverPP as SDEDPMSolverPP
from .pndm import IPNDM as IPNDM
from .pndm import PNDM as PNDM
from .langevin import PredictorCorrector as PredictorCorrector
from .langevin import AnnealedLangevin as AnnealedLangevin
from .midpoint import RandomizedMidpoint as RandomizedMidpoint
from .picard import ParallelPicard as ParallelPicard
from .adaptive import Adaptive as Adaptive
from .controls import SingleLevel as SingleLevel
