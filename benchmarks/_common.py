"""Shared helpers for the benchmark scripts (not part of the jscore package).

Rules (performance.md, style.md section 9): time whole jitted loops after a warm-up call with
``block_until_ready``, report the median of several repeats, interleave the implementations being
compared (so machine load hits them alike) and keep the raw JSON in ``benchmarks/results/``.
"""

from __future__ import annotations

import datetime
import gc
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("EQX_ON_ERROR", "nan")

RESULTS = Path(__file__).resolve().parent / "results"


def setup_platform(device: str) -> None:
    """Select the JAX platform before jax is imported (``cpu`` or ``gpu``)."""
    if device == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"
    elif device == "gpu":
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        os.environ["JAX_PLATFORMS"] = "cuda,cpu"
    else:
        raise ValueError(f"--device must be cpu or gpu, got {device!r}")


def env_info() -> dict:
    """Versions and device facts recorded with every number."""
    import jax
    import jaxlib

    import jscore

    info = {
        "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "jscore": jscore.__version__,
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "num_devices": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "x64": bool(jax.config.jax_enable_x64),
        "EQX_ON_ERROR": os.environ.get("EQX_ON_ERROR"),
    }
    try:
        import equinox

        info["equinox"] = equinox.__version__
    except Exception:  # pragma: no cover
        pass
    try:
        info["load_average_at_start"] = os.getloadavg()
    except OSError:  # pragma: no cover
        pass
    return info


def stamp_end(info: dict) -> dict:
    """Record the load average at the end of a run in ``info`` (``load_average_at_end``)."""
    try:
        info["load_average_at_end"] = os.getloadavg()
    except OSError:  # pragma: no cover
        pass
    return info


def device_label(info: dict) -> str:
    kind = info["device_kind"]
    if info["backend"] == "cpu":
        return f"cpu ({info['cpu_count']} cores, {platform.processor() or platform.machine()})"
    return kind


def block(x):
    import jax

    return jax.block_until_ready(x)


def time_interleaved(fns: dict, repeats: int, warmup: int = 1, pause: float = 0.2) -> dict:
    """Run each zero-argument callable ``warmup`` times, then ``repeats`` rounds, each in a fresh
    random order (seeded), with ``pause`` seconds (untimed) before every timed call.

    The shuffle keeps any implementation from always running right after the same other one, and
    the pause lets the previous call's worker threads go idle first (PyTorch's OpenMP threads
    spin for up to ~200 ms after a parallel region, taking a core from whatever runs next).
    Returns ``{name: [seconds, ...]}`` (index r = round r). Garbage collection is off while timing.
    """
    import random

    names = list(fns)
    for name in names:
        for _ in range(warmup):
            block(fns[name]())
    times = {name: [] for name in names}
    rng = random.Random(0)
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            order = names[:]
            rng.shuffle(order)
            for name in order:
                if pause:
                    time.sleep(pause)
                t0 = time.perf_counter()
                block(fns[name]())
                times[name].append(time.perf_counter() - t0)
    finally:
        if gc_was:
            gc.enable()
    return times


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def save_json(stem: str, payload: dict, out: str | None = None) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    if out is None:
        backend = payload.get("env", {}).get("backend", "unknown")
        out = RESULTS / f"{stem}_{backend}.json"
    out = Path(out)
    out.write_text(json.dumps(payload, indent=1, default=float) + "\n")
    return out


def mixture(d: int, key, num_components: int = 16, std: float = 0.5, scale: float = 3.0):
    """The benchmark target: K isotropic components, std 0.5, means ~ 3 N(0, I)."""
    import jax

    import jscore as js

    means = scale * jax.random.normal(key, (num_components, d))
    return js.targets.GaussianMixture(means, std)


