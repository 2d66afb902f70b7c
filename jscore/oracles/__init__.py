"""What answers a score query."""

from .base import AbstractOracle as AbstractOracle
from .exact import Exact as Exact
from .exact import Reference as Reference
from .adversary import LRAdversary as LRAdversary
