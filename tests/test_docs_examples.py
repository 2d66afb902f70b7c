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


def test_writing_an_experiment_page_runs(tmp_path, monkeypatch, capsys):
    """docs/experiments/protocol.md: the example experiment runs through js.sweep, and its rows
    match the closed form E|z| = sqrt(2) Gamma((d+1)/2) / Gamma(d/2) within 4 standard errors."""
    import math

    from jscore.sweeps import EXPERIMENTS

    page = DOC.parent / "experiments" / "protocol.md"
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "docs_protocol"}
    try:
        for i, code in enumerate(python_blocks(page.read_text())):
            exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)
    finally:
        EXPERIMENTS.pop("norm-growth", None)
    rows = namespace["res"].rows
    assert [r["d"] for r in rows] == [16, 64, 256, 1024]
    for r in rows:
        exact = math.sqrt(2) * math.exp(math.lgamma((r["d"] + 1) / 2) - math.lgamma(r["d"] / 2))
        assert abs(r["mean"] - exact) < 4 * r["se"], r
    assert "slope 0.5" in capsys.readouterr().out
    assert (tmp_path / "runs" / "norms" / "norms.csv").exists()
