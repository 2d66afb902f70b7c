# %% [markdown]
# # 05 · Dimension sweeps: a TOML spec, resuming, sharding, reading the results
#
# `js.sweep` (command line: `jscore sweep`) runs the product *targets x oracles x samplers x
# schedules* (one **cell** per combination) at every dimension `d` and seed, and answers "how many
# queries Q*(d) does this sampler need to reach a given error, and how does that grow with d?".
# Every (cell, d, step count, seed chunk) is one fsynced JSON line on disk, so a killed sweep
# resumes where it stopped; seeds are sharded over all local devices. (Without a config,
# `jscore sweep` runs the codebook-free lower-bound sweep instead: see notebook 03.)
#
# `SCALE` multiplies the number of seeds and extends the dimension ladder.

# %%
import os

SCALE = int(os.environ.get("JSCORE_NOTEBOOK_SCALE", 1))

# Two CPU "devices", so that sharding is visible on a laptop. XLA reads this flag once, when JAX
# starts its CPU backend, so it must be set before `import jax` (in a shell:
# XLA_FLAGS=--xla_force_host_platform_device_count=2 jscore sweep ...). It only affects the host
# platform; on a GPU or TPU machine the accelerators are the devices.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

import io
import pathlib
import tempfile

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from IPython.display import Image, display

import jscore as js

matplotlib.rcParams.update(js.plot.RC)  # jscore's figure style


