"""Where one ``js.sample`` call of the Euler PF-ODE spends its time, against a hand-written scan.

Splits a call (the throughput workload: 64-step Karras grid, K = 16 mixture, N d = 2^20,
``x_init`` given) into

- host-side steps of ``js.sample`` before the executable runs (grid checks, planning, seeds,
  ``x_init`` handling, ``eqx.filter_jit``'s argument flattening and cache lookup), each timed
  alone over many calls;
- the compiled executable (``_sample_batch.lower(...).compile()``, called with pre-flattened
  arguments): the device time;
- the per-step bookkeeping (ledger, status), estimated as the difference between jscore's and the
  scan's executables on a 1-chain problem (where the state arithmetic is negligible) per step;

and compares the executable with the hand-written ``lax.scan`` (same arithmetic), timed
interleaved (median and minimum of the repeats). It also counts, in the optimised HLO, the
state-sized operations inside each while-loop body and outside it.

    PYTHONPATH=. python benchmarks/profile_euler.py [--dims 64,1024] [--repeats 15]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common  # noqa: E402


def _host_us(fn, reps):
    import jax

    jax.block_until_ready(fn())
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return 1e6 * _common.median(ts)


def _state_ops(hlo: str, n: int, d: int) -> dict:
    """State-sized (N x d, any dtype) top-level instructions in the while-loop bodies and in the
    entry computation (instructions inside fusions are not counted: a fusion is one pass)."""
    bodies = set(re.findall(r"body=(%[\w.\-]+)", hlo))
    out = {"loop_body": {}, "entry": {}}
    where = None
    for line in hlo.splitlines():
        if line.startswith("%") or line.startswith("ENTRY"):
            name = line.split()[1] if line.startswith("ENTRY") else line.split()[0]
            where = "entry" if line.startswith("ENTRY") else ("loop_body" if name in bodies else None)
            continue
        if where is None:
            continue
        m = re.match(r"\s*(ROOT )?%\S+ = \w+\[" + f"{n},{d}" + r"\]\{1,0\} ([\w\-]+)\(", line)
        if m and m.group(2) not in ("parameter", "get-tuple-element", "bitcast"):
            out[where][m.group(2)] = out[where].get(m.group(2), 0) + 1
    return out


def build(d, n, steps):
    import jax
    import jax.numpy as jnp

    import jscore as js
    from jscore import sampling

    target = _common.mixture(d, jax.random.key(1))
    oracle = js.oracles.Exact(target)
    sampler = js.samplers.Euler()
    sigmas = js.schedules.karras(steps)
    key = jax.random.key(0)
    x0 = sigmas[0] * jax.random.normal(jax.random.key(2), (n, d), jnp.float32)

    @jax.jit
    def run_scan(x, sig, tgt):
        score = jax.vmap(tgt.score, in_axes=(0, None))

        def body(x, i):
            s, sn = sig[i], sig[i + 1]
            return x + (sn - s) * (-s * score(x, s)), None

        return jax.lax.scan(body, x, jnp.arange(steps))[0]

    plan = sampling._plan(oracle, sampler, sigmas, d, None)
    seeds = jnp.arange(n, dtype=jnp.uint32)
    args = (oracle, sampler, sigmas, key, x0, seeds, plan, None, None)
    comp = sampling._sample_batch.lower(*args).compile()
    dyn = comp.preprocess(comp.info, args, {})
    scan_comp = run_scan.lower(x0, sigmas, target).compile()
    hlo = {"jscore": comp.compiled.as_text(), "scan": scan_comp.as_text()}
    try:
        import diffrax as dfx

        def vf(t, y, tgt):
            return -t * tgt.score(y, t)

        @jax.jit
        def run_diffrax(x, ts, tgt):
            def one(y0):
                return dfx.diffeqsolve(
                    dfx.ODETerm(vf), dfx.Euler(), t0=ts[0], t1=ts[-1], dt0=None, y0=y0, args=tgt,
                    stepsize_controller=dfx.StepTo(ts=ts), saveat=dfx.SaveAt(t1=True),
                    max_steps=ts.shape[0] - 1,
                ).ys[0]

            return jax.vmap(one)(x)

        hlo["diffrax"] = run_diffrax.lower(x0, sigmas, target).compile().as_text()
    except ImportError:
        pass
    return {
        "js": lambda: js.sample(oracle, sampler, sigmas, key, x_init=x0).x,
        "exec": lambda: comp.compiled(*dyn),
        "scan": lambda: scan_comp(x0, sigmas, target),
        "pieces": {
            "check_sigmas (reads the grid to the host)": lambda: js.schedules.check_sigmas(sigmas),
            "_plan (grid read, check_grid, counts)": lambda: sampling._plan(oracle, sampler, sigmas, d, None),
            "seeds = arange(n)": lambda: jnp.arange(n, dtype=jnp.uint32),
            "x_init asarray/astype": lambda: jnp.asarray(x0).astype(jnp.float32),
            "filter_jit flatten + dispatch (call minus executable)": None,  # derived
        },
        "filter_jit": lambda: sampling._sample_batch(*args),
        "hlo": hlo,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dims", type=lambda s: [int(v) for v in s.split(",")], default=[64, 1024])
    p.add_argument("--log2-size", type=int, default=20)
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--host-reps", type=int, default=200)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    _common.setup_platform("cpu")
    env = _common.env_info()
    print(f"device: {_common.device_label(env)}; jax {env['jax']}")
    steps = args.steps

    # per-step bookkeeping: 1 chain, where the state arithmetic is negligible
    tiny = build(args.dims[0], 1, steps)
    tt = _common.time_interleaved({"exec": tiny["exec"], "scan": tiny["scan"]}, 101, pause=0.0)
    tiny_exec, tiny_scan = _common.median(tt["exec"]), _common.median(tt["scan"])
    bookkeeping_per_step = max(0.0, (tiny_exec - tiny_scan) / steps)
    host = {}
    for name, fn in tiny["pieces"].items():
        if fn is not None:
            host[name] = _host_us(fn, args.host_reps)
    call_us = _host_us(tiny["filter_jit"], args.host_reps)
    exec_us = _host_us(tiny["exec"], args.host_reps)
    host["filter_jit flatten + dispatch (call minus executable)"] = max(0.0, call_us - exec_us)
    print(f"1 chain: executable {1e6 * tiny_exec:.0f} us, scan {1e6 * tiny_scan:.0f} us, "
          f"bookkeeping {1e6 * bookkeeping_per_step:.2f} us/step")
    for k, v in host.items():
        print(f"  host {k}: {v:.0f} us")

    cases = []
    for d in args.dims:
        n = 2**args.log2_size // d
        b = build(d, n, steps)
        times = _common.time_interleaved({"js.sample": b["js"], "executable": b["exec"],
                                          "scan": b["scan"]}, args.repeats)
        med = {k: _common.median(v) for k, v in times.items()}
        mins = {k: min(v) for k, v in times.items()}
        total = med["js.sample"]
        host_ms = sum(host.values()) / 1e3
        book_ms = 1e3 * bookkeeping_per_step * steps
        loop_ms = 1e3 * med["executable"] - book_ms
        rows = [
            ("host: check_sigmas + _plan + seeds + x_init", sum(v for k, v in host.items()
                                                             if "filter_jit" not in k) / 1e3),
            ("host: filter_jit flatten + dispatch", host["filter_jit flatten + dispatch (call minus executable)"] / 1e3),
            ("device: ledger/status bookkeeping (64 steps)", book_ms),
            ("device: state loop (score + update + carry copy)", loop_ms),
        ]
        rows.append(("residual (js.sample - executable - host: load noise)",
                     1e3 * total - 1e3 * med["executable"] - host_ms))
        hlo = {k: _state_ops(v, n, d) for k, v in b["hlo"].items()}
        case = {
            "d": d, "n": n, "steps": steps, "repeats": args.repeats,
            "seconds": times, "median_s": med, "min_s": mins,
            "scan_over_executable_median": med["scan"] / med["executable"],
            "scan_over_js_sample_median": med["scan"] / total,
            "scan_over_js_sample_min": mins["scan"] / mins["js.sample"],
            "js_sample_minus_executable_ms": 1e3 * (total - med["executable"]),
            "components_ms": {name: ms for name, ms in rows},
            "components_share": {name: ms / (1e3 * total) for name, ms in rows},
            "host_ms": host_ms,
            "hlo_state_sized_ops": hlo,
        }
        cases.append(case)
        print(f"\nd={d}, N={n}: js.sample {1e3 * total:.1f} ms, executable {1e3 * med['executable']:.1f}"
              f" ms, scan {1e3 * med['scan']:.1f} ms (median of {args.repeats}); scan/js.sample "
              f"{case['scan_over_js_sample_median']:.2f} (median), {case['scan_over_js_sample_min']:.2f} (min)")
        for name, ms in rows:
            print(f"  {name:50s} {ms:8.3f} ms  {100 * ms / (1e3 * total):5.1f}%")
        print(f"  HLO state-sized ops: {hlo}")
    payload = {"benchmark": "profile_euler", "env": env, "device": _common.device_label(env),
               "one_chain": {"executable_s": tiny_exec, "scan_s": tiny_scan,
                             "bookkeeping_s_per_step": bookkeeping_per_step,
                             "host_us": host},
               "cases": cases}
    print(f"\nsaved {_common.save_json('profile_euler', payload, args.out)}")
    return payload


if __name__ == "__main__":
    main()
