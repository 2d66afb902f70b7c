"""Learned score networks against dimension: their error profile eps_d(sigma) and the queries Q*(d)
each sampler needs with them, next to the exact oracle; on Gaussian mixtures and on real digits.

Questions:
- ``mixtures``: how accurate is a network trained with a fixed budget as d grows, and how many
  queries does a sampler need with it (versus the exact oracle) to reach a fixed error?
- ``sphere``: a network trained on the hard instance ``SphereCodebook`` (M codewords on the sphere of
  radius sqrt(d)): is its error large exactly where the adversary hides its information, i.e.
  under the reference law ``Q_sigma`` (the noised uniform sphere) near the critical scale
  ``sigma_c(R) = 1/sqrt(exp(2R) - 1)``, ``R = log(M)/d``?
- ``digits``: scikit-learn's 8x8 digits upsampled to 16x16 ... 64x64 (d = 64 ... 4096; the intrinsic
  dimension stays <= 64): does the query count each sampler needs grow like the sqrt(d) worst case?

Method (both):
- networks: ``mixtures`` trains :class:`jscore.nets.DenoiserMLP` (width 128, depth 2) on exact
  samples of ``GaussianMixture(K=8, means ~ N(0, I_d), std 0.3)`` (the ``jscore train`` default
  target); ``digits`` trains :class:`jscore.nets.DenoiserConv` (width 32, one level, patch
  size/8, so the inner grid is 8x8 at every size) on the training split (1438 images).
  The same budget (steps, batch, learning rate) at every d; it is recorded in the JSON.
- eps_d(sigma) = ||S_net - s||_{L^2(p_sigma)} by ``js.metrics.score_error_profile`` (95% CI),
  with ``||s||_{L^2(p_sigma)}`` as the scale; for digits ``s`` is the exact score of
  ``js.targets.Empirical(train, 0)``, the law the network is trained on.
- samplers Euler, Heun, DPM-Solver++(2M) on Karras grids of N steps (sigma 0.002 ... 80, ending at
  0); each run draws ``--chains`` samples and records the exact mean query count Q.
- error: the relative energy distance ``rED = ED(samples, ref) / E|Y - Y'|`` (scale-free, so the
  upsampled sizes are comparable), ED from ``js.metrics.energy_distance``, estimated as the mean
  over 8 disjoint blocks (pairs of sample and reference blocks) with its standard error ``se``.
  References: exact target samples for the mixture and for the exact oracle on digits (the
  Empirical target with bandwidth 0, i.e. training images); held-out images for the network on
  digits (whose floor, rED(training images, held-out images), is reported).
- Q*(threshold): the first query count at which rED <= threshold, interpolated log-linearly
  between the two budgets that bracket it; its interval uses the first passes of rED - 2 se and
  rED + 2 se (``None``: not reached within the largest budget). The threshold is fixed per study
  (``--threshold``) and recorded; ``report`` recomputes the tables from the JSON at another one.

Method (``sphere``): DenoiserMLP (width 128, depth 2, sigma_data = 1) trained with one fixed budget
on exact samples of ``SphereCodebook`` (M = ``--codewords``, codewords i.i.d. uniform on the sphere)
at each d, ``--seeds`` times (training seeds: initialisation and training draws; seed 0 is the
old single-seed run's keys); eps_d(sigma) = ||S_net - s||_{L^2} with 95% MC CIs under ``P_sigma``
(``law=None``) and under ``Q_sigma`` (``law=UniformSphere(d, sqrt d)``), each next to the exact
score's own norm under that law, on the grid ``sigma = sigma_c(R) * 2^k``, k = -3 ... 3, at the
same evaluation points for every seed. Per d and sigma: the mean over seeds with the 95% Student-t
interval over the seeds (seed-to-seed variation), next to the largest per-seed MC half-width.
Then Q*(d) on the codebook as in ``mixtures`` (same code path, ``oracle_curves``): Euler, Heun,
DPM-Solver++(2M) with the exact oracle (once per d) and with each seed's network, against 4096
exact codebook samples. ``python benchmarks/learned_scores.py sphere`` writes
``benchmarks/results/learned_sphere_<backend>.{json,txt}``.

Run (CPU; the results in benchmarks/results took 8 min per d (mixtures) and 12-20 min per size
(digits 8 ... 32) on a 2-core machine at load average 12-16, 23 min for digits 64x64 (added with
``--sizes 64 --merge``, load 2 -> 15), ``sphere`` 29 min for d = 8 ... 1024 with 3 seeds (load
8-12, shared machine); results are rewritten after every d):
``python benchmarks/learned_scores.py mixtures``, ``... digits``, ``... sphere``, ``... report``.
Writes ``benchmarks/results/learned_{mixtures,digits,sphere}_<backend>.{json,txt}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import RESULTS, device_label, env_info, setup_platform, stamp_end  # noqa: E402

SAMPLERS = ("Euler", "Heun", "DPMSolverPP")
BLOCKS = 8


def rel_energy(x, ref, blocks=BLOCKS):
    """(rED, se): block-mean energy distance over E|Y - Y'| of ``ref`` (both (n, d) rows)."""
    import numpy as np

    import jscore as js

    x = np.asarray(x, np.float64).reshape(len(x), -1)
    ref = np.asarray(ref, np.float64).reshape(len(ref), -1)
    xs, rs = np.array_split(x, blocks), np.array_split(ref, blocks)
    eds = np.array([js.metrics.energy_distance(a, b) for a, b in zip(xs, rs)])
    # E|Y - Y'| from the reference (U-statistic over all pairs of a 2048 subset)
    sub = ref[:2048]
    d2 = (sub * sub).sum(1)[:, None] + (sub * sub).sum(1)[None] - 2 * sub @ sub.T
    iu = np.triu_indices(len(sub), 1)
    scale = float(np.sqrt(np.maximum(d2[iu], 0)).mean())
    return float(eds.mean() / scale), float(eds.std(ddof=1) / math.sqrt(blocks) / scale)


