"""Bring-your-own-model oracles: Score / Denoiser, the eps/v/x0 and EDM adapters, weight swaps.

Every adapter is checked against the closed-form VE score of a Gaussian mixture: the test writes
the mixture's *native* density ``p_t(x_t) = sum_k w_k N(x_t; a mu_k, (a^2 tau^2 + s^2) I)`` in the
model's convention (its own ``t -> (a, s)`` maps, written here in numpy/jnp), derives the exact
eps/v/x0 predictions from it by autodiff, wraps them, and compares the adapter's answer with
``GaussianMixture.score`` (float64, relative error <= 1e-9).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jscore as js
from jscore.sampling import TRACE_COUNTS

D = 3
MEANS = np.array([[2.0, -1.0, 0.5], [-1.5, 0.5, 1.0]])
TAU = 0.7
W = np.array([0.3, 0.7])


def mixture():
    return js.targets.GaussianMixture(jnp.asarray(MEANS), TAU, jnp.asarray(W))


def native_score(x_t, a, s):
    """grad log of the mixture's law in a convention x_t = a x0 + s eps (written independently)."""

    def logp(y):
        v = a * a * TAU * TAU + s * s
        lk = -0.5 * jnp.sum((y - a * jnp.asarray(MEANS)) ** 2, -1) / v - 0.5 * D * jnp.log(v)
        return jax.nn.logsumexp(lk + jnp.log(jnp.asarray(W)))

    return jax.grad(logp)(x_t)


def predictions(x_t, a, s):
    """Exact (eps, x0, v) at x_t."""
    g = native_score(x_t, a, s)
    eps = -s * g
    x0 = (x_t + s * s * g) / a
    return {"eps": eps, "x0": x0, "v": a * eps - s * x0}


def model_for(kind, a_s_of_t):
    return lambda x_t, t: predictions(x_t, *a_s_of_t(t))[kind]


def points(sigma, k=4):
    z = np.random.default_rng(int(1e6 * sigma) % 2**31).standard_normal((k, D))
    return jnp.asarray(MEANS[np.arange(k) % 2] + math.sqrt(TAU**2 + sigma**2) * z)


def assert_matches_mixture(oracle, sigmas):
    t = mixture()
    for sigma in sigmas:
        for x in points(sigma):
            got, _ = oracle.query(x, jnp.asarray(sigma), None)
            want = t.score(x, jnp.asarray(sigma))
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-9, atol=1e-9 * float(jnp.linalg.norm(want)))


# ----------------------------------------------------------------------------- discrete VP

BETAS = np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2  # Stable Diffusion's "scaled_linear"
ACP = np.cumprod(1.0 - BETAS)
LOG_SIG = 0.5 * np.log((1.0 - ACP) / ACP)


def kdiffusion_sigma_to_t(sigma):
    """k-diffusion's DiscreteSchedule.sigma_to_t (interpolating branch), transcribed to numpy."""
    log_sigma = np.log(sigma)
    dists = log_sigma - LOG_SIG[:, None]
    low = np.clip(np.argmax(np.cumsum(dists >= 0, axis=0), axis=0), None, LOG_SIG.shape[0] - 2)
    lo, hi = LOG_SIG[low], LOG_SIG[low + 1]
    w = np.clip((lo - log_sigma) / (lo - hi), 0, 1)
    return (1 - w) * low + w * (low + 1)


def discrete_a_s(t):
    sig = jnp.exp(jnp.interp(t, jnp.arange(1000.0), jnp.asarray(LOG_SIG)))
    a = 1.0 / jnp.sqrt(1.0 + sig * sig)
    return a, a * sig


DISCRETE_SIGMAS = [0.03, 0.2, 1.0, 3.7, 14.0]


def test_discrete_timestep_matches_kdiffusion(x64):
    sched = js.oracles.DiscreteVP(ACP)
    s = np.geomspace(0.03, 14.0, 17)
    got = np.array([float(sched.timestep(jnp.asarray(v))) for v in s])
    np.testing.assert_allclose(got, kdiffusion_sigma_to_t(s), rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.asarray(sched.sigmas), np.exp(LOG_SIG), rtol=1e-12)
    near = js.oracles.DiscreteVP(ACP, timestep="nearest")
    assert [int(near.timestep(jnp.asarray(v))) for v in s] == [int(np.argmin(np.abs(LOG_SIG - np.log(v)))) for v in s]
    k = np.array([0, 17, 500, 999])
    assert [int(near.timestep(jnp.asarray(np.exp(LOG_SIG[i])))) for i in k] == k.tolist()


