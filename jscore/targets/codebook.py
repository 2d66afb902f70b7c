"""Hard-instance targets of the lower-bound lab: uniform laws on random codebooks (docs/construction.md §3).

``P = Unif{y_1, ..., y_M}``, ``P_sigma = P * N(0, sigma^2 I)``. With logits
``l_j(x) = (<x, y_j> - |y_j|^2/2) / sigma^2`` and ``w = softmax(l)``::

    denoise(x, sigma)  = sum_j w_j y_j
    score(x, sigma)    = (sum_j w_j y_j - x) / sigma^2
    log_prob(x, sigma) = logsumexp_j l_j - log M - |x|^2/(2 sigma^2) - (d/2) log(2 pi sigma^2)

For :class:`SphereCodebook` all ``|y_j| = r`` and the norm term is dropped from the logits (it cancels).
Every quantity comes from ONE pass over the codebook in blocks of ``block_size`` codewords with a
streaming log-sum-exp (running max, rescaled partial sums and weighted codeword sums), so the
per-query memory is ``O(block_size + d)`` whatever M is (M ~ 1e7 runs; the codebook itself takes
``M d`` floats). The matmul uses ``Precision.HIGHEST``. Cost ``O(M d)`` per query.

- :class:`SphereCodebook`: codewords i.i.d. uniform on ``S_r``, ``r = rho sqrt(d)``; reference
  ``Q = Unif(S_r)`` (:class:`~jscore.targets.UniformSphere`).
- :class:`GaussianCodebook`: codewords i.i.d. ``N(0, rho^2 I)``; reference ``Q = N(0, rho^2 I)``.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import as_real, check_positive_int, check_range
from ..typing import Key, Sample, Score, Sigma
from .base import AbstractTarget
from .gaussian import Gaussian
from .sphere import UniformSphere, log_bessel_mgf_and_ratio

DEFAULT_BLOCK_SIZE = 16384
_GEN_BLOCK = 1 << 18
_HIGHEST = jax.lax.Precision.HIGHEST


class CodebookPass(NamedTuple):
    """Result of one streaming pass over the codebook for one point.

    ``lse``: ``logsumexp_j l_j``; ``mean``: ``sum_j softmax(l)_j y_j`` ``(d,)``; ``index``: argmax_j
    ``l_j`` (int32); ``max_logit``: ``max_j l_j``.
    """

    lse: jax.Array
    mean: jax.Array
    index: jax.Array
    max_logit: jax.Array


def stream_codebook(x, codebook, scale, row_bias=None, row_scale=None, *, block_size=None,
                    want_mean=True) -> CodebookPass:
    """One blockwise pass computing ``l_j = scale * (row_scale_j <x, y_j> + row_bias_j)``.

    **Arguments:** ``x`` ``(d,)``; ``codebook`` ``(M, d)``; ``scale`` scalar; optional ``row_bias``
    and ``row_scale`` ``(M,)``; ``block_size`` (static; ``None`` or ``>= M``: one shot).
    Returns a :class:`CodebookPass` (``mean`` is zeros when ``want_mean=False``). Exact in exact
    arithmetic for any block size; the last block is clamped to ``[M - B, M)`` and its rows already
    counted are masked, so no padding copy of the codebook is made.
    """
    M, d = codebook.shape
    dtype = x.dtype
    scale = jnp.asarray(scale, dtype)

    def logits_of(Y, bias, rs):
        dots = jnp.matmul(Y.astype(dtype), x, precision=_HIGHEST)
        if rs is not None:
            dots = dots * rs.astype(dtype)
        if bias is not None:
            dots = dots + bias.astype(dtype)
        return scale * dots

    B = M if block_size is None else min(int(block_size), M)
    if B >= M:
        l = logits_of(codebook, row_bias, row_scale)
        mx = jnp.max(l)
        e = jnp.exp(l - mx)
        s = jnp.sum(e)
        mean = (jnp.matmul(e, codebook.astype(dtype), precision=_HIGHEST) / s) if want_mean else (
            jnp.zeros((d,), dtype))
        return CodebookPass(mx + jnp.log(s), mean, jnp.argmax(l).astype(jnp.int32), mx)

    nb = -(-M // B)
    offs = jnp.arange(B, dtype=jnp.int32)

    def body(b, carry):
        m, s, acc, bi, bv = carry
        lo = b * B
        start = jnp.minimum(lo, M - B)
        Y = jax.lax.dynamic_slice_in_dim(codebook, start, B, axis=0)
        bias = None if row_bias is None else jax.lax.dynamic_slice_in_dim(row_bias, start, B)
        rs = None if row_scale is None else jax.lax.dynamic_slice_in_dim(row_scale, start, B)
        idx = start + offs
        l = jnp.where(idx >= lo, logits_of(Y, bias, rs), -jnp.inf)
        k = jnp.argmax(l)
        bm = l[k]
        new_m = jnp.maximum(m, bm)
        c = jnp.exp(m - new_m)
        e = jnp.exp(l - new_m)
        s = s * c + jnp.sum(e)
        if want_mean:
            acc = acc * c + jnp.matmul(e, Y.astype(dtype), precision=_HIGHEST)
        better = bm > bv
        return new_m, s, acc, jnp.where(better, idx[k], bi), jnp.where(better, bm, bv)

    init = (
        jnp.full((), -jnp.inf, dtype),
        jnp.zeros((), dtype),
        jnp.zeros((d,), dtype),
        jnp.zeros((), jnp.int32),
        jnp.full((), -jnp.inf, dtype),
    )
    m, s, acc, bi, bv = jax.lax.fori_loop(0, nb, body, init)
    mean = acc / s if want_mean else acc
    return CodebookPass(m + jnp.log(s), mean, bi, bv)


_float_array = as_real


def _num_codewords(dim: int, rate) -> int:
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise TypeError(f"`rate` must be a Python float, got {type(rate).__name__}.")
    if not rate > 0:
        raise ValueError(f"`rate` must be > 0 (nats per dimension), got {rate}.")
    logm = rate * dim
    if logm > math.log(2**31 - 1):
        raise ValueError(
            f"rate * dim = {logm:.1f} gives M = ceil(exp({logm:.1f})) codewords, beyond the int32 "
            "index range; lower `rate` or `dim` (exact codebooks are feasible only for M <~ 1e8)."
        )
    return max(1, math.ceil(math.exp(logm)))


def _check_block(block_size):
    if block_size is None:
        return None
    return check_positive_int("block_size", block_size)


def _check_sigma_positive(sigma):
    check_range("sigma", sigma, lo=0.0, lo_open=True,
                fix="Codebook scores need sigma > 0 (the clean law is a set of atoms).")


class _Codebook(AbstractTarget):
    codebook: jax.Array
    rho: jax.Array
    rate: jax.Array
    block_size: int | None = eqx.field(static=True)

    @property
    def dim(self) -> int:
        return self.codebook.shape[1]

    @property
    def num_codewords(self) -> int:
        """M."""
        return self.codebook.shape[0]

    @property
    def log_num_codewords(self) -> float:
        """log M (a Python float)."""
        return math.log(self.num_codewords)

    @property
    def effective_rate(self) -> float:
        """R-bar = log(M)/d, the rate to use in every formula."""
        return self.log_num_codewords / self.dim

    # -- hooks
    def _row_bias(self):
        return None

    def _pass(self, x, sigma, want_mean=True) -> CodebookPass:
        sigma = jnp.asarray(sigma, x.dtype)
        return stream_codebook(x, self.codebook, 1.0 / (sigma * sigma), self._row_bias(),
                               block_size=self.block_size, want_mean=want_mean)

    def posterior(self, x: Sample, sigma: Sigma) -> CodebookPass:
        """One pass: log-sum-exp of the logits, posterior mean, best index and best logit."""
        return self._pass(x, sigma)

    def denoise(self, x: Sample, sigma: Sigma) -> Sample:
        return self._pass(x, sigma).mean

    def score(self, x: Sample, sigma: Sigma) -> Score:
        sigma = jnp.asarray(sigma, x.dtype)
        return (self._pass(x, sigma).mean - x) / (sigma * sigma)

    def _log_prob_from_lse(self, x, sigma, lse):
        s2 = sigma * sigma
        const = self._norm_const(x.dtype)
        return (lse - self.log_num_codewords - (jnp.sum(x * x) + const) / (2 * s2)
                - 0.5 * self.dim * jnp.log(2 * math.pi * s2))

    def _norm_const(self, dtype):
        return jnp.zeros((), dtype)

    def log_prob(self, x: Sample, sigma: Sigma):
        """``log p_sigma(x)``, a scalar (``sigma > 0``)."""
        sigma = jnp.asarray(sigma, x.dtype)
        return self._log_prob_from_lse(x, sigma, self._pass(x, sigma, want_mean=False).lse)

    def log_likelihood_ratio(self, x: Sample, sigma: Sigma):
        """``log L_sigma(x) = log (dP_sigma / dQ_sigma)(x)`` against :attr:`reference`."""
        sigma = jnp.asarray(sigma, x.dtype)
        return self.log_prob(x, sigma) - self.reference.log_prob(x, sigma)

    def sample_indices(self, key: Key, n: int):
        """``n`` uniform codeword indices ``J``, int32 ``(n,)``."""
        n = check_positive_int("n", n)
        return jax.random.randint(key, (n,), 0, self.num_codewords, dtype=jnp.int32)

    def sample(self, key: Key, n: int):
        """``n`` exact draws of P (codewords), ``(n, d)``."""
        return self.codebook[self.sample_indices(key, n)]

    def sample_noised_with_index(self, key: Key, sigma: Sigma, n: int):
        """Planted pairs: ``(y_J + sigma z, J)`` with ``J ~ Unif[M]``, shapes ``(n, d)``, ``(n,)``."""
        kj, kz = jax.random.split(key)
        j = self.sample_indices(kj, n)
        sigma = jnp.asarray(sigma, self.codebook.dtype)
        z = jax.random.normal(kz, (n, self.dim), self.codebook.dtype)
        return self.codebook[j] + sigma * z, j

    def sample_noised(self, key: Key, sigma: Sigma, n: int):
        """``n`` exact draws of ``P_sigma``: ``y_J + sigma z``, ``(n, d)``."""
        return self.sample_noised_with_index(key, sigma, n)[0]

    def nearest(self, x: Sample):
        """Nearest codeword by cosine: ``(index, max_j cos(x, y_j))`` (streaming argmax)."""
        norm = jnp.sqrt(jnp.sum(x * x))
        inv_row = 1.0 / jnp.linalg.norm(self.codebook, axis=-1).astype(x.dtype)
        res = stream_codebook(x, self.codebook, 1.0, None, inv_row, block_size=self.block_size,
                              want_mean=False)
        return res.index, res.max_logit / jnp.maximum(norm, jnp.finfo(x.dtype).tiny)


def _generate(key, M, d, dtype, make_block):
    blocks = []
    for b in range(-(-M // _GEN_BLOCK)):
        rows = min(_GEN_BLOCK, M - b * _GEN_BLOCK)
        blocks.append(make_block(jax.random.fold_in(key, b), rows, d, dtype))
    return blocks[0] if len(blocks) == 1 else jnp.concatenate(blocks, axis=0)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _sphere_block(key, rows, d, dtype):
    g = jax.random.normal(key, (rows, d), dtype)
    return g / jnp.linalg.norm(g, axis=-1, keepdims=True)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _gauss_block(key, rows, d, dtype):
    return jax.random.normal(key, (rows, d), dtype)


class SphereCodebook(_Codebook):
    """Uniform law on ``M`` codewords of common norm ``r`` (the hard family of section 3.1).

    ``SphereCodebook(codebook)`` takes explicit codewords ``(M, d)`` of one common norm (relative
    spread <= 1e-4, else ValueError); ``SphereCodebook.random(key, dim, rate, rho)`` draws
    ``M = ceil(exp(rate dim))`` i.i.d. uniform points on the sphere of radius ``rho sqrt(dim)``.
    Attributes: ``codebook``, ``radius`` (r), ``rho`` (r/sqrt d), ``rate`` (nominal R; R-bar =
    log(M)/d for an explicit codebook), ``effective_rate``, ``num_codewords``.

    Extra closed forms: ``log_likelihood_ratio(x, sigma) = lse_j(<x,y_j>/sigma^2) - log M -
    Lambda_d(r|x|/sigma^2)`` against the reference ``UniformSphere(d, r)``.
    """

    radius: jax.Array

    def __init__(self, codebook, *, rate=None, block_size: int | None = DEFAULT_BLOCK_SIZE):
        cb = _float_array(codebook)
        if cb.ndim != 2 or cb.shape[0] < 1 or cb.shape[1] < 1:
            raise ValueError(f"`codebook` must have shape (M, d) with M, d >= 1, got {cb.shape}.")
        norms = np.linalg.norm(np.asarray(cb, dtype=np.float64), axis=-1)
        r = float(np.mean(norms))
        if not r > 0 or np.max(np.abs(norms - r)) > 1e-4 * r:
            raise ValueError(
                "SphereCodebook needs codewords of one common norm (relative spread <= 1e-4); got "
                f"norms in [{norms.min():.6g}, {norms.max():.6g}]. Normalise them (r * y/|y|) or "
                "use GaussianCodebook."
            )
        self.codebook = cb
        self.radius = _float_array(r)
        self.rho = _float_array(r / math.sqrt(cb.shape[1]))
        self.rate = _float_array(math.log(cb.shape[0]) / cb.shape[1] if rate is None else rate)
        self.block_size = _check_block(block_size)

    @classmethod
    def random(cls, key: Key, dim: int, rate: float, rho: float = 1.0, *,
               block_size: int | None = DEFAULT_BLOCK_SIZE) -> "SphereCodebook":
        """``M = ceil(exp(rate * dim))`` i.i.d. uniform codewords on ``S_r``, ``r = rho sqrt(dim)``.

        Generated in blocks of 2^18 rows, block b from ``fold_in(key, b)``.
        """
        dim = check_positive_int("dim", dim)
        check_range("rho", rho, lo=0.0, lo_open=True)
        M = _num_codewords(dim, rate)
        r = float(rho) * math.sqrt(dim)
        dtype = jnp.result_type(float)
        cb = _generate(key, M, dim, dtype, _sphere_block) * jnp.asarray(r, dtype)
        return cls(cb, rate=rate, block_size=block_size)

    @property
    def reference(self) -> UniformSphere:
        """``Q = Unif(S_r)``."""
        return UniformSphere(self.dim, self.radius)

    def _norm_const(self, dtype):
        r = self.radius.astype(dtype)
        return r * r

    def log_likelihood_ratio(self, x: Sample, sigma: Sigma):
        sigma = jnp.asarray(sigma, x.dtype)
        res = self._pass(x, sigma, want_mean=False)
        return self.log_lr_from_lse(x, sigma, res.lse)

    def log_lr_from_lse(self, x, sigma, lse):
        """``log L = lse - log M - Lambda_d(r|x|/sigma^2)`` from a pass's log-sum-exp."""
        r = self.radius.astype(x.dtype)
        kappa = r * jnp.sqrt(jnp.sum(x * x)) / (sigma * sigma)
        lam = log_bessel_mgf_and_ratio(kappa, self.dim)[0]
        return lse - self.log_num_codewords - lam

    def nearest(self, x: Sample):
        """Nearest codeword by cosine: ``(index, max_j cos(x, y_j))``."""
        norm = jnp.sqrt(jnp.sum(x * x))
        res = stream_codebook(x, self.codebook, 1.0, block_size=self.block_size, want_mean=False)
        r = self.radius.astype(x.dtype)
        return res.index, res.max_logit / (r * jnp.maximum(norm, jnp.finfo(x.dtype).tiny))


