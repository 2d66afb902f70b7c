"""``kl_gauss``: the closed-form KL of a stochastic sampler's Gaussian output law, checked against an
independent numpy recursion of each sampler's own update on ``N(m, s^2)`` (docs/experiments/sampler_sweeps.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import jscore as js
from jscore.sweeps import engine
from jscore.sweeps.measures import get_measure
from jscore.sweeps.spec import SweepSpec

from helpers import assert_within_se

M, VAR, SMIN, SMAX = 0.3, 1.5, 0.01, 10.0


def _recursion(name, grid, v, m=M):
    """``(A, beta, B^2)`` of ``x - m = A (x_T - m) + beta m + eta`` for one coordinate, by tracking
    ``x = alpha x_T + gamma m + eta`` through the sampler's update with score ``-(x - m)/(v + sigma^2)``."""
    alpha, gamma, b2 = 1.0, 0.0, 0.0
    for s, sn in zip(grid[:-1], grid[1:]):
        q = 1.0 / (v + s * s)  # score = -q (x - m)
        if sn == 0.0:  # every step into sigma' = 0 returns Tweedie's D = x - s^2 q (x - m)
            k, cm, noise = 1.0 - s * s * q, s * s * q, 0.0
        elif name == "euler_ancestral":  # eta = 1: sigma_down = s'^2/s, sigma_up = s' sqrt(1 - (s'/s)^2)
            down, up = sn * sn / s, sn * math.sqrt(1.0 - (sn / s) ** 2)
            k, cm, noise = 1.0 - (s * s - s * down) * q, (s * s - s * down) * q, up * up
        elif name == "euler_maruyama":  # OU variant
            h = 0.5 * (math.log1p(s * s) - math.log1p(sn * sn))
            rho = math.exp(-h)
            k = rho * ((1.0 + h) - 2.0 * h * (1.0 + s * s) * q)
            cm, noise = rho * 2.0 * h * (1.0 + s * s) * q, (1.0 + sn * sn) * 2.0 * h
        else:
            raise AssertionError(name)
        alpha, gamma, b2 = k * alpha, k * gamma + cm, k * k * b2 + noise
    return alpha, alpha + gamma - 1.0, b2


def _kl_true(a, beta, b2, d, sigma0, v=VAR, m=M):
    w = (a * a * sigma0 * sigma0 + b2) / v
    return 0.5 * d * (w - 1.0 - math.log(w)) + (beta - a) ** 2 * d * m * m / (2.0 * v)


@pytest.fixture(scope="module")
def stochastic_sweep(tmp_path_factory):
    spec = SweepSpec(
        name="gauss-stochastic",
        samplers=["euler_ancestral", "euler_maruyama"],
        targets=[f"gaussian:mean={M},var={VAR}"],
        schedules=[f"karras:sigma_min={SMIN},sigma_max={SMAX}"],
        dims="48",
        seeds="0-63",
        chunk=64,
        steps="3,6,12",
        metrics=["kl_gauss", "kl_gauss_se", "kl"],
        bootstrap=0,
    )
    return js.sweep(spec, out=str(tmp_path_factory.mktemp("gs") / "out"), quiet=True, cache_dir=None)


def test_kl_gauss_matches_the_recursion(stochastic_sweep):
    """Each estimate lies within 5 of its own standard errors of the independent closed form, and the
    SE is the delta-method size ``d/2 |1 - 1/w| w sqrt(2/N)`` within a factor 2 (no vacuous SE)."""
    seen = set()
    for e in stochastic_sweep.evals:
        name = e["cell"]["sampler"]
        grid = np.asarray(js.schedules.karras(e["num_steps"], sigma_min=SMIN, sigma_max=SMAX), np.float64)
        a, beta, b2 = _recursion(name, grid, VAR)
        d, n = e["dim"], 64
        kl = _kl_true(a, beta, b2, d, grid[0])
        assert_within_se(e["kl_gauss"], kl, e["kl_gauss_se"], k=5, what=f"{name} N={e['num_steps']}")
        w = (a * a * grid[0] ** 2 + b2) / VAR
        se_rough = 0.5 * d * abs(1.0 - 1.0 / w) * w * math.sqrt(2.0 / (n * d))
        assert 0.5 * se_rough < e["kl_gauss_se"] < 2.0 * se_rough + 0.05
        seen.add(name)
    assert seen == {"euler_ancestral", "euler_maruyama"}


def test_euler_maruyama_is_not_translation_equivariant():
    """Why ``kl_gauss`` fits the ``beta m`` column: the OU Euler-Maruyama step shifts the mean."""
    grid = np.asarray(js.schedules.karras(6, sigma_min=SMIN, sigma_max=SMAX), np.float64)
    assert abs(_recursion("euler_maruyama", grid, VAR)[1]) > 1e-3
    assert abs(_recursion("euler_ancestral", grid, VAR)[1]) < 1e-12


def test_kl_gauss_agrees_with_kl_affine_on_a_deterministic_sampler(tmp_path):
    spec = SweepSpec(
        samplers=["heun"], targets=[f"gaussian:mean={M},var={VAR}"],
        schedules=[f"karras:sigma_min={SMIN},sigma_max={SMAX}"], dims="32", seeds="0-7", chunk=8,
        steps="3,6", metrics=["kl_affine", "kl_gauss", "kl_gauss_se"], bootstrap=0,
    )
    res = js.sweep(spec, out=str(tmp_path / "o"), quiet=True, cache_dir=None)
    for e in res.evals:
        np.testing.assert_allclose(e["kl_gauss"], e["kl_affine"], rtol=2e-3)
        assert e["kl_gauss_se"] < 1e-3 * max(e["kl_affine"], 1.0)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(oracles=["noisy:eps=0.1"]), "exact oracle"),
        (dict(targets=["gmm:k=3"]), "needs a Gaussian target"),
    ],
)
def test_kl_gauss_refuses(kw, match):
    base = dict(samplers=["euler_ancestral"], dims="4", seeds="0-3", chunk=4, steps="4", metrics=["kl_gauss"])
    base.update(kw)
    with pytest.raises(ValueError, match=match):
        engine.validate(SweepSpec(**base))


def test_kl_gauss_refuses_adaptive_samplers():
    class _Exact:
        is_exact = True

    target = js.targets.Gaussian(mean=np.zeros(3, np.float32), var=np.float32(1.0))
    with pytest.raises(ValueError, match="fixed-grid sampler"):
        get_measure("kl_gauss").check(target, _Exact(), js.samplers.make("adaptive"))


def test_builtin_stochastic_spec_validates():
    from jscore.sweeps import BUILTIN_SPECS

    spec = BUILTIN_SPECS["gaussian-stochastic-steps-vs-d"]()
    engine.validate(spec)
    assert spec.qstar.metric == "kl_gauss" and "kl_gauss_se" in spec.metrics
    names = [c.name for c in spec.samplers]
    assert {"euler_ancestral", "euler_maruyama"} <= set(names)
    assert all(js.samplers.make(n).is_stochastic for n in names)
