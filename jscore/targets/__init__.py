"""Data distributions whose noised score is known in closed form."""

from .base import AbstractTarget as AbstractTarget
from .gaussian import Gaussian as Gaussian
from .mixture import GaussianMixture as GaussianMixture
from .sphere import UniformSphere as UniformSphere
from .codebook import GaussianCodebook as GaussianCodebook
from .codebook import SphereCodebook as SphereCodebook
from .empirical import Empirical as Empirical
from .nested import NestedCodebook as NestedCodebook
