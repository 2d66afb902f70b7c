"""Image-shaped states: x_init (n, *event_shape), every catalogue sampler, a conv denoiser.

An event-shaped run must be the flat run reshaped: same samples, same exact counts (samplers work
on the flattened state; the oracle is asked at event-shaped points).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jscore as js
from jscore.samplers.catalogue import CATALOGUE

EVENT = (2, 3, 2)
DIM = math.prod(EVENT)
GRID = js.schedules.karras(3, sigma_min=0.05, sigma_max=10.0)


def target():
    means = np.random.default_rng(0).standard_normal((2, DIM)) * 2.0
    return js.targets.GaussianMixture(jnp.asarray(means), 0.5)


def event_score(x, sigma):
    """A score that needs the event shape (it reads x[..., c] by channel): per-channel Gaussian."""
    var = jnp.asarray([1.0, 4.0])  # channel variances
    return -x / (var + sigma * sigma)


# the default run covers a cheap-to-compile cross-section (first- and second-order, stochastic,
# multistep); every other catalogue sampler, including ones added later, runs in the slow suite
_DEFAULT = {"euler", "heun", "euler_ancestral", "ddim", "euler_maruyama", "exponential_integrator",
            "dpm_solver_2", "dpmpp_2m", "lms", "dpmpp_2m_sde"}


@pytest.mark.parametrize(
    "name", [n if n in _DEFAULT else pytest.param(n, marks=pytest.mark.slow) for n in sorted(CATALOGUE)]
)
def test_every_catalogue_sampler_runs_on_event_shaped_states(name):
    sampler = js.samplers.catalogue.make(name)
    n_fixed = sampler.num_queries(GRID.shape[0] - 1, True)
    mq = None if n_fixed is not None else 60
    key = jax.random.key(3)
    x0 = 10.0 * jax.random.normal(jax.random.key(1), (2,) + EVENT)
    ref = js.sample(js.oracles.Exact(target()), sampler, GRID, key, x_init=x0.reshape(2, DIM), max_queries=mq)
    res = js.sample(js.oracles.Exact(target()), sampler, GRID, key, x_init=x0, max_queries=mq)
    assert res.x.shape == (2,) + EVENT
    np.testing.assert_allclose(np.asarray(res.x).reshape(2, DIM), np.asarray(ref.x), rtol=1e-5, atol=1e-5)
    for f in ("queries", "levels", "rounds"):
        np.testing.assert_array_equal(getattr(res.stats, f), getattr(ref.stats, f))
    if n_fixed is not None:
        assert res.stats.queries.tolist() == [n_fixed, n_fixed]
    assert res.status.tolist() == ref.status.tolist()


def test_event_shaped_oracle_sees_its_shape_and_records():
    oracle = js.oracles.Score(event_score, event_shape=EVENT)
    res = js.sample(oracle, js.samplers.Heun(), GRID, jax.random.key(0), num_samples=3, record=js.Record(x=True))
    assert res.x.shape == (3,) + EVENT and res.trace.x.shape == (3, 3) + EVENT
    # Heun on N(0, diag var): compare with the same sampler on the flat equivalent
    var = jnp.broadcast_to(jnp.asarray([1.0, 4.0]), EVENT).reshape(-1)
    flat = js.sample(js.oracles.Exact(js.targets.Gaussian(jnp.zeros(DIM), var)), js.samplers.Heun(), GRID,
                     jax.random.key(0), num_samples=3)
    np.testing.assert_allclose(np.asarray(res.x).reshape(3, DIM), np.asarray(flat.x), rtol=1e-5, atol=1e-6)
    one = js.sample_one(oracle, js.samplers.Heun(), GRID, jax.random.fold_in(jax.random.key(0), 1))
    np.testing.assert_allclose(one.x, res.x[1], rtol=1e-6)
    # metrics flatten event-shaped samples
    assert float(js.metrics.moment_fit_w2(res.x, jnp.zeros(DIM), var)) >= 0.0
    e = js.metrics.score_error(oracle, js.targets.Gaussian(jnp.zeros(DIM), var), 1.0, jax.random.key(1), n=64)
    assert float(e.estimate) < 1e-5


class ConvDenoiser(eqx.Module):
    """A small convolutional denoiser on (H, W, C) states (EDM-style skip, conv residual)."""

    conv1: eqx.nn.Conv2d
    conv2: eqx.nn.Conv2d

    def __init__(self, key, channels=1, width=4):
        k1, k2 = jax.random.split(key)
        self.conv1 = eqx.nn.Conv2d(channels + 1, width, 3, padding=1, key=k1)
        self.conv2 = eqx.nn.Conv2d(width, channels, 3, padding=1, key=k2)

    def __call__(self, x, sigma):
        h = jnp.moveaxis(x, -1, 0) / jnp.sqrt(1.0 + sigma * sigma)  # (C, H, W)
        h = jnp.concatenate([h, jnp.full((1,) + h.shape[1:], jnp.log(sigma) / 4)], 0)
        f = self.conv2(jax.nn.silu(self.conv1(h)))
        return x / (1.0 + sigma * sigma) + sigma / jnp.sqrt(1.0 + sigma * sigma) * jnp.moveaxis(f, 0, -1)


def test_conv_denoiser_through_sample():
    model = ConvDenoiser(jax.random.key(0))
    oracle = js.oracles.Denoiser(model)
    x0 = 5.0 * jax.random.normal(jax.random.key(1), (4, 8, 8, 1))
    grid = js.schedules.karras(5, sigma_min=0.02, sigma_max=5.0)
    for name in ("heun",):
        sampler = js.samplers.catalogue.make(name)
        res = js.sample(oracle, sampler, grid, jax.random.key(2), x_init=x0)
        assert res.x.shape == (4, 8, 8, 1) and bool(jnp.all(jnp.isfinite(res.x)))
        assert res.stats.queries.tolist() == [sampler.num_queries(5, True)] * 4
    # the oracle's answer is Tweedie of the network at that point
    s, _ = oracle.query(x0[0], jnp.asarray(0.7), None)
    np.testing.assert_allclose(s, (model(x0[0], jnp.asarray(0.7)) - x0[0]) / 0.49, rtol=1e-5)
