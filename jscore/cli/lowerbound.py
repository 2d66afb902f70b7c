"""``jscore lowerbound scale``: the sqrt(d) scaling sweep of the lower-bound lab from one command;
``jscore lowerbound exact``: the exact-codebook experiments at small d (see :func:`run_exact`).

``scale`` runs the ``"lowerbound"`` experiment (:class:`jscore.sweeps.LowerBoundSweep`, flags
generated from its fields) through :func:`jscore.sweeps.protocol.run_experiment`: it prints a table
on stdout and writes the rows (``units-p<i>.jsonl``, after every dimension), ``scaling.json``,
``scaling.csv``/``.parquet``, ``table.txt`` and ``scaling.png``/``.pdf`` (the K* band
K*_lo .. K*_hi per sampler with Monte-Carlo error bars and N(d), next to the window-profile
collapse with both sides) into ``--out``. The default configuration (d = 1e2 ... 1e6, Euler,
Euler ancestral and Heun in scalar form) runs in a few minutes on 2 CPU cores.

Registered by ``jscore.cli`` through :func:`add_parser` / :func:`run`; also runnable as
``python -m jscore.cli.lowerbound scale``.
"""

from __future__ import annotations

import sys

from ._util import check_out_dir, int_at_least


# LowerBoundSweep's names -> flags in error messages (the generated flag and its old spelling)
FLAGS = {"n_offsets": "--n-offsets/--offsets", "n_reps": "--n-reps/--reps",
         "n_scales": "--n-scales/--scales"}


def add_parser(subparsers):
    """Add the ``lowerbound`` command (with its ``scale`` sub-command) to ``subparsers``."""
    from . import COMMANDS
    from ._util import HelpFormatter

    p = subparsers.add_parser(
        "lowerbound", help=COMMANDS["lowerbound"], formatter_class=HelpFormatter,
        description="The lower-bound lab. 'scale': the codebook-free sqrt(d) sweep up to "
        "d = 1e6 (the default job of 'jscore sweep'). 'exact': experiments with explicit "
        "codebooks at small d (TV curve, sampler success, adaptive searcher, admissibility "
        "audit). 'rounds': the exploratory nested codebook, adaptive rounds against queries. The "
        "documentation's 'The lower-bound construction' and 'Adaptive rounds' pages explain them.")
    sub = p.add_subparsers(dest="lowerbound_command", required=True, metavar="{scale,exact,rounds,schedule,levels}")
    s = sub.add_parser(
        "scale", help="window width, N(d), K*(d) per sampler, slopes, figure",
        formatter_class=HelpFormatter,
        description="The codebook-free sqrt(d) sweep: for each d, the window of informative "
        "noise levels (edges and width at rate --rate), the window count N(d) over the rate "
        "grid, the optimal adaptive searcher, and for each sampler K*(d), the number of "
        "levels (geometric with a random log-offset, or --schedule's family against a hidden "
        "scale; also its worst case over that scale) at which the probability that some answer of the adversary is "
        "informative reaches 1/2 (a necessary condition for success, not success), from both "
        "sides: K*_lo where the upper side reaches 1/2, K*_hi where the lower side does, each "
        "with a Monte-Carlo 95% CI over --reps replicates. Log-log slopes with across-d "
        "bootstrap CIs and MC CIs; rows in --out after every d, then scaling.json, scaling.csv "
        "and .parquet, table.txt and the figure. A rerun of the same configuration resumes. "
        "The flags are the fields of the 'lowerbound' experiment of `jscore sweep` "
        "(--print-config writes them as TOML).")
    from ..sweeps.lowerbound import LowerBoundSweep
    from ..sweeps.protocol import add_config_flags

    add_config_flags(s, LowerBoundSweep, skip=("name",))  # one flag per field, old spellings kept
    s.add_argument("--out", default="jscore-lowerbound",
                   help="output folder: units-p<i>.jsonl (rows), scaling.json/csv, table.txt and "
                        "the figure (default: %(default)s)")
    s.add_argument("--overwrite", action="store_true",
                   help="discard results of an earlier run in --out (by default a rerun of the "
                        "same configuration resumes: finished dimensions are read back)")
    s.add_argument("--workers", type=int_at_least(1), default=None,
                   help="threads running dimensions (default: one per local device, else 2); "
                        "the rows do not depend on it")
    s.add_argument("--no-plot", action="store_true", help="do not write the figure")
    s.add_argument("--print-config", action="store_true",
                   help="print the configuration as TOML (for `jscore sweep FILE`) and exit")
    s.set_defaults(func=run)
    _add_exact_parser(sub)
    _add_rounds_parser(sub)
    _add_schedule_parser(sub)
    _add_levels_parser(sub)
    return p