@pytest.mark.parametrize("kind", ["eps", "v", "x0"])
def test_discrete_vp_adapters_match_closed_form(x64, kind):
    oracle = js.oracles.Prediction(model_for(kind, discrete_a_s), js.oracles.DiscreteVP(ACP), kind)
    assert_matches_mixture(oracle, DISCRETE_SIGMAS)


def test_discrete_nearest_on_schedule_levels(x64):
    def model(x_t, k):  # a model that only knows the integer steps
        a = math.sqrt(1.0) * jnp.sqrt(jnp.asarray(ACP)[k])
        return predictions(x_t, a, jnp.sqrt(1.0 - a * a))["eps"]

    oracle = js.oracles.Prediction(model, js.oracles.DiscreteVP(ACP, timestep="nearest"), "eps")
    assert_matches_mixture(oracle, [float(np.exp(LOG_SIG[i])) for i in (3, 250, 999)])


# ----------------------------------------------------------------------------- continuous


def linear_a_s(t, bmin=0.1, bmax=20.0):
    log_a = -0.5 * bmin * t - 0.25 * (bmax - bmin) * t * t
    return jnp.exp(log_a), jnp.sqrt(-jnp.expm1(2.0 * log_a))


def cosine_a_s(t, s=0.008):
    f = lambda u: jnp.cos(0.5 * jnp.pi * (u + s) / (1.0 + s)) ** 2  # noqa: E731
    a2 = f(t) / f(0.0)
    return jnp.sqrt(a2), jnp.sqrt(1.0 - a2)


def flow_a_s(t):  # rectified-flow interpolation x_t = (1 - t) x0 + t eps: not VP
    return 1.0 - t, t


CONT_SIGMAS = [0.01, 0.3, 1.0, 5.0, 60.0]


@pytest.mark.parametrize("kind", ["eps", "v", "x0"])
@pytest.mark.parametrize("name", ["linear", "cosine", "flow", "flow_closed_form"])
def test_continuous_adapters_match_closed_form(x64, kind, name):
    sched, a_s = {
        "linear": (js.oracles.LinearVP(0.1, 20.0), linear_a_s),
        "cosine": (js.oracles.CosineVP(0.008), cosine_a_s),
        "flow": (js.oracles.Continuous(lambda t: 1.0 - t, lambda t: t), flow_a_s),
        "flow_closed_form": (
            js.oracles.Continuous(lambda t: 1.0 - t, lambda t: t, t_from_sigma=lambda s: s / (1.0 + s)),
            flow_a_s,
        ),
    }[name]
    sigmas = CONT_SIGMAS if name != "cosine" else CONT_SIGMAS[:-1]  # cosine ends at sigma ~ 160
    oracle = js.oracles.Prediction(model_for(kind, a_s), sched, kind)
    assert_matches_mixture(oracle, sigmas)


def test_continuous_bisection_inverts_the_schedule(x64):
    sched = js.oracles.Continuous(lambda t: 1.0 - t, lambda t: t)
    for s in [1e-4, 0.5, 3.0, 1e3]:
        assert abs(float(sched.timestep(jnp.asarray(s))) - s / (1 + s)) < 1e-14


def edm_raw(x_in, c_noise, sd=0.5):
    """The F an EDM network would need for D = the mixture's exact posterior mean."""
    sigma = jnp.exp(4.0 * c_noise)
    r = jnp.sqrt(sigma * sigma + sd * sd)
    x = x_in * r
    den = x + sigma * sigma * native_score(x, 1.0, sigma)  # VE: a = 1, s = sigma
    return (den - sd * sd / (r * r) * x) / (sigma * sd / r)


def test_edm_adapter_matches_closed_form(x64):
    assert_matches_mixture(js.oracles.EDM(edm_raw, sigma_data=0.5), [0.002, 0.1, 1.0, 20.0, 80.0])


def test_score_and_denoiser_wrappers(x64):
    t = mixture()
    assert_matches_mixture(js.oracles.Score(t.score), [0.05, 2.0])
    assert_matches_mixture(js.oracles.Denoiser(t.denoise), [0.05, 2.0])
    # args: fn(x, sigma, args)
    assert_matches_mixture(js.oracles.Score(lambda x, s, tt: tt.score(x, s), args=t), [0.5])


