"""Distinct noise levels against queries (docs/experiments/levels.md), d = 1e4 and 1e6.

Runs :func:`jscore.lowerbound.levels.levels_vs_queries` (full-vector chains of annealed Langevin
and predictor-corrector with m queries per level on L geometric levels, and the SingleLevel
control with Q queries, against the reference oracle; both sides of P(some answer informative)
with standard errors over replicates) and writes ``benchmarks/results/lowerbound_levels/``:
``d1e4.json``, ``d1e6.json`` (each with the environment, load averages and wall time),
``table.txt`` and ``levels_vs_queries.png/.pdf`` (copied to ``docs/levels_vs_queries.png``).

    python benchmarks/lowerbound_levels.py --dim 10000            # full (L, m) grid
    python benchmarks/lowerbound_levels.py --dim 1000000 --small   # the reduced d = 1e6 panels
    python benchmarks/lowerbound_levels.py --plot-only             # table and figure from JSON

The d = 1e6 run on the CPU is reduced (``--small``): predictor-corrector and SingleLevel only,
few cells and chains (a d = 1e6 chain is 8 MB in float64), so its error bars are wide.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common  # noqa: E402

OUT = _common.RESULTS / "lowerbound_levels"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "levels_vs_queries.png"


def _ints(text):
    return [int(v) for v in text.split(",") if v.strip()]


def _stem(d: int) -> str:
    e = len(str(d)) - 1
    return f"d1e{e}" if d == 10 ** e else f"d{d}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=10_000)
    ap.add_argument("--levels", type=_ints, default=None)
    ap.add_argument("--per-level", type=_ints, default=None)
    ap.add_argument("--single", type=_ints, default=None)
    ap.add_argument("--samplers", default=None)
    ap.add_argument("--cells", default=None, choices=("grid", "panels"))
    ap.add_argument("--panel-levels", type=_ints, default=None)
    ap.add_argument("--panel-per-level", type=_ints, default=None)
    ap.add_argument("--points", type=int, default=16)
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--small", action="store_true", help="the reduced d = 1e6 configuration")
    ap.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    ap.add_argument("--plot-only", action="store_true")
    ap.add_argument("--merge", action="store_true",
                    help="add the cells of this run to the existing JSON of --dim (same seed, "
                         "points and reps: the same draws), extending its panel lists")
    args = ap.parse_args(argv)
    _common.setup_platform(args.device)
    OUT.mkdir(parents=True, exist_ok=True)
    if not args.plot_only:
        run(args)
    return plot()


def run(args) -> None:
    import jax

    from jscore.lowerbound.levels import format_levels_table, levels_vs_queries

    kw = dict(n_points=args.points, n_reps=args.reps)
    if args.small:
        kw.update(levels=(16, 64), per_level=(1, 4), samplers=("pc",), single_level_queries=(1, 16),
                  cells="panels", panel_levels=(64,), panel_per_level=(1,))
    for name, v in (("levels", args.levels), ("per_level", args.per_level),
                    ("single_level_queries", args.single), ("cells", args.cells),
                    ("panel_levels", args.panel_levels),
                    ("panel_per_level", args.panel_per_level)):
        if v is not None:
            kw[name] = v
    if args.samplers:
        kw["samplers"] = tuple(s.strip() for s in args.samplers.split(","))
    with jax.enable_x64(True):
        info = _common.env_info()
        t0 = time.time()
        res = levels_vs_queries(args.dim, log=lambda m: print(m, flush=True), **kw)
        res["wall_s"] = time.time() - t0
        res["env"] = _common.stamp_end(info)
        res["env"]["device"] = _common.device_label(info)
        res["env"]["note"] = ("CPU shared with other jobs (see the load averages); wall time is "
                              "for the whole run, compiles included")
    path = OUT / f"{_stem(args.dim)}.json"
    if args.merge:
        res = _merge(json.loads(path.read_text()), res)
    path.write_text(json.dumps(res, indent=1, default=float) + "\n")
    print(format_levels_table(res))
    print(f"wrote {path} ({res['wall_s']:.0f} s)")


def _merge(old, new):
    """``old`` with the cells of ``new`` it lacks (the same seed, points and reps required)."""
    for k in ("seed", "n_points", "n_reps", "eps", "p", "d"):
        if old["config"][k] != new["config"][k]:
            raise SystemExit(f"--merge: {k} differs ({old['config'][k]} vs {new['config'][k]})")
    have = {(c["sampler"], c["L"], c["m"]) for c in old["cells"]}
    added = [c for c in new["cells"] if (c["sampler"], c["L"], c["m"]) not in have]
    old["cells"] += added
    have_ideal = {(r[0], r[1]) for r in old.get("ideal", [])}
    old["ideal"] = sorted(old.get("ideal", []) + [r for r in new.get("ideal", [])
                                                  if (r[0], r[1]) not in have_ideal])
    cfg = old["config"]
    for k in ("panel_levels", "panel_per_level", "levels", "per_level"):
        cfg[k] = sorted(set(cfg[k]) | set(new["config"][k]))
    old.setdefault("merged", []).append(dict(
        cells=[[c["sampler"], c["L"], c["m"]] for c in added], wall_s=new["wall_s"],
        env=new["env"]))
    return old


def markdown(res) -> str:
    """Markdown tables (rows m, columns L) of 'lower .. upper' per sampler, ideal and SingleLevel."""
    cfg = res["config"]
    out = [f"d = {cfg['d']}:\n"]
    ideal = {(r[0], r[1]): (r[2], r[3]) for r in res.get("ideal", [])}
    Ls = cfg["levels"]
    for name in list(cfg["samplers"]) + ["ideal"]:
        rows = []
        for m in cfg["per_level"]:
            cells = []
            for L in Ls:
                if name == "ideal":
                    v = ideal.get((L, m))
                    cells.append(f"{v[0]:.3f} .. {v[1]:.3f}" if v else "")
                    continue
                c = [c for c in res["cells"] if c["sampler"] == name and c["L"] == L
                     and c["m"] == m]
                cells.append(f"{c[0]['p_lower']:.3f} .. {c[0]['p_upper']:.3f} "
                             f"(±{max(c[0]['p_lower_se'], c[0]['p_upper_se']):.3f})" if c else "")
            if any(cells):
                rows.append(f"| {m} | " + " | ".join(cells) + " |")
        if rows:
            out.append(f"**{name}** (rows m, columns L):\n")
            out.append("| m | " + " | ".join(f"L = {L}" for L in Ls) + " |")
            out.append("|---|" + "---|" * len(Ls))
            out += rows + [""]
    single = sorted((c for c in res["cells"] if c["sampler"] == "single_level"),
                    key=lambda c: c["m"])
    if single:
        out.append("**SingleLevel** (Q queries at one level, started in Q_sigma):\n")
        out.append("| Q | " + " | ".join(str(c["m"]) for c in single) + " |")
        out.append("|---|" + "---|" * len(single))
        out.append("| P | " + " | ".join(f"{c['p_lower']:.3f} .. {c['p_upper']:.3f} "
                                         f"(±{max(c['p_lower_se'], c['p_upper_se']):.3f})"
                                         for c in single) + " |")
        out.append("")
    return "\n".join(out)


def plot() -> int:
    from jscore.lowerbound.levels import format_levels_table
    from jscore.sweeps.levels_lab import plot_levels

    runs = [json.loads(p.read_text()) for p in sorted(OUT.glob("d*.json"),
                                                       key=lambda p: json.loads(p.read_text())["config"]["d"])]
    if not runs:
        print(f"no results in {OUT}")
        return 1
    blocks = []
    for r in runs:
        env = r.get("env", {})
        blocks.append(format_levels_table(r) + f"\nwall {r.get('wall_s', float('nan')):.0f} s on "
                      f"{env.get('device', '?')}, load average {env.get('load_average_at_start')}"
                      f" -> {env.get('load_average_at_end')} (shared machine)\n")
    (OUT / "table.txt").write_text("\n".join(blocks))
    (OUT / "tables.md").write_text("\n".join(markdown(r) for r in runs))
    paths = plot_levels(runs, OUT / "levels_vs_queries.png")
    shutil.copyfile(OUT / "levels_vs_queries.png", DOCS)
    print("\n".join(blocks))
    print("wrote", OUT / "table.txt", *paths, DOCS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
