"""The fenced ``python`` blocks of docs/your_model.md run as written, in order, in one namespace."""

import pathlib
import re

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "your_model.md"


def python_blocks(text):
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_your_model_page_runs(capsys):
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 10  # one per section: wrappers, weights, images, each adapter, counting
    namespace = {"__name__": "docs_your_model"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{DOC.name}[block {i}]", "exec"), namespace)
    out = capsys.readouterr().out
    assert "(4, 8, 8, 1)" in out and "dpmpp_2m" in out
