"""`jscore lowerbound levels / rounds / schedule` run through the one driver: they store their
units in --out (config.json + units-p0.jsonl), read them back when rerun, refuse a folder of
another configuration or of an older, unstored version of the command (naming --overwrite),
and --overwrite recomputes."""

from __future__ import annotations

import json

import pytest

from jscore.cli import main

SCHEDULE = ["lowerbound", "schedule", "--schedule", "karras", "--steps", "4", "--dim", "400",
            "--scales", "4", "--points", "2", "--reps", "2", "--no-search", "--sampler", "euler",
            "--no-cache"]


def test_schedule_stores_resumes_refuses_and_overwrites(tmp_path, capsys, monkeypatch):
    from jscore.sweeps import certificate

    out = tmp_path / "cert"
    assert main(SCHEDULE + ["--out", str(out)]) == 0
    first = capsys.readouterr().out
    assert {"config.json", "units-p0.jsonl", "certificate.json", "certificate.txt",
            "certificate.png"} <= {p.name for p in out.iterdir()}
    stored = json.loads((out / "units-p0.jsonl").read_text().splitlines()[0])
    assert stored["unit"] == "certificate"
    assert json.loads((out / "certificate.json").read_text()) == stored["result"]

    def boom(self):
        raise AssertionError("the stored certificate was computed again")

    monkeypatch.setattr(certificate.ScheduleLab, "run", boom)
    assert main(SCHEDULE + ["--out", str(out)]) == 0  # read back
    assert capsys.readouterr().out == first  # the same table and timing (of the computation)
    assert main(SCHEDULE[:-1] + ["--seed", "3", "--no-cache", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(SCHEDULE + ["--seed", "3", "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "config.json").read_text())["config"]["seed"] == 3


@pytest.mark.parametrize("argv, marker", [
    (SCHEDULE, "certificate.json"),
    (["lowerbound", "levels", "--dim", "200", "--levels", "2", "--per-level", "1"], "levels.json"),
    (["lowerbound", "rounds", "--configs", "8,1"], "rounds.json"),
])
def test_old_and_foreign_folders_are_refused_before_any_compute(tmp_path, capsys, argv, marker):
    old = tmp_path / "old"
    old.mkdir()
    (old / marker).write_text("{}")  # what the command wrote before it stored units
    assert main(argv + ["--out", str(old)]) == 2
    err = capsys.readouterr().err
    assert f"holds a {marker} of an older" in err and "--overwrite" in err
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"config_hash": "0" * 16}))
    assert main(argv + ["--out", str(other)]) == 2
    assert "another" in (err := capsys.readouterr().err) and "--overwrite" in err
    assert sorted(p.name for p in other.iterdir()) == ["config.json"]  # nothing computed
