"""Decoder success next to P(some answer informative) on exact codebooks (issue 14, item 3):
the paired summary statistics, the 1/2-crossings, and the necessary-condition property
(a chain that decodes got an informative answer) on real runs."""

import csv
import math

import numpy as np
import pytest

import jscore as js
from jscore.lowerbound import exact_experiments as E


def _units_from_chains(rng, specs):
    """Unit rows (as success_units.csv holds them, strings) plus the per-chain arrays behind them."""
    units, chains = [], []
    for K, n, p_inf, p_succ_given in specs:
        inf = rng.random(n) < p_inf
        succ = inf & (rng.random(n) < p_succ_given)
        succ |= (~inf) & (rng.random(n) < 0.02)  # a few false alarms, so I - S takes -1 too
        units.append({"sampler": "euler", "oracle": "adversary", "K": str(K), "rate": "0.25",
                      "chains": str(n), "n_success": str(int(succ.sum())),
                      "n_informative": str(int(inf.sum())), "n_both": str(int((inf & succ).sum())),
                      "levels_mean": str(K), "queries_mean": str(K), "seed": "0"})
        chains.append((K, inf.astype(float), succ.astype(float)))
    return units, chains


def test_summary_matches_per_chain_numpy():
    """Means, the stratified SEs (within-unit variance, ddof = 1) and the paired gap SE equal a
    direct numpy computation on the per-chain indicators."""
    rng = np.random.default_rng(0)
    specs = [(2, 50, 0.6, 0.3), (2, 80, 0.7, 0.2), (2, 30, 0.5, 0.4), (5, 60, 0.95, 0.6),
             (5, 40, 0.9, 0.7)]
    units, chains = _units_from_chains(rng, specs)
    out = {r["K"]: r for r in E.summarize_success(units)}
    assert sorted(out) == [2, 5]
    for K in (2, 5):
        cs = [(i, s) for k, i, s in chains if k == K]
        U = len(cs)
        for col, f in (("success", lambda i, s: s), ("informative", lambda i, s: i),
                       ("gap", lambda i, s: i - s)):
            vals = [f(i, s) for i, s in cs]
            mean = np.mean([v.mean() for v in vals])
            se = math.sqrt(sum(v.var(ddof=1) / v.size for v in vals)) / U
            assert out[K][col] == pytest.approx(mean, abs=1e-12), col
            assert out[K][col + "_se"] == pytest.approx(se, rel=1e-9), col
        inf = np.concatenate([i for i, _ in cs])
        succ = np.concatenate([s for _, s in cs])
        assert out[K]["success_given_informative"] == pytest.approx(
            (inf * succ).sum() / inf.sum())
        assert out[K]["success_uninformative"] == pytest.approx(((1 - inf) * succ).mean())
        assert out[K]["chains"] == inf.size and out[K]["units"] == U
    assert out[2]["replicates"] == 1 and math.isnan(out[2]["gap_se_rep"])
    assert E.error_bar(out[2], "gap") == out[2]["gap_se"]
    # pairing matters: the gap SE is below the independent-samples SE sqrt(se_I^2 + se_S^2)
    r = out[2]
    assert r["gap_se"] < math.hypot(r["success_se"], r["informative_se"])


def test_half_crossing():
    Ks = [2, 4, 8, 16]
    # log-linear between K = 4 (0.3) and K = 8 (0.7): 1/2 is reached at sqrt(32)
    assert E.half_crossing(Ks, [0.1, 0.3, 0.7, 0.9]) == pytest.approx(math.sqrt(32.0))
    assert E.half_crossing(Ks, [0.6, 0.7, 0.8, 0.9]) == 2.0
    assert math.isnan(E.half_crossing(Ks, [0.1, 0.2, 0.3, 0.4]))
    # the first crossing, even if the curve dips afterwards
    assert E.half_crossing(Ks, [0.1, 0.5, 0.4, 0.9]) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="increasing"):
        E.half_crossing([4, 2], [0.1, 0.9])
    with pytest.raises(ValueError, match="one length"):
        E.half_crossing([2, 4], [0.1])


