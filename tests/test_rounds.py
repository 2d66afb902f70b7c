"""Nested adversary (admissibility audit, hiding, per-block answers) and rounds against queries."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jscore as js
from jscore.lowerbound import rounds as R
from jscore.oracles.nested_adversary import NestedAdversary
from jscore.targets.nested import NestedCodebook

EPS = 0.05


@pytest.fixture(scope="module")
def inst():
    with jax.enable_x64(True):
        nc = NestedCodebook.random(jax.random.key(5), 16, 2, rates=(0.3, 0.4), scale_ratio=0.01)
        yield nc, NestedAdversary(nc, EPS, 2.0)


def test_answer_is_blockwise_exact_or_reference(inst):
    nc, adv = inst
    with jax.enable_x64(True):
        ans = jax.jit(lambda x, s: adv.answer(x, s))
        sps = jax.jit(lambda x, s: nc.score(x, s))
        sqs = jax.jit(lambda x, s: nc.reference.score(x, s))
        llr = jax.jit(lambda x, s: nc.log_likelihood_ratio(x, s))
        for s in (0.005, 0.5):
            x = nc.sample_noised(jax.random.key(1), s, 2)
            for xi in x:
                a = ans(xi, s)
                sp = np.asarray(sps(xi, s))
                sq = np.asarray(sqs(xi, s))
                out = np.asarray(a.score)
                for l in range(2):
                    blk = slice(8 * l, 8 * l + 8)
                    want = sp[blk] if bool(a.informative[l]) else sq[blk]
                    np.testing.assert_allclose(out[blk], want, rtol=1e-12, atol=0)
                # the chain-rule factors sum to the joint log likelihood ratio
                np.testing.assert_allclose(float(jnp.sum(a.log_lr)), float(llr(xi, s)), rtol=1e-9)
        prm = adv.parameters(0.3)
        np.testing.assert_allclose(float(prm.bound), 2 * float(nc.total_radius) / 0.09)
        # lambda = eta = (eps / 2B)^p / 2
        np.testing.assert_allclose(float(prm.log_lambda),
                                   math.log(0.5 * (EPS / (2 * float(prm.bound))) ** 2))


def test_audit_one_small_configuration(inst):
    """L^p error under P_sigma <= eps (upper confidence bound) for p in {1, 2, 4}, at levels in
    both stage windows and between them, through the package's audit; the per-stage pass agrees."""
    nc, adv = inst
    c = R.stage_centres(nc)
    sigmas = [c[1, 0], c[0, 0] / 3, c[0, 0], c[0, -1] * 3]
    with jax.enable_x64(True):
        rows = R.nested_audit(adv, sigmas, ps=(1.0, 2.0, 4.0), n=800, key=jax.random.key(2))
    assert len(rows) == 12
    for r in rows:
        assert r["upper"] <= EPS, r
        assert r["bound"] <= EPS + 1e-12, r  # eps/2 + B (lambda_hat + eta_hat)^{1/p}
        if r["p"] == 2.0:  # the package's audit on its own planted points
            assert r["upper_audit"] <= EPS, r
            assert abs(r["upper_audit"] - r["upper"]) <= 0.5 * EPS, r
    # not the reference oracle: informative on planted points in every stage window
    at = {(round(r["sigma"], 12), r["p"]): r for r in rows}
    assert at[(round(c[0, 0], 12), 2.0)]["inf_0"] > 0.9
    assert at[(round(c[1, 0], 12), 2.0)]["inf_1"] > 0.9
    summ = R.summarize_audit(rows)
    assert all(s["passed"] for s in summ)


