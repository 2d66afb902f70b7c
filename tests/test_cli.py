import json
import subprocess
import sys

import pytest

from jscore.cli import main
from jscore.cli._util import parse_int_list


def test_parse_int_list():
    assert parse_int_list("0-3,8,10-11") == [0, 1, 2, 3, 8, 10, 11]
    with pytest.raises(ValueError, match="Cannot parse"):
        parse_int_list("4-2")
    with pytest.raises(ValueError, match="Cannot parse"):
        parse_int_list("a,b")


def test_demo_small_run_writes_table_json_and_png(tmp_path, capsys):
    rc = main(["demo", "--dim", "4", "--num-samples", "64", "--budgets", "6",
               "--samplers", "euler,heun", "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "euler" in out and "heun" in out and "queries" in out
    data = json.loads((tmp_path / "demo.json").read_text())
    rows = {r["sampler"]: r for r in data["rows"]}
    # budget 6: Euler runs 6 steps (6 queries); Heun runs 3 steps (2*3 - 1 = 5 queries, 3 levels)
    assert rows["euler"]["queries"] == 6 and rows["euler"]["levels"] == 6
    assert rows["heun"]["queries"] == 5 and rows["heun"]["levels"] == 3 and rows["heun"]["steps"] == 3
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    assert len((tmp_path / "demo.jsonl").read_text().splitlines()) == 2


def test_demo_bad_input_is_one_clear_line(tmp_path, capsys):
    assert main(["demo", "--samplers", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Unknown sampler 'nope'" in err and "Traceback" not in err


def test_console_help():
    out = subprocess.run([sys.executable, "-m", "jscore", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "demo" in out.stdout


def _all_parsers():
    """(name, parser) for the top-level parser and every (sub-)command, recursively."""
    import argparse

    from jscore.cli import build_parser

    todo, out = [("jscore", build_parser())], []
    while todo:
        name, p = todo.pop()
        out.append((name, p))
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                todo += [(f"{name} {k}", v) for k, v in a.choices.items()]
    return out


def test_every_command_has_a_description_and_every_option_help_and_default():
    import argparse

    parsers = _all_parsers()
    names = {n for n, _ in parsers}
    assert {"jscore demo", "jscore sweep", "jscore train", "jscore lowerbound",
            "jscore lowerbound scale", "jscore lowerbound exact"} <= names
    for name, p in parsers:
        assert p.description and len(p.description) > 40, name
        text = p.format_help()
        assert "``" not in text and ":func:" not in text and ":class:" not in text, name
        fmt = p._get_formatter()
        for a in p._actions:
            if isinstance(a, (argparse._HelpAction, argparse._VersionAction,
                              argparse._SubParsersAction)):
                continue
            assert a.help, f"{name} {a.option_strings or a.dest}: no help"
            shown = fmt._get_help_string(a)
            has_default = a.default is None or a.default is False or "default" in shown
            assert has_default, f"{name} {a.option_strings}: default {a.default!r} not shown"


def test_top_level_help_lists_commands_without_importing_jax():
    code = ("import sys; from jscore.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'jax' not in sys.modules, 'jscore --help imported jax'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for name in ("demo", "sweep", "train", "lowerbound"):
        assert name in out.stdout


def test_demo_status_text_names_budget_exhausted_chains():
    from jscore.cli.demo import status_text

    assert status_text({"success": 29, "budget_exhausted": 227, "nonfinite": 0}) == (
        "29 ok, 227 budget exhausted")
    assert status_text({"success": 3, "budget_exhausted": 0, "nonfinite": 1}) == "3 ok, 1 nonfinite"


def test_no_module_cites_internal_reference_notes():
    import pathlib

    import jscore

    root = pathlib.Path(jscore.__file__).parent
    bad = [str(f) for f in root.rglob("*.py")
           if "lower_bound" + ".md" in f.read_text() or "samplers" + ".md" in f.read_text()]
    assert not bad, f"cite the documentation pages instead: {bad}"


def test_demo_compiles_at_level_0_by_default_and_agrees_with_full_optimisation(tmp_path):
    """The default demo asks XLA for backend optimisation level 0 (it is compile-bound); its rows
    agree with a `--optimize` run to float32 rounding, and the header says which level ran."""
    import subprocess
    import sys

    rows = {}
    for flag in ([], ["--optimize"]):
        out_dir = tmp_path / ("opt" if flag else "fast")
        cmd = [sys.executable, "-m", "jscore", "demo", "--dim", "3", "--num-samples", "16",
               "--budgets", "4", "--samplers", "euler,heun", "--no-plot", "--quiet",
               "--out", str(out_dir), *flag]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        header = proc.stdout.splitlines()[0]
        assert ("optimisation level 0" in header) == (not flag), header
        rows[bool(flag)] = json.loads((out_dir / "demo.json").read_text())["rows"]
    for fast, full in zip(rows[False], rows[True]):
        assert fast["sampler"] == full["sampler"] and fast["queries"] == full["queries"]
        assert abs(fast["energy"] - full["energy"]) <= 1e-4 * (1 + abs(full["energy"]))
