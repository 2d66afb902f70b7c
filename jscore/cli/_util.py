"""Small helpers shared by CLI commands."""

from __future__ import annotations

import argparse
import os
import platform
import re
import textwrap

_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data):`~?([^`]+)`")


def plain_text(doc: str) -> str:
    """A docstring as plain help text: RST roles and double backticks dropped, ``::`` -> ``:``."""
    text = _ROLE.sub(r"\1", doc or "")
    return text.replace("``", "").replace("::\n", ":\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wraps plain description paragraphs (paragraphs with indented or list lines stay as written)
    and appends ``(default: X)`` to every option whose help does not state its default already
    (``None`` and ``False`` defaults are not printed)."""

    def _fill_text(self, text, width, indent):
        out = []
        for para in text.strip("\n").split("\n\n"):
            lines = para.splitlines()
            if any(line.startswith((" ", "-")) for line in lines):
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(textwrap.fill(" ".join(line.strip() for line in lines), width,
                                         initial_indent=indent, subsequent_indent=indent))
        return "\n\n".join(out)

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("default" in text or any(default is v for v in (None, False, argparse.SUPPRESS))
                or (not action.option_strings and action.nargs not in ("?", "*"))):
            return text
        if isinstance(default, (list, tuple)):
            default = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default)
        return f"{text} (default: {default})".lstrip()


def parse_int_list(text: str) -> list[int]:
    """Parse ``"0-3,8,10-11"`` into ``[0, 1, 2, 3, 8, 10, 11]`` (EDM's grammar)."""
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if part[0] != "-" else (part, part)
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                out.extend(range(lo_i, hi_i + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ValueError(
                f"Cannot parse {part!r} in the integer list {text!r}; use e.g. '8,16,32' or '0-63'."
            ) from None
    if not out:
        raise ValueError(f"The integer list {text!r} is empty.")
    return out


def environment() -> dict:
    """Versions and device facts recorded with every result row."""
    import equinox
    import jax
    import jaxlib

    from .. import __version__

    dev = jax.devices()[0]
    return {
        "jscore": __version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "equinox": equinox.__version__,
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "device_kind": getattr(dev, "device_kind", str(dev)),
        "num_devices": jax.device_count(),
        "x64": bool(jax.config.jax_enable_x64),
        "EQX_ON_ERROR": os.environ.get("EQX_ON_ERROR", "raise"),
    }


def check_out_dir(path, flag: str = "--out") -> str:
    """Refuse an output folder that cannot be created or written, without creating anything.

    ``path`` may not exist yet: then its nearest existing ancestor must be a writable directory.
    Raises ``ValueError`` naming ``flag``; returns ``path``. Call it before any compute.
    """
    import tempfile

    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"{flag}: expected a folder path, got {path!r}.")
    path = os.fspath(path)
    probe = os.path.abspath(path)
    while not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        what = "is a file" if probe == os.path.abspath(path) else f"lies under the file {probe!r}"
        raise ValueError(f"{flag}: {path!r} {what}, not a folder; pass a folder path.")
    try:  # a nameless temporary file: proves the folder is writable and leaves nothing behind
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        raise ValueError(
            f"{flag}: cannot write into {probe!r} ({e.strerror or e}); pass a writable folder."
        ) from None
    return path


def _ranged(kind, lo=None, hi=None, strict=False):
    """An argparse ``type=`` for a number of ``kind`` (int or float) with ``lo <= v <= hi``
    (``lo < v`` with ``strict``); floats must be finite."""
    import argparse
    import math

    bound = (f"> {lo:g}" if strict else f">= {lo:g}") if lo is not None else ""
    if hi is not None:
        bound += f"{' and ' if bound else ''}<= {hi:g}"
    need = ("an integer" if kind is int else "a finite number") + (f" {bound}" if bound else "")

    def convert(text):
        try:
            v = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be {need}, got {text!r}") from None
        ok = kind is int or math.isfinite(v)
        ok = ok and (lo is None or (v > lo if strict else v >= lo)) and (hi is None or v <= hi)
        if not ok:
            raise argparse.ArgumentTypeError(f"must be {need}, got {text!r}")
        return v

    convert.__name__ = kind.__name__  # argparse names the type in some messages
    convert.kind, convert.lo, convert.strict = kind, lo, strict  # for tests that fuzz the flags
    return convert


def int_at_least(lo: int):
    """argparse ``type=``: an integer ``>= lo``."""
    return _ranged(int, lo)


def float_at_least(lo: float, strict: bool = False):
    """argparse ``type=``: a finite float ``>= lo`` (``> lo`` with ``strict``)."""
    return _ranged(float, lo, strict=strict)


def int_list_at_least(lo: int):
    """argparse ``type=``: a :func:`parse_int_list` list whose entries are all ``>= lo``."""
    import argparse

    def convert(text):
        try:
            vals = parse_int_list(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        bad = [v for v in vals if v < lo]
        if bad:
            raise argparse.ArgumentTypeError(f"entries must be integers >= {lo}, got {bad} in {text!r}")
        return vals

    convert.__name__ = "list"
    convert.kind, convert.lo, convert.strict = list, lo, False
    return convert


finite_float = _ranged(float)  # argparse ``type=``: any finite float