def _lab_parser(sub, name, lab, *, help, description):
    """The sub-parser ``name`` of a lab command: ``help``, ``description`` and one flag per field
    of the lab's config class ``lab`` (:func:`~jscore.sweeps.protocol.add_config_flags`)."""
    from ..sweeps.protocol import add_config_flags
    from ._util import HelpFormatter

    e = sub.add_parser(name, help=help, formatter_class=HelpFormatter, description=description)
    add_config_flags(e, lab)
    return e


def _add_run_flags(e):
    """The driver's flags of a lab command: ``--workers``, ``--overwrite``, ``--print-config``."""
    e.add_argument("--workers", type=int_at_least(1), default=None,
                   help="threads running units (default: one per local device, else 2)")
    e.add_argument("--overwrite", action="store_true",
                   help="discard the units already stored in --out first")
    e.add_argument("--print-config", action="store_true",
                   help="print the settings as TOML (for 'jscore sweep FILE') and exit")


def _run_lab(cfg, args, *, plot: bool = True):
    """Run the lab config ``cfg`` with :func:`~jscore.sweeps.protocol.run_experiment` into
    ``--out`` (finished units are read back, not rerun; a folder of another config or of an
    older, unstored version of the command is refused unless ``--overwrite``), progress on
    stderr. Returns the experiment's result."""
    from ..sweeps.protocol import run_experiment

    check_out_dir(args.out)
    return run_experiment(cfg, out=args.out, overwrite=args.overwrite, workers=args.workers,
                          plot=plot, log=lambda m: print(m, file=sys.stderr, flush=True))


def _add_exact_parser(sub):
    """``lowerbound exact``: the exact-codebook lab; its flags are the fields of
    :class:`jscore.sweeps.exact_lab.ExactLab` (:func:`~jscore.sweeps.protocol.add_config_flags`)."""
    from ..sweeps.exact_lab import ExactLab

    e = _lab_parser(
        sub, "exact", ExactLab,
        help="exact-codebook lab at small d: TV vs Phi, sampler success vs K, adaptive "
             "searcher, admissibility audit, bracket check (resumable; CSV + PNG)",
        description="Experiments with explicit random spherical codebooks at small d (M = "
        "exp(rate d) codewords): tv, the total variation between the noised target and the "
        "noised reference against the normal prediction Phi; success, the decoder success of "
        "catalogue samplers against K geometric levels for the adversary, exact and reference "
        "oracles, next to P(some answer informative) from the same chains (a necessary "
        "condition for success, not success); search, the optimal adaptive searcher; audit, the "
        "admissibility audit of the adversary (its L^p error, with an upper confidence bound, "
        "at every sigma); bracket, the measured informative fraction at reference points "
        "against the lower and upper side of the per-query formula. Each finished unit is "
        "stored in --out (units-p0.jsonl) at once; rerunning, with any settings, skips the "
        "units already there. The same experiment runs from a TOML file with 'jscore sweep "
        "FILE' (write one with --print-config).")
    e.add_argument("--out", default="jscore-lowerbound-exact",
                   help="output folder (CSV, PNG, log); rerunning resumes (default: %(default)s)")
    _add_run_flags(e)
    e.set_defaults(func=run_exact)
    return e