def first_pass(qs, vals, thr):
    """Log-linear interpolated first query count with vals <= thr (None if never)."""
    for i, (q, v) in enumerate(zip(qs, vals)):
        if v <= thr:
            if i == 0:
                return float(q)
            q0, v0 = qs[i - 1], vals[i - 1]
            t = (v0 - thr) / (v0 - v) if v0 != v else 1.0
            return float(math.exp(math.log(q0) + t * (math.log(q) - math.log(q0))))
    return None


def qstar(curve, thr):
    """Q* with its interval from a curve [{"queries", "red", "se"}, ...] sorted by queries."""
    qs = [c["queries"] for c in curve]
    v = [c["red"] for c in curve]
    lo = first_pass(qs, [a - 2 * c["se"] for a, c in zip(v, curve)], thr)
    hi = first_pass(qs, [a + 2 * c["se"] for a, c in zip(v, curve)], thr)
    q = first_pass(qs, v, thr)
    # False when rED rises above thr again at a larger budget (a first pass that is not a
    # convergence, e.g. a coarse-grid error offsetting the network's); tables mark it with '*'
    stays = q is not None and all(a <= thr for b, a in zip(qs, v) if b >= q)
    return {"qstar": q, "lo": lo, "hi": hi, "stays_below": stays}


def make_sampler(name):
    import jscore as js

    return getattr(js.samplers, name)()


def sampler_curves(oracle, ref, steps, chains, key):
    """For each sampler and N in ``steps``: {"N", "queries", "red", "se"}."""
    import jax

    import jscore as js

    out = {}
    for name in SAMPLERS:
        rows = []
        for n in steps:
            res = js.sample(oracle, make_sampler(name), js.schedules.karras(n), key,
                            num_samples=chains)
            x = jax.block_until_ready(res.x)
            red, se = rel_energy(x, ref)
            rows.append({"N": n, "queries": float(res.stats.queries.mean()), "red": red, "se": se})
        out[name] = rows
    return out