class GaussianCodebook(_Codebook):
    """Uniform law on ``M`` codewords drawn i.i.d. from ``N(0, rho^2 I)`` (section 3.4).

    Logits keep the norm term: ``l_j = (<x, y_j> - |y_j|^2/2)/sigma^2``. Reference
    ``Q = N(0, rho^2 I)`` (``Q_sigma = N(0, (rho^2 + sigma^2) I)``). ``radius`` is the nominal
    ``rho sqrt(d)``; ``max_norm`` the largest codeword norm.
    """

    radius: jax.Array
    half_sq_norms: jax.Array
    max_norm: jax.Array

    def __init__(self, codebook, *, rho=None, rate=None,
                 block_size: int | None = DEFAULT_BLOCK_SIZE):
        cb = _float_array(codebook)
        if cb.ndim != 2 or cb.shape[0] < 1 or cb.shape[1] < 1:
            raise ValueError(f"`codebook` must have shape (M, d) with M, d >= 1, got {cb.shape}.")
        M, d = cb.shape
        sq = jnp.sum(cb * cb, axis=-1)
        if rho is None:  # the maximum-likelihood scale of N(0, rho^2 I)
            rho = float(jnp.sqrt(jnp.mean(sq) / d))
        check_range("rho", rho, lo=0.0, lo_open=True)
        self.codebook = cb
        self.half_sq_norms = 0.5 * sq
        self.max_norm = jnp.sqrt(jnp.max(sq))
        self.rho = _float_array(rho)
        self.radius = _float_array(float(rho) * math.sqrt(d))
        self.rate = _float_array(math.log(M) / d if rate is None else rate)
        self.block_size = _check_block(block_size)

    @classmethod
    def random(cls, key: Key, dim: int, rate: float, rho: float = 1.0, *,
               block_size: int | None = DEFAULT_BLOCK_SIZE) -> "GaussianCodebook":
        """``M = ceil(exp(rate * dim))`` i.i.d. ``N(0, rho^2 I)`` codewords."""
        dim = check_positive_int("dim", dim)
        check_range("rho", rho, lo=0.0, lo_open=True)
        M = _num_codewords(dim, rate)
        dtype = jnp.result_type(float)
        cb = _generate(key, M, dim, dtype, _gauss_block) * jnp.asarray(rho, dtype)
        return cls(cb, rho=rho, rate=rate, block_size=block_size)

    @property
    def reference(self) -> Gaussian:
        """``Q = N(0, rho^2 I)``."""
        return Gaussian.isotropic(self.dim, 0.0, self.rho * self.rho)

    def _row_bias(self):
        return -self.half_sq_norms

    def log_lr_from_lse(self, x, sigma, lse):
        """``log L = log p_sigma(x) - log q_sigma(x)`` from a pass's log-sum-exp."""
        rho2 = self.rho.astype(x.dtype) ** 2
        s2 = sigma * sigma
        n2 = jnp.sum(x * x)
        log_q = -0.5 * n2 / (rho2 + s2) - 0.5 * self.dim * jnp.log(2 * math.pi * (rho2 + s2))
        return self._log_prob_from_lse(x, sigma, lse) - log_q


__all__ = ["SphereCodebook", "GaussianCodebook", "CodebookPass", "stream_codebook"]
