"""score_error / score_error_profile measured under another noised law (``law=``): the reference Q."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jscore as js

from helpers import assert_within_se

D, M = 6, 16
SIGMAS = np.array([0.2, 0.7, 2.5])


@pytest.fixture(scope="module")
def codebook():
    return js.targets.SphereCodebook.random(jax.random.key(3), D, np.log(M) / D)


def _sphere(cb):
    return js.targets.UniformSphere(cb.dim, float(cb.radius))


@pytest.mark.parametrize("under_q", [False, True])
def test_exact_score_has_zero_error_under_any_law(codebook, under_q, getkey):
    law = _sphere(codebook) if under_q else None
    prof = js.metrics.score_error_profile(js.oracles.Exact(codebook), codebook, SIGMAS, getkey(),
                                          n=256, law=law)
    np.testing.assert_array_equal(prof.estimate, 0.0)
    np.testing.assert_array_equal(prof.upper, 0.0)
    assert prof.law == ("UniformSphere" if under_q else "target")


@pytest.mark.parametrize("under_q", [False, True])
def test_constant_shift_error_is_its_norm(codebook, under_q, getkey):
    """S = s + c: |S - s| = |c| at every point, so the L^2 error is |c| under every law."""
    c = jnp.linspace(-0.5, 0.7, D)
    shifted = js.oracles.Score(lambda x, s: codebook.score(x, s) + c.astype(x.dtype))
    law = _sphere(codebook) if under_q else None
    prof = js.metrics.score_error_profile(shifted, codebook, SIGMAS, getkey(), n=512, law=law)
    np.testing.assert_allclose(prof.estimate, float(jnp.linalg.norm(c)), rtol=1e-5)
    r = js.metrics.score_error(shifted, codebook, 0.7, getkey(), n=512, law=law)
    np.testing.assert_allclose(r.estimate, float(jnp.linalg.norm(c)), rtol=1e-5)
    assert r.law == prof.law


def test_law_decides_where_points_are_drawn(getkey):
    """S = s + a x: |S - s|^2 = a^2 |x|^2, E|x|^2 = d (v + sigma^2) under law N(0, v I)."""
    a, v, d = 0.3, 4.0, 5
    target = js.targets.GaussianMixture(jax.random.normal(jax.random.key(1), (3, d)), 0.5)
    oracle = js.oracles.Score(lambda x, s: target.score(x, s) + a * x)
    law = js.targets.Gaussian(jnp.zeros(d), v)
    prof = js.metrics.score_error_profile(oracle, target, SIGMAS, getkey(), n=8192, law=law)
    expected = a * np.sqrt(d * (v + SIGMAS**2))
    assert_within_se(prof.estimate, expected, prof.se, k=5)
    assert np.all(prof.lower <= expected) and np.all(expected <= prof.upper)
    own = js.metrics.score_error_profile(oracle, target, SIGMAS, getkey(), n=8192)
    assert np.all(own.upper < prof.lower)  # the mixture's |x|^2 is far smaller than the wide law's


def test_bad_law_raises(codebook, getkey):
    exact = js.oracles.Exact(codebook)
    with pytest.raises(TypeError, match="`law` must be a jscore target"):
        js.metrics.score_error(exact, codebook, 1.0, getkey(), law=exact)
    with pytest.raises(TypeError, match="`law`"):
        js.metrics.score_error_profile(exact, codebook, SIGMAS, getkey(), law="sphere")
    with pytest.raises(ValueError, match="`law` has dim 3"):
        js.metrics.score_error(exact, codebook, 1.0, getkey(), law=js.targets.UniformSphere(3))
