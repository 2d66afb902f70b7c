"""The schedule certificate: the explicit-grid sides path equals the geometric path, the
hidden-scale average equals SamplerDraws' offset average, worst <= average, the steps-to-1/2
search (against brute force), any sampler (a user-defined class; full-vector vs scalar), the CLI."""

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
    # k_max 64 and 128 chains: GridDraws' smallest padded program at the tests' common shape
    # (every test below runs 128 scalar chains, so the suite compiles that program once)
    K, k_max, n = 9, 64, 128
    draws = sc.SamplerDraws("euler", D, EPS, 2.0, WIDTH, key=jax.random.key(3), n_points=n,
                            n_reps=1, k_max=k_max)
    u = draws.offsets(K)
    f = jnp.float64
    args = (jnp.asarray(draws.log_m, f), draws.keys, f(EPS), f(2.0), f(WIDTH))
    ref = sc._call("sides", sc._sides_body, D, jnp.asarray(K, jnp.int32), jnp.asarray(u, f), *args,
                   static=(draws.spec, k_max))
    delta = math.log(sc.SIGMA_MAX / sc.SIGMA_MIN) / K
    log_sig = math.log(sc.SIGMA_MAX) - np.arange(k_max + 1) * delta
    got = sc._call("grid_sides", sc._grid_sides_body, D, jnp.asarray(K, jnp.int32),
                   jnp.asarray(log_sig, f), jnp.asarray(u * delta, f), *args,
                   static=(draws.spec, k_max))
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
    gd = GridDraws("euler", grid, D, EPS, 2.0, WIDTH, key=jax.random.key(4), n_scales=8,
                   n_points=8, n_reps=2)
    out, s = gd(), gd.summary()
    assert np.all(out["lower"] <= out["upper"] + 1e-12)
    for side in ("lower", "upper"):
        assert s[side]["worst"] <= s[side]["average"]
        assert s[side]["worst"] == min(s[side]["per_scale"])
    # Karras rho=7 at K=8 leaves its widest log-gap at the top: the worst scale is not the best
    assert max(s["upper"]["per_scale"]) - s["upper"]["worst"] > 0.1


def test_schedule_certificate_table(x64):
    from jscore.lowerbound.schedule_certificate import format_certificate, schedule_certificate

    res = schedule_certificate("user:20,5,1.2,0.6,0.1,0.02", 6, 400, "euler", n_scales=4,
                               n_points=8, n_reps=4)
    assert res["grid"] == [20, 5, 1.2, 0.6, 0.1, 0.02] and len(res["cell_log_h"]) == 4
    for side in ("lower", "upper"):
        assert res[side]["worst"] == min(res[side]["per_scale"]) <= res[side]["average"]
    assert res["lower"]["average"] <= res["upper"]["average"]
    assert res["sparsest_gap"] == pytest.approx(math.log(6.0))  # 0.6 -> 0.1, the widest ratio
    assert res["sparsest_sigma"] == pytest.approx(math.sqrt(0.06))
    assert res["steps_to_half"] is None  # a user grid has no K to vary
    assert res["scale_min"] == 0.02 and res["scale_max"] == pytest.approx(2.0)
    table = format_certificate(res)
    assert table.count("\n") == 2 + 4 + 2 and "worst hidden-scale cell" in table


def test_least_k_search_exact():
    """Bracket + bisection on a known monotone predicate: exact answers and few evaluations."""
    from jscore.lowerbound.schedule_certificate import _least_k

    for k_true in (2, 3, 17, 37, 100, 511):
        calls = []

        def reached(k):
            calls.append(k)
            return k >= k_true

        for k0 in (2, 18, 300):
            calls.clear()
            lo, hi = _least_k(reached, k0, 2, 512, 0.0)
            assert hi == k_true and (lo == k_true - 1 or lo == hi == 2), (k_true, k0, lo, hi)
            assert len(set(calls)) <= 2 * math.log2(512) + 2
        lo, hi = _least_k(reached, 18, 2, 512, 0.1)  # tolerance: hi within 10 % above the truth
        assert k_true <= hi <= max(k_true + 1, 1.1 * k_true + 1) and not reached(lo) or lo == hi
    assert _least_k(lambda k: False, 18, 2, 100, 0.0) == (100, None)  # never reached by k_cap
    calls = []  # a bracket already known (earlier evaluations) is bisected, not searched again
    known = {18: False, 30: False, 64: True, 300: True}
    assert _least_k(lambda k: calls.append(k) or k >= 41, 18, 2, 512, 0.0, known) == (40, 41)
    assert len(calls) <= math.ceil(math.log2(64 - 30)) and all(30 < k < 64 for k in calls)


