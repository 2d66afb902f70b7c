"""Config fields: :func:`option` declares a field of a frozen config dataclass with its default,
help text and command-line flag, so that a default lives in one place (the field) and the TOML
keys, the generated flags (:func:`jscore.sweeps.protocol.add_config_flags`) and the docs are
read from it; :func:`toml_dumps` writes a config as TOML (the one TOML writer). Ground floor:
imports only the standard library (and ``tomli_w`` when writing TOML).
"""

from __future__ import annotations

import dataclasses

#: Sentinel for "no default": the field must be given.
REQUIRED = dataclasses.MISSING


def option(default=REQUIRED, help: str = "", *, flag: str | None = None, aliases=(),
           metavar: str | None = None, cli: bool = True, identity: bool = True):
    """A config field: ``default`` (immutable: use tuples for lists), ``help`` (the flag's help
    text), ``flag`` (default ``--field-name``) and ``aliases`` (older spellings that still work),
    ``cli=False`` to keep it out of the generated flags, ``identity=False`` for a field that does
    not change any unit's row (e.g. *which* dimensions to run when rows are per dimension): it is
    left out of the config hash, so changing it resumes the same run folder."""
    if isinstance(default, (list, dict, set)):
        raise TypeError(f"option: default {default!r} is mutable; use a tuple.")
    md = dict(help=help, flag=flag, aliases=tuple(aliases), metavar=metavar, cli=cli,
              identity=identity)
    return dataclasses.field(default=default, metadata=md)


def _meta(f: dataclasses.Field) -> dict:
    return {"help": "", "flag": None, "aliases": (), "metavar": None, "cli": True,
            "identity": True, **f.metadata}


def _drop_none(v):
    if isinstance(v, dict):
        return {str(k): _drop_none(x) for k, x in v.items() if x is not None}
    if isinstance(v, (list, tuple)):
        return [_drop_none(x) for x in v]
    return v


def toml_dumps(data: dict, comment: str | None = None) -> str:
    """``data`` as a TOML document (``tomli_w``; keys quoted where needed, ``nan``/``inf`` as TOML
    floats, ``None`` values left out since TOML has no null), after an optional ``# comment``."""
    import tomli_w

    text = tomli_w.dumps(_drop_none(data))
    return f"# {comment}\n{text}" if comment else text


__all__ = ["REQUIRED", "option", "toml_dumps"]
