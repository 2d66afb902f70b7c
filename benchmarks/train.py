"""Training throughput (steps/s) and the measured score-error profile eps(sigma) of a d = 64 network.

Question: how fast does ``js.train.fit`` run on this device, and how accurate is the resulting
``js.oracles.Network`` as a score oracle, measured against the exact score of the target?

Method:
- throughput: the jitted training chunk (``lax.scan`` over ``--chunk`` steps) is compiled first
  (compile time reported apart), then timed ``--repeats`` times with ``block_until_ready``; we
  report the minimum (steps/s = chunk / min time) and the median, per batch size.
- accuracy: a DenoiserMLP(d=64) trained ``--steps`` steps on exact samples of a 16-component
  Gaussian mixture; ``eps(sigma) = ||S_net - s||_{L^2(p_sigma)}`` by ``js.metrics.score_error_profile``
  (n samples per level, 95% CI), next to ``||s||_{L^2(p_sigma)}`` and the error of the untrained
  (zero-output, i.e. N(0, sigma_data^2 I)) network.

Writes ``benchmarks/results/train_<backend>.json``. Run: ``python benchmarks/train.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import time

os.environ.setdefault("EQX_ON_ERROR", "nan")

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import jscore as js  # noqa: E402
from jscore.cli.train import _zero_oracle, sigma_data_of  # noqa: E402
from jscore.seeds import TRAIN, stream  # noqa: E402
from jscore.train import TrainState, _make_config, _run_chunk  # noqa: E402


def make_target(dim, k, seed=0):
    means = jax.random.normal(jax.random.fold_in(jax.random.key(seed), 0x7461), (k, dim))
    return js.targets.GaussianMixture(means, 0.3)


def time_chunks(model, target, batch, chunk, repeats):
    cfg = _make_config(model, 10_000, batch, 1e-3, 100, 0.01, 1e-4, 1.0, 0.999, "lognormal",
                       -1.2, 1.2, 0.002, 80.0, None, chunk)
    knobs = cfg.knobs()
    params, static = eqx.partition(model, eqx.is_inexact_array)
    state = TrainState(params, params, knobs.optimizer().init(params), jnp.zeros((), jnp.int32))
    key = stream(jax.random.key(0), TRAIN)
    steps = jnp.arange(chunk, dtype=jnp.int32)
    t0 = time.perf_counter()
    state, losses = _run_chunk(state, static, target, key, steps, knobs, batch, cfg.sigma_dist)
    jax.block_until_ready(losses)
    compile_s = time.perf_counter() - t0
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        state, losses = _run_chunk(state, static, target, key, steps + (r + 1) * chunk, knobs, batch,
                                   cfg.sigma_dist)
        jax.block_until_ready(losses)
        times.append(time.perf_counter() - t0)
    return {"batch": batch, "chunk": chunk, "compile_plus_first_chunk_s": compile_s,
            "chunk_s_min": min(times), "chunk_s_median": statistics.median(times),
            "steps_per_s": chunk / min(times), "steps_per_s_median": chunk / statistics.median(times)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--components", type=int, default=16)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--eval-n", type=int, default=4096)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.quick:
        args.steps, args.repeats, args.eval_n, args.chunk = 200, 2, 512, 50
    target = make_target(args.dim, args.components)
    sd = sigma_data_of(target)
    model0 = js.nets.DenoiserMLP(args.dim, width=args.width, depth=args.depth, sigma_data=sd,
                                 key=jax.random.key(1))

    throughput = [time_chunks(model0, target, b, args.chunk, args.repeats) for b in (64, args.batch)]
    for t in throughput:
        print(f"batch {t['batch']:4d}: {t['steps_per_s']:8.1f} steps/s (min of {args.repeats}; median "
              f"{t['steps_per_s_median']:.1f}); compile + first chunk {t['compile_plus_first_chunk_s']:.1f} s")

    t0 = time.perf_counter()
    res = js.train.fit(model0, target, jax.random.key(2), num_steps=args.steps, batch_size=args.batch,
                       chunk_size=args.chunk, learning_rate=1e-3, progress=False)
    train_s = time.perf_counter() - t0
    sigmas = np.geomspace(0.01, 10.0, 13)
    key = jax.random.key(3)
    prof = js.metrics.score_error_profile(js.oracles.Network(res.model), target, sigmas, key, n=args.eval_n)
    prof0 = js.metrics.score_error_profile(js.oracles.Network(model0), target, sigmas, key, n=args.eval_n)
    norms = js.metrics.score_error_profile(_zero_oracle(), target, sigmas, key, n=args.eval_n)
    rows = []
    print(f"\ntrained {args.steps} steps (batch {args.batch}) in {train_s:.1f} s; eps(sigma), L2, n={args.eval_n}:")
    print(f"{'sigma':>8} {'eps':>9} {'ci_low':>9} {'ci_high':>9} {'|s|_2':>9} {'eps/|s|':>8} {'eps_init':>9}")
    for i, s in enumerate(sigmas):
        row = {"sigma": float(s), "eps": float(prof.estimate[i]), "ci_low": float(prof.lower[i]),
               "ci_high": float(prof.upper[i]), "score_norm": float(norms.estimate[i]),
               "relative": float(prof.estimate[i] / norms.estimate[i]),
               "eps_init": float(prof0.estimate[i])}
        rows.append(row)
        print(f"{s:8.3g} {row['eps']:9.4g} {row['ci_low']:9.4g} {row['ci_high']:9.4g} "
              f"{row['score_norm']:9.4g} {row['relative']:8.3f} {row['eps_init']:9.4g}")

    import jaxlib

    dev = jax.devices()[0]
    out = {
        "benchmark": "train",
        "question": "training steps/s and measured eps(sigma) of a d=64 DenoiserMLP",
        "target": {"kind": "gmm", "dim": args.dim, "components": args.components, "std": 0.3,
                   "means": "N(0, I) from key 0 (see make_target)", "sigma_data": sd},
        "model": model0.hyperparams(),
        "num_params": int(sum(x.size for x in jax.tree.leaves(eqx.filter(model0, eqx.is_inexact_array)))),
        "throughput": throughput,
        "training": {"steps": args.steps, "batch": args.batch, "chunk": args.chunk, "lr": 1e-3,
                     "sigma_dist": "lognormal(-1.2, 1.2)", "wall_s": train_s,
                     "loss_first_100": float(np.mean(res.losses[:100])),
                     "loss_last_100": float(np.mean(res.losses[-100:]))},
        "profile": {"p": 2, "n": args.eval_n, "level": 0.95, "rows": rows},
        "env": {"jscore": js.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
                "equinox": eqx.__version__, "python": platform.python_version(),
                "backend": jax.default_backend(), "device_kind": dev.device_kind,
                "cpu_count": os.cpu_count(), "x64": bool(jax.config.jax_enable_x64),
                "EQX_ON_ERROR": os.environ.get("EQX_ON_ERROR"),
                "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
                "quick": args.quick},
    }
    path = pathlib.Path(args.out) if args.out else (
        pathlib.Path(__file__).parent / "results" / f"train_{jax.default_backend()}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
