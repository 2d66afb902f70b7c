"""Every sampler at query budgets 10, 20, 40, 80 on a d = 256 Gaussian mixture.

Question: at a fixed per-chain query budget Q, how close does each sampler get to the target, and
what does it spend in distinct levels (N_sigma) and adaptive rounds (R)?

For fixed-grid samplers the grid (karras, sigma in [0.002, 80], ending at 0) has the largest N with
exact cost <= Q; data-dependent samplers (Adaptive, ParallelPicard) get ``max_queries = Q``;
SingleLevel gets Q - 1 Langevin steps; DPM-Solver-fast gets ``budget = Q`` on a grid ending at
sigma_min. Error: energy distance to exact target samples and the mode-mass TV (nearest mean).

Run: ``PYTHONPATH=. python benchmarks/samplers.py [--chains 512] [--out benchmarks/results/samplers_cpu.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("EQX_ON_ERROR", "nan")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jscore as js  # noqa: E402

S = js.samplers
BUDGETS = (10, 20, 40, 80)
DIM = 256


def configs(budget):
    """(label, sampler, n_steps, append_zero, max_queries) for one budget; None if it cannot fit."""
    out = []

    def fixed(label, sampler, append_zero=True):
        n = 0
        while sampler.num_queries(n + 1, append_zero) <= budget:
            n += 1
        if n >= 1:
            out.append((label, sampler, n, append_zero, None))

    fixed("euler", S.Euler())
    fixed("heun", S.Heun())
    fixed("euler_ancestral", S.EulerAncestral())
    fixed("euler_maruyama", S.EulerMaruyama())
    fixed("ei_score", S.ExponentialIntegrator())
    fixed("ei_relative", S.ExponentialIntegrator(form="relative"))
    fixed("dpm_solver_2", S.DPMSolver(order=2))
    fixed("dpm_solver_3", S.DPMSolver(order=3))
    out.append(("dpm_solver_fast", S.DPMSolver(order=3, budget=budget), 10, False, None))
    fixed("dpmpp_2m", S.DPMSolverPP(order=2))
    fixed("dpmpp_3m", S.DPMSolverPP(order=3, reference_coeffs=True))  # the peers' c3 = 1
    fixed("dpmpp_3m_exact", S.DPMSolverPP(order=3))
    fixed("dpmpp_2m_sde", S.DPMSolverPPMultistepSDE(order=2))
    fixed("dpmpp_2m_sde_heun", S.DPMSolverPPMultistepSDE(order=2, solver_type="heun"))
    fixed("dpmpp_3m_sde", S.DPMSolverPPMultistepSDE(order=3))
    fixed("dpmpp_2s_ancestral", S.DPMSolverPP2SAncestral())
    fixed("dpmpp_sde", S.DPMSolverPPSinglestepSDE())
    fixed("dpm_2_ancestral", S.DPM2Ancestral())
    fixed("lms", S.LMS())
    fixed("dpmpp_2m_heun", S.DPMSolverPP(order=2, solver_type="heun"))
    fixed("deis_2", S.DEIS(order=2))
    fixed("deis_3", S.DEIS(order=3))
    fixed("dpmpp_2s", S.DPMSolverSinglestep(order=2))
    fixed("dpmpp_3s", S.DPMSolverSinglestep(order=3))
    fixed("dpmpp_2s_heun", S.DPMSolverSinglestep(order=2, solver_type="heun"))
    fixed("dpmpp_3s_heun", S.DPMSolverSinglestep(order=3, solver_type="heun"))
    fixed("ipndm", S.IPNDM())
    fixed("pndm", S.PNDM())
    fixed("unipc_2", S.UniPC(order=2))
    fixed("unipc_3", S.UniPC(order=3))
    fixed("pc_m1", S.PredictorCorrector(corrector_steps=1, snr=0.16))
    fixed("annealed_langevin_m2", S.AnnealedLangevin(steps_per_level=2, snr=0.16))
    fixed("randomized_midpoint", S.RandomizedMidpoint())
    fixed("randomized_midpoint_k4j2", S.RandomizedMidpoint(num_points=4, picard_iters=2))
    out.append(("parallel_picard_p8", S.ParallelPicard(window=8, tol=0.1), max(budget // 2, 1), True, budget))
    out.append(("adaptive_dpm12", S.Adaptive(order=2), 10, True, budget))
    out.append(("adaptive_dpm23", S.Adaptive(order=3), 10, True, budget))
    out.append(("adaptive_ggf", S.Adaptive(pair="ggf"), 10, True, budget))
    out.append(("single_level", S.SingleLevel(sigma=0.5, steps=budget - 1), 10, True, None))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", type=int, default=512)
    ap.add_argument("--out", default="benchmarks/results/samplers_cpu.json")
    ap.add_argument("--only", default=None,
                    help="comma-separated labels to run (default: all), e.g. for a partial rerun")
    args = ap.parse_args()
    only = None if args.only is None else set(args.only.split(","))

    rng = np.random.default_rng(0)
    means = jnp.asarray(rng.normal(size=(8, DIM)))
    target = js.targets.GaussianMixture(means, 0.5)
    oracle = js.oracles.Exact(target)
    ref = target.sample(jax.random.key(99), args.chains)
    key = jax.random.key(0)
    rows = []
    print(f"{'sampler':26s} {'Q':>3s} {'N':>3s} {'queries':>7s} {'levels':>7s} {'rounds':>7s} "
          f"{'energy':>9s} {'modeTV':>7s} {'ok':>5s} {'compile+run s':>13s}")
    for budget in BUDGETS:
        for label, sampler, n, append_zero, mq in configs(budget):
            if only is not None and label not in only:
                continue
            sig = js.schedules.karras(n, append_zero=append_zero)
            t0 = time.perf_counter()
            res = js.sample(oracle, sampler, sig, key, num_samples=args.chains, max_queries=mq)
            x = jax.block_until_ready(res.x)
            t1 = time.perf_counter()
            res = js.sample(oracle, sampler, sig, key, num_samples=args.chains, max_queries=mq)
            jax.block_until_ready(res.x)
            t2 = time.perf_counter()
            finite = np.all(np.isfinite(np.asarray(x)), axis=1)
            xf = np.asarray(x)[finite]
            energy = float(js.metrics.energy_distance(jnp.asarray(xf), ref)) if len(xf) > 1 else float("nan")
            tv, _ = js.metrics.mode_tv(xf, means) if len(xf) else (float("nan"), 0.0)
            summ = js.summarize(res)
            row = dict(
                sampler=label, budget=budget, steps=n, append_zero=append_zero, max_queries=mq,
                queries=summ["queries"]["mean"], queries_max=summ["queries"]["max"],
                levels=summ["levels"]["mean"], rounds=summ["rounds"]["mean"],
                energy_distance=energy, mode_tv=tv, status=summ["status"],
                compile_plus_run_s=t1 - t0, run_s=t2 - t1,
            )
            rows.append(row)
            ok = summ["status"]["success"] / summ["num_samples"]
            print(f"{label:26s} {budget:3d} {n:3d} {row['queries']:7.1f} {row['levels']:7.1f} "
                  f"{row['rounds']:7.1f} {energy:9.3f} {tv:7.3f} {ok:5.2f} {t1 - t0:13.1f}", flush=True)
    meta = dict(
        jax_version=jax.__version__, jscore_version=js.__version__, device=str(jax.devices()[0]),
        device_kind=jax.devices()[0].device_kind, platform=platform.platform(),
        x64=bool(jax.config.jax_enable_x64), eqx_on_error=os.environ.get("EQX_ON_ERROR"),
        dim=DIM, components=8, std=0.5, chains=args.chains, grid="karras(n), sigma in [0.002, 80]",
        metric="energy distance to exact samples (unbiased), mode-mass TV",
        only=args.only, load_average=os.getloadavg(),
    )
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(dict(meta=meta, rows=rows), f, indent=1)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
