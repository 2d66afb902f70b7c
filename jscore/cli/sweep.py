"""``jscore sweep [CONFIG]``: run a dimension sweep from a TOML file or a built-in name.

Without CONFIG it runs the headline experiment, the sqrt(d) lower-bound sweep
(docs/experiments/lowerbound_sweep.md; docs/construction.md §6 for windows and §8 for K*): for
d = 1e2 ... 1e6, the window width, the window count N(d) and the number of geometric levels K*(d)
at which the probability that some answer of the adversarial eps-accurate oracle is informative
reaches 1/2 for Euler, Euler ancestral and Heun (a necessary condition for success, not success),
with log-log slopes and bootstrap CIs (about 0.45: sqrt(d) up to a log), a table on stdout and
``scaling.json/csv/png`` in --out (default ``jscore-sweep-lowerbound-sqrt-d``), in a few minutes on
2 CPU cores. Built-in names: ``lowerbound-sqrt-d`` (the default), ``gaussian-steps-vs-d``
(steps-to-error Q*(d) of Euler/Heun/DPM-Solver++ on N(0, I_d), closed-form KL) and
``gaussian-stochastic-steps-vs-d`` (the same for Euler ancestral, Euler-Maruyama and
DPM-Solver++ 2M SDE, with a Monte-Carlo KL estimate and its standard error).

Examples::

    jscore sweep                                  # the sqrt(d) lower-bound sweep, ~minutes on CPU
    jscore sweep --dims 100,1000,10000 --out lb   # a shorter one
    jscore sweep gaussian-steps-vs-d              # Q*(d) of samplers on a Gaussian
    jscore sweep my.toml --out runs/my --dry-run  # print the plan: cells, compilations, work
    jscore sweep my.toml --out runs/my            # killed? run the same command again to resume
    jscore sweep --print-config > my.toml         # the default spec as TOML, to edit
    jscore sweep --n-reps 4 --k-max 512           # any field of the config is a flag too
    jscore sweep my.toml --help-config            # the flags of my.toml's experiment

Multi-process (one process per host or per accelerator group; every process gets the same
command, the units of each round are split by index and rows go to ``OUT/<stem>-p<i>.jsonl`` on a
shared disk: ``rows-p<i>.jsonl`` for a sampler sweep, ``units-p<i>.jsonl`` for the others)::

    jscore sweep my.toml --out /shared/runs/my \\
        --coordinator HOST0:12345 --num-processes P --process-id I

(on SLURM or TPU pods ``--distributed auto`` lets ``jax.distributed.initialize()`` find them).
"""

from __future__ import annotations

import argparse
import os
import sys

from ._util import HelpFormatter, check_out_dir, int_at_least, plain_text


def add_parser(subparsers):
    from . import COMMANDS

    p = subparsers.add_parser("sweep", help=COMMANDS["sweep"], description=plain_text(__doc__),
                              formatter_class=HelpFormatter)
    _add_arguments(p)
    p.set_defaults(_extra_flags=True)
    return p