def test_steps_to_half_matches_brute_force(x64):
    """The search's least K equals the brute-force least K on the same common random numbers,
    for the average and the worst cell, both sides; lo (upper side) <= hi (lower side)."""
    from jscore.lowerbound.schedule_certificate import steps_to_half

    fam = family("karras:7")
    d = 400.0
    gd = GridDraws("euler", fam.grid(4, 0.02, 20.0), d, 1 / d, 2.0, WIDTH, key=jax.random.key(5),
                   n_scales=8, n_points=4, n_reps=4, scale_min=0.02, scale_max=2.0, k_pad=64)
    steps, br, curve = steps_to_half(gd, fam, 0.02, 20.0, 4, k_cap=48, rel_tol=0.0)
    assert gd.k_pad == 64
    brute = {}
    for K in range(2, 49):
        s = gd.summary(gd.evaluate(fam.grid(K, 0.02, 20.0)))
        brute[K] = {f"{a}_{side}": s[side][a] for a in ("average", "worst")
                    for side in ("lower", "upper")}
    for k, v in curve.items():  # the search saw the same numbers (common random numbers)
        assert v == pytest.approx(brute[k], abs=1e-12)
    for agg in ("average", "worst"):
        for side, got in zip(("upper", "lower"), steps[agg]):
            ys = [brute[K][f"{agg}_{side}"] >= 0.5 for K in range(2, 49)]
            first = next((K for K, y in zip(range(2, 49), ys) if y), None)
            if first is not None and all(ys[first - 2:]):  # monotone from there: exact agreement
                assert got == first, (agg, side, got, first)
            else:  # otherwise a crossing: reached at got, not at the bracket's lower end
                assert got is None or brute[got][f"{agg}_{side}"] >= 0.5
        a, b = steps[agg]
        assert a is not None and b is not None and a <= b
    assert steps["average"][0] <= steps["worst"][0] and steps["average"][1] <= steps["worst"][1]


class _UserEuler(__import__("jscore").samplers.base.OneQueryPerStep):
    """A user-defined sampler: Euler's update written here (no scalar reduction registered)."""

    def init(self, sigmas, x):
        return None

    def step(self, oracle, i, sigmas, x, state, ostate, ledger, key):
        from jscore.counting import charged_query

        s, s_next = sigmas[i], sigmas[i + 1]
        score, ostate, ledger = charged_query(oracle, x, s, ostate, ledger)
        return x + (s * (s - s_next)) * score, state, ostate, ledger


def _agree(a, b, n_se=4.0, tol=0.01):
    for side in ("lower", "upper"):
        se = math.hypot(a[side]["average_se"], b[side]["average_se"])
        assert abs(a[side]["average"] - b[side]["average"]) <= n_se * se + tol, (side, a, b)


def test_user_sampler_through_the_certificate(x64):
    """A user-defined class runs on the full-vector path and agrees with scalar Euler."""
    from jscore.lowerbound.schedule_certificate import format_certificate, schedule_certificate

    kw = dict(n_scales=8, n_points=4, n_reps=4, seed=2, search=False)
    user = schedule_certificate("karras", 6, 400, _UserEuler(), "1/d", **kw)
    ref = schedule_certificate("karras", 6, 400, "euler", 1 / 400, **kw)
    assert user["path"] == "full-vector" and ref["path"] == "scalar"
    assert user["sampler"] == "_UserEuler" and user["eps"] == ref["eps"] == 1 / 400
    for side in ("lower", "upper"):
        assert user[side]["worst"] == min(user[side]["per_scale"]) <= user[side]["average"]
    assert np.all(np.array(user["lower"]["per_scale"]) <= np.array(user["upper"]["per_scale"]) + 1e-12)
    assert 0.1 < ref["upper"]["average"] < 0.9  # not a comparison of two zeros
    _agree(user, ref)
    assert "full-vector path" in format_certificate(user)


