"""Re-export of :mod:`jscore.special` (the sphere's log-mgf and mean cosine), where the Bessel
functions now live so that ``jscore.targets`` can import them without importing the lab."""

from ..special import *  # noqa: F403
from ..special import __all__ as __all__
from ..special import _regime1 as _regime1  # noqa: F401  (used by jscore.lowerbound.informative)
