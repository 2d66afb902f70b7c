"""Command line: ``jscore <command> [options]`` (also ``python -m jscore``).

Each sub-command lives in its own module of this package with ``add_parser(subparsers)`` and
``run(args) -> int`` (and optionally ``FLAGS``: library argument name -> flag, for error
messages); a parser with the default ``_extra_flags=True`` receives the words it did not know
in ``args._extra`` (``jscore sweep`` parses them as the flags generated from its config's
fields). ``COMMANDS`` maps the names, in help order, to one-line summaries.
``jscore --help`` imports none of them (nor JAX): only the command being run is loaded.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

COMMANDS = {
    "demo": "every sampler on a Gaussian mixture at a few query budgets: error vs score queries",
    "sweep": "a dimension sweep; without CONFIG the sqrt(d) lower-bound sweep (the main job)",
    "train": "train a score network on a target and measure its error profile eps(sigma)",
    "lowerbound": "lower-bound lab: the codebook-free sqrt(d) sweep (scale) and the "
                  "exact-codebook experiments at small d (exact)",
}


def build_parser(commands=None) -> argparse.ArgumentParser:
    """The ``jscore`` parser; ``commands``: names whose full parsers are built (default: all);
    the others get a one-line stub, so building the top-level help imports nothing heavy."""
    from .. import __version__
    from ._util import HelpFormatter

    parser = argparse.ArgumentParser(
        prog="jscore",
        description="Diffusion sampling as a score-oracle problem: run samplers against score "
        "oracles and count queries, distinct noise levels and adaptive rounds per chain. "
        "'jscore COMMAND --help' describes each command.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"jscore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, summary in COMMANDS.items():
        if commands is not None and name not in commands:
            sub.add_parser(name, help=summary, add_help=False)
            continue
        module = importlib.import_module(f"{__name__}.{name}")
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run, _flags=getattr(module, "FLAGS", {}))
    return parser


def _command(argv) -> str | None:
    """The sub-command named in ``argv`` (its first non-option word), if it is one."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command(argv)
    parser = build_parser(() if command is None else (command,))
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "_extra_flags", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args._extra = extra  # a command that takes generated flags (jscore sweep) parses them itself
    args._argv = argv[argv.index(args.command) + 1:]
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    prog = " ".join(["jscore", args.command] + [getattr(args, "lowerbound_command", None) or ""])
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError) as e:  # user mistakes: one clear line (JSCORE_DEBUG=1: traceback)
        if os.environ.get("JSCORE_DEBUG"):
            raise
        print(f"{prog.strip()}: error: {_flag_names(str(e), args)}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, permissions changed mid-run: one line, not a traceback
        if os.environ.get("JSCORE_DEBUG"):
            raise
        print(f"{prog.strip()}: error: {e}", file=sys.stderr)
        return 1


def _flag_names(message: str, args) -> str:
    """Show a library argument named in backticks (`n_rates`) as the CLI flag (--n-rates) when
    the command has that option (a command module's ``FLAGS`` maps other argument names)."""
    def flag(m):
        name = m.group(1)
        if name in getattr(args, "_flags", {}):
            return args._flags[name]
        return "--" + name.replace("_", "-") if hasattr(args, name) else m.group(0)

    return re.sub(r"`([a-z][a-z0-9_]*)`", flag, message)


__all__ = ["main", "build_parser", "COMMANDS"]
