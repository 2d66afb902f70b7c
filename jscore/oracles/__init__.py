"""What answers a score query."""

from .base import AbstractOracle as AbstractOracle
from .exact import Exact as Exact
