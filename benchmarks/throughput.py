"""Throughput of the probability-flow ODE on a Gaussian mixture: jscore against its peers.

Workload (performance.md): Euler and Heun (EDM, no churn) in sigma on a Karras grid (default 64
steps, ending at 0), isotropic Gaussian mixture with K = 16 components, std 0.5, means
~ 3 N(0, I); N chains x d dims, float32, all chains from the same initial points.

Implementations timed in the same process, interleaved, as whole jitted loops:

- ``jscore``: ``js.sample(js.oracles.Exact(target), sampler, sigmas, key, x_init=x0)`` (counts
  included);
- ``scan``: a batched ``lax.scan`` written directly with the same arithmetic (reference);
- ``diffrax``: ``diffrax.diffeqsolve`` (Euler / Heun, ``StepTo`` on the grid), vector field
  ``-sigma * target.score`` vmapped per chain (Heun: to sigma_{N-1}, then the same final Euler step
  into 0 as EDM's Heun); skipped with a message if diffrax is missing;
- ``pyloop``: a Python loop calling a jitted (state-donating) step;
- ``torch``: an idiomatic PyTorch eager loop (``torch.no_grad``), same arithmetic; skipped with a
  message if torch is missing.

Reported: seconds (median of the repeats), coordinate-queries per second ``N d Q / t`` (Q = score
evaluations per chain: N for Euler, 2N - 1 for Heun, the same for every implementation), the
ratio ``t_peer / t_jscore`` (> 1: jscore is faster) as medians' ratio, as the median over rounds of
the same round's ratio (``paired``: robust to load drifting between rounds) and as min / min, the largest deviation of each peer's final
state from jscore's, and on GPU the fraction of the state-bandwidth floor: one read and one write
of the ``N x d`` float32 state per score evaluation at the bandwidth of a large elementwise op
measured in the same run. Roofline (every row's ``roofline``): achieved FLOP/s (``4 N d K`` per
evaluation: the two ``N x d x K`` products) over the float32 matmul rate of the same rounds, and
bytes/s (one read and one write of the state per evaluation) over the copy rate of the same rounds
(``_common.roofline_probes``, timed interleaved with the implementations); ``bound`` names the
larger fraction.

    python benchmarks/throughput.py                 # CPU: N d = 2^20, d in {64, 1024}
    python benchmarks/throughput.py --device gpu    # GPU: N d = 2^26, d in {1024, 16384, 262144}
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common  # noqa: E402

DEFAULTS = {
    "cpu": {"log2_size": 20, "dims": [64, 1024], "repeats": 5},
    "gpu": {"log2_size": 26, "dims": [1024, 16384, 262144], "repeats": 10},
}


def build_jax_impls(sampler_name, target, sigmas, steps, key, oracle=None):
    """jscore, scan, pyloop and diffrax for any ``target`` with a per-point ``score(x, sigma)``
    (``oracle``: what jscore queries; default ``Exact(target)``)."""
    import jax
    import jax.numpy as jnp

    import jscore as js

    oracle = js.oracles.Exact(target) if oracle is None else oracle
    sampler = {"euler": js.samplers.Euler(), "heun": js.samplers.Heun()}[sampler_name]
    # Every JAX implementation takes the target as a jit argument, like jscore's oracle (closing
    # over it would bake the means into the executable as constants, which jscore cannot do).
    def score_of(tgt):
        return jax.vmap(tgt.score, in_axes=(0, None))

    def run_jscore(x0):
        return js.sample(oracle, sampler, sigmas, key, x_init=x0).x

    def euler_step(x, s, sn, tgt):
        d = -s * score_of(tgt)(x, s)
        return x + (sn - s) * d

    def heun_step(x, s, sn, tgt):
        score = score_of(tgt)
        d = -s * score(x, s)
        x_pred = x + (sn - s) * d
        safe = jnp.where(sn > 0, sn, 1.0)
        d2 = -sn * score(x_pred, safe)
        return jnp.where(sn > 0, x + (sn - s) * 0.5 * (d + d2), x_pred)

    step = {"euler": euler_step, "heun": heun_step}[sampler_name]

    @jax.jit
    def run_scan(x0, sig, tgt):
        def body(x, i):
            return step(x, sig[i], sig[i + 1], tgt), None

        return jax.lax.scan(body, x0, jnp.arange(steps))[0]

    jstep = jax.jit(step, donate_argnums=0)
    sig_list = [sigmas[i] for i in range(steps + 1)]

    def run_pyloop(x0):
        x = jnp.copy(x0)
        for i in range(steps):
            x = jstep(x, sig_list[i], sig_list[i + 1], target)
        return x

    impls = {
        "jscore": lambda x0: run_jscore(x0),
        "scan": lambda x0: run_scan(x0, sigmas, target),
        "pyloop": run_pyloop,
    }
    notes = {}
    try:
        import diffrax as dfx

        def vf(t, y, tgt):
            return -t * tgt.score(y, t)

        solver = {"euler": dfx.Euler(), "heun": dfx.Heun()}[sampler_name]
        # Heun: diffrax's Heun to the last positive level, then EDM's final Euler step into 0.
        ts = sigmas if sampler_name == "euler" else sigmas[:-1]

        @jax.jit
        def run_diffrax(x0, ts, tgt):
            def one(y0):
                sol = dfx.diffeqsolve(
                    dfx.ODETerm(vf), solver, t0=ts[0], t1=ts[-1], dt0=None, y0=y0, args=tgt,
                    stepsize_controller=dfx.StepTo(ts=ts), saveat=dfx.SaveAt(t1=True),
                    max_steps=ts.shape[0] - 1,
                )
                y = sol.ys[0]
                if sampler_name == "heun":
                    y = y + (sigmas[-1] - ts[-1]) * vf(ts[-1], y, tgt)
                return y

            return jax.vmap(one)(x0)

        impls["diffrax"] = lambda x0: run_diffrax(x0, ts, target)
        notes["diffrax"] = dfx.__version__ if hasattr(dfx, "__version__") else "installed"
    except ImportError:
        print("diffrax not installed: skipping the diffrax peer (pip install 'jscore[bench]').")
        notes["diffrax"] = "skipped: not installed"
    return impls, notes


def torch_or_none(device):
    """``(torch, device string)``, or ``(None, why)`` when the PyTorch peer cannot run."""
    try:
        import torch
    except ImportError:
        print("torch not installed: skipping the PyTorch peer (pip install 'jscore[bench]').")
        return None, "skipped: not installed"
    tdev = "cuda" if device == "gpu" else "cpu"
    if tdev == "cuda" and not torch.cuda.is_available():
        print("torch has no CUDA device: skipping the PyTorch peer.")
        return None, "skipped: no CUDA in torch"
    return torch, tdev


def torch_loop(torch, score, sampler_name, sigmas, steps, tdev):
    """The eager PyTorch Euler / EDM-Heun loop (``torch.no_grad``) around ``score(x, sigma)``."""
    import numpy as np

    sig = [float(s) for s in np.asarray(sigmas)]

    @torch.no_grad()
    def run(x0):
        x = x0.clone()
        for i in range(steps):
            s, sn = sig[i], sig[i + 1]
            d = -s * score(x, s)
            if sampler_name == "euler" or sn == 0:
                x = x + (sn - s) * d
            else:
                x_pred = x + (sn - s) * d
                d2 = -sn * score(x_pred, sn)
                x = x + (sn - s) * 0.5 * (d + d2)
        if tdev == "cuda":
            torch.cuda.synchronize()
        return x

    def to_torch(x0):
        return torch.tensor(np.asarray(x0), device=tdev)

    return (run, to_torch), f"torch {torch.__version__}, {torch.get_num_threads()} threads, {tdev}"


def build_torch_impl(sampler_name, target, sigmas, steps, device):
    torch, tdev = torch_or_none(device)
    if torch is None:
        return None, tdev
    import numpy as np

    means = torch.tensor(np.asarray(target.means), device=tdev)
    log_w = torch.tensor(np.asarray(target.log_weights), device=tdev)
    half_sq = 0.5 * (means * means).sum(-1)
    var0 = float(target.std) ** 2

    def score(x, s):
        v = var0 + s * s
        r = torch.softmax(log_w + (x @ means.T - half_sq) / v, dim=-1)
        return (r @ means - x) / v

    return torch_loop(torch, score, sampler_name, sigmas, steps, tdev)


def mixture_work(n, d, num_components=16):
    """Per score evaluation of all chains: flops of the two ``N x d x K`` products and the bytes
    of one read and one write of the state."""
    return 4.0 * n * d * num_components, 8.0 * n * d


def run_case(sampler_name, d, n, steps, repeats, device, bandwidth, probes=None):
    """The mixture workload (see the module docstring)."""
    import jax
    import jax.numpy as jnp

    import jscore as js

    target = _common.mixture(d, jax.random.key(1))
    sigmas = js.schedules.karras(steps)
    x0 = sigmas[0] * jax.random.normal(jax.random.key(2), (n, d), jnp.float32)
    impls, notes = build_jax_impls(sampler_name, target, sigmas, steps, jax.random.key(0))
    torch_impl, notes["torch"] = build_torch_impl(sampler_name, target, sigmas, steps, device)
    return time_case(sampler_name, d, n, steps, repeats, x0, impls, notes, torch_impl,
                     mixture_work(n, d), bandwidth, probes)


def time_case(sampler_name, d, n, steps, repeats, x0, impls, notes, torch_impl, work, bandwidth,
              probes=None):
    """Check every peer against jscore, time them interleaved (with the roofline probes) and tabulate.

    ``work = (flops, bytes)`` per score evaluation of all chains; ``probes``: ``(fns, work)`` of
    :func:`_common.roofline_probes` (adds the ``roofline`` entry of each row).
    """
    import numpy as np

    fns = {name: (lambda f=f: f(x0)) for name, f in impls.items()}
    if torch_impl is not None:
        run_t, to_torch = torch_impl
        x0_t = to_torch(x0)
        fns["torch"] = lambda: run_t(x0_t)

    # correctness: every peer's final state against jscore's
    ref = np.asarray(fns["jscore"]())
    dev = {}
    for name, f in fns.items():
        out = f()
        out = out.cpu().numpy() if hasattr(out, "cpu") else np.asarray(out)
        dev[name] = float(np.max(np.abs(out - ref)) / max(1.0, float(np.max(np.abs(ref)))))
    probe_fns, probe_work = probes if probes is not None else ({}, {})
    times = _common.time_interleaved({**fns, **probe_fns}, repeats)
    rates = _common.probe_rates(times, probe_work) if probes is not None else None
    q = steps if sampler_name == "euler" else 2 * steps - 1
    med = {k: _common.median(times[k]) for k in fns}
    rows = {}
    state_bytes = n * d * 4
    for name, t in med.items():
        row = {
            "seconds_median": t,
            "seconds_all": times[name],
            "coord_queries_per_s": n * d * q / t,
            "ratio_vs_jscore": t / med["jscore"],
            # per round, the peer's time over jscore's from the same round (adjacent in time, so
            # the machine's load hits both alike), then the median over rounds; and min / min
            "ratio_paired_median": _common.median(
                [a / b for a, b in zip(times[name], times["jscore"])]),
            "ratio_min": min(times[name]) / min(times["jscore"]),
            "max_rel_dev_from_jscore": dev[name],
        }
        if rates is not None:
            row["roofline"] = _common.roofline(times[name], q * work[0], q * work[1], rates)
        if bandwidth is not None:
            floor = q * 2 * state_bytes / (bandwidth["GBps"] * 1e9)
            row["floor_seconds"] = floor
            row["fraction_of_floor"] = floor / t
        rows[name] = row
    return {
        "sampler": sampler_name, "d": d, "n": n, "steps": steps, "queries_per_chain": q,
        "repeats": repeats, "peers": notes, "impls": rows, "probes": rates,
    }


def print_case(case):
    print(f"\n{case['sampler']}, d={case['d']}, N={case['n']}, {case['steps']} steps, "
          f"Q={case['queries_per_chain']}")
    for name, r in case["impls"].items():
        extra = f"  floor {100 * r['fraction_of_floor']:.0f}%" if "fraction_of_floor" in r else ""
        if "roofline" in r:
            rl = r["roofline"]
            extra += (f"  {rl['flops_per_s'] / 1e9:.1f} GFLOP/s = {100 * rl['fraction_of_matmul']:.0f}%"
                      f" of matmul, {100 * rl['fraction_of_copy']:.0f}% of copy")
        print(
            f"  {name:12s} {1e3 * r['seconds_median']:9.1f} ms  "
            f"{r['coord_queries_per_s']:.3e} coord-q/s  t/t_jscore {r['ratio_vs_jscore']:6.2f}"
            f" (paired {r['ratio_paired_median']:5.2f}, min {r['ratio_min']:5.2f})"
            f"  dev {r['max_rel_dev_from_jscore']:.1e}{extra}",
            flush=True,
        )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--dims", type=lambda s: [int(v) for v in s.split(",")], default=None)
    p.add_argument("--log2-size", type=int, default=None, help="log2 of N*d")
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--samplers", default="euler,heun")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    _common.setup_platform(args.device)
    cfg = DEFAULTS[args.device]
    dims = args.dims or cfg["dims"]
    log2 = args.log2_size or cfg["log2_size"]
    repeats = args.repeats or cfg["repeats"]

    env = _common.env_info()
    print(f"device: {_common.device_label(env)}; jax {env['jax']}")
    bandwidth = _common.bandwidth_probe(2**log2) if args.device == "gpu" else None
    if bandwidth:
        print(f"elementwise probe: {bandwidth['GBps']:.0f} GB/s (read + write)")
    probes = _common.roofline_probes(args.device)
    cases = []
    for sampler_name in args.samplers.split(","):
        for d in dims:
            n = 2**log2 // d
            case = run_case(sampler_name, d, n, args.steps, repeats, args.device, bandwidth, probes)
            cases.append(case)
            print_case(case)
    _common.stamp_end(env)
    payload = {"benchmark": "throughput", "env": env, "device": _common.device_label(env),
               "bandwidth_probe": bandwidth, "log2_size": log2, "cases": cases}
    path = _common.save_json("throughput", payload, args.out)
    print(f"\nsaved {path}")
    return payload


if __name__ == "__main__":
    main()