def oracle_curves(target, net, ref, steps, chains, key, exact=True, network=True):
    """Sampler curves with the exact oracle of ``target`` and with ``net`` (same key and ``ref``).

    The study loops (mixtures, sphere) share this; ``exact=False`` / ``network=False`` skip one
    (the sphere study runs the exact oracle once per d and the network once per training seed).
    """
    import jscore as js

    out = {"network": sampler_curves(net, ref, steps, chains, key)} if network else {}
    if exact:
        out = {"exact": sampler_curves(js.oracles.Exact(target), ref, steps, chains, key), **out}
    return out


def profile(oracle, target, sigmas, key, n):
    import jscore as js

    from jscore.cli.train import _zero_oracle

    prof = js.metrics.score_error_profile(oracle, target, sigmas, key, 2, n)
    norm = js.metrics.score_error_profile(_zero_oracle(), target, sigmas, key, 2, n)
    return [{"sigma": float(s), "eps": float(e), "lo": float(lo), "hi": float(hi),
             "score_norm": float(nm), "relative": float(e / nm)}
            for s, e, lo, hi, nm in zip(sigmas, prof.estimate, prof.lower, prof.upper, norm.estimate)]


def run_mixtures(args):
    import jax
    import numpy as np

    import jscore as js

    info = env_info()
    dims = [int(d) for d in args.dims.split(",")]
    steps = [int(n) for n in args.steps_grid.split(",")]
    sigmas = np.geomspace(0.01, 10.0, 7)
    budget = {"steps": args.train_steps, "batch": args.batch, "lr": args.lr, "ema": 0.99,
              "width": 128, "depth": 2}
    per_d = []
    for d in dims:
        t0 = time.perf_counter()
        key = jax.random.key(d)
        means = jax.random.normal(jax.random.fold_in(key, 0), (8, d))
        target = js.targets.GaussianMixture(means, 0.3)
        from jscore.cli.train import sigma_data_of

        model = js.nets.DenoiserMLP(d, width=128, depth=2, sigma_data=sigma_data_of(target),
                                    key=jax.random.fold_in(key, 1))
        fit = js.train.fit(model, target, jax.random.fold_in(key, 2), num_steps=args.train_steps,
                           batch_size=args.batch, learning_rate=args.lr, ema_decay=0.99,
                           chunk_size=min(500, args.train_steps))
        train_s = time.perf_counter() - t0
        net = js.oracles.Network(fit.model)
        prof = profile(net, target, sigmas, jax.random.fold_in(key, 3), args.eval_n)
        ref = np.asarray(target.sample(jax.random.fold_in(key, 4), 4096))
        curves = oracle_curves(target, net, ref, steps, args.chains, jax.random.fold_in(key, 5))
        per_d.append({"d": d, "train_seconds": train_s,
                      "final_loss": float(np.mean(fit.losses[-max(1, args.train_steps // 10):])),
                      "profile": prof, "curves": curves, "seconds": time.perf_counter() - t0})
        print(f"d={d}: {time.perf_counter() - t0:.0f} s", flush=True)
        out = {"study": "mixtures", "env": stamp_end(dict(info)), "device": device_label(info),
               "training_budget": budget, "chains": args.chains, "steps_grid": steps,
               "threshold": args.threshold,
               "target": "GaussianMixture(K=8, means ~ N(0, I_d), std=0.3)", "per_d": per_d}
        write(out, "mixtures")  # after every d, so a partial run keeps what it measured


def run_digits(args):
    import jax
    import numpy as np

    import jscore as js
    from jscore.cli.train import sigma_data_of

    info = env_info()
    sizes = [int(s) for s in args.sizes.split(",")]
    steps = [int(n) for n in args.steps_grid.split(",")]
    sigmas = np.geomspace(0.01, 10.0, 7)
    budget = {"steps": args.train_steps, "batch": args.batch, "lr": args.lr, "ema": 0.99,
              "width": 32, "levels": 1, "patch": "size/8"}
    per, base_env, base_chains = [], None, args.chains
    if args.merge:  # keep the stored sizes that this run does not redo (same keys per size)
        path = RESULTS / f"learned_digits_{info['backend']}.json"
        if path.exists():
            old = json.loads(path.read_text())
            base_env, base_chains = old["env"], old["chains"]
            per = [r for r in old["per_d"] if r["size"] not in sizes]
            for r in per:
                r.setdefault("chains", old["chains"])
    for size in sizes:
        t0 = time.perf_counter()
        run_env = env_info()
        key = jax.random.key(1000 + size)
        ds = js.data.digits(size)
        target = js.targets.Empirical(ds.train, 0.0)
        model = js.nets.DenoiserConv(target.event_shape, width=32, levels=1, patch=size // 8,
                                     sigma_data=sigma_data_of(target), key=jax.random.fold_in(key, 1))
        fit = js.train.fit(model, target, jax.random.fold_in(key, 2), num_steps=args.train_steps,
                           batch_size=args.batch, learning_rate=args.lr, ema_decay=0.99,
                           chunk_size=min(100, args.train_steps))
        train_s = time.perf_counter() - t0
        net = js.oracles.Network(fit.model)
        prof = profile(net, target, sigmas, jax.random.fold_in(key, 3), args.eval_n)
        train_ref = np.asarray(ds.train).reshape(len(ds.train), -1)
        test_ref = np.asarray(ds.test).reshape(len(ds.test), -1)
        floor = rel_energy(train_ref[: len(test_ref)], test_ref)
        curves = {
            "exact": sampler_curves(js.oracles.Exact(target), train_ref, steps, args.chains,
                                    jax.random.fold_in(key, 5)),
            "network": sampler_curves(net, test_ref, steps, args.chains, jax.random.fold_in(key, 5)),
        }
        per.append({"size": size, "d": size * size, "train_seconds": train_s,
                    "final_loss": float(np.mean(fit.losses[-max(1, args.train_steps // 10):])),
                    "floor_train_vs_heldout": {"red": floor[0], "se": floor[1]},
                    "profile": prof, "curves": curves, "seconds": time.perf_counter() - t0,
                    "chains": args.chains,
                    "run": {k: v for k, v in stamp_end(run_env).items()
                            if k.startswith(("load", "timestamp"))}})
        per.sort(key=lambda r: r["size"])
        print(f"size={size}: {time.perf_counter() - t0:.0f} s", flush=True)
        out = {"study": "digits", "env": base_env or stamp_end(dict(info)),
               "device": device_label(info), "training_budget": budget, "chains": base_chains,
               "steps_grid": steps,
               "threshold": args.threshold, "upsampling": "bilinear (jscore.data.digits)",
               "per_d": per}
        write(out, "digits")  # after every size, so a partial run keeps what it measured


SPHERE_RATIOS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def law_profiles(net, target, law, sigmas, key, n):
    """eps(sigma) with CI and ||s||_L2 under ``law`` (None: P_sigma), as rows of dicts."""
    import jscore as js
    from jscore.cli.train import _zero_oracle

    prof = js.metrics.score_error_profile(net, target, sigmas, key, 2, n, law=law)
    norm = js.metrics.score_error_profile(_zero_oracle(), target, sigmas, key, 2, n, law=law)
    return [{"sigma": float(s), "eps": float(e), "lo": float(lo), "hi": float(hi), "se": float(se),
             "score_norm": float(nm), "relative": float(e / nm)}
            for s, e, lo, hi, se, nm in zip(sigmas, prof.estimate, prof.lower, prof.upper, prof.se,
                                            norm.estimate)]


def seed_summary(per_seed):
    """Per sigma, over training seeds: mean, sd and the t-interval mean +- t_{0.975,n-1} sd/sqrt(n).

    ``per_seed``: one law_profiles list per seed. The t-interval covers seed-to-seed variation (the
    seeds are n i.i.d. trainings); ``mc_halfwidth_max`` is the largest per-seed 95% MC half-width.
    """
    import numpy as np
    from scipy.stats import t as student_t

    n = len(per_seed)
    rows = []
    for k in range(len(per_seed[0])):
        e = np.array([p[k]["eps"] for p in per_seed])
        mean = float(e.mean())
        sd = float(e.std(ddof=1)) if n > 1 else float("nan")
        half = float(student_t.ppf(0.975, n - 1)) * sd / math.sqrt(n) if n > 1 else float("nan")
        rows.append({"sigma": per_seed[0][k]["sigma"], "mean": mean, "sd": sd, "lo": mean - half,
                     "hi": mean + half, "n_seeds": n, "per_seed": e.tolist(),
                     "mc_halfwidth_max": max(0.5 * (p[k]["hi"] - p[k]["lo"]) for p in per_seed),
                     "score_norm": per_seed[0][k]["score_norm"],
                     "relative": mean / per_seed[0][k]["score_norm"]})
    return rows


def seed_keys(key, seed):
    """(init key, training key) of training seed ``seed``; seed 0 is the single-seed run's."""
    import jax

    base = key if seed == 0 else jax.random.fold_in(key, 100 + seed)
    return jax.random.fold_in(base, 1), jax.random.fold_in(base, 2)


def run_sphere(args):
    import jax
    import numpy as np

    import jscore as js
    from jscore.lowerbound.informative import critical_sigma

    info = env_info()
    dims = [int(d) for d in args.dims.split(",")]
    steps = [int(n) for n in args.steps_grid.split(",")]
    m = args.codewords
    budget = {"steps": args.train_steps, "batch": args.batch, "lr": args.lr, "ema": 0.99,
              "width": 128, "depth": 2, "sigma_data": 1.0, "sigma_dist": "lognormal(-1.2, 1.2)",
              "seeds": args.seeds, "per": "the same budget per d and per training seed"}
    per_d = []
    for d in dims:
        t0 = time.perf_counter()
        key = jax.random.key(2000 + d)
        y = jax.random.normal(jax.random.fold_in(key, 0), (m, d))
        y = y * (math.sqrt(d) / jax.numpy.linalg.norm(y, axis=-1, keepdims=True))
        target = js.targets.SphereCodebook(y)
        q = js.targets.UniformSphere(d, math.sqrt(d))
        rate = math.log(m) / d
        sc = float(critical_sigma(rate))
        sigmas = np.array([sc * r for r in SPHERE_RATIOS])
        ek = jax.random.fold_in(key, 3)  # the same evaluation points for every seed
        ref = np.asarray(target.sample(jax.random.fold_in(key, 4), 4096))
        ck = jax.random.fold_in(key, 5)
        row = {"d": d, "M": m, "rate": rate, "sigma_c": sc,
               # under Q_sigma: how far the reference's own score is from the truth (no network)
               "Q_gap": law_profiles(js.oracles.Exact(q), target, q, sigmas, ek, args.eval_n),
               "curves": {}, "seeds": []}
        if steps:
            row["curves"]["exact"] = oracle_curves(target, None, ref, steps, args.chains, ck,
                                                   exact=True, network=False)["exact"]
        for seed in range(args.seeds):
            ts = time.perf_counter()
            ik, tk = seed_keys(key, seed)
            model = js.nets.DenoiserMLP(d, width=128, depth=2, sigma_data=1.0, key=ik)
            fit = js.train.fit(model, target, tk, num_steps=args.train_steps,
                               batch_size=args.batch, learning_rate=args.lr, ema_decay=0.99,
                               chunk_size=min(250, args.train_steps))
            train_s = time.perf_counter() - ts
            net = js.oracles.Network(fit.model)
            row["seeds"].append({
                "seed": seed, "train_seconds": train_s,
                "final_loss": float(np.mean(fit.losses[-max(1, args.train_steps // 10):])),
                "P": law_profiles(net, target, None, sigmas, ek, args.eval_n),
                "Q": law_profiles(net, target, q, sigmas, ek, args.eval_n),
                # under Q_sigma: the network against the reference's score
                "Q_net_vs_sQ": law_profiles(net, q, q, sigmas, ek, args.eval_n)})
            if steps:
                row["curves"][f"network:seed{seed}"] = oracle_curves(
                    target, net, ref, steps, args.chains, ck, exact=False)["network"]
        for law in ("P", "Q", "Q_net_vs_sQ"):
            row[law] = seed_summary([sd[law] for sd in row["seeds"]])
        row["train_seconds"] = sum(sd["train_seconds"] for sd in row["seeds"])
        row["seconds"] = time.perf_counter() - t0
        per_d.append(row)
        print(f"d={d}: {row['seconds']:.0f} s", flush=True)
        out = {"study": "sphere", "env": stamp_end(dict(info)), "device": device_label(info),
               "training_budget": budget, "eval_n": args.eval_n, "sigma_over_sigma_c": SPHERE_RATIOS,
               "chains": args.chains, "steps_grid": steps, "threshold": args.threshold,
               "target": f"SphereCodebook(M={m}, codewords uniform on the sphere of radius sqrt(d))",
               "reference": "UniformSphere(d, sqrt(d))", "sampler_reference": "4096 exact samples",
               "per_d": per_d}
        write(out, "sphere")  # after every d, so a partial run keeps what it measured


def sphere_tables(out, thr=None):
    e = out["env"]
    n = out["training_budget"].get("seeds", 1)
    lines = [f"sphere: device {out['device']}; load {e.get('load_average_at_start')} -> "
             f"{e.get('load_average_at_end')}; training budget {out['training_budget']}; "
             f"{out['eval_n']} points per law and level (the same points for every seed); target "
             f"{out['target']}; reference Q = {out['reference']}; wall "
             f"{sum(r['seconds'] for r in out['per_d']):.0f} s", "",
             f"eps_d(sigma) = ||S_net - s||_L2 under P_sigma and under Q_sigma: mean over {n} training"
             f" seeds [95% t-interval over the seeds, t_0.975,{n - 1}] (+- largest per-seed 95% MC"
             " half-width); rel = mean eps / ||s|| under the same law; sigma = sigma_c(R) * ratio, "
             "R = log(M)/d;",
             "gap_Q = ||s_Q - s||_L2(Q_sigma) (the reference's score against the truth; no network), "
             "net-sQ = ||S_net - s_Q||_L2(Q_sigma) (seed mean)", ""]
    lines.append(f"{'d':>5} {'sigma_c':>7} {'ratio':>6} {'sigma':>7} | {'eps_P [seed t-CI] (+-MC)':>36}"
                 f" {'rel_P':>6} | {'eps_Q [seed t-CI] (+-MC)':>36} {'rel_Q':>6} | {'Q/P':>6} | "
                 f"{'gap_Q':>8} {'epsQ/gap':>8} {'net-sQ':>8}")
    def ci(a):
        return (f"{a['mean']:.3g} [{a['lo']:.3g}, {a['hi']:.3g}] "
                f"(+-{a['mc_halfwidth_max']:.2g})")

    for r in out["per_d"]:
        for ratio, p, q, g, nq in zip(out["sigma_over_sigma_c"], r["P"], r["Q"], r["Q_gap"],
                                      r["Q_net_vs_sQ"]):
            lines.append(f"{r['d']:>5} {r['sigma_c']:7.3g} {ratio:6.3g} {p['sigma']:7.3g} | "
                         f"{ci(p):>36} {p['relative']:6.3f} | {ci(q):>36} {q['relative']:6.3f} | "
                         f"{q['mean'] / p['mean']:6.3g} | {g['eps']:8.3g} "
                         f"{q['mean'] / g['eps']:8.3g} {nq['mean']:8.3g}")
        lines.append(f"{'':>5} per seed: " + "; ".join(
            f"seed {sd['seed']} train {sd['train_seconds']:.0f} s, final loss {sd['final_loss']:.4g}"
            for sd in r["seeds"]) + f"; total {r['seconds']:.0f} s")
    if any(r.get("curves") for r in out["per_d"]):
        thr = out["threshold"] if thr is None else thr
        lines.append("")
        lines.append(f"Q*(d) on the codebook: exact oracle and the network of each training seed; "
                     f"{out['chains']} chains per run, reference {out['sampler_reference']}")
        oracles = ["exact"] + [f"network:seed{k}" for k in range(n)]
        lines += qstar_lines(out["per_d"], thr, oracles)
        lines.append("")
        lines.append(f"network Q* over the {n} seeds: mean (min, max) of the point estimates, "
                     "k/n = seeds that reached it, one '*' per seed whose first pass does not stay "
                     "below")
        for r in out["per_d"]:
            cells = []
            for smp in SAMPLERS:
                qs = [r["qstar"][f"network:seed{k}:{smp}"] for k in range(n)]
                ok = [x["qstar"] for x in qs if x["qstar"] is not None]
                star = "*" * sum(x["qstar"] is not None and not x["stays_below"] for x in qs)
                txt = (f"{sum(ok) / len(ok):.3g}{star} ({min(ok):.3g}, {max(ok):.3g})"
                       if ok else "-")
                cells.append(f"{smp}: {txt} {len(ok)}/{n}")
            lines.append(f"{r['d']:>6} " + "; ".join(cells))
    return "\n".join(lines)


def qstar_lines(per_d, thr, oracles):
    """Q* table (one column per oracle and sampler) and the raw curves; fills r["qstar"]."""
    lines = [f"Q*(d): queries to reach relative energy distance <= {thr} "
             "[interval from rED -+ 2 se]; '-' = not reached within the largest budget"]
    lines.append(f"{'d':>6} {'sqrt(d/d0)':>10} " + " ".join(
        f"{o + ':' + s:>26}" for o in oracles for s in SAMPLERS))
    d0 = per_d[0]["d"]
    f = lambda v: "-" if v is None else f"{v:.3g}"  # noqa: E731
    for r in per_d:
        cells = []
        for o in oracles:
            for s in SAMPLERS:
                q = qstar(r["curves"][o][s], thr)
                r.setdefault("qstar", {})[f"{o}:{s}"] = q
                star = "*" if q["qstar"] is not None and not q["stays_below"] else ""
                cells.append(f"{f(q['qstar'])}{star} [{f(q['lo'])},{f(q['hi'])}]".rjust(26))
        lines.append(f"{r['d']:>6} {math.sqrt(r['d'] / d0):10.3g} " + " ".join(cells))
    lines.append("* = rED is above the threshold again at a larger budget: a first pass, not a "
                 "convergence")
    lines.append("")
    lines.append("raw curves (N, Q, rED +- se):")
    for r in per_d:
        for o in oracles:
            for s in SAMPLERS:
                lines.append(f"  d={r['d']} {o:8s} {s:12s} " + "  ".join(
                    f"N={c['N']} Q={c['queries']:.0f} {c['red']:.4f}+-{c['se']:.4f}"
                    for c in r["curves"][o][s]))
    return lines


def tables(out, thr=None):
    if out["study"] == "sphere":
        return sphere_tables(out, thr)
    thr = out["threshold"] if thr is None else thr
    lines = [f"{out['study']}: device {out['device']}; load {out['env'].get('load_average_at_start')}"
             f" -> {out['env'].get('load_average_at_end')}; training budget {out['training_budget']};"
             f" {out['chains']} chains per run; Karras grids N = {out['steps_grid']}"]
    for r in out["per_d"]:  # sizes added later by --merge record their own run
        if "run" in r:
            lines.append(f"  d={r['d']}: run {r['run'].get('timestamp_utc')}, load "
                         f"{r['run'].get('load_average_at_start')} -> "
                         f"{r['run'].get('load_average_at_end')}, {r['chains']} chains per run, "
                         f"{r['seconds']:.0f} s ({r['train_seconds']:.0f} s training)")
    lines.append("")
    lines.append("eps_d(sigma) = ||S_net - s||_L2(p_sigma) [95% CI]  (relative: eps / ||s||)")
    sig = [r["sigma"] for r in out["per_d"][0]["profile"]]
    lines.append(f"{'d':>6} " + " ".join(f"{'s=' + format(s, '.3g'):>24}" for s in sig))
    for r in out["per_d"]:
        lines.append(f"{r['d']:>6} " + " ".join(
            f"{p['eps']:8.3g} [{p['lo']:.3g},{p['hi']:.3g}] {p['relative']:4.2f}"[:24].rjust(24)
            for p in r["profile"]))
    lines.append("")
    if out["study"] == "digits":
        lines.append("floor: rED(training images, held-out images) = " + ", ".join(
            f"d={r['d']}: {r['floor_train_vs_heldout']['red']:.4f} +- "
            f"{r['floor_train_vs_heldout']['se']:.4f}" for r in out["per_d"]))
        lines.append("")
    lines += qstar_lines(out["per_d"], thr, ("exact", "network"))
    return "\n".join(lines)


def write(out, name):
    backend = out["env"]["backend"]
    text = tables(out)
    (RESULTS / f"learned_{name}_{backend}.json").write_text(json.dumps(out, indent=1))
    (RESULTS / f"learned_{name}_{backend}.txt").write_text(text + "\n")
    print(text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("study", choices=("mixtures", "digits", "sphere", "report"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--dims", default=None,
                   help="mixtures (8,128,1024), sphere (8,32,128,512,1024): dimensions")
    p.add_argument("--codewords", type=int, default=64, help="sphere: codebook size M")
    p.add_argument("--sizes", default="8,16,32", help="digits: image sides")
    p.add_argument("--steps-grid", default="4,8,16,32", help="Karras grid step counts N")
    p.add_argument("--train-steps", type=int, default=None)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--chains", type=int, default=1024)
    p.add_argument("--eval-n", type=int, default=None, help="points per level (1024; sphere 2048)")
    p.add_argument("--threshold", type=float, default=0.02, help="rED threshold of Q*")
    p.add_argument("--backend", default="cpu", help="report: which results to re-tabulate")
    p.add_argument("--seeds", type=int, default=3, help="sphere: training seeds per d")
    p.add_argument("--merge", action="store_true",
                   help="digits: keep the stored sizes not in --sizes (e.g. add --sizes 64)")
    args = p.parse_args(argv)
    setup_platform(args.device)
    if args.study == "report":
        for name in ("mixtures", "digits", "sphere"):
            path = RESULTS / f"learned_{name}_{args.backend}.json"
            if path.exists():
                out = json.loads(path.read_text())
                if name != "sphere" or "threshold" in out:  # the old sphere study had no Q*
                    out["threshold"] = args.threshold
                for r in out["per_d"] if name == "sphere" else ():  # seed summaries anew
                    for law in ("P", "Q", "Q_net_vs_sQ") if "seeds" in r else ():
                        r[law] = seed_summary([sd[law] for sd in r["seeds"]])
                write(out, name)
        return
    if args.study == "sphere":
        args.dims = args.dims or "8,32,128,512,1024"
        args.train_steps = args.train_steps or 2000
        args.batch = args.batch or 256
        args.eval_n = args.eval_n or 2048
        run_sphere(args)
    elif args.study == "mixtures":
        args.dims = args.dims or "8,128,1024"
        args.train_steps = args.train_steps or 1000
        args.batch = args.batch or 256
        args.eval_n = args.eval_n or 1024
        run_mixtures(args)
    else:
        args.train_steps = args.train_steps or 600
        args.batch = args.batch or 64
        args.eval_n = args.eval_n or 1024
        run_digits(args)


if __name__ == "__main__":
    main()
