"""Codebook targets: streaming log-sum-exp, exact score/denoiser/log-likelihood, sampling (spec 3)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

import jscore as js
from jscore.targets.codebook import stream_codebook
from helpers import assert_within_se

FAMILIES = [js.targets.SphereCodebook, js.targets.GaussianCodebook]


def _naive(cb, x, sigma):
    """float64 NumPy reference: lse, posterior mean, argmax, log p_sigma."""
    Y = np.asarray(cb.codebook, np.float64)
    x = np.asarray(x, np.float64)
    l = Y @ x / sigma**2
    if isinstance(cb, js.targets.GaussianCodebook):
        l = l - 0.5 * (Y * Y).sum(1) / sigma**2
    lse = logsumexp(l)
    w = np.exp(l - lse)
    d = Y.shape[1]
    log_phi = -0.5 * ((x - Y) ** 2).sum(1) / sigma**2 - 0.5 * d * np.log(2 * np.pi * sigma**2)
    return lse, w @ Y, int(np.argmax(l)), logsumexp(log_phi) - np.log(len(Y))


@pytest.mark.parametrize("cls", FAMILIES)
def test_random_codebook_attributes(cls, getkey):
    cb = cls.random(getkey(), 12, 0.3, rho=1.5)
    M = math.ceil(math.exp(0.3 * 12))
    assert cb.codebook.shape == (M, 12) and cb.num_codewords == M and cb.dim == 12
    assert math.isclose(cb.effective_rate, math.log(M) / 12)
    np.testing.assert_allclose(float(cb.rho), 1.5)
    np.testing.assert_allclose(float(cb.radius), 1.5 * math.sqrt(12), rtol=1e-6)
    np.testing.assert_allclose(float(cb.rate), 0.3)
    if cls is js.targets.SphereCodebook:
        np.testing.assert_allclose(np.linalg.norm(cb.codebook, axis=1), 1.5 * math.sqrt(12),
                                   rtol=1e-5)
    # same key -> same codebook
    key = getkey()
    np.testing.assert_array_equal(cls.random(key, 5, 0.5).codebook, cls.random(key, 5, 0.5).codebook)


@pytest.mark.parametrize("cls", FAMILIES)
def test_streaming_equals_one_shot_for_all_block_sizes(cls, x64, getkey):
    cb = cls.random(getkey(), 10, 0.5)  # M = 149
    M = cb.num_codewords
    sigma = 0.7
    xs = jnp.concatenate([cb.sample_noised(getkey(), sigma, 3), jnp.zeros((1, 10))])
    ref = [_naive(cb, x, sigma) for x in xs]
    for bs in [None, 1, 7, M - 1]:
        c = cls(cb.codebook, block_size=bs) if cls is js.targets.SphereCodebook else cls(
            cb.codebook, rho=1.0, block_size=bs)
        out, lp = jax.jit(jax.vmap(lambda x: (c.posterior(x, sigma, want_index=True),
                                                 c.log_prob(x, sigma))))(xs)
        for k, (lse, mean, idx, logp) in enumerate(ref):
            np.testing.assert_allclose(out.lse[k], lse, rtol=1e-13, err_msg=f"block {bs}")
            np.testing.assert_allclose(out.mean[k], mean, rtol=1e-11, atol=1e-12)
            np.testing.assert_allclose(lp[k], logp, rtol=1e-13)
            if k < 3:  # x = 0 ties every logit in the sphere family
                assert int(out.index[k]) == idx


def test_stream_codebook_matches_logsumexp_with_row_terms(x64, getkey):
    Y = jax.random.normal(getkey(), (1000, 6))
    bias = jax.random.normal(getkey(), (1000,))
    rs = jnp.exp(jax.random.normal(getkey(), (1000,)))
    x = jax.random.normal(getkey(), (6,))
    l = 2.5 * (rs * (Y @ x) + bias)
    for bs in [3]:
        res = jax.jit(lambda x: stream_codebook(x, Y, 2.5, bias, rs, block_size=bs,
                                                 want_index=True))(x)
        np.testing.assert_allclose(res.lse, jax.nn.logsumexp(l), rtol=1e-14)
        np.testing.assert_allclose(res.max_logit, jnp.max(l), rtol=1e-14)
        assert int(res.index) == int(jnp.argmax(l))
        np.testing.assert_allclose(res.mean, jax.nn.softmax(l) @ Y, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls", FAMILIES)
def test_score_is_grad_log_prob(cls, x64, getkey):
    cb = cls.random(getkey(), 8, 0.5)
    blocked = cls(cb.codebook, block_size=16) if cls is js.targets.SphereCodebook else cls(
        cb.codebook, rho=1.0, block_size=16)
    sig = jnp.asarray([0.3, 1.0, 3.0, 0.3, 1.0, 3.0])
    xs = jax.vmap(lambda k, s: cb.sample_noised(k, s, 1)[0])(jax.random.split(getkey(), 6), sig)
    for c in (cb, blocked):
        g, s = jax.jit(jax.vmap(lambda x, t: (jax.grad(c.log_prob)(x, t), c.score(x, t))))(xs, sig)
        np.testing.assert_allclose(g, s, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "cls", [FAMILIES[0], pytest.param(FAMILIES[1], marks=pytest.mark.slow)])
def test_denoiser_vs_monte_carlo_tweedie(cls, x64, getkey):
    """E[y_J | x] by self-normalised importance sampling over J ~ Unif[M]; SE tolerance."""
    cb = cls.random(getkey(), 6, 0.6)  # M = 37
    sigma = 1.2
    x = cb.sample_noised(getkey(), sigma, 1)[0]
    J = np.asarray(cb.sample_indices(getkey(), 100_000))
    Y = np.asarray(cb.codebook)[J]
    logw = -0.5 * ((np.asarray(x) - Y) ** 2).sum(1) / sigma**2
    w = np.exp(logw - logw.max())
    w /= w.sum()
    est = w @ Y
    se = np.sqrt(np.sum(w[:, None] ** 2 * (Y - est) ** 2, axis=0))
    assert_within_se(est, cb.denoise(x, sigma), se, what="MC Tweedie")
    # Tweedie orthogonality on planted pairs: E[(y_J - D(x)) x_k] = 0
    xs, j = cb.sample_noised_with_index(getkey(), sigma, 20_000)
    den = jax.jit(jax.vmap(lambda x: cb.denoise(x, sigma)))(xs)
    res = np.asarray(cb.codebook)[np.asarray(j)] - np.asarray(den)
    prod = res * np.asarray(xs)
    assert_within_se(prod.mean(0), 0.0, prod.std(0) / np.sqrt(len(prod)), what="orthogonality")


def test_log_likelihood_ratio_against_reference(x64, getkey):
    cb = js.targets.SphereCodebook.random(getkey(), 9, 0.4)
    f = jax.jit(jax.vmap(lambda x, s: (cb.log_likelihood_ratio(x, s),
                                       cb.log_prob(x, s) - cb.reference.log_prob(x, s)),
                         in_axes=(0, None)))
    for sigma in [0.2, 3.0]:
        xs = cb.sample_noised(getkey(), sigma, 4)
        a, b = f(xs, sigma)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-11)
    g = js.targets.GaussianCodebook.random(getkey(), 9, 0.4)
    x = g.sample_noised(getkey(), 0.5, 1)[0]
    np.testing.assert_allclose(
        g.log_likelihood_ratio(x, 0.5), g.log_prob(x, 0.5) - g.reference.log_prob(x, 0.5), rtol=1e-12)
    # E_Q[L] = 1 (change of measure), at high noise where the estimate has small variance
    xq = cb.reference.sample_noised(getkey(), 3.0, 20_000)
    L = np.exp(np.asarray(f(xq, 3.0)[0]))
    assert_within_se(L.mean(), 1.0, L.std() / np.sqrt(len(L)), what="E_Q L")


@pytest.mark.parametrize("cls", FAMILIES)
def test_sampling_is_exact(cls, getkey):
    cb = cls.random(getkey(), 4, 0.5)  # M = 8
    idx = np.asarray(cb.sample_indices(getkey(), 40_000))
    counts = np.bincount(idx, minlength=8)
    p = 1 / 8
    assert_within_se(counts / 40_000, p, np.sqrt(p * (1 - p) / 40_000), what="index law")
    y = np.asarray(cb.sample(getkey(), 50))
    assert all(np.any(np.all(np.isclose(row, cb.codebook), axis=1)) for row in y)
    x, j = cb.sample_noised_with_index(getkey(), 0.6, 40_000)
    z = (np.asarray(x) - np.asarray(cb.codebook)[np.asarray(j)]) / 0.6
    assert_within_se(z.mean(0), 0.0, np.full(4, 1 / 200), what="noise mean")
    v = z.var(0)
    assert_within_se(v, 1.0, np.full(4, math.sqrt(2 / 40_000)), what="noise var")


def test_nearest_codeword(getkey):
    for cls in FAMILIES:
        cb = cls.random(getkey(), 7, 0.6, )
        xs = jax.random.normal(getkey(), (20, 7))
        idx, cos = jax.jit(jax.vmap(cb.nearest))(xs)
        Y = np.asarray(cb.codebook)
        c = (np.asarray(xs) @ Y.T) / np.linalg.norm(xs, axis=1)[:, None] / np.linalg.norm(Y, axis=1)
        np.testing.assert_array_equal(idx, c.argmax(1))
        np.testing.assert_allclose(cos, c.max(1), rtol=1e-5)


def test_float32_matches_float64_at_small_sigma(getkey):
    cb = js.targets.SphereCodebook.random(getkey(), 16, 0.3, block_size=32)
    sigma = 0.05
    xs = cb.sample_noised(getkey(), sigma, 5)
    s32 = jax.jit(jax.vmap(lambda x: cb.score(x, sigma)))(xs)
    assert s32.dtype == jnp.float32 and np.all(np.isfinite(s32))
    for k in range(5):
        _, mean, _, _ = _naive(cb, xs[k], sigma)
        s64 = (mean - np.asarray(xs[k], np.float64)) / sigma**2
        assert np.linalg.norm(np.asarray(s32[k]) - s64) <= 1e-3 * np.linalg.norm(s64)


def test_large_codebook_bounded_memory(getkey):
    """M = 2e5 codewords with 64 chains: blockwise memory is 64 x block_size, not 64 x M."""
    cb = js.targets.SphereCodebook.random(getkey(), 8, 1.53, block_size=4096)
    assert cb.num_codewords > 2 * 10**5
    xs = cb.sample_noised(getkey(), 0.3, 64)
    out = jax.jit(jax.vmap(lambda x: cb.posterior(x, 0.3)))(xs)
    assert np.all(np.isfinite(out.lse)) and np.all(np.isfinite(out.mean))
    with jax.enable_x64(True):
        Y = np.asarray(cb.codebook, np.float64)
        x0 = np.asarray(xs[0], np.float64)
        np.testing.assert_allclose(out.lse[0], logsumexp(Y @ x0 / 0.09), rtol=1e-5)


def test_errors(getkey):
    with pytest.raises(ValueError, match="common norm"):
        js.targets.SphereCodebook(jnp.asarray([[1.0, 0.0], [0.0, 2.0]]))
    with pytest.raises(ValueError, match="shape"):
        js.targets.SphereCodebook(jnp.ones(3))
    with pytest.raises(ValueError, match="int32"):
        js.targets.SphereCodebook.random(getkey(), 100, 0.5)
    with pytest.raises(ValueError, match="rate"):
        js.targets.GaussianCodebook.random(getkey(), 10, -0.1)
    with pytest.raises(ValueError, match="block_size"):
        js.targets.SphereCodebook(jnp.eye(3), block_size=0)