def bandwidth_probe(num_floats: int, repeats: int = 20) -> dict:
    """Device-to-device bandwidth of a large elementwise op ``y = x + 1`` (bytes read + written)."""
    import jax
    import jax.numpy as jnp

    x = jnp.zeros((num_floats,), jnp.float32)
    f = jax.jit(lambda a: a + 1.0)
    block(f(x))
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        block(f(x))
        ts.append(time.perf_counter() - t0)
    t = median(ts)
    nbytes = 2 * x.size * x.dtype.itemsize
    return {"num_floats": num_floats, "seconds_median": t, "bytes": nbytes, "GBps": nbytes / t / 1e9}


def memory_of(compiled):
    """Compiled ``memory_analysis()`` bytes; ``peak_bytes = arguments + outputs + temporaries - aliased``
    (None where the backend reports none)."""
    m = compiled.memory_analysis()
    if m is None:
        return None
    row = {
        k: int(getattr(m, k))
        for k in ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes",
                  "alias_size_in_bytes", "generated_code_size_in_bytes")
        if hasattr(m, k)
    }
    row["peak_bytes"] = (
        row["argument_size_in_bytes"] + row["output_size_in_bytes"] + row["temp_size_in_bytes"]
        - row.get("alias_size_in_bytes", 0)
    )
    return row


# ------------------------------------------------------------------ roofline probes
ROOFLINE_SIZES = {"cpu": {"matmul": 2048, "copy": 1 << 24}, "gpu": {"matmul": 8192, "copy": 1 << 28}}


def roofline_probes(device: str) -> tuple[dict, dict]:
    """The device's reference rates, to time interleaved with the workloads of the same run.

    Returns ``(fns, work)``: ``xla_matmul`` (float32 ``n x n @ n x n`` at ``Precision.HIGHEST``,
    work ``2 n^3`` flops) and ``xla_copy`` (``y = x + 1`` on float32, work = bytes read + written).
    """
    import jax
    import jax.numpy as jnp

    sizes = ROOFLINE_SIZES[device]
    n = sizes["matmul"]
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    mm = jax.jit(lambda u, v: jnp.matmul(u, v, precision=jax.lax.Precision.HIGHEST))
    cp = jax.jit(lambda u: u + 1.0, donate_argnums=0)  # in place: no fresh pages to fault in
    buf = [jnp.zeros((sizes["copy"],), jnp.float32)]

    def copy():
        buf[0] = cp(buf[0])
        return buf[0]

    fns = {"xla_matmul": lambda: mm(a, a), "xla_copy": copy}
    work = {"xla_matmul": {"flops": 2.0 * n**3, "n": n},
            "xla_copy": {"bytes": 2.0 * 4 * sizes["copy"], "num_floats": sizes["copy"]}}
    return fns, work


def probe_rates(times: dict, work: dict) -> dict:
    """Median FLOP/s of the matmul probe and bytes/s of the copy probe, and their per-round series."""
    out = {}
    for name, w in work.items():
        amount = w.get("flops", w.get("bytes"))
        rates = [amount / t for t in times[name]]
        out[name] = dict(w, seconds_all=times[name], rate_median=median(rates), rates=rates)
    return out


def roofline(times_impl, flops, nbytes, probes: dict) -> dict:
    """Achieved FLOP/s and bytes/s of one workload over the probes' rates, round by round.

    ``fraction_of_matmul`` = median over rounds of (flops / t) / (matmul FLOP/s of that round);
    ``fraction_of_copy`` likewise with bytes and the copy probe. ``bound``: the limit the workload
    is closer to (the larger fraction), i.e. the one that binds under a roofline model.
    """
    fm = [flops / t / r for t, r in zip(times_impl, probes["xla_matmul"]["rates"])]
    fc = [nbytes / t / r for t, r in zip(times_impl, probes["xla_copy"]["rates"])]
    t = median(times_impl)
    out = {"flops": flops, "bytes": nbytes, "flops_per_s": flops / t, "bytes_per_s": nbytes / t,
           "fraction_of_matmul": median(fm), "fraction_of_copy": median(fc)}
    out["bound"] = "compute (matmul rate)" if out["fraction_of_matmul"] >= out[
        "fraction_of_copy"] else "memory (copy bandwidth)"
    return out
