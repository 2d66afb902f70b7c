"""Small helpers shared by CLI commands."""

from __future__ import annotations

import argparse
import json
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


def append_jsonl(path, row: dict) -> None:
    """Append one JSON row and flush it to disk, so an interrupted run keeps its rows."""
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())
