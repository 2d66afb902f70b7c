"""NestedCodebook: stage structure (hash, blocks, scales), exact score and log density."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

import jscore as js
from jscore.targets.nested import BlockSpheres, NestedCodebook, nested_hash

M64 = (1 << 64) - 1


def py_splitmix64(z):
    """Reference splitmix64 finaliser on Python ints (independent of the NumPy version)."""
    z &= M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def py_hash(seed, l, v, j, H):
    l, v, j = int(l), int(v), int(j)
    return py_splitmix64(seed + 0x9E3779B97F4A7C15 * (1 + l + (v << 20) + (j << 40))) % H


@pytest.fixture(scope="module")
def small():
    with jax.enable_x64(True):
        yield NestedCodebook.random(jax.random.key(3), 8, 2, rates=(0.2, 0.3), scale_ratio=0.1)


def test_hash_table_matches_reference_formula(small):
    nc = small
    L, H, m_max = nc.children.shape
    ch = np.asarray(nc.children)
    for l, v, j in itertools.product(range(L), range(H), range(m_max)):
        assert ch[l, v, j] == py_hash(nc.seed, l + 1, v, j, H)
    assert nc.root == py_hash(nc.seed, 0, 0, 0, H)
    # a known value of the standard splitmix64 stream (seed 0, first output)
    assert py_splitmix64(0x9E3779B97F4A7C15) == 0xE220A8397B1DCDAF
    vals = nested_hash(12345, 1, 2, np.arange(5000), 7)
    counts = np.bincount(vals, minlength=7)
    assert counts.min() > 5000 / 7 * 0.85  # roughly uniform buckets


def test_structure_blocks_scales_and_antipodal_codebooks(small):
    nc = small
    assert nc.dim == 8 and nc.num_stages == 2 and nc.block_dim == 4
    np.testing.assert_allclose(np.asarray(nc.scales), [1.0, 0.1])
    for l in range(2):
        for v in range(nc.num_variants):
            M = nc.sizes[l][v]
            R = nc.stage_rates[l][v]
            assert M == 2 * math.ceil(math.exp(R * 4) / 2)
            Y = np.asarray(nc.codebooks[l, v, :M])
            np.testing.assert_allclose(np.linalg.norm(Y, axis=1), nc.radius, rtol=1e-12)
            np.testing.assert_allclose(Y[: M // 2], -Y[M // 2:], rtol=0, atol=0)
    with jax.enable_x64(True):
        x = nc.sample(jax.random.key(0), 64)
        j = nc.sample_indices(jax.random.key(0), 64)
    # block l of a clean draw is a_l times a codeword of the variant chosen by the hash
    v = np.asarray(nc.path_variants(j))
    jn = np.asarray(j)
    assert np.all(v[:, 0] == nc.root)
    for i in range(64):
        assert v[i, 1] == py_hash(nc.seed, 1, v[i, 0], jn[i, 0], nc.num_variants)
        for l in range(2):
            blk = np.asarray(x[i, 4 * l:4 * (l + 1)])
            np.testing.assert_allclose(blk, float(nc.scales[l]) * np.asarray(
                nc.codebooks[l, v[i, l], jn[i, l]]), rtol=1e-12)
    with jax.enable_x64(True):
        idx, cos, ok = jax.vmap(nc.decode)(x)
    assert np.all(np.asarray(ok)) and np.all(np.asarray(idx) == jn)


def _numpy_log_prob_and_score(nc, x, sigma):
    """Brute force over every path: p = sum_paths prior * N(x; x0(path), sigma^2 I)."""
    L, H = nc.num_stages, nc.num_variants
    books = np.asarray(nc.codebooks, np.float64)
    a = np.asarray(nc.scales, np.float64)
    ch = np.asarray(nc.children)
    logw, pts = [], []

    def walk(l, v, prefix, logp):
        if l == L:
            logw.append(logp)
            pts.append(np.concatenate(prefix))
            return
        M = nc.sizes[l][v]
        for j in range(M):
            walk(l + 1, ch[l, v, j] if l + 1 < L else 0, prefix + [a[l] * books[l, v, j]],
                 logp - math.log(M))

    walk(0, nc.root, [], 0.0)
    pts = np.stack(pts)
    d = x.shape[0]
    lg = np.asarray(logw) - np.sum((x - pts) ** 2, 1) / (2 * sigma**2) - 0.5 * d * math.log(
        2 * math.pi * sigma**2)
    lp = logsumexp(lg)
    w = np.exp(lg - lp)
    return lp, (w @ pts - x) / sigma**2


@pytest.mark.parametrize("sigma", [0.02, 0.1, 0.5, 2.0])
def test_score_against_grad_and_numpy(small, sigma):
    nc = small
    with jax.enable_x64(True):
        xs = nc.sample_noised(jax.random.key(7), sigma, 3)
        for x in np.asarray(xs):
            xj = jnp.asarray(x)
            lp, sc = _numpy_log_prob_and_score(nc, x, sigma)
            np.testing.assert_allclose(float(nc.log_prob(xj, sigma)), lp, rtol=1e-10, atol=1e-8)
            s = np.asarray(nc.score(xj, sigma))
            np.testing.assert_allclose(s, sc, rtol=1e-8, atol=1e-8 * np.abs(sc).max())
            g = np.asarray(jax.grad(nc.log_prob)(xj, sigma))
            np.testing.assert_allclose(g, s, rtol=1e-8, atol=1e-8 * np.abs(s).max())


def test_chain_rule_lr_sums_to_joint_and_reference(small):
    nc = small
    ref = nc.reference
    assert isinstance(ref, BlockSpheres) and ref.dim == nc.dim
    with jax.enable_x64(True):
        x = nc.sample_noised(jax.random.key(9), 0.3, 1)[0]
        llr = nc.stage_log_lr(x, 0.3)
        joint = nc.log_prob(x, 0.3) - ref.log_prob(x, 0.3)
        np.testing.assert_allclose(float(jnp.sum(llr)), float(joint), rtol=1e-10, atol=1e-9)
        # reference score of a product law: per block the uniform sphere's score
        sq = np.asarray(ref.score(x, 0.3))
        for l in range(2):
            sph = js.targets.UniformSphere(4, float(nc.scales[l]) * nc.radius)
            np.testing.assert_allclose(sq[4 * l:4 * l + 4], np.asarray(sph.score(x[4 * l:4 * l + 4], 0.3)),
                                       rtol=1e-12)


def test_bad_input_names_argument():
    with pytest.raises(ValueError, match="multiple of `num_stages`"):
        NestedCodebook.random(jax.random.key(0), 10, 3)
    with pytest.raises(ValueError, match="scale_ratio"):
        NestedCodebook.random(jax.random.key(0), 8, 2, scale_ratio=1.5)
    with pytest.raises(ValueError, match="rates"):
        NestedCodebook.random(jax.random.key(0), 8, 2, rates=())
    with pytest.raises(ValueError, match="max_codewords"):
        NestedCodebook.random(jax.random.key(0), 80, 2, rates=(0.5,))
