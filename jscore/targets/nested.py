"""Exploratory: the nested codebook (pointer chasing over scales; docs/experiments/rounds.md).

``d = L k``: block ``l`` (coordinates ``[l k, (l + 1) k)``, 0-based ``l = 0..L-1``) carries stage
``l`` at scale ``a_l`` (``a_0 > a_1 > ... > a_{L-1}``, ``a_l = scale_ratio^l`` by default). Each
stage has ``H`` *variants*: codebooks ``C_{l,v}`` of ``M_{l,v} = 2 ceil(exp(R_{l,v} k)/2)`` points on
the sphere of radius ``r = rho sqrt(k)``, with rates ``R_{l,v} = rates[v mod len(rates)]``: ``M/2``
i.i.d. uniform points and their antipodes (``y_{j + M/2} = -y_j``), so every codebook's mean is
exactly 0 like the reference's. (With i.i.d. points only, the codebook mean, of size ``r/sqrt M``,
is visible to the adversary's score test far above the window when M is small, and a later stage's
mean inside an earlier stage's window.)
A clean draw follows a path::

    v_0 = h(0, 0, 0),    j_l ~ Unif[M_{l, v_l}],    v_{l+1} = h(l + 1, v_l, j_l)
    x_0 = (a_0 y_{0, v_0, j_0}, a_1 y_{1, v_1, j_1}, ..., a_{L-1} y_{L-1, v_{L-1}, j_{L-1}})

so both the codebook and the rate of stage ``l + 1`` are selected by a hash of the index drawn at
stage ``l``. The hash is ``h(l, v, j) = splitmix64(seed + golden * (1 + l + 2^20 v + 2^40 j)) mod H``
(64-bit wrap-around arithmetic, ``golden = 0x9E3779B97F4A7C15``, ``splitmix64`` the standard
finaliser; :func:`nested_hash`), tabulated once in ``children``.

The law is a mixture over paths; with logits ``l_{l,v,j}(x) = a_l <x_l, y_{l,v,j}> / sigma^2`` and
``G_L = 0``, the exact log density is a backward recursion over stages (stable log-sum-exp)::

    G_l(v)   = logsumexp_j [ l_{l,v,j} + G_{l+1}(h(l + 1, v, j)) ] - log M_{l,v}
    log p_sigma(x) = G_0(v_0) - (|x|^2 + r^2 sum_l a_l^2) / (2 sigma^2) - (d/2) log(2 pi sigma^2)

and the forward messages ``A_0 = 1{v = v_0}`` (log), ``A_{l+1}(u) = logsumexp_{v,j: h(l+1,v,j) = u}
[A_l(v) - log M_{l,v} + l_{l,v,j}]`` give the posterior of ``(l, v, j)``,
``exp(A_l(v) - log M_{l,v} + l_{l,v,j} + G_{l+1}(h) - G_0(v_0))``, hence the posterior mean and
the score ``(E[x_0 | x] - x) / sigma^2``, and the prefix marginals ``log p_sigma(x_{<=l})``
(``F_l = logsumexp_u A_{l+1}(u)``). Exact at small d: every query enumerates all stage codebooks,
``O(L H M_max k)`` per query (``M_max = max M_{l,v}``; the codebooks are stored padded to
``(L, H, M_max, k)``). Use float64 (``jax_enable_x64``): logits reach ``a_0^2 k / sigma^2``.

The reference law ``Q`` is the product of the uniform spheres of radius ``a_l r`` on the blocks
(:class:`BlockSpheres`); it has the same per-block radial law as P.
"""

from __future__ import annotations

