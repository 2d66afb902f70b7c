"""Admissibility audit of a score oracle on a codebook instance (docs/construction.md §5).

For each sigma of a log-spaced grid (default: 41 values from sigma_c/30 to 30 sigma_c, sigma_c =
rho / sqrt(exp(2 R-bar) - 1)) draw ``n`` planted points ``x = y_J + sigma z`` and measure
``e = |O(x, sigma) - s_P(x, sigma)|``::

    lp_error = mean(e^p)^{1/p}
    upper    = (mean(e^p) + 3 sd(e^p) / sqrt(n))^{1/p}          (asserted <= eps)

For an :class:`~jscore.oracles.LRAdversary` the empirical masses ``lambda_hat = P(L < lambda)``,
``eta_hat = P(band fails)`` and the bound ``eps/2 + B (lambda_hat + eta_hat)^{1/p}`` are logged too.
The audit checks the implementation; the certificate is the proof of section 5.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_positive_int

logger = logging.getLogger("jscore.lowerbound")


def critical_sigma(rate, rho=1.0):
    """``sigma_c(R) = rho / sqrt(exp(2R) - 1)`` where the capacity ``C(sigma) = R``."""
    return rho / np.sqrt(np.expm1(2.0 * np.asarray(rate, dtype=np.float64)))


def audit_grid(codebook, num: int = 41, lo: float = 1 / 30, hi: float = 30.0, include=()):
    """Log-spaced sigma grid from ``lo*sigma_c`` to ``hi*sigma_c`` (``num`` points) plus ``include``.

    ``sigma_c`` uses the codebook's effective rate log(M)/d and its ``rho``. Pass the sampler's
    ``sigma_min`` and ``sigma_max`` in ``include`` (section 5, step 1). Returns sorted float64.
    """
    num = check_positive_int("num", num, minimum=2)
    sc = float(critical_sigma(codebook.effective_rate, float(codebook.rho)))
    grid = np.geomspace(lo * sc, hi * sc, num)
    extra = np.asarray([float(s) for s in include if float(s) > 0], dtype=np.float64)
    return np.unique(np.concatenate([grid, extra]))


@dataclasses.dataclass(frozen=True)
class AuditResult:
    """Per-sigma audit table (NumPy arrays of shape ``(S,)``; ``p`` a float)."""

    sigma: np.ndarray
    p: float
    eps: float
    n: int
    lp_error: np.ndarray
    upper: np.ndarray
    max_error: np.ndarray
    informative: np.ndarray  # fraction of planted points answered informatively
    lambda_hat: np.ndarray  # P(L < lambda) (NaN if the oracle has no LR test)
    eta_hat: np.ndarray  # P(band fails)
    bound: np.ndarray  # B (lambda_hat + eta_hat)^{1/p} + eps/2 (NaN if not an LRAdversary)
    B: np.ndarray

    @property
    def passed(self) -> np.ndarray:
        """``upper <= eps`` per sigma."""
        return self.upper <= self.eps

    @property
    def ok(self) -> bool:
        """True if the upper confidence bound is <= eps at every audited sigma."""
        return bool(np.all(self.passed))

    @property
    def margin(self) -> float:
        """``max_sigma upper / eps`` (< 1 means the audit passed everywhere)."""
        return float(np.max(self.upper) / self.eps)

    def rows(self):
        """Column names and the ``(S, 9)`` table (one row per sigma) behind ``to_csv``/``format``."""
        names = ["sigma", "lp_error", "upper", "max_error", "informative", "lambda_hat", "eta_hat",
                 "bound", "B"]
        return names, np.stack([getattr(self, k) for k in names], axis=1)

    def to_csv(self, path):
        """Write the per-sigma table to ``path`` as CSV (header names p, eps and n)."""
        names, table = self.rows()
        header = ",".join(names) + f"  # p={self.p} eps={self.eps} n={self.n}"
        np.savetxt(path, table, delimiter=",", header=header, comments="")

    def format(self) -> str:
        """The per-sigma table as aligned text, one line per sigma."""
        names, table = self.rows()
        lines = [f"audit p={self.p:g} eps={self.eps:g} n={self.n}: " + " ".join(
            f"{k:>11s}" for k in names)]
        for row in table:
            lines.append(" " * 10 + " ".join(f"{v:11.4g}" for v in row))
        return "\n".join(lines)


def _oracle_eval(oracle, codebook):
    """Per-point evaluator (x, sigma, key) -> (O, s_P, informative, lr_fail, band_fail)."""
    from ..oracles.adversary import LRAdversary

    if isinstance(oracle, LRAdversary):

        def f(x, sigma, key):
            a = oracle.answer(x, sigma)
            prm = oracle.parameters(sigma, x.dtype)
            return a.score, a.exact, a.informative, a.log_lr < prm.log_lambda, ~a.in_band

        return f

    def f(x, sigma, key):
        state = oracle.init(key, codebook.dim)
        out, _ = oracle.query(x, sigma, state)
        ex = codebook.score(x, sigma)
        false = jnp.zeros((), bool)
        return out, ex, false, false, false

    return f


@eqx.filter_jit
def _audit_one_sigma(oracle, codebook, sigma, key, n, batch):
    f = _oracle_eval(oracle, codebook)
    kx, ko = jax.random.split(key)
    x = codebook.sample_noised(kx, sigma, n)
    keys = jax.random.split(ko, n)

    def one(args):
        xi, ki = args
        out, ex, inf, lrf, bf = f(xi, sigma, ki)
        return jnp.sqrt(jnp.sum((out - ex) ** 2)), inf, lrf, bf

    return jax.lax.map(one, (x, keys), batch_size=batch)


def audit(oracle, codebook, sigmas=None, p=None, n: int = 10_000, key=None, *, eps=None,
          batch_size: int = 256, log: bool = True) -> AuditResult:
    """Audit ``|O - s_P|_{L^p(P_sigma)} <= eps`` on a sigma grid (section 5).

    **Arguments:**
    - ``oracle``: any jscore oracle answering in the codebook's dimension (an ``LRAdversary``
      also gets its masses logged).
    - ``codebook``: the :class:`~jscore.targets.SphereCodebook`/``GaussianCodebook`` that defines
      ``P`` (the truth ``s_P``).
    - ``sigmas``: grid; default :func:`audit_grid` (41 values, sigma_c/30 .. 30 sigma_c).
    - ``p``: exponent (default ``oracle.p``); ``n``: planted points per sigma (>= 1e4 for the
      mandatory audit); ``key``: PRNG key (default ``key(0)``).
    - ``eps``: accuracy to check (default ``oracle.eps``).

    **Returns:** :class:`AuditResult`; ``result.ok`` says whether ``upper <= eps`` at every sigma.
    """
    from ..oracles.adversary import LRAdversary

    n = check_positive_int("n", n)
    batch_size = check_positive_int("batch_size", batch_size)
    if oracle.dim is not None and oracle.dim != codebook.dim:
        raise ValueError(f"oracle answers in dimension {oracle.dim}, codebook has {codebook.dim}.")
    if p is None:
        if not hasattr(oracle, "p"):
            raise ValueError("Pass `p` (this oracle has no `p` attribute).")
        p = float(oracle.p)
    p = float(p)
    if not p >= 1:
        raise ValueError(f"`p` must be >= 1, got {p}.")
    if eps is None:
        if not hasattr(oracle, "eps"):
            raise ValueError("Pass `eps` (this oracle has no `eps` attribute).")
        eps = float(oracle.eps)
    eps = float(eps)
    if sigmas is None:
        sigmas = audit_grid(codebook)
    sigmas = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if sigmas.size == 0 or np.any(~(sigmas > 0)):
        raise ValueError("`sigmas` must be a non-empty list of positive noise levels.")
    key = jax.random.key(0) if key is None else key
    is_adv = isinstance(oracle, LRAdversary)
    dtype = jnp.result_type(float)
    cols = {k: [] for k in ("lp", "up", "mx", "inf", "lam", "eta", "bound", "B")}
    for i, s in enumerate(sigmas):
        e, inf, lrf, bf = _audit_one_sigma(oracle, codebook, jnp.asarray(s, dtype),
                                           jax.random.fold_in(key, i), n, batch_size)
        e = np.asarray(e, np.float64)
        ep = e**p
        m = ep.mean()
        sd = ep.std(ddof=1) if n > 1 else 0.0
        cols["lp"].append(m ** (1 / p))
        cols["up"].append((m + 3 * sd / math.sqrt(n)) ** (1 / p))
        cols["mx"].append(e.max())
        cols["inf"].append(np.mean(np.asarray(inf)))
        if is_adv:
            B = float(oracle.parameters(s, dtype).bound)
            lam, eta = np.mean(np.asarray(lrf)), np.mean(np.asarray(bf))
            cols["lam"].append(lam)
            cols["eta"].append(eta)
            cols["B"].append(B)
            cols["bound"].append(eps / 2 + B * (lam + eta) ** (1 / p))
        else:
            for k in ("lam", "eta", "B", "bound"):
                cols[k].append(np.nan)
    res = AuditResult(
        sigma=sigmas, p=p, eps=eps, n=n,
        lp_error=np.asarray(cols["lp"]), upper=np.asarray(cols["up"]),
        max_error=np.asarray(cols["mx"]), informative=np.asarray(cols["inf"]),
        lambda_hat=np.asarray(cols["lam"]), eta_hat=np.asarray(cols["eta"]),
        bound=np.asarray(cols["bound"]), B=np.asarray(cols["B"]),
    )
    if log:
        logger.info("%s", res.format())
        logger.info("audit %s: max upper/eps = %.4g", "passed" if res.ok else "FAILED", res.margin)
    return res


__all__ = ["audit", "audit_grid", "critical_sigma", "AuditResult"]