# ----------------------------------------------------------------------------- traced weights


class Affine(eqx.Module):
    w: jax.Array
    b: jax.Array

    def __call__(self, x, sigma):
        return jnp.tanh(self.w * x + self.b) / (1.0 + sigma)


def test_swapping_weights_never_retraces():
    grid = js.schedules.karras(4)
    sampler = js.samplers.Heun()
    runs = []

    def call(x, t, m):  # one function object; the weights travel in args
        return m(x, t)

    for seed in range(3):
        k1, k2 = jax.random.split(jax.random.key(seed))
        model = Affine(jax.random.normal(k1, (D,)), jax.random.normal(k2, (D,)))
        for oracle in (
            js.oracles.Denoiser(model, event_shape=(D,)),
            js.oracles.Prediction(call, js.oracles.LinearVP(), "eps", args=model, event_shape=(D,)),
        ):
            before = TRACE_COUNTS["sample"]
            r = js.sample(oracle, sampler, grid, jax.random.key(0), num_samples=2)
            runs.append((TRACE_COUNTS["sample"] - before, r.x))
    assert [n for n, _ in runs[:2]] == [1, 1]  # first run of each oracle type traces once
    assert all(n == 0 for n, _ in runs[2:])  # new weights: the compiled program is reused
    assert not np.allclose(runs[0][1], runs[2][1])  # ... and the new weights are used
    # a *new* plain function is a new program (documented): it traces again
    before = TRACE_COUNTS["sample"]
    js.sample(js.oracles.Prediction(lambda x, t, m: m(x, t), js.oracles.LinearVP(), "eps", args=model,
                                    event_shape=(D,)), sampler, grid, jax.random.key(0), num_samples=2)
    assert TRACE_COUNTS["sample"] - before == 1


# ----------------------------------------------------------------------------- bad input


def test_wrong_output_shapes_are_named():
    grid = js.schedules.karras(2)
    x0 = jnp.ones((2, D))
    for oracle, what in [
        (js.oracles.Score(lambda x, s: jnp.sum(x)), "Score"),
        (js.oracles.Denoiser(lambda x, s: x[:2]), "Denoiser"),
        (js.oracles.Prediction(lambda x, t: jnp.stack([x, x]), js.oracles.LinearVP()), "Prediction"),
        (js.oracles.EDM(lambda x, c: 1.0), "EDM"),
    ]:
        with pytest.raises(ValueError, match=rf"{what}.*must return one array of the point's shape \(3,\), got shape"):
            js.sample(oracle, js.samplers.Euler(), grid, jax.random.key(0), x_init=x0)
    with pytest.raises(TypeError, match="floating-point"):
        js.sample(js.oracles.Score(lambda x, s: jnp.zeros(x.shape, jnp.int32)), js.samplers.Euler(), grid,
                  jax.random.key(0), x_init=x0)


def test_bad_constructor_arguments():
    with pytest.raises(TypeError, match="callable"):
        js.oracles.Score(3.0)
    with pytest.raises(ValueError, match="kind"):
        js.oracles.Prediction(lambda x, t: x, js.oracles.LinearVP(), "score")
    with pytest.raises(TypeError, match="schedule"):
        js.oracles.Prediction(lambda x, t: x, np.linspace(0.9, 0.1, 5))
    with pytest.raises(ValueError, match="decrease strictly"):
        js.oracles.DiscreteVP(np.linspace(0.1, 0.9, 5))
    with pytest.raises(ValueError, match="timestep"):
        js.oracles.DiscreteVP(ACP, timestep="round")
    with pytest.raises(ValueError, match="event_shape"):
        js.oracles.Score(lambda x, s: x, event_shape=(0, 2))
    with pytest.raises(ValueError, match="sigma_data"):
        js.oracles.EDM(lambda x, c: x, sigma_data=-1.0)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        js.sample(js.oracles.Score(lambda x, s: x, event_shape=(3,)), js.samplers.Euler(), js.schedules.karras(2),
                  jax.random.key(0), x_init=jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="event_shape"):
        js.sample(js.oracles.Score(lambda x, s: x), js.samplers.Euler(), js.schedules.karras(2), jax.random.key(0),
                  num_samples=2)
