"""jscore: diffusion-model sampling as a score-oracle problem, in JAX.

The supported API is what this file and the sub-packages' ``__init__`` files re-export.
Convention: ``x_sigma = x0 + sigma z``; ``score(x, sigma) = grad_x log p_sigma(x)``.
"""

__version__ = "0.1.0"

from . import ou as ou
from . import schedules as schedules
from . import seeds as seeds
from . import counting as counting
from . import targets as targets
from . import oracles as oracles
from . import samplers as samplers
from . import metrics as metrics
from .counting import QueryStats as QueryStats
from .results import Record as Record
from .results import Result as Result
from .results import Status as Status
from .results import Trace as Trace
from .results import summarize as summarize
from .sampling import sample as sample
from .sampling import sample_one as sample_one
from . import sweeps as sweeps
from . import plot as plot
from .sweeps import sweep as sweep
from . import nets as nets
from . import train as train
from . import lowerbound as lowerbound