def show(fig):
    """Render a figure inline as PNG (the Agg backend draws; nothing is written to disk)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    display(Image(buf.getvalue()))


work = pathlib.Path(tempfile.mkdtemp(prefix="jscore-nb05-"))  # every file of this notebook goes here
print("devices:", jax.devices())

# %% [markdown]
# ## A sweep spec in TOML
# `jscore sweep gaussian-steps-vs-d --print-config` prints a built-in sampler sweep as a starting
# point (a plain `jscore sweep` runs the sqrt(d) lower-bound sweep of notebook 03). Components are
# strings `name:key=value,...` (or TOML tables); integer lists accept ranges such as `"0-63"` and
# `"16-4096:x4"` (16, 64, 256, ...).
#
# Here: a standard Gaussian target in d dimensions, the exact oracle, Euler and Heun on a Karras
# grid whose `sigma_max` is large enough for every d used. The metric `kl_affine` is the
# closed-form KL divergence between the sampler's output law and the target (exact for
# deterministic samplers on a Gaussian: the sampler is an affine map, read off the chains).
# `qstar` bisects over step counts for the smallest budget with `kl_affine <= 0.05`.

# %%
dims = "4-64:x4" if SCALE == 1 else f"4-{64 * 4 ** SCALE}:x4"
toml = f"""
name = "nb05"
targets = ["gaussian:mean=0.0,var=1.0"]
oracles = ["exact"]
samplers = ["euler", "heun"]
schedules = ["karras:sigma_min=0.002,sigma_max=80.0"]
dims = "{dims}"
seeds = "0-{16 * SCALE - 1}"
metrics = ["kl_affine"]
qstar = {{metric = "kl_affine", target = 0.05, search = "bisect", steps = [2, 256]}}
chunk = {8 * SCALE}
bootstrap = 200
"""
config = work / "nb05.toml"
config.write_text(toml)
spec = js.sweeps.load_spec(str(config))
print(js.sweep(spec, dry_run=True).describe())

# %% [markdown]
# The dry run validates everything (unknown names, impossible metric/sampler pairs) before any
# compilation and says how many programs will be compiled: dimensions are bucketed (padded to a
# power of two with masks) and step counts share padded grid lengths, so a sweep compiles far
# fewer programs than it has (d, N) points.
#
# ## Running it
# `js.sweep(spec, out=DIR)` is the Python form of `jscore sweep nb05.toml --out DIR`. We keep the
# persistent compilation cache inside the temporary folder too (the default is
# `~/.cache/jscore/xla`).

# %%
out = work / "run"
cache = str(work / "xla-cache")
res = js.sweep(spec, out=str(out), quiet=True, cache_dir=cache)
print(res.table())
print("\nfiles:", sorted(p.name for p in out.iterdir()))

# %% [markdown]
# ## Resuming
# Each row is appended and fsynced as soon as its chunk of seeds finishes. Running the same
# command again continues from the rows already on disk (rows of a *different* config are refused
# unless `overwrite=True`). We simulate a crash by cutting the row file in half, then rerun:

# %%
rows_file = out / "rows-p0.jsonl"
lines = rows_file.read_text().splitlines(keepends=True)
rows_file.write_text("".join(lines[: len(lines) // 2]))
print(f"rows on disk after the 'crash': {len(lines) // 2} of {len(lines)}")
res2 = js.sweep(spec, out=str(out), quiet=True, cache_dir=cache)
print(f"after resuming: {len(rows_file.read_text().splitlines())} rows; "
      f"XLA compilations in this call: {res2.num_compilations}")
same = {(q["cell_id"], q["dim"]): q["qstar"] for q in res.qstar} == {
    (q["cell_id"], q["dim"]): q["qstar"] for q in res2.qstar}
print("Q* identical to the uninterrupted run:", same)

# %% [markdown]
# ## Sharding over devices and processes
# Within a process, each compiled call shards its chunk of seeds over the local devices
# (`devices=` limits how many). Every seed `i` uses `fold_in(key, i)`, so results do not depend on
# the number of devices: here one device and two give the same per-seed numbers.

# %%
import dataclasses

small = dataclasses.replace(spec, name="nb05-devices", samplers=("heun",), dims=(16,), qstar=None,
                            steps=(8,))
runs = {n: js.sweep(small, out=str(work / f"devices-{n}"), devices=n, quiet=True, plot=False,
                    cache_dir=cache) for n in (1, 2)}
per_seed = lambda r: {(x["cell_id"], x["dim"], x["num_steps"], x["chunk"]): x["per_seed"] for x in r.rows}
for n, r in runs.items():
    print(f"devices={n}: rows report num_devices = {sorted({x['device']['num_devices'] for x in r.rows})}")
print("per-seed results equal with 1 and 2 devices:", per_seed(runs[1]) == per_seed(runs[2]))

# %% [markdown]
# Across hosts (or GPU groups) sharing a disk, start the *same* command in every process:
#
# ```bash
# jscore sweep nb05.toml --out runs/nb05 --coordinator HOST0:12345 --num-processes 4 --process-id $I
# jscore sweep nb05.toml --out runs/nb05 --distributed auto     # SLURM or TPU pods
# ```
#
# In each round (the step ladders, then one bisection step per (cell, d)) each process runs a
# disjoint share of the units and writes its own
# `rows-p<i>.jsonl`; process 0 consolidates the tables and figures when all have finished. On
# one GPU nothing changes: JAX picks the accelerator, and `CUDA_VISIBLE_DEVICES` chooses which.

# %% [markdown]
# ## Reading the results
# The same numbers are in `res` and in CSV files: `evals.csv` (one line per cell, d and step
# count, errors pooled over seeds), `qstar.csv` (Q*(d) with bootstrap CIs) and `slopes.csv`
# (log-log slope of Q*(d) per cell). Every row also carries per-seed queries, levels and rounds.

# %%
import csv

with open(out / "qstar.csv", newline="") as f:
    table = list(csv.DictReader(f))
print("qstar.csv columns:", ", ".join(table[0]))
for r in table:
    print(f"{r['sampler']:6s} d={int(r['dim']):4d}  Q*={float(r['qstar']):5.0f}  "
          f"interpolated {float(r['qstar_interp']):6.1f}  [{float(r['qstar_interp_ci_low']):.1f}, "
          f"{float(r['qstar_interp_ci_high']):.1f}]  {r['flag']}")
for s in res.slopes:
    if s["cell"] is not None and s["of"] == "qstar_interp":
        print(f"{s['cell']['sampler']:6s} Q* ~ d^{s['slope']:.2f}  "
              f"(CI [{s['slope_ci_low']:.2f}, {s['slope_ci_high']:.2f}])")

# %% [markdown]
# For a Gaussian target the exact answers are known: Euler's error per coordinate falls like
# 1/N, and KL adds up over d coordinates, so KL ~ d/N^2 and Q* ~ d^(1/2); a second-order method
# (Heun) has KL ~ d/N^4, so Q* ~ d^(1/4). `kl_affine` is exact for a deterministic sampler
# (no Monte-Carlo error), so the bootstrap CIs of Q* collapse to a point; the slope CIs come from
# the scatter of the three points about the fitted line, and Heun is still approaching its
# asymptotic slope at these small d. `JSCORE_NOTEBOOK_SCALE` > 1 extends the dimension ladder.
#
# `js.plot` draws the figures `jscore sweep` saves next to the tables:

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
js.plot.qstar_vs_dim(res.qstar, res.slopes, ax=axes[0])
js.plot.error_vs_queries(res.evals, "kl_affine", ax=axes[1], target=0.05)
axes[1].legend(fontsize=6, ncol=2)
fig.tight_layout()
show(fig)

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
js.plot.histograms(res.rows, axes=axes)
fig.tight_layout()
show(fig)
