"""MkDocs hook: the API pages of the sub-packages list every public module found at build time,
so a new module appears in the reference without editing the docs."""

from __future__ import annotations

import pathlib

from mkdocs.structure.files import File

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = {
    "api/targets.md": ("jscore.targets", "Distributions with closed-form noised scores."),
    "api/oracles.md": ("jscore.oracles", "What answers a score query."),
    "api/samplers.md": ("jscore.samplers", "How a sampler moves down the grid; the catalogue of "
                        "named configurations ([update rules and counts](../sampler_reference.md))."),
    "api/lowerbound.md": ("jscore.lowerbound", "The lower-bound lab "
                          "([the construction](../construction.md))."),
    "api/sweeps.md": ("jscore.sweeps", "Dimension sweeps: specs, the driver, analysis."),
}


def page(package: str, description: str) -> str:
    folder = ROOT / package.replace(".", "/")
    modules = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
    lines = [f"# `{package}`", "", description, "", f"::: {package}", "    options:",
             "      members: false", ""]
    for m in modules:
        lines += [f"::: {package}.{m}", ""]
    return "\n".join(lines)


def on_files(files, config):
    for uri, (package, description) in PACKAGES.items():
        old = files.get_file_from_path(uri)
        if old is not None:
            files.remove(old)
        files.append(File.generated(config, uri, content=page(package, description)))
    return files


def catalogue_table() -> str:
    """The sampler catalogue as a Markdown table (name, class, options), read from the code."""
    from jscore.samplers import CATALOGUE

    rows = ["| name | class | options |", "|---|---|---|"]
    for name, factory in CATALOGUE.items():
        cls = getattr(factory, "func", factory).__name__
        kw = ", ".join(f"{k}={v!r}" for k, v in getattr(factory, "keywords", {}).items())
        rows.append(f"| `{name}` | `{cls}` | {kw or 'defaults'} |")
    return "\n".join(rows)


def on_page_markdown(markdown, page, config, files):
    """Replace the ``<!-- catalogue -->`` marker with the catalogue table."""
    return markdown.replace("<!-- catalogue -->", catalogue_table())
