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
