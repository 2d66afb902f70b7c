"""The notebooks stay paired with their percent-format sources and are stored with outputs.

``notebooks/src/NAME.py`` is the file to edit; ``python notebooks/build.py`` writes and executes
``notebooks/NAME.ipynb``. The notebooks are executed again by nbmake (``--nbmake`` in the pytest
options), so a notebook that raises fails the test run.
"""

import importlib.util
import pathlib
import re

import nbformat
import pytest

NOTEBOOKS = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
SOURCES = sorted((NOTEBOOKS / "src").glob("*.py"))


def _build_module():
    spec = importlib.util.spec_from_file_location("_nb_build", NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_source_has_a_notebook_and_back():
    assert SOURCES, "no notebook sources found in notebooks/src/"
    stems = {p.stem for p in SOURCES}
    notebooks = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    assert notebooks == stems, (
        f"notebooks without a source: {sorted(notebooks - stems)}; sources without a notebook: "
        f"{sorted(stems - notebooks)}. Run `python notebooks/build.py`."
    )


def _cells(nb):
    return [(c.cell_type, c.source) for c in nb.cells]


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_notebook_matches_its_source(src, tmp_path):
    built = tmp_path / (src.stem + ".ipynb")
    _build_module().build(str(src), str(built))
    stored = nbformat.read(NOTEBOOKS / (src.stem + ".ipynb"), as_version=4)
    assert _cells(stored) == _cells(nbformat.read(built, as_version=4)), (
        f"{src.stem}.ipynb has other cells than src/{src.name}; edit the source and run "
        "`python notebooks/build.py`."
    )


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_notebook_is_executed_with_figures_and_scalable(src):
    nb = nbformat.read(NOTEBOOKS / (src.stem + ".ipynb"), as_version=4)
    nbformat.validate(nb)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code_cells]
    assert None not in counts and counts == sorted(counts), (
        f"{src.stem}: not executed top to bottom; run `python notebooks/build.py {src.stem}`"
    )
    for cell in code_cells:
        assert not [o for o in cell.outputs if o.output_type == "error"], f"{src.stem}: {cell.id}"
        draws = re.search(r"^(plt\.show\(|show\(|display\(Image\()", cell.source, re.M)
        if draws:
            images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
            assert images, f"{src.stem}: cell {cell.id} draws a figure but stores no image"
    code = "\n".join(c.source for c in code_cells)
    assert 'SCALE = int(os.environ.get("JSCORE_NOTEBOOK_SCALE", 1))' in code
    assert "import jscore as js" in code


def test_build_is_deterministic(tmp_path):
    build = _build_module().build
    src = SOURCES[0]
    build(str(src), str(tmp_path / "a.ipynb"))
    build(str(src), str(tmp_path / "b.ipynb"))
    assert (tmp_path / "a.ipynb").read_bytes() == (tmp_path / "b.ipynb").read_bytes()