def test_crossings_from_summary_bracket_the_point_estimate():
    rows = []
    for K, inf, succ in [(2, 0.4, 0.1), (4, 0.8, 0.3), (8, 1.0, 0.6), (16, 1.0, 0.9)]:
        rows.append(dict(sampler="euler", oracle="adversary", K=K, informative=inf,
                         informative_se=0.02, success=succ, success_se=0.02, gap=inf - succ,
                         gap_se=0.01))
    rows.append(dict(rows[0], oracle="exact"))  # other oracles are ignored
    (g,) = E.decoding_vs_informative(rows)
    assert g["K_inf_lo"] <= g["K_inf"] <= g["K_inf_hi"]
    assert g["K_succ_lo"] <= g["K_succ"] <= g["K_succ_hi"]
    assert g["K_inf"] == pytest.approx(math.exp(math.log(2) + 0.25 * math.log(2)))
    assert g["K_succ"] == pytest.approx(math.exp(math.log(4) + (2 / 3) * math.log(2)))
    assert g["max_gap"] == pytest.approx(0.5) and g["at_K"] == 4


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_run_success_pairs_success_with_informative(tmp_path):
    """d = 16, R = 0.25 (M = 55): on the same chains, every chain that decodes got an
    informative answer from the adversary (decoder false alarm M S_16(0.9) < 1e-3, so a
    reference-only run cannot pass it), the reference oracle never decodes; files
    gap_d16.{csv,png} are written."""
    d, rate = 16, 0.25
    assert js.lowerbound.metrics.decoder_false_alarm(d, math.ceil(math.exp(rate * d))) < 1e-3
    from jscore.sweeps.exact_lab import ExactLab
    from jscore.sweeps.protocol import run_experiment

    cfg = ExactLab(experiments="success", dims=(d,), rates=(rate,), ks=(2, 8), chains=48,
                   offsets=2, samplers=("euler",), oracles=("adversary", "reference"))
    summary = run_experiment(cfg, out=str(tmp_path), quiet=True).results[f"success_d{d}"]
    units = _rows(tmp_path / "success_units.csv")
    assert len(units) == 2 * 2 * 2
    for u in units:
        n, ns, ni, nb = (int(u[k]) for k in ("chains", "n_success", "n_informative", "n_both"))
        assert float(u["success"]) == ns / n and float(u["informative"]) == ni / n
        assert nb == ns, u  # success => informative, chain by chain
        if u["oracle"] == "reference":
            assert ni == 0 and ns == 0
    adv = {r["K"]: r for r in summary if r["oracle"] == "adversary"}
    # at K = 2 some chains get an informative answer yet fail to decode; the curve is not trivial
    assert adv[2]["gap"] > 2 * adv[2]["gap_se"] > 0
    assert adv[8]["success"] > adv[2]["success"]
    (g,) = _rows(tmp_path / "gap_d16.csv")
    assert g["sampler"] == "euler" and int(g["d"]) == 16
    for f in ("gap_d16.png", "gap_d16.pdf", "success_d16.png", "success_d16.csv"):
        assert (tmp_path / f).stat().st_size > 0, f


def test_replicate_errors_are_spread_of_per_seed_estimates():
    """Two seeds: the estimate is the mean over all units, ``*_se_rep`` the standard deviation
    of the two per-seed means over sqrt(2), and error_bar switches to it."""
    rng = np.random.default_rng(1)
    u0, c0 = _units_from_chains(rng, [(3, 40, 0.6, 0.3), (3, 40, 0.8, 0.5)])
    u1, c1 = _units_from_chains(rng, [(3, 40, 0.3, 0.3), (3, 40, 0.5, 0.5)])
    for u in u0:
        u["seed"] = "0"
    for u in u1:
        u["seed"] = "1"
    (r,) = E.summarize_success(u0 + u1)
    per = [np.mean([s.mean() for _, _, s in c]) for c in (c0, c1)]
    assert r["replicates"] == 2 and r["success"] == pytest.approx(np.mean(per))
    assert r["success_se_rep"] == pytest.approx(abs(per[0] - per[1]) / 2)  # sd(ddof=1)/sqrt(2)
    assert E.error_bar(r, "success") == max(r["success_se_rep"], r["success_se"])
    assert E.error_bar(dict(r, success_se_rep=0.0), "success") == r["success_se"]
