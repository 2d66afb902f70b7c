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
