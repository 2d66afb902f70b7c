"""The fused streaming codebook pass: bounded memory (from the jaxpr), batched = vmapped, and the
float32 adversary's decisions against an independent float64 computation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gammaln, ive, logsumexp

import jscore as js
from jscore.targets.codebook import default_block_size, stream_codebook

D, RATE, BLOCK = 24, 0.3, 100  # M = 1340 = 13 blocks of 100 + a ragged tail of 40


def _shapes(jaxpr):
    """Shapes of every intermediate (equation output), recursing into scan/cond/while bodies."""
    out = []
    for eqn in jaxpr.eqns:
        out += [tuple(v.aval.shape) for v in eqn.outvars if hasattr(v.aval, "shape")]
        for p in eqn.params.values():
            for sub in p if isinstance(p, (tuple, list)) else [p]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    out += _shapes(inner)
    return out


def _codebook(block=BLOCK):
    return js.targets.SphereCodebook.random(jax.random.key(3), D, RATE, block_size=block)


def test_memory_is_queries_times_block(getkey):
    """No intermediate is larger than n x block (the logits tile); the tile and the tail appear."""
    cb = _codebook()
    M, n = cb.num_codewords, 32
    assert M % BLOCK == 40
    X = jax.random.normal(getkey(), (n, D))
    bias = jnp.linspace(-1.0, 1.0, M)
    batched = jax.make_jaxpr(lambda X: stream_codebook(X, cb.codebook, 2.0, bias, block_size=BLOCK,
                                                       want_index=True))(X)
    per_chain = jax.make_jaxpr(jax.vmap(lambda x: cb.posterior(x, 0.7)))(X)
    for jp in (batched.jaxpr, per_chain.jaxpr):
        shapes = _shapes(jp)
        assert max(math.prod(s) for s in shapes) <= n * BLOCK
        for b in (BLOCK, 40):  # the (n, block) logits tiles (vmap adds a unit axis)
            assert any(math.prod(sh) == n * b and sh[-1] == b for sh in shapes)
        assert not any(M in s for s in shapes)  # nothing codebook-long is ever built


def test_batched_equals_vmapped_and_one_shot(getkey):
    """One implementation, three call forms: batched (n, d), vmapped per point, one block."""
    cb = _codebook()
    X = 1.3 * jax.random.normal(getkey(), (16, D))
    s = jnp.float32(1 / 0.6**2)
    a = jax.jit(lambda X: stream_codebook(X, cb.codebook, s, block_size=BLOCK, want_index=True))(X)
    b = jax.jit(jax.vmap(lambda x: cb.posterior(x, 0.6, want_index=True)))(X)
    c = stream_codebook(X, cb.codebook, s, block_size=None, want_index=True)
    Y = np.asarray(cb.codebook, np.float64)
    l64 = np.asarray(X, np.float64) @ Y.T * float(s)
    for r in (a, b, c):
        np.testing.assert_allclose(r.lse, logsumexp(l64, axis=1), rtol=2e-6)
        np.testing.assert_allclose(r.max_logit, l64.max(1), rtol=2e-6)
        np.testing.assert_array_equal(r.index, l64.argmax(1))
        w = np.exp(l64 - logsumexp(l64, axis=1, keepdims=True))
        np.testing.assert_allclose(r.mean, w @ Y, atol=2e-4 * math.sqrt(D))
    assert default_block_size("cpu") == 512 and cb.block_size == BLOCK
    assert js.targets.SphereCodebook(cb.codebook).block_size == default_block_size()


def _float64_answer(Y, x, sigma, d):
    """log L, |s_P - s_Q| and |x|^2 in float64 (NumPy/SciPy; the sphere reference's Bessel forms)."""
    r = float(np.linalg.norm(Y[0]))
    s2 = sigma * sigma
    l = x @ Y.T / s2
    lse = logsumexp(l, axis=1)
    mean = np.exp(l - lse[:, None]) @ Y
    nx = np.linalg.norm(x, axis=1)
    kappa = r * nx / s2
    nu = d / 2 - 1
    log_mgf = gammaln(d / 2) + nu * np.log(2 / kappa) + np.log(ive(nu, kappa)) + kappa
    m_q = (r * ive(d / 2, kappa) / ive(nu, kappa) / nx)[:, None] * x
    return lse - math.log(len(Y)) - log_mgf, np.linalg.norm(mean - m_q, axis=1) / s2, nx * nx, kappa


def test_float32_adversary_decisions_match_float64(getkey):
    """The float32 oracle's log L and |s_P - s_Q| are within their float32 error bounds of float64,
    and every decision whose float64 margin exceeds the bound is the same."""
    cb = _codebook()
    Y = np.asarray(cb.codebook, np.float64)
    adv = js.oracles.LRAdversary(cb, 0.05, 2.0)
    answer = jax.jit(jax.vmap(adv.answer, in_axes=(0, None)))
    sc = 1 / math.sqrt(math.expm1(2 * cb.log_num_codewords / D))
    u = 2.0**-24
    agree_outside, inside, outcomes = True, 0, set()
    total = 0
    for k, ratio in enumerate([0.3, 0.5, 1.0, 2.6, 4.0]):
        s = ratio * sc
        x = jnp.concatenate([cb.sample_noised(jax.random.fold_in(getkey(), k), s, 100),
                             cb.reference.sample_noised(jax.random.fold_in(getkey(), k), s, 100)])
        a = answer(x, jnp.float32(s))
        prm = adv.parameters(s, jnp.float32)
        log_lr, diff, n2, kappa = _float64_answer(Y, np.asarray(x, np.float64), s, D)
        # worst-case float32 error: dot products (d u |x| r / s^2 = d u kappa) + Bessel and sums
        tol_lr = (D + 8) * u * kappa + 2e-5
        tol_diff = (float(cb.radius) * tol_lr + 1e-5) / s**2
        assert np.all(np.abs(np.asarray(a.log_lr, np.float64) - log_lr) <= tol_lr)
        assert np.all(np.abs(np.asarray(a.diff, np.float64) - diff) <= tol_diff)
        lam, half_eps = float(prm.log_lambda), 0.5 * float(adv.eps)
        lo, hi = float(prm.band_lo), float(prm.band_hi)
        band = (n2 >= lo) & (n2 <= hi)
        ref = band & (log_lr >= lam) & (diff > half_eps)
        sure = ((np.abs(log_lr - lam) > tol_lr) & (np.abs(diff - half_eps) > tol_diff)
                & (np.minimum(np.abs(n2 - lo), np.abs(n2 - hi)) > 1e-5 * n2))
        got = np.asarray(a.informative)
        agree_outside &= bool(np.all(got[sure] == ref[sure]))
        inside += int(np.sum(~sure))
        total += len(ref)
        outcomes |= set(ref.tolist())
    assert agree_outside
    assert inside <= 0.05 * total  # the check covers almost every point
    assert outcomes == {True, False}
