"""The notebooks stay paired with their percent-format sources and are stored without outputs.

``notebooks/src/NAME.py`` is the file to edit; ``python notebooks/build.py`` writes
``notebooks/NAME.ipynb``. The notebooks themselves are executed by nbmake (``--nbmake`` in the
pytest options), so a notebook that raises fails the test run.
"""

import importlib.util
import pathlib

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


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_notebook_matches_its_source(src, tmp_path):
    built = tmp_path / (src.stem + ".ipynb")
    _build_module().build(str(src), str(built))
    stored = NOTEBOOKS / (src.stem + ".ipynb")
    assert stored.read_text() == built.read_text(), (
        f"{stored.name} differs from what notebooks/build.py makes from src/{src.name}; edit the "
        "source and run `python notebooks/build.py`."
    )


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_notebook_is_stripped_and_scalable(src):
    nb = nbformat.read(NOTEBOOKS / (src.stem + ".ipynb"), as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{src.stem}: cell {cell.id} has stored outputs"
            )
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert 'SCALE = int(os.environ.get("JSCORE_NOTEBOOK_SCALE", 1))' in code
    assert "import jscore as js" in code


def test_build_is_deterministic(tmp_path):
    build = _build_module().build
    src = SOURCES[0]
    build(str(src), str(tmp_path / "a.ipynb"))
    build(str(src), str(tmp_path / "b.ipynb"))
    assert (tmp_path / "a.ipynb").read_bytes() == (tmp_path / "b.ipynb").read_bytes()