def run_exact(args) -> int:
    """Run ``lowerbound exact``: the flags become an :class:`~jscore.sweeps.exact_lab.ExactLab`
    (checked before anything is written), run by :func:`~jscore.sweeps.protocol.run_experiment`
    into ``--out`` (finished units are skipped when rerun); prints the lab's tables."""
    import os
    import time

    from ..sweeps.exact_lab import ExactLab
    from ..sweeps.protocol import config_from_args, run_experiment

    cfg = config_from_args(ExactLab, args)
    if getattr(args, "print_config", False):
        print(cfg.to_toml())
        return 0
    check_out_dir(args.out)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "run.log"), "a") as logf:
        def log(msg):
            line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}"
            print(line, file=sys.stderr, flush=True)
            logf.write(line + "\n")
            logf.flush()

        t0 = time.perf_counter()
        log(f"lowerbound exact: {' '.join(sys.argv[1:]) or vars(args)}")
        try:
            res = run_experiment(cfg, out=args.out, overwrite=getattr(args, "overwrite", False),
                                 workers=getattr(args, "workers", None), log=log)
        finally:
            log(f"lowerbound exact finished part: {time.perf_counter() - t0:.0f} s")
    print(res.table(), end="", flush=True)
    print(f"results: {args.out}/")
    return 0


def _print_table(title, rows, cols):
    from ..sweeps.exact_lab import format_table

    print(format_table(title, rows, cols), end="", flush=True)


def _check_scale_args(args):
    """The :class:`jscore.sweeps.LowerBoundSweep` of the ``lowerbound scale`` flags, validated
    before any compute (ValueError/TypeError naming the field; ``jscore`` shows it as the flag)."""
    from ..sweeps.lowerbound import LowerBoundSweep
    from ..sweeps.protocol import config_from_args

    return config_from_args(LowerBoundSweep, args)


def run(args) -> int:
    """Run the sub-command parsed by :func:`add_parser`; returns the exit code."""
    if getattr(args, "lowerbound_command", "scale") == "exact":
        return run_exact(args)
    if getattr(args, "lowerbound_command", "scale") != "scale":
        raise SystemExit(f"unknown lowerbound command {args.lowerbound_command!r}")
    from ..sweeps.lowerbound import LEGEND
    from ..sweeps.protocol import run_experiment

    config = _check_scale_args(args)
    if args.print_config:
        print(config.to_toml())
        return 0
    check_out_dir(args.out)
    res = run_experiment(config, out=args.out, overwrite=args.overwrite, workers=args.workers,
                         plot=not args.no_plot)
    print(LEGEND)
    print(res.table())
    print(f"results: {args.out}/scaling.json, scaling.csv/.parquet, table.txt, scaling.png/.pdf "
          f"({res.results['elapsed_s']:.0f} s)")
    return 0


def _add_rounds_parser(sub):
    """``lowerbound rounds``: adaptive rounds against queries on the nested codebook (exploratory)."""
    from ..sweeps.rounds_lab import RoundsLab

    e = _lab_parser(
        sub, "rounds", RoundsLab,
        help="exploratory: adaptive rounds vs queries on the nested codebook "
             "(audit, stage windows, searchers, samplers)",
        description="Exploratory experiment on NestedCodebook (L stages at scales "
        "scale_ratio^l, each stage's codebook and rate chosen by a hash of the previous "
        "stage's index): the admissibility audit of the nested adversary per stage and p, the "
        "stage windows, the parallel and sequential searchers, and catalogue samplers (Euler, "
        "ParallelPicard, RandomizedMidpoint with 4 points): rounds and queries to the first "
        "decoded stage and to full success. Runs in float64 on exact codebooks at small d. "
        "Writes CSV, rounds.json and rounds.png/.pdf into --out.")
    e.add_argument("--out", default="jscore-lowerbound-rounds",
                   help="output folder (rerunning resumes; default: %(default)s)")
    _add_run_flags(e)
    e.set_defaults(_run=run_rounds, func=run_rounds)
    return e


