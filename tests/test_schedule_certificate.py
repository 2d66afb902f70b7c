"""The explicit-grid sides path: geometric case identical to the geometric path, hidden-scale
average equal to SamplerDraws' offset average, worst <= average."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jscore.lowerbound import scaling as sc
from jscore.lowerbound.schedule_certificate import GridDraws
from jscore.lowerbound.schedule_families import family

D = 1600.0
EPS = 1 / D
WIDTH = 3.29 * math.sqrt(math.log(D / EPS) / D)


def test_grid_path_equals_geometric_path(x64):
    K, k_max, n = 9, 12, 24
    draws = sc.SamplerDraws("heun", D, EPS, 2.0, WIDTH, key=jax.random.key(3), n_points=n,
                            n_reps=1, k_max=k_max)
    u = draws.offsets(K)
    f = jnp.float64
    args = (jnp.asarray(draws.log_m, f), draws.keys, f(EPS), f(2.0), f(WIDTH))
    ref = sc._sides_body(D, jnp.asarray(K), jnp.asarray(u, f), *args, draws.spec, k_max)
    delta = math.log(sc.SIGMA_MAX / sc.SIGMA_MIN) / K
    log_sig = math.log(sc.SIGMA_MAX) - np.arange(k_max + 1) * delta
    got = sc._grid_sides_body(D, jnp.asarray(K), jnp.asarray(log_sig, f),
                              jnp.asarray(u * delta, f), *args, draws.spec, k_max)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)
    assert np.ptp(np.asarray(ref[1])) > 0.05  # the offsets matter: not a constant comparison
    # and the SamplerDraws result is the mean of these per-chain values
    np.testing.assert_allclose(draws(K)[0], np.mean(np.asarray(ref[0])), rtol=1e-12)


@pytest.mark.slow
def test_hidden_scale_average_equals_offset_average(x64):
    """Geometric grid, hidden scale over one log-period in the interior == random log-offset."""
    K = 9
    delta = math.log(sc.SIGMA_MAX / sc.SIGMA_MIN) / K
    grid = sc.geometric_levels(K, np.zeros(1))[0]
    ref = sc.SamplerDraws("euler", D, EPS, 2.0, WIDTH, key=jax.random.key(1), n_points=64,
                          n_reps=6)(K)
    h0 = math.exp(math.log(sc.SIGMA_MIN) + 4 * delta)
    gd = GridDraws("euler", grid, D, EPS, 2.0, WIDTH, key=jax.random.key(2), n_scales=32,
                   n_points=8, n_reps=4, scale_min=h0, scale_max=h0 * math.exp(delta))
    s = gd.summary()
    for side, r in (("lower", ref[0]), ("upper", ref[1])):
        se = math.hypot(r.std(ddof=1) / math.sqrt(r.size), s[side]["average_se"])
        assert abs(s[side]["average"] - r.mean()) <= 4 * se + 0.01, (side, s[side], r)
    assert 0.05 < s["upper"]["average"] < 0.95  # an informative comparison, not a 0 or 1


def test_worst_at_most_average_and_sides_ordered(x64):
    K = 8
    grid = family("karras:7").grid(K, sc.SIGMA_MIN, sc.SIGMA_MAX)
    gd = GridDraws("heun", grid, D, EPS, 2.0, WIDTH, key=jax.random.key(4), n_scales=12,
                   n_points=8, n_reps=2)
    out, s = gd(), gd.summary()
    assert np.all(out["lower"] <= out["upper"] + 1e-12)
    for side in ("lower", "upper"):
        assert s[side]["worst"] <= s[side]["average"]
        assert s[side]["worst"] == min(s[side]["per_scale"])
    # Karras rho=7 at K=8 leaves its widest log-gap at the top: the worst scale is not the best
    assert max(s["upper"]["per_scale"]) - s["upper"]["worst"] > 0.1


def test_schedule_certificate_table():
    from jscore.lowerbound.schedule_certificate import format_certificate, schedule_certificate

    res = schedule_certificate("user:20,5,1.2,0.6,0.1,0.02", 6, 400, "euler", n_scales=4,
                               n_points=4, n_reps=2)
    assert res["grid"] == [20, 5, 1.2, 0.6, 0.1, 0.02] and len(res["log_h"]) == 4
    for side in ("lower", "upper"):
        assert res[side]["worst"] == min(res[side]["per_scale"]) <= res[side]["average"]
    assert res["lower"]["average"] <= res["upper"]["average"]
    assert res["sparsest_gap"] == pytest.approx(math.log(6.0))  # 0.6 -> 0.1, the widest ratio
    assert res["sparsest_sigma"] == pytest.approx(math.sqrt(0.06))
    table = format_certificate(res)
    assert table.count("\n") == 2 + 4 + 2 and "worst hidden scale" in table