def _add_arguments(p):
    p.add_argument("config", nargs="?",
                   help="TOML sweep spec or a built-in name: lowerbound-sqrt-d (default), "
                        "gaussian-steps-vs-d, gaussian-stochastic-steps-vs-d")
    p.add_argument("--out", help="results directory (default: jscore-sweep-<name>)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="require existing rows of this config and continue them")
    g.add_argument("--overwrite", action="store_true", help="discard existing rows in --out first")
    p.add_argument("--devices", type=int_at_least(1), help="local devices to shard seeds over (default: all)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--print-config", action="store_true", help="print the spec as TOML and exit")
    p.add_argument("--help-config", action="store_true",
                   help="list the flags generated from the fields of CONFIG's experiment and exit")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr (for CI)")
    p.add_argument("--no-plot", action="store_true", help="do not write PNG figures")
    p.add_argument("--cache-dir", default="default",
                   help="persistent JAX compilation cache directory; 'default' = a private folder "
                        "under the user cache")
    p.add_argument("--no-cache", action="store_true", help="leave JAX's compilation cache setting alone")
    p.add_argument("--dims", help="override the spec's dims, e.g. 16-4096:pow2 or 100,1000,10000 "
                                  "(default: the spec's)")
    p.add_argument("--seeds", help="override the spec's seeds, e.g. 0-1023 (default: the spec's)")
    p.add_argument("--chunk", type=int_at_least(1),
                   help="override the spec's seeds per compiled call (default: the spec's)")
    p.add_argument("--coordinator",
                   help="jax.distributed coordinator address HOST:PORT (default: single process)")
    p.add_argument("--num-processes", type=int, help="jax.distributed process count")
    p.add_argument("--process-id", type=int, help="jax.distributed index of this process")
    p.add_argument("--distributed", choices=["auto"], help="jax.distributed.initialize() with cluster auto-detection")





def run(args) -> int:
    from ..sweeps import BUILTIN_SPECS, default_spec, experiment_of, load_spec, sweep

    if getattr(args, "_extra", None):  # flags generated from config fields: parse again with them
        args = _reparse(args._argv)

    distributed = None
    if args.coordinator or args.num_processes or args.process_id is not None:
        if not (args.coordinator and args.num_processes and args.process_id is not None):
            raise ValueError("multi-process runs need all of --coordinator, --num-processes and --process-id.")
        distributed = {
            "coordinator_address": args.coordinator,
            "num_processes": args.num_processes,
            "process_id": args.process_id,
        }
    elif args.distributed == "auto":
        distributed = {}
    if distributed is not None:  # must precede any other JAX work
        import jax

        jax.distributed.initialize(**distributed)
    if args.config is None:
        spec = default_spec()
    elif args.config in BUILTIN_SPECS and not os.path.exists(args.config):
        spec = BUILTIN_SPECS[args.config]()
    else:
        spec = load_spec(args.config)
    over = {k: getattr(args, k) for k in ("dims", "seeds", "chunk") if getattr(args, k) is not None}
    experiment = experiment_of(spec)
    bad = sorted(set(over) - set(experiment.cli_overrides))
    if bad:
        accepts = ", ".join("--" + o for o in experiment.cli_overrides) or "none of them"
        raise ValueError(f"{', '.join('--' + b for b in bad)} do not apply to the {experiment.name} "
                         f"experiment; it accepts {accepts}. Its own fields are flags too, listed "
                         "by `jscore sweep CONFIG --help-config`.")
    if over:
        spec = spec.replace(**over)
    spec = _config_flags(spec, experiment, args, args.help_config)
    if spec is None:
        return 0
    if args.print_config:
        print(spec.to_toml())
        return 0
    if args.dry_run:
        plan = sweep(spec, dry_run=True)  # a Plan or a config (their describe()), or plain text
        print(plan if isinstance(plan, str) else plan.describe())
        return 0
    out = check_out_dir(args.out or f"jscore-sweep-{spec.name}")
    res = sweep(
        spec,
        out=out,
        devices=args.devices,
        quiet=args.quiet,
        resume=True if args.resume else "auto",
        overwrite=args.overwrite,
        cache_dir=None if args.no_cache else args.cache_dir,
        plot=not args.no_plot,
    )
    if res.complete and res.rows:
        if experiment.legend and not args.quiet:
            print(experiment.legend)
        print(res.table())
        figs = [f for f in res.files if f.endswith(".png")]
        print(f"results: {res.out}" + (f"; figures: {', '.join(figs)}" if figs else ""))
    return 0


def _unit_experiments():
    from ..sweeps import EXPERIMENTS
    from ..sweeps.protocol import UnitExperiment

    return [e for e in EXPERIMENTS.values()
            if isinstance(e.spec_type, type) and issubclass(e.spec_type, UnitExperiment)
            and e.spec_type.config_flags]


def _reparse(argv):
    """Parse ``argv`` (after ``sweep``) again with the generated flags of every registered
    experiment of the unit protocol added (as text; :func:`config_from_args` types them)."""
    from ..sweeps.protocol import add_config_flags

    p = argparse.ArgumentParser(prog="jscore sweep", formatter_class=HelpFormatter)
    _add_arguments(p)
    for e in _unit_experiments():
        add_config_flags(p, e.spec_type, raw=True)
    args = p.parse_args(argv)
    args._extra, args._reparsed = [], True
    return args


def _config_flags(spec, experiment, args, show_help):
    """``spec`` with the fields given as generated flags (``--n-reps 4``) replaced; prints
    the experiment's flags and returns None for ``--help-config``."""
    from ..sweeps.protocol import UnitExperiment, add_config_flags, config_flag_names, config_from_args

    cls = experiment.spec_type
    unit = isinstance(cls, type) and issubclass(cls, UnitExperiment) and cls.config_flags
    if show_help:
        p = argparse.ArgumentParser(prog=f"jscore sweep [CONFIG] ({experiment.name} experiment)",
                                    add_help=False, formatter_class=HelpFormatter)
        if unit:
            add_config_flags(p, cls, skip=experiment.cli_overrides)
        p.print_help()
        return None
    if not getattr(args, "_reparsed", False):
        return spec
    generic = {a.dest for a in _generic_parser()._actions}
    given = {k for k in vars(args) if not k.startswith("_") and k not in generic}
    if not given:
        return spec
    mine = set(config_flag_names(cls)) if unit else set()
    foreign = sorted(given - mine)
    if foreign:
        flags = ", ".join("--" + k.replace("_", "-") for k in foreign)
        raise ValueError(f"{flags} do not apply to the {experiment.name} experiment; its flags are "
                         "listed by `jscore sweep CONFIG --help-config`.")
    try:
        return config_from_args(cls, argparse.Namespace(**{k: getattr(args, k) for k in given}),
                                base=spec)
    except (ValueError, TypeError) as e:  # name the flag the user typed (`n_reps` -> --n-reps)
        import re

        flags = config_flag_names(cls)
        msg = re.sub(r"`([a-z][a-z0-9_]*)`",
                     lambda m: flags[m.group(1)] if m.group(1) in given else m.group(0), str(e))
        raise type(e)(msg) from None


def _generic_parser():
    p = argparse.ArgumentParser(add_help=False)
    _add_arguments(p)
    return p


def main(argv=None) -> int:
    """Stand-alone entry (``python -m jscore.cli.sweep``): ``jscore sweep ARGS``."""
    from . import main as jscore_main

    return jscore_main(["sweep", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
