"""Command line: ``jscore <command> [options]`` (also ``python -m jscore``).

Each sub-command lives in its own module of this package with ``add_parser(subparsers)`` and
``run(args) -> int`` (and optionally ``FLAGS``: library argument name -> flag, for error
messages); ``COMMANDS`` lists them in help order.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

COMMANDS = ("demo", "sweep", "train", "lowerbound")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jscore",
        description="Diffusion sampling as a score-oracle problem: run samplers against score "
        "oracles and count queries, distinct noise levels and adaptive rounds per chain.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"jscore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run, _flags=getattr(module, "FLAGS", {}))
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