def test_hiding_and_disjoint_stage_windows(inst):
    """Block 1 is informative at stage 1's centres only if block 0 is planted at the true path;
    fully reference-typical queries get no stage-1 information at any centre."""
    nc, adv = inst
    c = R.stage_centres(nc)
    with jax.enable_x64(True):
        rows = R.stage_profiles(adv, [c[1, 0], c[1, -1], c[0, 0], c[0, -1]], n=300,
                                key=jax.random.key(3))
    get = {(r["stage"], round(r["sigma"], 12)): r for r in rows}
    for s in c[1]:
        r1 = get[(1, round(s, 12))]
        assert r1["prefix_informative"] > 0.5  # stage 1's window, prefix known
        assert r1["reference_informative"] == 0.0  # hidden from codebook-independent queries
        assert get[(0, round(s, 12))]["reference_informative"] == 0.0  # stage 0 condensed
    for s in c[0]:
        assert get[(0, round(s, 12))]["prefix_informative"] > 0.5
        assert get[(1, round(s, 12))]["prefix_informative"] < 0.05  # stage 1 liquid there


def test_round_of_query_structure():
    # Euler: one query per step and round
    assert [R.round_of_query([1, 2, 3], [1, 2, 3], q) for q in (0, 1, 2, 3)] == [0, 1, 2, 3]
    # a Picard sweep of 4 queries is one round
    assert [R.round_of_query([4, 7], [1, 2], q) for q in (1, 4, 5, 7)] == [1, 1, 2, 2]
    # randomized midpoint K = 2, J = 1: step = 3 queries in 2 rounds (1 | 2, 3)
    assert [R.round_of_query([3, 6], [2, 4], q, 2) for q in range(1, 7)] == [1, 2, 2, 3, 4, 4]


def _check_rounds(nc, adv, samplers, n, lps):
    """Pointer chasing: the first informative answer on block l comes in a later round than the
    one on block l - 1, for every chain; full decoding takes >= L rounds (samplers and searcher)."""
    with jax.enable_x64(True):
        rows, chains = R.sampler_rounds(adv, samplers, [lps], n=n, key=jax.random.key(4))
        search = R.search_rounds(adv, 3, jax.random.key(5), mode="parallel")
    assert {r["sampler"] for r in rows} == set(samplers)
    for ch in chains:
        f0, f1 = ch["first_inf_round_0"], ch["first_inf_round_1"]
        if f1 > 0:
            assert f0 > 0 and f1 > f0, ch
        if ch["decoded_stages"] == 2:
            assert ch["rounds"] >= 2
    assert any(ch["first_inf_round_1"] > 0 for ch in chains)  # stage 1 was reached at all
    pic = [r for r in rows if r["sampler"] == "picard"][0]
    assert pic["rounds"] < pic["queries"]  # a parallel sampler: fewer rounds than queries
    for s in search:
        if s["rounds_all"] > 0:
            assert s["rounds_all"] >= nc.num_stages
            assert s["queries_all"] >= nc.num_stages * s["windows"]
    assert any(s["rounds_all"] > 0 for s in search)


def test_cli_rounds_rejects_bad_input(tmp_path, capsys):
    from jscore.cli import main

    out = str(tmp_path / "r")
    assert main(["lowerbound", "rounds", "--configs", "25,2", "--out", out]) == 2
    assert "--configs" in capsys.readouterr().err
    assert main(["lowerbound", "rounds", "--scale-ratio", "1.5", "--out", out]) == 2
    assert "--scale-ratio" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing written before the config validates


def test_rounds_at_least_stages_parallel_picard(inst):
    nc, adv = inst
    _check_rounds(nc, adv, {"picard": js.samplers.ParallelPicard(window=4, tol=0.1)}, 2, 6)


@pytest.mark.slow
def test_rounds_at_least_stages_for_every_sampler(inst):
    nc, adv = inst
    _check_rounds(nc, adv, {"euler": js.samplers.Euler(),
                            "picard": js.samplers.ParallelPicard(window=4, tol=0.1),
                            "picard_inf": js.samplers.ParallelPicard(window=4, tol=float("inf")),
                            "midpoint": js.samplers.RandomizedMidpoint(num_points=2)}, 4, 4)
