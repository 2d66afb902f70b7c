"""Data distributions whose noised score is known in closed form."""

from .base import AbstractTarget as AbstractTarget
from .gaussian import Gaussian as Gaussian
from .mixture import GaussianMixture as GaussianMixture
