import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jscore as js
from jscore import ou, schedules


def test_ou_round_trip_and_small_t(x64):
    sig = jnp.array([1e-8, 1e-4, 0.002, 1.0, 80.0, 1e4])
    t = ou.t_from_sigma(sig)
    np.testing.assert_allclose(ou.sigma_from_t(t), sig, rtol=1e-13)
    np.testing.assert_allclose(ou.alpha(t), 1 / np.sqrt(1 + np.asarray(sig) ** 2), rtol=1e-13)
    np.testing.assert_allclose(ou.alpha_from_sigma(sig), ou.alpha(t), rtol=1e-13)
    # sigmabar = alpha * sigma
    np.testing.assert_allclose(ou.marginal_std(t), ou.alpha(t) * sig, rtol=1e-12)


def test_ou_float32_accuracy_at_tiny_t():
    # sqrt(exp(2t) - 1) would be 0.7% off at t = 1e-6 in float32; expm1 keeps ulp accuracy
    t = jnp.float32(1e-6)
    exact = np.sqrt(np.expm1(2 * 1e-6))
    assert abs(float(ou.sigma_from_t(t)) / exact - 1) < 1e-6


def test_score_ou_matches_ou_marginal_of_gaussian(x64):
    # Data N(m, s2): OU marginal at t is N(alpha m, alpha^2 s2 + 1 - alpha^2)
    m, s2 = 1.5, 0.3
    target = js.targets.Gaussian(jnp.full((3,), m), s2)
    t = 0.7
    a = np.exp(-t)
    x = jnp.array([0.1, -2.0, 3.0])
    expected = -(np.asarray(x) - a * m) / (a * a * s2 + 1 - a * a)
    np.testing.assert_allclose(ou.score_ou(target.score, x, t), expected, rtol=1e-12)
    # inverse map
    back = ou.score_ve_from_ou(lambda xx, tt: ou.score_ou(target.score, xx, tt), x, 2.0)
    np.testing.assert_allclose(back, target.score(x, 2.0), rtol=1e-12)


def test_karras_matches_formula_and_ends(x64):
    s = schedules.karras(18)
    assert s.shape == (19,) and s[-1] == 0.0
    np.testing.assert_allclose(s[0], 80.0, rtol=1e-14)
    np.testing.assert_allclose(s[17], 0.002, rtol=1e-12)
    i = np.arange(18)
    ref = (80 ** (1 / 7) + i / 17 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    np.testing.assert_allclose(s[:-1], ref, rtol=1e-13)
    assert schedules.karras(18, append_zero=False).shape == (18,)
    # spec: EDM defaults give t_0 = 4.382 and t_{n-1} = 2.0e-6
    np.testing.assert_allclose(ou.t_from_sigma(s[0]), 4.382, atol=1e-3)
    np.testing.assert_allclose(ou.t_from_sigma(s[17]), 2.0e-6, rtol=1e-3)


def test_geometric_offset_shift(x64):
    base = schedules.geometric(10, 0.01, 10.0)
    np.testing.assert_allclose(base[:-1], np.geomspace(10.0, 0.01, 10), rtol=1e-12)
    shifted = schedules.geometric(10, 0.01, 10.0, offset=0.5)
    delta = np.log(1000.0) / 9
    np.testing.assert_allclose(np.log(shifted[:-1]) - np.log(base[:-1]), -0.5 * delta, atol=1e-12)
    # traced offsets: one grid per chain under vmap
    offs = jnp.array([0.0, 0.25, 0.75])
    grids = jax.vmap(lambda o: schedules.geometric(10, 0.01, 10.0, offset=o))(offs)
    assert grids.shape == (3, 11)
    np.testing.assert_allclose(grids[1], schedules.geometric(10, 0.01, 10.0, offset=0.25), rtol=1e-13)


def test_vp_linear_and_cosine_reference_values(x64):
    s = schedules.vp_linear(1000)
    # docs/sampler_reference.md: vp_linear with defaults spans sigma in [0.0105, 152.2]
    np.testing.assert_allclose(s[0], 152.2, rtol=1e-3)
    np.testing.assert_allclose(s[-2], 0.0105, rtol=2e-2)
    np.testing.assert_allclose(schedules.vp_time(80.0), 0.9335, atol=1e-4)
    np.testing.assert_allclose(schedules.vp_time(0.002), 4.0e-5, rtol=1e-2)
    np.testing.assert_allclose(schedules.vp_time(schedules.vp_sigma(0.37)), 0.37, rtol=1e-12)
    np.testing.assert_allclose(schedules._cosine_u(jnp.float64(80.0), 0.008), 0.99198, atol=1e-5)
    c = schedules.cosine(50)
    assert c.shape == (51,)
    np.testing.assert_allclose([c[0], c[-2]], [80.0, 0.002], rtol=1e-12)
    u = np.asarray(schedules._cosine_u(c[:-1], 0.008))
    np.testing.assert_allclose(np.diff(u), np.diff(u)[0], rtol=1e-6)  # uniform in u


def test_ou_uniform_uniform_in_t(x64):
    s = schedules.ou_uniform(20, 1e-3, 5.0)
    t = np.asarray(ou.t_from_sigma(s[:-1]))
    np.testing.assert_allclose(t, np.linspace(5.0, 1e-3, 20), rtol=1e-12)


@pytest.mark.parametrize(
    "name,fn",
    [
        ("karras", lambda n: schedules.karras(n)),
        ("geometric", lambda n: schedules.geometric(n, 0.002, 80.0, offset=0.3)),
        ("vp_linear", lambda n: schedules.vp_linear(n)),
        ("cosine", lambda n: schedules.cosine(n)),
        ("ou_uniform", lambda n: schedules.ou_uniform(n, 1e-4, 4.0)),
    ],
)
def test_every_schedule_strictly_decreasing_float32(name, fn):
    for n in (1, 2, 10, 1000):
        s = np.asarray(fn(n))
        assert s.dtype == np.float32
        assert s.shape == (n + 1,)
        assert np.all(np.diff(s) < 0) and s[-1] == 0 and np.all(s[:-1] > 0), name


def test_schedule_bad_input():
    with pytest.raises(ValueError, match="sigma_min"):
        schedules.karras(10, sigma_min=5.0, sigma_max=1.0)
    with pytest.raises(ValueError, match="offset"):
        schedules.geometric(10, 0.1, 1.0, offset=1.0)
    with pytest.raises(ValueError, match="n"):
        schedules.karras(0)
    with pytest.raises(TypeError, match="int"):
        schedules.karras(10.0)
    with pytest.raises(ValueError, match="t_min"):
        schedules.ou_uniform(10, 2.0, 1.0)
