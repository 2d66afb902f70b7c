"""``jscore demo``: every sampler in the catalogue on a Gaussian mixture, at a few query budgets.

The target is a mixture of K isotropic Gaussians in d dimensions whose means lie on a circle in
the plane of the first two coordinates, so the first two coordinates of the samples can be drawn
against the target. For each sampler and budget B, the grid is the Karras grid with the largest
number of steps whose exact cost fits in B queries (samplers with data-dependent cost run with
``max_queries`` and report what they used). Errors against the target:

- ``mode_tv``: total variation between the fraction of samples nearest each mean and the weights,
  with the multinomial standard error of an exact sampler (its noise floor);
- ``energy``: unbiased energy distance to as many exact target samples (zero in expectation for an
  exact sampler; the noise floor is printed).
"""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..env import environment
from ..store import append_jsonl, atomic_write
from ._util import check_out_dir, int_at_least, int_list_at_least


def add_parser(subparsers):
    from . import COMMANDS
    from ._util import HelpFormatter, plain_text

    p = subparsers.add_parser("demo", help=COMMANDS["demo"], description=plain_text(__doc__),
                              formatter_class=HelpFormatter)
    p.add_argument("--dim", type=int_at_least(2), default=8, help="dimension d")
    p.add_argument("--components", type=int_at_least(1), default=8, help="mixture components K")
    p.add_argument("--num-samples", type=int_at_least(2), default=512, help="chains per run")
    p.add_argument("--workers", type=int_at_least(1), default=2, help="runs compiled/executed concurrently")
    p.add_argument("--budgets", type=int_list_at_least(1), default="10,40",
                   help="comma list of query budgets per chain")
    p.add_argument(
        "--samplers",
        default="default",
        help="comma list of catalogue names; 'default' = one configuration per sampler class; "
        "'all' = every catalogue entry",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the chains and the target samples")
    p.add_argument("--out", default="jscore-demo", help="output folder (JSON rows, PNG and PDF)")
    p.add_argument("--no-plot", action="store_true", help="skip the figure")
    p.add_argument("--optimize", action="store_true",
                   help="compile with XLA's full backend optimisation (slower to compile; the demo's "
                   "runs are short, so by default the backend optimisation level is 0)")
    p.add_argument("--quiet", action="store_true", help="print only the table")
    return p


DEMO_LEGEND = """columns: budget = query budget B per chain (* = data-dependent cost);
  steps = grid steps; queries / levels / rounds = mean score queries, distinct noise levels and
  adaptive rounds per chain; mode_tv = TV between mode fractions and mixture weights;
  energy = unbiased energy distance to exact samples (can be < 0); status = chains that reached
  the end of the grid (ok) and chains stopped by max_queries (budget exhausted)."""


def status_text(status: dict) -> str:
    """``{"success": 29, "budget_exhausted": 227, ...}`` as ``"29 ok, 227 budget exhausted"``."""
    parts = [f"{status.get('success', 0)} ok"]
    parts += [f"{v} {k.replace('_', ' ')}" for k, v in status.items() if k != "success" and v]
    return ", ".join(parts)


def demo_target(dim: int, components: int, radius: float = 3.0, std: float = 0.3):
    """K means on a circle of ``radius`` in coordinates (0, 1), zero elsewhere; common ``std``."""
    import jax.numpy as jnp

    from ..targets import GaussianMixture

    if dim < 2:
        raise ValueError(f"`--dim` must be at least 2 for the 2-D projection, got {dim}.")
    angles = 2 * math.pi * jnp.arange(components) / components
    means = jnp.zeros((components, dim)).at[:, 0].set(radius * jnp.cos(angles))
    means = means.at[:, 1].set(radius * jnp.sin(angles))
    return GaussianMixture(means, std)


def default_samplers() -> list[str]:
    """One catalogue name per sampler class (the first entry of each), in catalogue order."""
    from ..samplers import CATALOGUE

    seen, names = set(), []
    for name, factory in CATALOGUE.items():
        cls = type(factory())
        if cls not in seen:
            seen.add(cls)
            names.append(name)
    return names


def steps_for_budget(sampler, budget: int) -> int | None:
    """Largest N whose exact cost on an N-step grid ending at 0 is <= budget (None if none)."""
    best = None
    for n in range(1, budget + 1):
        q = sampler.num_queries(n, True)
        if q is None:
            return None
        if q <= budget:
            best = n
    return best


def _jobs(names, budgets) -> list:
    """``(name, sampler, budget, steps, max_queries)`` for every sampler and budget it fits."""
    from .. import schedules
    from ..samplers import CATALOGUE

    jobs = []
    for name in names:
        sampler = CATALOGUE[name]()
        data_dependent = sampler.num_queries(1, True) is None
        for budget in budgets:
            if data_dependent:  # grid of B/2 steps; the sampler's own rule sets the cost, capped at 4B
                steps, max_queries = max(1, budget // 2), 4 * budget
            else:
                steps, max_queries = steps_for_budget(sampler, budget), None
            if steps is None:
                continue
            try:
                sampler.check_grid(np.asarray(schedules.karras(steps)))
            except ValueError:
                continue
            jobs.append((name, sampler, budget, steps, max_queries))
    return jobs


def _compile_fast() -> bool:
    """Ask XLA for backend optimisation level 0 (the demo is compile-bound: ~100 short programs).

    Only takes effect if no JAX backend exists yet in this process; returns whether it did. The
    environment is restored afterwards, so child processes are not affected.
    """
    import jax
    from jax._src import xla_bridge

    initialized = getattr(xla_bridge, "backends_are_initialized", lambda: True)()
    if initialized:
        return False
    old = os.environ.get("XLA_FLAGS")
    os.environ["XLA_FLAGS"] = f"{old or ''} --xla_backend_optimization_level=0".strip()
    try:
        jax.devices()
    finally:
        if old is None:
            del os.environ["XLA_FLAGS"]
        else:
            os.environ["XLA_FLAGS"] = old
    return True


def run(args) -> int:
    fast = False if args.optimize else _compile_fast()  # before jscore's modules create arrays
    import jax

    from .. import metrics, sample, schedules, summarize
    from ..oracles import Exact

    budgets = args.budgets
    if args.num_samples < 2:
        raise ValueError(f"`--num-samples` must be at least 2, got {args.num_samples}.")
    names = _sampler_names(args.samplers)
    jobs = _jobs(names, budgets)
    if not jobs:
        raise ValueError(f"no sampler in {', '.join(names)} fits a budget of {budgets} queries; "
                         "raise `budgets`.")
    check_out_dir(args.out)
    os.makedirs(args.out, exist_ok=True)
    rows_path = os.path.join(args.out, "demo.jsonl")
    if os.path.exists(rows_path):
        os.remove(rows_path)

    target = demo_target(args.dim, args.components)
    oracle = Exact(target)
    key = jax.random.key(args.seed)
    n = args.num_samples
    ref = target.sample(jax.random.fold_in(key, 10**6), n)
    ref2 = target.sample(jax.random.fold_in(key, 10**6 + 1), n)
    floor_energy = float(metrics.energy_distance(ref, ref2))
    _, tv_se = metrics.mode_tv(ref, target.means, target.weights)
    env = environment()
    nw = _print_header(args, names, env, fast, tv_se, floor_energy)

    def run_job(job):
        name, sampler, budget, steps, max_queries = job
        res = sample(oracle, sampler, schedules.karras(steps), key, num_samples=n, max_queries=max_queries)
        tv, _ = metrics.mode_tv(res.x, target.means, target.weights)
        return res, summarize(res), tv, float(metrics.energy_distance(res.x, ref))

    t0 = time.perf_counter()
    rows, samples_for_plot = _run_jobs(jobs, run_job, args.workers, rows_path, env, nw)
    if any(r["max_queries"] is not None for r in rows):
        print("* data-dependent cost: grid of budget/2 steps; the sampler's own rule sets the "
              "queries (capped at 4 x budget).")
    elapsed = time.perf_counter() - t0
    atomic_write(os.path.join(args.out, "demo.json"),
                 json.dumps({"rows": rows, "noise_floor": {"mode_tv_se": tv_se, "energy": floor_energy}}, indent=1))
    if not args.quiet:
        print(f"\n{len(rows)} runs in {elapsed:.1f} s; rows in {rows_path}")
    if not args.no_plot and rows:
        files = _plot(os.path.join(args.out, "demo.png"), np.asarray(ref[:, :2]),
                      samples_for_plot, rows, floor_energy)
        if not args.quiet:
            print(f"figures: {', '.join(files)}")
    return 0


def _sampler_names(samplers: str) -> list[str]:
    """Catalogue names from ``--samplers``: ``all``, ``default`` or a comma-separated list."""
    from ..samplers import CATALOGUE

    if samplers == "all":
        names = list(CATALOGUE)
    elif samplers == "default":
        names = default_samplers()
    else:
        names = [s.strip() for s in samplers.split(",")]
    for n in names:
        if n not in CATALOGUE:
            raise ValueError(f"Unknown sampler {n!r}; available: {', '.join(sorted(CATALOGUE))}.")
    return names


def _print_header(args, names, env, fast, tv_se, floor_energy) -> int:
    """Print the run's title, the noise floor, the legend and the table header; returns the
    width of the sampler column."""
    nw = max(len("sampler"), *(len(x) for x in names)) + 2
    header = f"{'sampler':<{nw}}{'budget':>7}{'steps':>6}{'queries':>9}{'levels':>8}{'rounds':>8}{'mode_tv':>9}{'energy':>9}  status"
    print(f"jscore demo: d={args.dim}, K={args.components}, {args.num_samples} chains per run, "
          f"device {env['device']['device_kind']}"
          + (" (XLA backend optimisation level 0; --optimize for full)" if fast else ""))
    print(f"noise floor of an exact sampler: mode_tv ~ {tv_se:.3f} (1 SE), energy ~ 0 +- {abs(floor_energy):.3f}")
    if not args.quiet:
        print(DEMO_LEGEND)
    print(header)
    print("-" * len(header))
    return nw


def _run_jobs(jobs, run_job, workers, rows_path, env, nw):
    """Run every job (a thread pool overlaps the compilations), appending each row to
    ``rows_path`` and printing it as it comes. Returns ``(rows, {name: (n, 2) samples})``."""
    rows = []
    samples_for_plot = {}
    # XLA compiles release the GIL: a small thread pool overlaps compilation of independent runs
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for job, (res, summ, tv, energy) in zip(jobs, pool.map(run_job, jobs)):
            name, _, budget, steps, max_queries = job
            row = {
                "sampler": name,
                "budget": budget,
                "steps": steps,
                "max_queries": max_queries,
                "queries": summ["queries"]["mean"],
                "levels": summ["levels"]["mean"],
                "rounds": summ["rounds"]["mean"],
                "mode_tv": tv,
                "energy": energy,
                "status": summ["status"],
                "env": env,
            }
            rows.append(row)
            append_jsonl(rows_path, row)
            mark = "*" if max_queries is not None else " "
            print(
                f"{name:<{nw}}{budget:>6}{mark}{steps:>6}{row['queries']:>9.1f}{row['levels']:>8.1f}"
                f"{row['rounds']:>8.1f}{tv:>9.3f}{energy:>9.3f}  {status_text(summ['status'])}",
                flush=True,
            )
            samples_for_plot[name] = np.asarray(res.x[:, :2])
    return rows, samples_for_plot


def _plot(path, ref2d, samples, rows, floor_energy):
    """Left: first two coordinates of Euler and Heun samples against the target. Right: a dot plot
    of the energy distance, one row per sampler (sorted by its error at the largest budget), one
    marker per budget; runs within noise of an exact sampler (energy <= 2 |floor|) are drawn open
    on the grey floor band. Data-dependent samplers are marked ``*`` with their mean queries."""
    from ..plot import MARKERS, figure, save, style

    floor = max(2 * abs(floor_energy), 1e-4)
    budgets = sorted({r["budget"] for r in rows})
    by_sampler: dict = {}
    for r in rows:
        by_sampler.setdefault(r["sampler"], {})[r["budget"]] = r
    top = budgets[-1]

    def sort_key(name):
        runs = by_sampler[name]
        last = runs.get(top) or runs[max(runs)]
        return max(last["energy"], floor)

    names = sorted(by_sampler, key=sort_key)
    height = max(3.4, 0.2 * len(names) + 1.2)
    with style():
        fig, (ax0, ax1) = figure(2, size=(4.4, height))
        ax0.scatter(ref2d[:, 0], ref2d[:, 1], s=2, c="0.65", label="target (exact samples)",
                    rasterized=True)
        shown = [n for n in ("euler", "heun") if n in samples] or list(samples)[:2]
        for j, name in enumerate(shown):
            ax0.scatter(samples[name][:, 0], samples[name][:, 1], s=2, alpha=0.6, label=name,
                        marker=MARKERS[j + 1], color=f"C{j}", rasterized=True)
        ax0.set_aspect("equal")
        ax0.set_xlabel("$x_1$")
        ax0.set_ylabel("$x_2$")
        ax0.set_title("samples at the largest budget")
        ax0.legend(markerscale=4, loc="lower center", bbox_to_anchor=(0.5, 1.08), ncol=3)
        ax1.axvspan(floor / 3, floor, color="0.88", zorder=0,
                    label="within noise of an exact sampler")
        labels, seen = [], set()
        for i, name in enumerate(names):
            runs = by_sampler[name]
            label = name
            if any(r["max_queries"] is not None for r in runs.values()):
                label += "* (" + ", ".join(f"{runs[b]['queries']:.0f}" for b in sorted(runs)) + " q)"
            labels.append(label)
            for j, b in enumerate(budgets):
                if b not in runs:
                    continue
                e = runs[b]["energy"]
                colour = f"C{j + 2}"  # C0, C1 are the samplers of the left panel
                dy = 0.3 * (j - (len(budgets) - 1) / 2)
                ax1.plot([max(e, floor)], [i + dy], MARKERS[j], color=colour, ms=5, ls="none",
                         mfc="white" if e <= floor else colour,
                         label=None if b in seen else f"budget {b} queries")
                seen.add(b)
        ax1.set_yticks(range(len(names)))
        ax1.set_yticklabels(labels)
        ax1.set_ylim(len(names) - 0.5, -0.5)
        ax1.set_xscale("log")
        ax1.set_xlim(left=floor / 3)
        ax1.grid(axis="y", color="0.93", lw=0.6)
        ax1.set_xlabel("energy distance to the target (open: within noise)")
        ax1.set_title("error per sampler and budget")
        handles, lbls = ax1.get_legend_handles_labels()
        ax1.legend(handles, lbls, loc="lower center", bbox_to_anchor=(0.5, 1.08), ncol=2)
        return save(fig, path)