@pytest.mark.slow
def test_full_vector_matches_scalar_heun(x64):
    """Heun on the full-vector path (forced) vs its scalar reduction: same average within MC error."""
    d = 400.0
    g = family("karras").grid(6, 0.02, 20.0)
    kw = dict(key=jax.random.key(1), n_scales=8, n_points=16, n_reps=8, scale_min=0.02,
              scale_max=2.0)
    sc_ = GridDraws("heun", g, d, 1 / d, 2.0, WIDTH, **kw)
    fv = GridDraws("heun", g, d, 1 / d, 2.0, WIDTH, full_vector=True, **kw)
    assert sc_.path == "scalar" and fv.path == "full-vector"
    a, b = sc_.summary(), fv.summary()
    assert 0.1 < a["upper"]["average"] < 0.9
    _agree(a, b, tol=0.005)


def test_cli_out_json_txt_png(tmp_path):
    import json

    from jscore.cli import build_parser

    out = tmp_path / "cert"
    args = build_parser().parse_args(
        ["lowerbound", "schedule", "--schedule", "karras", "--steps", "4", "--dim", "400",
         "--eps", "1/d", "--scales", "8", "--points", "4", "--reps", "4", "--k-cap", "64",
         "--sampler", "euler", "--no-cache", "--out", str(out), "--png", str(tmp_path / "extra.png")])
    assert args.func(args) == 0
    res = json.loads((out / "certificate.json").read_text())
    assert res["eps"] == pytest.approx(1 / 400) and res["K"] == 4
    assert res["timing"]["wall_s"] > 0 and res["timing"]["compilations"] >= 0
    for agg in ("average", "worst"):
        lo, hi = res["steps_to_half"][agg]
        assert lo is not None and hi is not None and 2 <= lo <= hi <= 64
        assert [br[1] for br in res["steps_bracket"][agg]] == [lo, hi]
    assert "steps to P = 1/2 (average)" in (out / "certificate.txt").read_text()
    for png in (out / "certificate.png", tmp_path / "extra.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("extra, exc, match", [
    (["--eps", "1/q"], ValueError, "eps"),
    (["--steps", "1"], ValueError, "steps"),
    (["--sampler", "nope"], ValueError, "nope"),
])
def test_cli_bad_arguments(extra, exc, match):
    from jscore.cli import build_parser

    args = build_parser().parse_args(["lowerbound", "schedule", "--dim", "400", "--scales", "2",
                                      "--points", "1", "--reps", "2", "--no-search", "--no-cache"] + extra)
    with pytest.raises(exc, match=match):
        args.func(args)


def test_eps_text_and_number():
    from jscore.lowerbound.scaling import eps_value

    assert eps_value(12288.0, "1/d") == 1 / 12288
    assert eps_value(12288.0, "1/12288") == 1 / 12288
    assert eps_value(12288.0, "1e-4") == 1e-4
    assert eps_value(12288.0, "1 / sqrt(d)") == 12288**-0.5
    with pytest.raises(ValueError, match="Unknown eps rule"):
        eps_value(12288.0, "1/0")


@pytest.mark.parametrize("kw, match", [
    (dict(k_cap=1), "k_cap"), (dict(rel_tol=1.5), "rel_tol"), (dict(eps="1/q"), "eps rule"),
    (dict(sampler="nope"), "nope"), (dict(scale_min=3.0, scale_max=2.0), "scale_min"),
])
def test_certificate_bad_arguments(kw, match):
    from jscore.lowerbound.schedule_certificate import schedule_certificate

    args = dict(schedule="karras", K=4, d=400, n_scales=2, n_points=1, n_reps=2, search=False)
    with pytest.raises((ValueError, TypeError), match=match):
        schedule_certificate(**{**args, **kw})


def test_sampler_names_with_options_resolve(x64):
    """'name:key=value' goes through resolve_sampler; the path follows the sampler's type."""
    from jscore.lowerbound.scalar import scalar_spec

    g = family("karras").grid(4, 0.02, 20.0)
    kw = dict(key=jax.random.key(0), n_scales=2, n_points=1, n_reps=1)
    a = GridDraws("euler_ancestral:eta=0.5", g, 400.0, 1 / 400, 2.0, WIDTH, **kw)
    assert a.path == "scalar" and a.sampler.eta == 0.5 and a.spec == scalar_spec(a.sampler)
    assert a.spec != scalar_spec("euler_ancestral")  # the option reached the reduction
    assert GridDraws("unipc", g, 400.0, 1 / 400, 2.0, WIDTH, **kw).path == "full-vector"
    assert GridDraws(_UserEuler(), g, 400.0, 1 / 400, 2.0, WIDTH, **kw).path == "full-vector"
