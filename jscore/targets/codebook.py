"""Hard-instance targets of the lower-bound lab: uniform laws on random codebooks (docs/construction.md §3).

``P = Unif{y_1, ..., y_M}``, ``P_sigma = P * N(0, sigma^2 I)``. With logits
``l_j(x) = (<x, y_j> - |y_j|^2/2) / sigma^2`` and ``w = softmax(l)``::

    denoise(x, sigma)  = sum_j w_j y_j
    score(x, sigma)    = (sum_j w_j y_j - x) / sigma^2
    log_prob(x, sigma) = logsumexp_j l_j - log M - |x|^2/(2 sigma^2) - (d/2) log(2 pi sigma^2)

For :class:`SphereCodebook` all ``|y_j| = r`` and the norm term is dropped from the logits (it cancels).
Every quantity comes from ONE fused pass over the codebook (:func:`stream_codebook`, the only
implementation; flash-attention style): ``lax.scan`` over blocks of ``block_size`` codewords with a
streaming log-sum-exp (running max, rescaled partial sums and weighted codeword sums), so ``n``
queries (batched, or one per chain under ``vmap``) take ``O(n (block_size + d))`` memory whatever
M is (M ~ 1e7 runs; the codebook itself takes ``M d`` floats). Matrix products at
``Precision.HIGHEST``. Cost ``4 M d`` flops per query (logits and weighted sum).

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

_CPU_BLOCK_SIZE = 512  # benchmarks/codebook_oracle.py: the n x B logits tile stays in cache
_ACCELERATOR_BLOCK_SIZE = 65536  # fewer, larger steps; to be tuned on a device


def default_block_size(backend: str | None = None) -> int:
    """Codewords per block of the fused pass for ``backend`` (default: jax's default backend).

    512 on CPU (fastest measured there: the ``n x 512`` logits tile stays in cache), 65536 on
    accelerators (fewer, larger kernel launches).
    """
    backend = jax.default_backend() if backend is None else backend
    return _CPU_BLOCK_SIZE if backend == "cpu" else _ACCELERATOR_BLOCK_SIZE
_GEN_BLOCK = 1 << 18
_HIGHEST = jax.lax.Precision.HIGHEST


class CodebookPass(NamedTuple):
    """Result of one streaming pass over the codebook, per query (leading axes of ``x``).

    ``lse``: ``logsumexp_j l_j``; ``mean``: ``sum_j softmax(l)_j y_j`` ``(..., d)``; ``index``:
    argmax_j ``l_j`` (int32, first on ties; zeros unless asked for); ``max_logit``: ``max_j l_j``.
    """

    lse: jax.Array
    mean: jax.Array
    index: jax.Array
    max_logit: jax.Array


def _block_update(state, X, Y, bias, rs, offset, *, want_mean, want_index, precision):
    """Fold codewords ``Y`` ``(B, d)`` (rows ``offset + [0, B)``) into the running state.

    ``state = (m, l, acc, idx)``: running max ``m`` ``(n,)``, ``l = sum_j exp(l_j - m)`` ``(n,)``,
    ``acc = sum_j exp(l_j - m) y_j`` ``(n, d)``, ``idx`` the argmax so far. ``X`` is pre-scaled.
    """
    m, l, acc, idx = state
    dtype = X.dtype
    Y = Y.astype(dtype)
    logits = jnp.matmul(X, Y.T, precision=precision)  # (n, B): the only block-sized buffers
    if rs is not None:
        logits = logits * rs.astype(dtype)
    if bias is not None:
        logits = logits + bias.astype(dtype)
    bm = jnp.max(logits, axis=1)
    new_m = jnp.maximum(m, bm)
    e = jnp.exp(logits - new_m[:, None])
    c = jnp.exp(m - new_m)
    l = l * c + jnp.sum(e, axis=1)
    if want_mean:
        acc = acc * c[:, None] + jnp.matmul(e, Y, precision=precision)
    if want_index:
        idx = jnp.where(bm > m, offset + jnp.argmax(logits, axis=1).astype(jnp.int32), idx)
    return new_m, l, acc, idx


def stream_codebook(x, codebook, scale, row_bias=None, row_scale=None, *, block_size=None,
                    want_mean=True, want_index=False, precision=_HIGHEST) -> CodebookPass:
    """One fused pass computing, per query, ``l_j = scale * (row_scale_j <x, y_j> + row_bias_j)``.

    Flash-attention style: ``lax.scan`` over blocks of ``block_size`` codewords carrying the running
    max ``m``, the rescaled sum ``l`` and the rescaled weighted codeword sum ``acc``; the last
    ``M mod block_size`` rows are one more (smaller) step. Memory is ``O(n (block_size + d))`` for
    ``n`` queries whatever ``M`` is (no ``n x M`` logits, no copy of the codebook).

    **Arguments:** ``x`` ``(..., d)`` (leading axes are queries; batched, or one query under
    ``vmap``); ``codebook`` ``(M, d)``; ``scale`` scalar (or one per query, shape ``x.shape[:-1]``);
    optional ``row_bias``, ``row_scale`` ``(M,)``; ``block_size`` (static; ``None`` or ``>= M``:
    one block). Returns a :class:`CodebookPass` (``mean`` zeros unless ``want_mean``, ``index``
    zeros unless ``want_index``). Exact in exact arithmetic for every block size; matrix products
    at ``precision`` (default ``Precision.HIGHEST``: true float32 on accelerators; a lower one,
    e.g. TF32, must be validated on the decisions that use it).
    """
    M, d = codebook.shape
    lead = x.shape[:-1]
    dtype = x.dtype
    X = x.reshape(-1, d)
    n = X.shape[0]
    scale = jnp.broadcast_to(jnp.asarray(scale, dtype), lead).reshape(n, 1)
    Xs = X * scale  # scale folded into the queries: n d products instead of n M
    bias = None if row_bias is None else row_bias.astype(dtype)
    B = M if block_size is None else min(int(block_size), M)
    nb, tail = divmod(M, B)
    upd = functools.partial(_block_update, want_mean=want_mean, want_index=want_index,
                            precision=precision)

    def piece(v, start, size):
        return None if v is None else jax.lax.dynamic_slice_in_dim(v, start, size)

    def scaled_bias(bv):
        return None if bv is None else bv[None, :] * scale

    def body(state, b):
        start = b * B
        Y = jax.lax.dynamic_slice_in_dim(codebook, start, B, axis=0)
        return upd(state, Xs, Y, scaled_bias(piece(bias, start, B)), piece(row_scale, start, B),
                   start), None

    state = (jnp.full((n,), -jnp.inf, dtype), jnp.zeros((n,), dtype), jnp.zeros((n, d), dtype),
             jnp.zeros((n,), jnp.int32))
    if nb == 1:
        state = body(state, jnp.zeros((), jnp.int32))[0]
    else:
        state = jax.lax.scan(body, state, jnp.arange(nb, dtype=jnp.int32))[0]
    if tail:
        lo = nb * B
        state = upd(state, Xs, codebook[lo:], scaled_bias(None if bias is None else bias[lo:]),
                    None if row_scale is None else row_scale[lo:], jnp.int32(lo))
    m, l, acc, idx = state
    mean = acc / l[:, None] if want_mean else acc
    return CodebookPass((m + jnp.log(l)).reshape(lead), mean.reshape(lead + (d,)),
                        idx.reshape(lead), m.reshape(lead))


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
    if isinstance(block_size, str):
        if block_size != "auto":
            raise ValueError(f"`block_size` must be a positive int, None or 'auto', got {block_size!r}.")
        return default_block_size()
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

    def _pass(self, x, sigma, want_mean=True, want_index=False) -> CodebookPass:
        sigma = jnp.asarray(sigma, x.dtype)
        return stream_codebook(x, self.codebook, 1.0 / (sigma * sigma), self._row_bias(),
                               block_size=self.block_size, want_mean=want_mean,
                               want_index=want_index)

    def posterior(self, x: Sample, sigma: Sigma, *, want_index: bool = False) -> CodebookPass:
        """One pass: log-sum-exp of the logits, posterior mean, best logit (and index if asked)."""
        return self._pass(x, sigma, want_index=want_index)

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
                              want_mean=False, want_index=True)
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

    def __init__(self, codebook, *, rate=None, block_size: int | str | None = "auto"):
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
               block_size: int | str | None = "auto") -> "SphereCodebook":
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
        res = stream_codebook(x, self.codebook, 1.0, block_size=self.block_size, want_mean=False,
                              want_index=True)
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
                 block_size: int | str | None = "auto"):
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
               block_size: int | str | None = "auto") -> "GaussianCodebook":
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


__all__ = ["SphereCodebook", "GaussianCodebook", "CodebookPass", "stream_codebook", "default_block_size"]