def run_rounds(args) -> int:
    """Run ``lowerbound rounds``: a :class:`~jscore.sweeps.rounds_lab.RoundsLab` through the
    driver (float64 inside its units), then its tables."""
    from ..sweeps.protocol import config_from_args
    from ..sweeps.rounds_lab import RoundsLab

    cfg = config_from_args(RoundsLab, args)  # validated before anything is written
    if getattr(args, "print_config", False):  # as the rounds experiment, which jscore sweep runs
        print(cfg.to_toml())
        return 0
    res = _run_lab(cfg, args).results
    _print_table("audit (per stage and p: max over sigma of the UCB / eps)", res["audit_summary"],
                 ["stage", "p", "num_sigmas", "max_lp_error", "max_upper_over_eps", "passed"])
    _print_table("searchers (rounds/queries to stage 0 and to all stages)", res["search_summary"],
                 ["mode", "L", "d", "windows", "success", "rounds_first", "queries_first",
                  "rounds_all", "queries_all"])
    _print_table("samplers", res["samplers"], ["sampler", "L", "d", "K", "success", "rounds",
                                               "queries", "monotone", "rounds_success_min"])
    print(f"results: {args.out}/ ({res['elapsed_s']:.0f} s)")
    return 0


def _add_schedule_parser(sub):
    """``lowerbound schedule``: P(some answer informative) on one schedule against the hidden scale."""
    from ..sweeps.certificate import ScheduleLab

    e = _lab_parser(
        sub, "schedule", ScheduleLab,
        help="one schedule family: P(some answer informative) against the hidden "
             "scale, its average and worst case (both sides), steps to reach 1/2",
        description="Runs one sampler on --steps levels of one schedule family (geometric, "
        "karras[:rho], edm, vp_linear, cosine[:s], uniform, user:s0,s1,...) between --sigma-min "
        "and --sigma-max, against the reference oracle at dimension --dim, for hidden critical "
        "scales in [--scale-min, --scale-max] (default [sigma_min, sigma_max/10]; the grid is "
        "shifted in log sigma), in --scales cells. Any catalogue sampler ('name:key=value' "
        "options too): in scalar form where it has a scalar reduction, else the full-vector "
        "path (slower). Prints P(some answer informative), lower and upper side, per cell, their "
        "average and the worst cell, the grid's sparsest log-gap, and the number of steps this "
        "family needs for the average and the worst P to reach 1/2 (upper side: the smaller "
        "number, lower side: the larger). These are Monte-Carlo estimates, and P(informative) "
        "is a necessary condition for success, not success. The documentation's 'Schedules and "
        "the hidden scale' page explains it.")
    e.add_argument("--json", default=None, help="also write the result to this JSON file")
    e.add_argument("--png", default=None, help="also draw the certificate to this PNG file")
    e.add_argument("--out", default=None,
                   help="folder for certificate.json, certificate.txt and certificate.png, with "
                        "the stored unit (rerunning reads it back); without it nothing is stored")
    e.add_argument("--cache-dir", default="default",
                   help="persistent JAX compilation cache directory; 'default' = a private folder "
                        "under the user cache (a second run skips most compiling)")
    e.add_argument("--no-cache", action="store_true",
                   help="leave JAX's compilation cache setting alone")
    _add_run_flags(e)
    e.set_defaults(_run=run_schedule, func=run_schedule)
    return e


