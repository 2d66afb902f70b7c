"""Compile count and time of a 12-dimension sweep: power-of-two buckets with masks vs one compile per d.

Question: how much compilation does bucketing save, and what does padding cost at run time?
Run: ``python benchmarks/sweep_buckets.py`` (CPU; set JSCORE_BENCH_SEEDS to scale). Compilation
is timed cold (a fresh private cache directory per mode), run time is the sum of chunk times.
"""

import os
import tempfile
import time

os.environ.setdefault("EQX_ON_ERROR", "nan")

import jscore as js  # noqa: E402

SEEDS = int(os.environ.get("JSCORE_BENCH_SEEDS", 256))


def main():
    dims = "3-14"
    print(f"{'mode':<8}{'compiles':>9}{'compile s':>11}{'run s':>8}{'wall s':>8}")
    for mode in ("bucket", "exact"):
        spec = js.sweeps.SweepSpec(samplers=["heun"], dims=dims, seeds=f"0-{SEEDS - 1}", chunk=SEEDS,
                                   steps="8,16", metrics=["kl_affine"], dims_mode=mode, name=f"bench-{mode}")
        with tempfile.TemporaryDirectory() as out, tempfile.TemporaryDirectory() as cache:
            os.chmod(cache, 0o700)
            t0 = time.perf_counter()
            res = js.sweep(spec, out=out, quiet=True, plot=False, cache_dir=cache)
            wall = time.perf_counter() - t0
        print(f"{mode:<8}{res.num_compilations:>9}{res.compile_seconds:>11.1f}{res.run_seconds:>8.2f}{wall:>8.1f}")
    print(f"(12 dims {dims}, Heun, steps 8 and 16 in one grid length, {SEEDS} seeds; "
          f"device: {res.rows[0]['device']['device_kind']})")


if __name__ == "__main__":
    main()
