"""Command line: ``jscore <command> [options]`` (also ``python -m jscore``).

Each sub-command lives in its own module of this package with ``add_parser(subparsers)`` and
``run(args) -> int``; ``COMMANDS`` lists them in help order.
"""

from __future__ import annotations

import argparse
import importlib
import os
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
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError) as e:  # user mistakes: one clear line (JSCORE_DEBUG=1: traceback)
        if os.environ.get("JSCORE_DEBUG"):
            raise
        print(f"jscore {args.command}: error: {e}", file=sys.stderr)
        return 2


__all__ = ["main", "build_parser", "COMMANDS"]
