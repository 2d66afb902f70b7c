"""The lower-bound experiment on the full-vector path at large d, against the scalar reduction.

Per sampler: ``N`` chains of ``d``-dimensional vectors run against the reference oracle
(``jscore.lowerbound.trajectory.reference_run``: every query is a real ``d``-vector, the recorded
norms and overlaps feed :func:`~jscore.lowerbound.trajectory.assemble`), on ``K`` geometric levels
from 20 to 0.02 at each of 4 log-offsets (default ``K = 0.2 sqrt(d)``, near Euler's K*(d), so the
probability is in the middle of [0, 1]), hidden rate R = 0.3, eps = 1/d, p = 2. The same
estimate from the O(1)-per-step scalar reduction (``scalar.simulate``, other keys) is the check:
the mean estimates must agree within their standard errors (different draws of the same law; the
probabilities are computed in float64, the trajectories in float32: in float32 the informative
probabilities underflow to 0). Timed: the full-vector run at one offset (after a warm-up call)
and its state traffic, one read and one write of ``N x d`` float32 per query, over the copy rate
of the same run.

    python benchmarks/lowerbound_fullvector.py                  # CPU: d = 1e5, N = 8, K = 63
    python benchmarks/lowerbound_fullvector.py --device gpu     # GPU: d = 1e6, N = 64, K = 200
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common  # noqa: E402

DEFAULTS = {"cpu": {"dim": 100_000, "chains": 8, "repeats": 3},
            "gpu": {"dim": 1_000_000, "chains": 64, "repeats": 3}}
OFFSETS = 4  # log-offsets (u + 1/2)/4 of the grid; N chains each


def run_sampler(name, d, n, K, repeats, probes):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jscore as js
    from jscore.lowerbound import scalar, trajectory
    from jscore.lowerbound.exact_experiments import offset_grid

    sampler = {"euler": js.samplers.Euler(), "euler_ancestral": js.samplers.EulerAncestral()}[name]
    key = jax.random.key(11)
    grids = [jnp.asarray(offset_grid(K, 0.02, 20.0, (u + 0.5) / OFFSETS), jnp.float32)
             for u in range(OFFSETS)]

    def full(sig):
        traj, res = trajectory.reference_run(sampler, sig, key, d, n)
        return traj, res.x

    ests = {"full": [], "scalar": [], "lower": [], "upper": []}
    for u, sig in enumerate(grids):  # the estimates average over the offsets
        traj, _ = full(sig)
        with jax.enable_x64(True):  # the informative probabilities need float64 (as in the lab)
            traj64 = jax.tree.map(lambda a: jnp.asarray(np.asarray(a)), traj)
            b = trajectory.assemble(traj64, float(d), 0.3, 1.0 / d)
            traj_s, _ = scalar.simulate(sampler, sig.astype(jnp.float64),
                                        jax.random.fold_in(jax.random.key(12), u), d, n)
            bs = trajectory.assemble(traj_s, float(d), 0.3, 1.0 / d)
            for k, v in (("full", b.estimate), ("scalar", bs.estimate), ("lower", b.lower),
                         ("upper", b.upper)):
                ests[k].append(np.asarray(v, np.float64))
    probe_fns, probe_work = probes
    times = _common.time_interleaved({"full_vector": lambda: full(grids[0])[1], **probe_fns}, repeats)
    rates = _common.probe_rates(times, probe_work)
    q = int(np.max(np.asarray(traj.valid).sum(-1)))
    rl = _common.roofline(times["full_vector"], 0.0, 8.0 * n * d * q, rates)

    def mean_se(v):
        v = np.asarray(v, np.float64)
        return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0

    est, est_se = mean_se(np.concatenate(ests["full"]))
    est_s, est_s_se = mean_se(np.concatenate(ests["scalar"]))
    return {"sampler": name, "d": d, "chains": n, "offsets": OFFSETS, "K": K, "queries_per_chain": q,
            "full_vector": {"estimate": est, "estimate_se": est_se,
                            "lower": float(np.mean(ests["lower"])),
                            "upper": float(np.mean(ests["upper"])),
                            "seconds_median": _common.median(times["full_vector"]),
                            "seconds_all": times["full_vector"], "roofline": rl},
            "scalar": {"estimate": est_s, "estimate_se": est_s_se},
            "z_full_minus_scalar": (est - est_s) / max(math.hypot(est_se, est_s_se), 1e-12),
            "probes": rates}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--dim", type=int, default=None)
    p.add_argument("--chains", type=int, default=None)
    p.add_argument("--levels", type=int, default=None,
                   help="K (default round(0.2 sqrt(d)), near K* of Euler, where P ~ 1/2)")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--samplers", default="euler,euler_ancestral")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    _common.setup_platform(args.device)
    cfg = DEFAULTS[args.device]
    d, n = args.dim or cfg["dim"], args.chains or cfg["chains"]
    repeats = args.repeats or cfg["repeats"]
    args.levels = args.levels or max(4, round(0.2 * math.sqrt(d)))
    env = _common.env_info()
    print(f"device: {_common.device_label(env)}; jax {env['jax']}; d={d} N={n} K={args.levels}")
    probes = _common.roofline_probes(args.device)
    rows = []
    for name in args.samplers.split(","):
        r = run_sampler(name, d, n, args.levels, repeats, probes)
        rows.append(r)
        f = r["full_vector"]
        print(f"  {name:16s} full-vector {1e3 * f['seconds_median']:8.1f} ms "
              f"({100 * f['roofline']['fraction_of_copy']:.0f}% of copy bandwidth)  P(exists inf.) "
              f"{f['estimate']:.3f} +- {f['estimate_se']:.3f} vs scalar {r['scalar']['estimate']:.3f}"
              f" +- {r['scalar']['estimate_se']:.3f} (z = {r['z_full_minus_scalar']:.1f})", flush=True)
    _common.stamp_end(env)
    payload = {"benchmark": "lowerbound_fullvector", "env": env, "device": _common.device_label(env),
               "rate": 0.3, "eps": "1/d", "p": 2.0, "rows": rows}
    print(f"saved {_common.save_json('lowerbound_fullvector', payload, args.out)}")
    return payload


if __name__ == "__main__":
    main()
