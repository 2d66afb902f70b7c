"""Build notebooks/*.ipynb from their percent-format sources in notebooks/src/ and execute them.

Usage: ``python notebooks/build.py`` (all), ``python notebooks/build.py NAME ...`` (e.g.
``01_quickstart``) or ``python notebooks/build.py SRC DST``; ``--no-execute`` writes them without
outputs. Cells split on ``# %%`` lines; ``# %% [markdown]`` cells have their leading ``# `` removed.
The .py sources are the ones to edit; tests check that each .ipynb has its source's cells and was
executed (outputs stored). Execution needs the test extra (nbmake brings nbclient and ipykernel)
and runs in the notebooks' folder with this environment (set ``PYTHONPATH`` to a checkout to use it).
"""
import pathlib
import sys

import nbformat

HERE = pathlib.Path(__file__).resolve().parent


def cells_of(src):
    """The notebook cells of the percent-format file ``src`` (deterministic ids)."""
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
    return cells


def build(src, dst, execute=False, timeout=900):
    nb = nbformat.v4.new_notebook(cells=cells_of(src))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    if execute:
        from nbclient import NotebookClient

        NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(HERE)}}).execute()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, dst)


def build_all(names=(), execute=True):
    for src in sorted((HERE / "src").glob("*.py")):
        if names and src.stem not in names:
            continue
        print(f"building {src.stem}" + (" (executing)" if execute else ""), flush=True)
        build(str(src), str(HERE / (src.stem + ".ipynb")), execute=execute)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--no-execute"]
    execute = "--no-execute" not in sys.argv[1:]
    if len(args) == 2 and args[0].endswith(".py"):
        build(args[0], args[1], execute=execute)
    else:
        build_all(args, execute=execute)
