"""K*(d) per schedule family and sampler in the lower-bound experiment (issue 15, items 1-2).

    python benchmarks/lowerbound_families.py [--dims 100,...] [--full-dims 100,...] [--quick]

For each family (geometric with a random log-offset, karras:7, vp_linear, cosine), each sampler
(euler and heun in scalar form; unipc, which has no scalar reduction, on the full-vector path)
and each d: ``K*_lo .. K*_hi`` (the levels at which the upper / lower side of P(some answer is
informative) reaches 1/2, averaged over the hidden critical scale, MC 95% CI over replicates)
and ``K*_worst_lo .. K*_worst_hi`` (the least K at which the minimum over 8 hidden-scale
positions reaches 1/2: an estimate biased low by MC error, no interval), exactly as
``js.lowerbound.scaling(..., schedule=...)`` computes them (``scaling._sampler_row``), with the
window width measured at R = 0.3 per d, eps = 1/d, p = 2, float64. Slopes of K*(d) with
``jscore.fit.loglog_slope``. Writes benchmarks/results/lowerbound_families/{results.json,
table.txt, kstar_families.png/.pdf}; results.json is rewritten after every (d, family, sampler)
and a rerun skips the finished ones (resume).
"""
import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import jax  # noqa: E402
import numpy as np  # noqa: E402

from jscore.fit import loglog_slope  # noqa: E402
from jscore.lowerbound import scaling as sc  # noqa: E402
from jscore.lowerbound.informative import window_edges  # noqa: E402
from jscore.store import atomic_write, json_default  # noqa: E402

FAMILIES = ("geometric", "karras:7", "vp_linear", "cosine")
SCALAR = ("euler", "heun")
FULL = ("unipc",)
OUT = Path(__file__).resolve().parent / "results" / "lowerbound_families"


def _ints(text):
    return [int(float(v)) for v in text.split(",") if v.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dims", type=_ints, default=[100, 1000, 10000, 100000, 1000000],
                    help="dimensions of the scalar-form samplers")
    ap.add_argument("--full-dims", type=_ints, default=[100, 1000, 10000],
                    help="dimensions of the full-vector sampler(s)")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--scalar", default=",".join(SCALAR))
    ap.add_argument("--full", default=",".join(FULL))
    ap.add_argument("--points", type=int, default=32, help="lattice points per replicate (scalar)")
    ap.add_argument("--full-points", type=int, default=8, help="lattice points per replicate (full)")
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--scales", type=int, default=8)
    ap.add_argument("--k-max", type=int, default=1024)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--plot-only", action="store_true",
                    help="only redo fits, table and figure from results.json")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "results.json")
    config = dict(families=a.families.split(","), scalar=a.scalar.split(","),
                  full=a.full.split(","), points=a.points, full_points=a.full_points,
                  reps=a.reps, scales=a.scales, k_max=a.k_max, eps="1/d", p=2.0, rate=0.3,
                  rate_lo=0.15, rate_hi=0.45, n_xi=300, float="float64")
    res = dict(benchmark="lowerbound_families", config=config, rows=[])
    if os.path.exists(path):
        old = json.load(open(path))
        if old.get("config") == config:
            res = old
    done = {(r["d"], r["schedule"], r["sampler"]) for r in res["rows"]}
    jobs = [(d, f, s, True) for d in a.dims for f in config["families"] for s in config["scalar"]]
    jobs += [(d, f, s, False) for d in a.full_dims for f in config["families"]
             for s in config["full"]]
    jobs.sort(key=lambda j: (not j[3], j[0]))  # scalar first, small d first
    widths = {}
    t_all = time.time()
    with jax.enable_x64(True):
        for d, fam, name, scalar in ([] if a.plot_only else jobs):
            if (d, fam, name) in done:
                continue
            key = jax.random.fold_in(jax.random.key(0), d)
            if d not in widths:
                lo, up = window_edges(float(d), 0.3, 1.0 / d, 2.0, key=jax.random.fold_in(key, 1),
                                      n=300)
                widths[d] = up - lo
            prev = [r["kstar_hi"] for r in res["rows"] if r["d"] == d and
                    math.isfinite(r["kstar_hi"])]
            guess = float(np.median(prev)) if prev else max(3.0, 0.1 * math.sqrt(d))
            t0 = time.time()
            row = sc._sampler_row(name, float(d), 1.0 / d, 2.0, widths[d],
                                  jax.random.fold_in(key, 7),
                                  a.points if scalar else a.full_points, a.reps, a.k_max, 0.15,
                                  0.45, guess, schedule=fam, n_scales=a.scales)
            row.pop("success_curve")
            row.update(d=d, sampler=name, width=widths[d], wall_s=time.time() - t0,
                       load_1min=os.getloadavg()[0])
            res["rows"].append(row)
            print(f"d={d:>8d} {fam:<10s} {name:<6s} [{row['path']}] K*={row['kstar_lo']:7.2f} .."
                  f"{row['kstar_hi']:7.2f} +-{row['kstar_hi_mc']:.2f}  worst "
                  f"{row['kstar_worst_lo']:7.2f} ..{row['kstar_worst_hi']:7.2f}  "
                  f"({row['wall_s']:.0f} s, load {row['load_1min']:.1f})", flush=True)
            res["elapsed_s"] = res.get("elapsed_s", 0.0) + row["wall_s"]
            atomic_write(path, json.dumps(res, default=json_default, indent=1).encode())
    res["fits"] = fits(res)
    atomic_write(path, json.dumps(res, default=json_default, indent=1).encode())
    text = table(res)
    atomic_write(os.path.join(a.out, "table.txt"), text + "\n")
    print(text)
    plot(res, os.path.join(a.out, "kstar_families.png"))
    print(f"done in {time.time() - t_all:.0f} s")


