"""Dimension sweeps at scale: specs, bucketed compilation, sharded and multi-process runs,
resumable results, Q*(d) with bootstrap CIs and log-log slopes.

``js.sweep(spec, out=...)`` runs a :class:`SweepSpec` (or a TOML file, see :func:`load_spec`);
``jscore sweep CONFIG`` is the command-line form. ``js.sweep(js.sweeps.LowerBoundSweep())`` (the
default of ``jscore sweep``) runs the codebook-free sqrt(d) lower-bound sweep instead, an
experiment of the unit protocol (:mod:`jscore.sweeps.protocol`).
"""

from .analysis import evaluations as evaluations
from .analysis import qstar_table as qstar_table
from .analysis import slopes as slopes
from .defaults import BUILTIN_SPECS as BUILTIN_SPECS
from .defaults import default_spec as default_spec
from .defaults import gaussian_steps_spec as gaussian_steps_spec
from .driver import SweepResult as SweepResult
from .driver import consolidate as consolidate
from .driver import setup_compilation_cache as setup_compilation_cache
from .driver import sweep as sweep
from .engine import ENGINE_STATS as ENGINE_STATS
from .engine import validate as validate
from .lowerbound import LowerBoundSweep as LowerBoundSweep
from .lowerbound import LowerBoundSweepResult as LowerBoundSweepResult
from .measures import MEASURES as MEASURES
from .padding import Masked as Masked
from .padding import next_pow2 as next_pow2
from .padding import pad_target as pad_target
from .registry import register_oracle as register_oracle
from .spec import Component as Component
from .spec import QStarSpec as QStarSpec
from .spec import SweepSpec as SweepSpec
from .spec import load_spec as load_spec
from .spec import parse_int_list as parse_int_list
from .protocol import EXPERIMENTS as EXPERIMENTS
from .protocol import Experiment as Experiment
from .protocol import experiment_of as experiment_of
from .protocol import register_experiment as register_experiment
from .protocol import run_experiment as run_experiment


def _register_builtin_experiments():
    from .lowerbound import register as register_lowerbound
    from .protocol import register_unit_experiment

    register_unit_experiment(SweepSpec, cli_overrides=("dims", "seeds", "chunk"))
    register_lowerbound()


_register_builtin_experiments()


def _register_exact_lab():
    from .exact_lab import ExactLab
    from .protocol import register_unit_experiment

    register_unit_experiment(ExactLab, legend="")


_register_exact_lab()
from .exact_lab import ExactLab as ExactLab  # noqa: E402


def _register_lowerbound_labs():
    from .certificate import ScheduleLab
    from .levels_lab import LevelsLab
    from .protocol import register_unit_experiment
    from .rounds_lab import RoundsLab

    register_unit_experiment(ScheduleLab, legend="", cli_overrides=())
    register_unit_experiment(LevelsLab, legend="", cli_overrides=())
    register_unit_experiment(RoundsLab, legend="", cli_overrides=())


_register_lowerbound_labs()
from .certificate import ScheduleLab as ScheduleLab  # noqa: E402
from .levels_lab import LevelsLab as LevelsLab  # noqa: E402
from .rounds_lab import RoundsLab as RoundsLab  # noqa: E402
