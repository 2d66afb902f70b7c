"""What answers a score query."""

from .base import AbstractOracle as AbstractOracle
from .exact import Exact as Exact
from .noisy import Noisy as Noisy
from .noisy import NoisyState as NoisyState
from .network import Network as Network
from .exact import Reference as Reference
from .adversary import LRAdversary as LRAdversary
from .function import Score as Score
from .function import Denoiser as Denoiser
from .adapters import Prediction as Prediction
from .adapters import EDM as EDM
from .adapters import ModelSchedule as ModelSchedule
from .adapters import DiscreteVP as DiscreteVP
from .adapters import LinearVP as LinearVP
from .adapters import CosineVP as CosineVP
from .adapters import Continuous as Continuous
from .nested_adversary import NestedAdversary as NestedAdversary
