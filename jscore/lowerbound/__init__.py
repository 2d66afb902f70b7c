"""The lower-bound lab (lower_bound.md): hard instance, adversary, audit and honest metrics."""

from .bessel import bessel_ratio as bessel_ratio
from .bessel import bessel_ratio_derivative as bessel_ratio_derivative
from .bessel import log_bessel_mgf as log_bessel_mgf
from .bessel import log_bessel_mgf_and_ratio as log_bessel_mgf_and_ratio
from .audit import AuditResult as AuditResult
from .audit import audit as audit
from .audit import audit_grid as audit_grid
from .audit import critical_sigma as critical_sigma