import math
import numbers

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import as_real, check_positive_int, check_range
from ..typing import Key, Sample, Score, Sigma
from .base import AbstractTarget
from .sphere import UniformSphere, log_bessel_mgf_and_ratio

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _splitmix64_np(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def nested_hash(seed: int, stage, variant, index, num_variants: int):
    """``h(l, v, j) = splitmix64(seed + golden (1 + l + 2^20 v + 2^40 j)) mod H`` (NumPy, int64).

    ``stage``, ``variant``, ``index`` broadcast (non-negative ints, ``v < 2^20``, ``j < 2^24``).
    """
    with np.errstate(over="ignore"):
        l = np.asarray(stage, np.uint64)
        v = np.asarray(variant, np.uint64)
        j = np.asarray(index, np.uint64)
        z = np.uint64(seed & _MASK64) + np.uint64(_GOLDEN) * (
            np.uint64(1) + l + (v << np.uint64(20)) + (j << np.uint64(40)))
        return (_splitmix64_np(z) % np.uint64(num_variants)).astype(np.int64)


def _check_rates(rates):
    if isinstance(rates, numbers.Real):
        rates = (rates,)
    try:
        rates = tuple(float(r) for r in rates)
    except TypeError:
        raise TypeError(f"`rates` must be a sequence of positive floats, got {rates!r}.") from None
    if not rates or any(not r > 0 for r in rates):
        raise ValueError(f"`rates` must be a non-empty sequence of positive floats, got {rates}.")
    return rates


class BlockSpheres(AbstractTarget):
    """Product of uniform spheres: block ``l`` (``block_dim`` coordinates) uniform on the sphere of
    radius ``radii[l]``. The reference law of :class:`NestedCodebook`; ``log_prob`` and ``score``
    are sums/concatenations of :class:`UniformSphere` terms."""

    radii: jax.Array
    block_dim: int = eqx.field(static=True)

    def __init__(self, block_dim: int, radii):
        self.block_dim = check_positive_int("block_dim", block_dim)
        self.radii = as_real(radii)

    @property
    def dim(self) -> int:
        return self.block_dim * self.radii.shape[0]

    @property
    def num_blocks(self) -> int:
        return self.radii.shape[0]

    def _blocks(self, x):
        return jnp.reshape(x, (self.num_blocks, self.block_dim))

    def _map(self, fn, x, sigma):
        sigma = jnp.asarray(sigma, x.dtype)
        return jax.vmap(lambda xb, rb: fn(UniformSphere(self.block_dim, rb), xb, sigma))(
            self._blocks(x), self.radii.astype(x.dtype))

    def block_log_prob(self, x: Sample, sigma: Sigma):
        """``log q_{sigma,l}(x_l)`` per block, ``(L,)``."""
        return self._map(lambda s, xb, sg: s.log_prob(xb, sg), x, sigma)

    def log_prob(self, x: Sample, sigma: Sigma):
        return jnp.sum(self.block_log_prob(x, sigma))

    def denoise(self, x: Sample, sigma: Sigma) -> Sample:
        return jnp.reshape(self._map(lambda s, xb, sg: s.denoise(xb, sg), x, sigma), x.shape)

    def score(self, x: Sample, sigma: Sigma) -> Score:
        sigma = jnp.asarray(sigma, x.dtype)
        return (self.denoise(x, sigma) - x) / (sigma * sigma)

    def sample(self, key: Key, n: int):
        n = check_positive_int("n", n)
        g = jax.random.normal(key, (n, self.num_blocks, self.block_dim), self.radii.dtype)
        u = g / jnp.linalg.norm(g, axis=-1, keepdims=True)
        return jnp.reshape(u * self.radii[:, None], (n, self.dim))

    def sample_noised(self, key: Key, sigma: Sigma, n: int):
        ky, kz = jax.random.split(key)
        sigma = jnp.asarray(sigma, self.radii.dtype)
        return self.sample(ky, n) + sigma * jax.random.normal(kz, (n, self.dim), self.radii.dtype)


class NestedPass(eqx.Module):
    """Everything one query needs (module doc): ``log_prob``, the posterior ``mean`` ``(d,)``,
    ``prefix`` ``F_l`` for ``l = 0..L-1`` (``log p_sigma(x_{<=l})`` minus its Gaussian constant),
    the per-stage variant posterior ``variant_post`` ``(L, H)`` and the MAP index per stage."""

    log_prob: jax.Array
    mean: jax.Array
    prefix: jax.Array
    variant_post: jax.Array
    map_index: jax.Array


class NestedCodebook(AbstractTarget):
    """Exploratory hard instance for adaptive rounds (module doc; docs/experiments/rounds.md).

    ``NestedCodebook.random(key, dim, num_stages, rates=(0.15, 0.25, 0.35), scale_ratio=0.02,
    rho=1.0, num_variants=None)``. Attributes: ``codebooks`` ``(L, H, M_max, k)`` (unit-scale
    codewords of norm ``r``, padded), ``sizes`` ``(L, H)`` (static tuple of tuples), ``children``
    ``(L, H, M_max)`` int32 (``children[l, v, j] = h(l + 1, v, j)``; last stage unused),
    ``root`` (``v_0``), ``scales`` ``(L,)``, ``stage_rates`` ``(L, H)``, ``seed`` (hash seed).
    """

    codebooks: jax.Array
    children: jax.Array
    scales: jax.Array
    rho: jax.Array
    sizes: tuple = eqx.field(static=True)
    stage_rates: tuple = eqx.field(static=True)
    root: int = eqx.field(static=True)
    seed: int = eqx.field(static=True)

    # ------------------------------------------------------------------ construction
    @classmethod
    def random(cls, key: Key, dim: int, num_stages: int, rates=(0.15, 0.25, 0.35),
               scale_ratio: float = 0.02, rho: float = 1.0, num_variants: int | None = None,
               max_codewords: int = 10**6) -> "NestedCodebook":
        """Draw all stage codebooks: variant ``v`` of stage ``l`` from ``fold_in(key, l H + v)``.

        ``dim`` must be a multiple of ``num_stages``; ``scale_ratio = a_{l+1}/a_l`` in (0, 1);
        ``num_variants`` defaults to ``len(rates)`` (then the hash selects the rate).
        """
        dim = check_positive_int("dim", dim)
        L = check_positive_int("num_stages", num_stages)
        if dim % L:
            raise ValueError(f"`dim` = {dim} must be a multiple of `num_stages` = {L} (blocks "
                             f"of dimension dim/num_stages); use dim = {L * max(dim // L, 1)}.")
        rates = _check_rates(rates)
        check_range("scale_ratio", scale_ratio, lo=0.0, hi=1.0, lo_open=True, hi_open=True,
                    fix="Stage scales a_l = scale_ratio^l must decrease.")
        check_range("rho", rho, lo=0.0, lo_open=True)
        H = check_positive_int("num_variants", len(rates) if num_variants is None else num_variants)
        k = dim // L
        stage_rates = tuple(tuple(rates[v % len(rates)] for v in range(H)) for _ in range(L))
        sizes = tuple(tuple(2 * max(1, math.ceil(math.exp(R * k) / 2)) for R in row)
                      for row in stage_rates)
        m_max = max(max(row) for row in sizes)
        if m_max * L * H > max_codewords:
            raise ValueError(
                f"the nested codebook would hold {m_max * L * H} padded codewords (M_max = {m_max} "
                f"at block dimension {k}), above `max_codewords` = {max_codewords}; lower the "
                "rates or the block dimension dim/num_stages.")
        dtype = jnp.result_type(float)
        r = float(rho) * math.sqrt(k)
        books = np.zeros((L, H, m_max, k), np.float64)
        for l in range(L):
            for v in range(H):
                half = sizes[l][v] // 2
                g = np.asarray(jax.random.normal(jax.random.fold_in(key, l * H + v),
                                                 (half, k), dtype), np.float64)
                g = r * g / np.linalg.norm(g, axis=-1, keepdims=True)
                books[l, v, :2 * half] = np.concatenate([g, -g])  # antipodal: mean exactly 0
        seed = int(np.asarray(jax.random.bits(jax.random.fold_in(key, -1 & 0x7FFFFFFF), (), jnp.uint32)))
        ll, vv, jj = np.meshgrid(np.arange(L), np.arange(H), np.arange(m_max), indexing="ij")
        children = nested_hash(seed, ll + 1, vv, jj, H)
        root = int(nested_hash(seed, 0, 0, 0, H))
        scales = float(scale_ratio) ** np.arange(L, dtype=np.float64)
        return cls(books, children, scales, rho, sizes, stage_rates, root, seed)

    def __init__(self, codebooks, children, scales, rho, sizes, stage_rates, root, seed):
        self.codebooks = as_real(codebooks)
        self.children = jnp.asarray(children, jnp.int32)
        self.scales = as_real(scales)
        self.rho = as_real(rho)
        self.sizes = tuple(tuple(int(m) for m in row) for row in sizes)
        self.stage_rates = tuple(tuple(float(R) for R in row) for row in stage_rates)
        self.root = int(root)
        self.seed = int(seed)
        L, H, m_max, _ = self.codebooks.shape
        if self.children.shape != (L, H, m_max) or self.scales.shape != (L,):
            raise ValueError(f"`children` must have shape {(L, H, m_max)} and `scales` {(L,)}, "
                             f"got {self.children.shape} and {self.scales.shape}.")
        if len(self.sizes) != L or any(len(r) != H or max(r) > m_max for r in self.sizes):
            raise ValueError(f"`sizes` must be {L} rows of {H} codebook sizes <= {m_max}.")
        if not 0 <= self.root < H:
            raise ValueError(f"`root` must be a variant in [0, {H}), got {self.root}.")

    # ------------------------------------------------------------------ structure
    @property
    def num_stages(self) -> int:
        """L."""
        return self.codebooks.shape[0]

    @property
    def num_variants(self) -> int:
        """H, the codebooks per stage."""
        return self.codebooks.shape[1]

    @property
    def block_dim(self) -> int:
        """k = d / L."""
        return self.codebooks.shape[3]

    @property
    def dim(self) -> int:
        return self.num_stages * self.block_dim

    @property
    def radius(self):
        """``r = rho sqrt(k)``, the norm of every unit-scale codeword (scalar array)."""
        return self.rho * math.sqrt(self.block_dim)

    @property
    def total_radius(self):
        """``|x_0| = r sqrt(sum_l a_l^2)`` for every clean draw (scalar array)."""
        return self.radius * jnp.sqrt(jnp.sum(self.scales * self.scales))

    def block(self, x, stage: int):
        """Block ``stage`` of ``x`` (last axis), ``(..., k)``."""
        k = self.block_dim
        return x[..., stage * k:(stage + 1) * k]

    def log_sizes(self, dtype=None):
        """``log M_{l,v}``, ``(L, H)``."""
        return jnp.log(jnp.asarray(self.sizes, dtype or jnp.result_type(float)))

    def _pad_bias(self, dtype):
        m = np.arange(self.codebooks.shape[2])[None, None, :] < np.asarray(self.sizes)[:, :, None]
        return jnp.where(jnp.asarray(m), 0.0, -jnp.inf).astype(dtype)

    def path_variants(self, indices):
        """Variants ``v_l`` of a path of indices ``(..., L)`` (int), ``(..., L)``."""
        indices = jnp.asarray(indices, jnp.int32)
        v = jnp.full(indices.shape[:-1], self.root, jnp.int32)
        out = [v]
        for l in range(self.num_stages - 1):
            v = self.children[l, v, indices[..., l]]
            out.append(v)
        return jnp.stack(out, axis=-1)

    def path_point(self, indices):
        """``x_0`` of a path of indices ``(..., L)``, ``(..., d)``."""
        indices = jnp.asarray(indices, jnp.int32)
        v = self.path_variants(indices)
        blocks = [self.scales[l] * self.codebooks[l, v[..., l], indices[..., l]]
                  for l in range(self.num_stages)]
        return jnp.concatenate(blocks, axis=-1)

    # ------------------------------------------------------------------ the exact pass
    def posterior(self, x: Sample, sigma: Sigma) -> NestedPass:
        """The forward-backward pass of the module doc for one point ``x`` ``(d,)``."""
        dtype = x.dtype
        sigma = jnp.asarray(sigma, dtype)
        s2 = sigma * sigma
        L, H = self.num_stages, self.num_variants
        books = self.codebooks.astype(dtype)
        xb = jnp.reshape(x, (L, self.block_dim))
        sc = self.scales.astype(dtype)
        logits = (jnp.einsum("lhmk,lk->lhm", books, xb, precision=jax.lax.Precision.HIGHEST)
                  * (sc / s2)[:, None, None] + self._pad_bias(dtype))
        logm = self.log_sizes(dtype)
        onehot = jax.nn.one_hot(self.children, H, dtype=bool)  # (L, H, M, H)
        neg = jnp.asarray(-jnp.inf, dtype)
        # backward: G[l] (H,), G[L] = 0
        G = [None] * (L + 1)
        G[L] = jnp.zeros((H,), dtype)
        for l in range(L - 1, -1, -1):
            nxt = G[l + 1][self.children[l]] if l + 1 < L else jnp.zeros_like(logits[l])
            G[l] = jax.nn.logsumexp(logits[l] + nxt, axis=-1) - logm[l]
        total = G[0][self.root]
        # forward: A[l] (H,)
        A = jnp.where(jnp.arange(H) == self.root, 0.0, neg).astype(dtype)
        prefix, vpost, means, idx = [], [], [], []
        for l in range(L):
            w = A[:, None] - logm[l][:, None] + logits[l]  # (H, M)
            nxt = G[l + 1][self.children[l]] if l + 1 < L else jnp.zeros_like(w)
            lp = w + nxt - total  # log posterior of (l, v, j)
            post = jnp.exp(lp)
            means.append(sc[l] * jnp.einsum("hm,hmk->k", post, books[l],
                                            precision=jax.lax.Precision.HIGHEST))
            vpost.append(jnp.sum(post, axis=-1))
            idx.append(jnp.argmax(jnp.max(lp, axis=0)).astype(jnp.int32))
            if l + 1 < L:
                A = jax.nn.logsumexp(jnp.where(onehot[l], w[:, :, None], neg), axis=(0, 1))
                prefix.append(jax.nn.logsumexp(A))
            else:
                prefix.append(total)
        const = (-(jnp.sum(x * x) + self.radius ** 2 * jnp.sum(sc * sc)) / (2 * s2)
                 - 0.5 * self.dim * jnp.log(2 * math.pi * s2))
        return NestedPass(total + const, jnp.concatenate(means), jnp.stack(prefix),
                          jnp.stack(vpost), jnp.stack(idx))

    def log_prob(self, x: Sample, sigma: Sigma):
        """``log p_sigma(x)``, a scalar (``sigma > 0``)."""
        return self.posterior(x, sigma).log_prob

    def denoise(self, x: Sample, sigma: Sigma) -> Sample:
        return self.posterior(x, sigma).mean

    def score(self, x: Sample, sigma: Sigma) -> Score:
        sigma = jnp.asarray(sigma, x.dtype)
        return (self.posterior(x, sigma).mean - x) / (sigma * sigma)

    def stage_log_lr(self, x: Sample, sigma: Sigma, res: NestedPass | None = None):
        """Chain-rule likelihood ratios ``log L_l = log p(x_l | x_{<l}) - log q_l(x_l)``, ``(L,)``:
        ``F_l - F_{l-1} - Lambda_k(a_l r |x_l| / sigma^2)`` (``F_{-1} = 0``). Their sum is
        ``log (dP_sigma/dQ_sigma)(x)``."""
        dtype = x.dtype
        sigma = jnp.asarray(sigma, dtype)
        res = self.posterior(x, sigma) if res is None else res
        F = res.prefix
        dF = F - jnp.concatenate([jnp.zeros((1,), dtype), F[:-1]])
        norms = jnp.sqrt(jnp.sum(jnp.reshape(x, (self.num_stages, self.block_dim)) ** 2, -1))
        kappa = self.scales.astype(dtype) * self.radius * norms / (sigma * sigma)
        lam = log_bessel_mgf_and_ratio(kappa, self.block_dim)[0]
        return dF - lam

    def log_likelihood_ratio(self, x: Sample, sigma: Sigma):
        """``log (dP_sigma / dQ_sigma)(x)`` against :attr:`reference`."""
        return jnp.sum(self.stage_log_lr(x, sigma))

    @property
    def reference(self) -> BlockSpheres:
        """``Q``: uniform spheres of radius ``a_l r`` on the blocks."""
        return BlockSpheres(self.block_dim, self.scales * self.radius)

    # ------------------------------------------------------------------ sampling
    def sample_indices(self, key: Key, n: int):
        """``n`` paths ``(j_0, ..., j_{L-1})`` drawn from the prior, int32 ``(n, L)``."""
        n = check_positive_int("n", n)
        u = jax.random.uniform(key, (n, self.num_stages))
        sizes = jnp.asarray(self.sizes, jnp.int32)
        v = jnp.full((n,), self.root, jnp.int32)
        js = []
        for l in range(self.num_stages):
            m = sizes[l, v]
            j = jnp.minimum(jnp.floor(u[:, l] * m).astype(jnp.int32), m - 1)
            js.append(j)
            v = self.children[l, v, j]
        return jnp.stack(js, axis=-1)

    def sample(self, key: Key, n: int):
        """``n`` exact clean draws ``(n, d)``."""
        return self.path_point(self.sample_indices(key, n))

    def sample_noised_with_index(self, key: Key, sigma: Sigma, n: int):
        """Planted pairs ``(x_0 + sigma z, path)``, shapes ``(n, d)``, ``(n, L)``."""
        kj, kz = jax.random.split(key)
        j = self.sample_indices(kj, n)
        sigma = jnp.asarray(sigma, self.codebooks.dtype)
        z = jax.random.normal(kz, (n, self.dim), self.codebooks.dtype)
        return self.path_point(j) + sigma * z, j

    def sample_noised(self, key: Key, sigma: Sigma, n: int):
        """``n`` exact draws of ``P_sigma``, ``(n, d)``."""
        return self.sample_noised_with_index(key, sigma, n)[0]

    # ------------------------------------------------------------------ decoding
    def decode(self, x, theta0: float = 0.9):
        """Decode a point ``(d,)`` stage by stage along the hash: stage ``l``'s block against the
        codebook of the variant selected by the indices decoded before it. Returns
        ``(indices (L,), cosines (L,), ok (L,))`` with ``ok[l]`` true iff stages ``0..l`` all have
        cosine ``>= theta0`` (a prefix property)."""
        v = jnp.asarray(self.root, jnp.int32)
        idx, cos = [], []
        for l in range(self.num_stages):
            xb = self.block(x, l)
            c = self.codebooks[l, v].astype(x.dtype) @ xb / (
                self.radius * jnp.maximum(jnp.linalg.norm(xb), jnp.finfo(x.dtype).tiny))
            c = jnp.where(jnp.arange(c.shape[0]) < jnp.asarray(self.sizes, jnp.int32)[l, v], c, -2.0)
            j = jnp.argmax(c).astype(jnp.int32)
            idx.append(j)
            cos.append(c[j])
            v = self.children[l, v, j]
        cos = jnp.stack(cos)
        ok = jnp.cumprod((cos >= theta0).astype(jnp.int32)).astype(bool)
        return jnp.stack(idx), cos, ok


__all__ = ["NestedCodebook", "BlockSpheres", "NestedPass", "nested_hash"]
