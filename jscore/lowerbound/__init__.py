"""The lower-bound lab (docs/construction.md): hard instance, adversary, audit and honest metrics."""

from .bessel import bessel_ratio as bessel_ratio
from .bessel import bessel_ratio_derivative as bessel_ratio_derivative
from .bessel import log_bessel_mgf as log_bessel_mgf
from .bessel import log_bessel_mgf_and_ratio as log_bessel_mgf_and_ratio
from .audit import AuditResult as AuditResult
from .audit import audit as audit
from .audit import audit_grid as audit_grid
from .metrics import decode as decode
from .metrics import decoder_false_alarm as decoder_false_alarm
from .metrics import hashed_chi2 as hashed_chi2
from .metrics import information_density_moments as information_density_moments
from .metrics import planted_information_density as planted_information_density
from .metrics import tv_lower_bound as tv_lower_bound
from .metrics import tv_planted as tv_planted
from .metrics import tv_prediction as tv_prediction
from .metrics import window_profile as window_profile
# large-d simulation without a codebook (sections 6-8): issue 6
from . import scaling as scaling  # callable: js.lowerbound.scaling(...) runs the sqrt(d) sweep
from .caps import cap_threshold as cap_threshold
from .caps import log_cap as log_cap
from .informative import guard_threshold as guard_threshold
from .informative import informative_probability as informative_probability
from .informative import informative_terms as informative_terms
from .informative import informative_sides as informative_sides
from .informative import informative_bounds as informative_bounds
from .informative import QuerySides as QuerySides
from .informative import log_vmf_lower_tail_bound as log_vmf_lower_tail_bound
from .informative import profile as informative_profile
from .informative import window_edges as window_edges
from .scalar import scalar_spec as scalar_spec
from .scalar import simulate as simulate_scalar
from .trajectory import RecordingOracle as RecordingOracle
from .trajectory import TrajectoryBounds as TrajectoryBounds
from .trajectory import assemble as assemble_trajectory
from .trajectory import reference_run as reference_run
from . import exact_experiments as exact_experiments
from . import validation as validation
