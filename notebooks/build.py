"""Build the stripped notebooks/*.ipynb from their percent-format sources in notebooks/src/.

Usage: ``python notebooks/build.py`` (all) or ``python notebooks/build.py SRC DST``. Cells split on
``# %%`` lines; ``# %% [markdown]`` cells have their leading ``# `` removed. The .py sources are
the ones to edit; tests check that each .ipynb matches its source.
"""
import sys

import nbformat


def build(src, dst):
    with open(src, encoding="utf-8") as f:
        text = f.read()
    cells = []
    for chunk in text.split("# %%")[1:]:
        head, _, body = chunk.partition("\n")
        body = body.strip("\n")
        if head.strip().startswith("[markdown]"):
            lines = [l[2:] if l.startswith("# ") else l.lstrip("#") for l in body.splitlines()]
            cells.append(nbformat.v4.new_markdown_cell("\n".join(lines)))
        else:
            cells.append(nbformat.v4.new_code_cell(body))
    for i, cell in enumerate(cells):  # deterministic ids, so rebuilding changes nothing
        cell["id"] = f"cell-{i:02d}"
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, dst)


def build_all():
    import pathlib

    here = pathlib.Path(__file__).parent
    for src in sorted((here / "src").glob("*.py")):
        build(str(src), str(here / (src.stem + ".ipynb")))


if __name__ == "__main__":
    if len(sys.argv) == 3:
        build(sys.argv[1], sys.argv[2])
    else:
        build_all()