def run_schedule(args) -> int:
    """Run ``lowerbound schedule`` (float64; :func:`~jscore.lowerbound.schedule_certificate.schedule_certificate`):
    with ``--out`` a :class:`~jscore.sweeps.certificate.ScheduleLab` through the driver (stored,
    read back when rerun), else in memory; then the table and the ``--json``/``--png`` extras."""
    import os

    from ..compiles import setup_compilation_cache
    from ..lowerbound.schedule_certificate import format_certificate
    from ..sweeps.certificate import ScheduleLab, write_certificate
    from ..sweeps.protocol import config_from_args

    cfg = config_from_args(ScheduleLab, args)  # validated before anything runs
    if getattr(args, "print_config", False):
        print(cfg.to_toml())
        return 0
    if args.cache_dir and not args.no_cache:
        setup_compilation_cache(args.cache_dir)
    res = _run_lab(cfg, args).results if args.out else cfg.run_timed()
    t = res["timing"]  # of the computation (an earlier run's when read back from --out)
    print(format_certificate(res))
    print(f"computed in {t['wall_s']:.1f} s wall ({t['compilations']} compilations, "
          f"{t['compile_s']:.1f} s compiling; load average "
          f"{t['loadavg'][0] if t['loadavg'] else float('nan'):.1f})")
    if args.out:
        for kind, name in (("json", "certificate.json"), ("txt", "certificate.txt"),
                           ("png", "certificate.png")):
            print(f"{kind}: {os.path.join(args.out, name)}")
    write_certificate(res, json_path=args.json, png_path=args.png,
                      log=lambda kind, path: print(f"{kind}: {path}"))
    return 0


# ----------------------------------------------------------------------------- levels
def _add_levels_parser(sub):
    """``lowerbound levels``: distinct noise levels against queries (docs/experiments/levels.md);
    its flags are the fields of :class:`jscore.sweeps.levels_lab.LevelsLab`."""
    from ..sweeps.levels_lab import LevelsLab

    e = _lab_parser(
        sub, "levels", LevelsLab,
        help="distinct noise levels against queries: annealed Langevin and "
             "predictor-corrector with m queries per level, SingleLevel with Q",
        description="Runs annealed Langevin (m steps per level) and predictor-corrector (m "
        "corrector steps) on L geometric levels from --sigma-max 20 to 0.02, and the SingleLevel "
        "control with Q queries, as full-vector chains at dimension --dim against the reference "
        "oracle, with the hidden critical scale drawn as in the lower-bound sweep. Prints, per "
        "sampler and (L, m), the exact queries per chain and the two sides of P(some answer "
        "informative) with standard errors over --reps replicates, next to the ideal family "
        "(m fresh reference-typical points per level); writes levels.json, table.txt and the "
        "two-panel figure levels_vs_queries.png/.pdf into --out. These are Monte-Carlo "
        "estimates, and an informative answer is necessary for success, not success. The "
        "documentation's 'Distinct levels against queries' page explains it.")
    e.add_argument("--json", action="store_true", help="print the result as JSON, not a table")
    e.add_argument("--out", default="jscore-levels",
                   help="output folder for levels.json, table.txt and the figure (rerunning "
                        "resumes: one stored unit per cell)")
    _add_run_flags(e)
    e.set_defaults(_run=run_levels, func=run_levels)
    return e


def run_levels(args) -> int:
    """Run ``lowerbound levels``: a :class:`~jscore.sweeps.levels_lab.LevelsLab` through the
    driver (float64 inside; the numbers of :func:`~jscore.lowerbound.levels.levels_vs_queries`)."""
    import json
    import os

    from ..store import json_default
    from ..sweeps.levels_lab import LevelsLab
    from ..sweeps.protocol import config_from_args

    cfg = config_from_args(LevelsLab, args)  # validated before anything runs
    if getattr(args, "print_config", False):
        print(cfg.to_toml())
        return 0
    out = _run_lab(cfg, args)
    res = out.results
    if args.json:
        print(json.dumps(res, indent=1, default=json_default))
    else:
        print(out.text, end="")
        print(f"results: {os.path.join(args.out, 'levels.json')}, table.txt, "
              f"{', '.join(os.path.basename(q) for q in out.files[2:])} "
              f"({res['elapsed_s']:.0f} s)")
    return 0


def main(argv=None) -> int:
    """Stand-alone entry (``python -m jscore.cli.lowerbound``): ``jscore lowerbound ARGS`` (a
    leading ``lowerbound`` is accepted)."""
    from . import main as jscore_main

    argv = list(sys.argv[1:] if argv is None else argv)
    return jscore_main(argv if argv[:1] == ["lowerbound"] else ["lowerbound", *argv])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
