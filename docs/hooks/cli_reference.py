"""MkDocs hook: the page ``cli.md`` is generated at build time from jscore's argparse parser."""

from __future__ import annotations

import argparse

from mkdocs.structure.files import File

PAGE = "cli.md"


def _parsers(parser, name="jscore"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def markdown() -> str:
    """The command-line reference: every command's ``--help``, as printed."""
    from jscore.cli import build_parser

    parser = build_parser()
    out = ["# Command line", "",
           "Generated from the argparse parser at build time: each block is what "
           "`jscore COMMAND --help` prints. Options not listed with a default default to off "
           "(flags) or to what the description says.", ""]
    for name, p in _parsers(parser):
        p.prog = name
        out += [f"## `{name}`", "", "```text", p.format_help().rstrip(), "```", ""]
    return "\n".join(out)


def on_files(files, config):
    """Add the generated page (it has no file under docs/)."""
    files.append(File.generated(config, PAGE, content=markdown()))
    return files
