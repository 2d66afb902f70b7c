"""What answers a score query."""

from .base import AbstractOracle as AbstractOracle
from .exact import Exact as Exact
from .noisy import Noisy as Noisy
from .noisy import NoisyState as NoisyState
from .network import Network as Network
from .exact import Reference as Reference
from .adversary import LRAdversary as LRAdversary