def _series(res, fam, name, key):
    rows = sorted((r for r in res["rows"] if r["schedule"] == fam and r["sampler"] == name),
                  key=lambda r: r["d"])
    return np.array([r["d"] for r in rows], float), np.array([r[key] for r in rows], float), rows


def fits(res):
    out = {}
    for fam in res["config"]["families"]:
        for name in res["config"]["scalar"] + res["config"]["full"]:
            for key in ("kstar_lo", "kstar_hi", "kstar_worst_inner_hi"):
                ds, ys, _ = _series(res, fam, name, key)
                if np.sum(np.isfinite(ys)) >= 2:
                    f = loglog_slope(ds, ys)
                    out[f"{fam}|{name}|{key}"] = [f.slope, f.ci_low, f.ci_high]
    return out


def table(res):
    c = res["config"]
    lines = [
        "K*(d) per schedule family and sampler: levels at which P(some answer informative) "
        "reaches 1/2,",
        f"averaged over the hidden critical scale (K*_lo: upper side .. K*_hi: lower side, "
        f"+- MC 95% CI over {c['reps']} replicates),",
        f"and the worst case over {c['scales']} hidden-scale positions (K*_worst lo .. hi; a "
        "minimum of noisy estimates, biased low,",
        "no interval). A necessary condition for success against the adversary, not success. "
        f"eps = 1/d, p = 2; {c['points']} (scalar) / {c['full_points']} (full-vector) lattice "
        "points per replicate.",
        "'inner': without the top position (hidden scale next to sigma_max = 20, where a fixed "
        "grid starts at the data's own scale); nan: not reached for K <= k_max;",
        "geometric: positions are phases within one log-step (inner = all). worst at: the "
        "hidden sigma_c of the inner worst position.",
        f"{'d':>8} {'family':<10} {'sampler':<6} {'path':<11} {'K*_lo':>8} {'K*_hi':>8} "
        f"{'+-':>6} {'worst_lo':>8} {'worst_hi':>8} {'inner_lo':>8} {'inner_hi':>8} "
        f"{'worst at':>8} {'levels':>6} {'wall s':>7} {'load':>5}"]
    for r in sorted(res["rows"], key=lambda r: (r["sampler"], c["families"].index(r["schedule"]),
                                                 r["d"])):
        lines.append(f"{r['d']:>8d} {r['schedule']:<10} {r['sampler']:<6} {r['path']:<11} "
                     f"{r['kstar_lo']:>8.2f} {r['kstar_hi']:>8.2f} {r['kstar_hi_mc']:>6.2f} "
                     f"{r['kstar_worst_lo']:>8.2f} {r['kstar_worst_hi']:>8.2f} "
                     f"{r['kstar_worst_inner_lo']:>8.2f} {r['kstar_worst_inner_hi']:>8.2f} "
                     f"{r['worst_sigma']:>8.3g} "
                     f"{r['levels_in_band']:>6.2f} {r['wall_s']:>7.0f} {r['load_1min']:>5.1f}")
    lines.append("log-log slopes of K*(d) (jscore.fit.loglog_slope, pairs bootstrap 95% CI):")
    for k, (s, lo, hi) in res.get("fits", {}).items():
        fam, name, key = k.split("|")
        ci = f"[{lo:.3f}, {hi:.3f}]" if math.isfinite(lo) else "[no CI: < 3 dims]"
        lines.append(f"  {fam:<10} {name:<6} {key:<15} {s:.3f} {ci}")
    lines.append(f"total compute {res.get('elapsed_s', math.nan):.0f} s on "
                 f"{jax.devices()[0]} (a shared 2-core machine; load in the rows)")
    return "\n".join(lines)


def plot(res, path):
    from jscore import plot as jplot

    fams = res["config"]["families"]
    names = res["config"]["scalar"] + res["config"]["full"]
    with jplot.style():
        fig, axes = jplot.figure(len(fams), size=(3.2, 3.0))
        axes = np.atleast_1d(axes)
        for ax, fam in zip(axes, fams):
            for i, name in enumerate(names):
                st = jplot.series(i)
                ds, hi, rows = _series(res, fam, name, "kstar_hi")
                if not rows:
                    continue
                lo = np.array([r["kstar_lo"] for r in rows])
                err = np.array([r["kstar_hi_mc"] for r in rows])
                worst = np.array([r["kstar_worst_inner_hi"] for r in rows])
                f = res.get("fits", {}).get(f"{fam}|{name}|kstar_hi", [math.nan] * 3)
                ax.fill_between(ds, lo, hi, color=st["color"], alpha=0.25, lw=0)
                ax.errorbar(ds, hi, yerr=err, color=st["color"], marker=st["marker"], ms=3,
                            ls="-", lw=1, label=rf"{name}: slope {f[0]:.2f}")
                ax.plot(ds, worst, color=st["color"], ls=":", lw=1)
            ds_all = np.array(sorted({r["d"] for r in res["rows"]}), float)
            if ds_all.size:
                ax.plot(ds_all, 0.3 * np.sqrt(ds_all), "k--", lw=0.8, label=r"$\propto\sqrt{d}$")
                jplot.log_scale(ax, "x", ds_all)
            ax.set_yscale("log")
            ax.set_title(f"{fam}")
            ax.legend(loc="upper left", fontsize=6, title=r"slope of $K^*_{\rm hi}$",
                      title_fontsize=6)
            ax.set_xlabel(r"dimension $d$")
        axes[0].set_ylabel(r"$K^*$ (band lo..hi; dotted: worst inner hidden scale)")
        return jplot.save(fig, path)


if __name__ == "__main__":
    main()
