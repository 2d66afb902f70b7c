"""Bad command lines end in one clear error line naming the flag (exit 2), never a traceback, a
silent garbage result or a file written; resumable files repair a torn or corrupt tail in place.

Every case runs in-process through ``jscore.cli.main`` and fails before any compute, so the file
stays fast; ``test_fuzz_cli_many`` (slow) draws many more combinations with hypothesis.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys

import pytest

from jscore.cli import build_parser, main
from jscore.lowerbound import exact_experiments as E
from jscore.sweeps import store
from jscore.store import CsvRows

COMMANDS = {  # each command's shortest prefix that is otherwise valid and cheap to reject
    "demo": ["demo"],
    "sweep": ["sweep"],
    "train": ["train"],
    "scale": ["lowerbound", "scale", "--dims", "100"],
    "exact": ["lowerbound", "exact"],
}
ERROR_LINE = re.compile(r"^jscore( [a-z]+)+: error: ")


def _run(argv, capsys):
    """``(exit status, stderr)`` of ``jscore argv`` (argparse's SystemExit included)."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code
    return rc, capsys.readouterr().err


def _assert_clean(rc, err, names, out=None):
    """Exit 2, no traceback, last line ``jscore ...: error: ...`` naming one of ``names``, and
    ``out`` (if given) not created."""
    assert rc == 2, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert ERROR_LINE.match(last), err
    assert any(n in last for n in names), (names, last)
    if out is not None:
        assert not os.path.lexists(out), f"{out} was written: {os.listdir(out)}"


def _tree(path):
    return sorted((d, tuple(sorted(f))) for d, _, f in os.walk(path))


# ----------------------------------------------------------------------------- --out


def _bad_out(kind, tmp_path):
    if kind == "file":
        p = tmp_path / "afile"
        p.write_text("keep")
        return p
    if kind == "under-file":
        (tmp_path / "afile").write_text("keep")
        return tmp_path / "afile" / "sub"
    if os.geteuid() != 0:  # "unwritable": a read-only folder (root may write anywhere but /proc)
        ro = tmp_path / "ro"
        ro.mkdir()
        os.chmod(ro, 0o500)
        return ro / "out"
    if not os.path.isdir("/proc"):
        pytest.skip("running as root without /proc: no unwritable folder to test with")
    return "/proc/jscore-fuzz-out"


@pytest.mark.parametrize("kind", ["file", "under-file", "unwritable"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_unusable_out_is_refused_before_any_write(command, kind, tmp_path, capsys):
    out = _bad_out(kind, tmp_path)
    before = _tree(tmp_path)
    rc, err = _run(COMMANDS[command] + ["--out", out], capsys)
    _assert_clean(rc, err, ["--out"])
    assert _tree(tmp_path) == before
    if kind != "unwritable":
        assert (tmp_path / "afile").read_text() == "keep"
    else:
        assert not os.path.lexists(out)


# ----------------------------------------------------------------------------- the listed cases

LISTED = [  # (argv after the command prefix, flag the message must name)
    ("scale", ["--dims", "0"], "--dims"),
    ("scale", ["--dims", "-100"], "--dims"),
    ("scale", ["--dims", ""], "--dims"),
    ("scale", ["--dims", "1e12"], "--dims"),
    ("scale", ["--dims", "100.5"], "--dims"),
    ("scale", ["--eps", "0"], "--eps"),
    ("scale", ["--eps", "nan"], "--eps"),
    ("scale", ["--eps", "1/e"], "--eps"),
    ("scale", ["--rate", "0"], "--rate"),
    ("scale", ["--n-rates", "0"], "--n-rates"),
    ("scale", ["--p", "0"], "--p"),
    ("scale", ["--p", "nan"], "--p"),
    ("scale", ["--n-xi", "0"], "--n-xi"),
    ("scale", ["--offsets", "0"], "--offsets"),
    ("scale", ["--reps", "1"], "--reps"),
    ("scale", ["--k-max", "1"], "--k-max"),
    ("scale", ["--rate-lo", "0.5", "--rate-hi", "0.1"], "--rate-lo"),
    ("scale", ["--seed", "-1"], "--seed"),
    ("demo", ["--budgets", "0"], "--budgets"),
    ("demo", ["--budgets", "-5"], "--budgets"),
    ("demo", ["--budgets", "10,x"], "--budgets"),
    ("demo", ["--workers", "0"], "--workers"),
    ("demo", ["--samplers", "pc", "--budgets", "1"], "--budgets"),
    ("train", ["--dim", "0"], "--dim"),
    ("train", ["--components", "0"], "--components"),
    ("train", ["--spread", "nan"], "--spread"),
    ("train", ["--target-std", "0"], "--target-std"),
    ("train", ["--lr", "nan"], "--lr"),
    ("train", ["--ema", "1"], "--ema"),
    ("train", ["--batch", "0"], "--batch"),
    ("train", ["--chunk", "0"], "--chunk"),
    ("train", ["--eval-min", "0"], "--eval-min"),
    ("train", ["--eval-levels", "0"], "--eval-levels"),
    ("train", ["--checkpoint-every", "0"], "--checkpoint-every"),
    ("train", ["--p", "0.5"], "--p"),
    ("train", ["--p", "nan"], "--p"),
    ("train", ["--eval-max", "inf"], "--eval-max"),
    ("train", ["--eval-n", "1"], "--eval-n"),
    ("train", ["--steps", "0"], "--steps"),
    ("exact", ["--eps", "inf"], "--eps"),
    ("exact", ["--eps", "nan"], "--eps"),
    ("exact", ["--p", "inf"], "--p"),
    ("exact", ["--chains", "0"], "--chains"),
    ("exact", ["--audit-dim", "1"], "(d, rate)"),
    ("exact", ["--audit-rate", "nan"], "--audit-rate"),
    ("exact", ["--max-codewords", "inf"], "--max-codewords"),
    ("exact", ["--tv-ratios", "nan"], "--tv-ratios"),
    ("exact", ["--sigma-max", "inf"], "--sigma-max"),
    ("exact", ["--max-codewords", "nan"], "--max-codewords"),
    ("exact", ["--rates", "inf"], "--rates"),
    ("sweep", ["--chunk", "0"], "--chunk"),
    ("sweep", ["--dims", "5000000000", "--no-cache"], "--dims"),  # the lower-bound sweep's d < 2^32
]


@pytest.mark.parametrize(("command", "args", "flag"), LISTED,
                         ids=[f"{c}{' '.join(a)}" for c, a, _ in LISTED])
def test_listed_bad_flags_give_one_clear_error(command, args, flag, tmp_path, capsys):
    out = tmp_path / "out"
    rc, err = _run(COMMANDS[command] + args + ["--out", out], capsys)
    _assert_clean(rc, err, [flag], out)


def test_directory_as_sweep_config(tmp_path, capsys):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    rc, err = _run(["sweep", cfg, "--out", tmp_path / "out"], capsys)
    _assert_clean(rc, err, [str(cfg)], tmp_path / "out")
    assert "directory" in err


@pytest.mark.parametrize("dry_run", [True, False])
def test_sweep_that_cannot_fit_is_refused_before_allocation(dry_run, tmp_path, capsys):
    """d = 1e12 needs terabytes per compiled call: refused from the estimate, --dry-run included
    (it used to allocate the probe target and die with RESOURCE_EXHAUSTED)."""
    cfg = tmp_path / "big.toml"
    cfg.write_text('name = "big"\nsamplers = ["euler"]\ndims = [1000000000000]\nseeds = "0-15"\n'
                   'steps = [4]\nchunk = 16\n')
    out = tmp_path / "out"
    rc, err = _run(["sweep", cfg, "--out", out] + (["--dry-run"] if dry_run else []), capsys)
    _assert_clean(rc, err, ["--dims"], out)
    need = 3 * 16 * 10**12 * 4 / 2**30  # LIVE_CHAIN_ARRAYS x chunk x d x float32
    assert f"{need:.3g} GiB" in err and "--chunk" in err


def test_train_into_another_run_refuses_before_touching_it(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    old = json.dumps({"target": "gaussian", "dim": 3, "std": 0.3}, indent=1)
    (out / "target.json").write_text(old)
    rc, err = _run(["train", "--target", "gmm", "--dim", "4", "--out", out], capsys)
    _assert_clean(rc, err, ["--out"])
    assert "another target" in err and "--no-resume" in err
    assert (out / "target.json").read_text() == old and os.listdir(out) == ["target.json"]


# ----------------------------------------------------------------------------- generated cases


def _typed_flags():
    """``(command prefix, flag, converter)`` for every option with a range-checked ``type=``."""
    parser = build_parser()
    found = []

    def walk(p, prefix):
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sp in a.choices.items():
                    walk(sp, prefix + [name])
            elif getattr(a.type, "kind", None) is not None and a.option_strings:
                found.append((prefix, a.option_strings[0], a.type))

    walk(parser, [])
    return found


TYPED = _typed_flags()


def _bad_values(conv):
    """Values each ranged converter must reject: below its bound, non-numbers, non-finite."""
    if conv.kind is list:
        return [str(conv.lo - 1), "a,b", ",", f"{conv.lo},x"]
    below = conv.lo if conv.strict else (conv.lo - 1 if conv.lo is not None else None)
    vals = ["x", "", "1e"]
    if conv.kind is int:
        vals += ["1.5", "nan"]
    else:
        vals += ["nan", "inf", "-inf"]
    if below is not None:
        vals.append(str(below) if conv.kind is int else f"{below:g}")
    return vals


def test_the_flag_table_covers_every_command():
    prefixes = {tuple(p) for p, _, _ in TYPED}
    assert {("demo",), ("sweep",), ("lowerbound", "scale")} <= prefixes
    # ranged argparse converters left (demo, sweep, train, --workers); the config flags of
    # lowerbound scale are fuzzed below, those of exact/levels/rounds/schedule in
    # test_exact_lab.py and test_lab_configs.py
    assert len(TYPED) >= 9


def _config_flags():
    """``(flag, bad values)`` for every numeric field flag of ``lowerbound scale`` (generated
    from the config; the config checks the values): none of these is valid for any field."""
    import dataclasses

    from jscore.sweeps import LowerBoundSweep
    from jscore.sweeps.protocol import config_flag_names

    flags = config_flag_names(LowerBoundSweep)
    out = []
    for f in dataclasses.fields(LowerBoundSweep):
        if isinstance(f.default, bool) or f.name not in flags:
            continue
        if isinstance(f.default, int) or f.name == "max_queries":
            out.append((flags[f.name], ["x", "1.5", "-1", ""]))
        elif isinstance(f.default, float):
            out.append((flags[f.name], ["x", "nan", "inf", "-inf", ""]))
    return out


CONFIG_FLAGS = _config_flags()


@pytest.mark.parametrize(("flag", "values"), CONFIG_FLAGS, ids=[f for f, _ in CONFIG_FLAGS])
def test_every_config_flag_of_scale_rejects_bad_values(flag, values, tmp_path, capsys):
    assert len(CONFIG_FLAGS) >= 12
    out = tmp_path / "out"
    for value in values:
        rc, err = _run(["lowerbound", "scale", f"{flag}={value}", "--out", out], capsys)
        _assert_clean(rc, err, [flag], out)


@pytest.mark.parametrize(("prefix", "flag", "conv"), TYPED,
                         ids=[" ".join(p + [f]) for p, f, _ in TYPED])
def test_every_ranged_flag_rejects_bad_values(prefix, flag, conv, tmp_path, capsys):
    out = tmp_path / "out"
    for value in _bad_values(conv):
        rc, err = _run(prefix + [f"{flag}={value}", "--out", out], capsys)
        _assert_clean(rc, err, [flag], out)


@pytest.mark.slow
def test_fuzz_cli_many(tmp_path_factory):
    """Many random command lines: each with one invalid value (a ranged flag out of range, or a
    bad --dims / --eps list for ``lowerbound scale``) among random valid options."""
    import contextlib
    import io

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    def valid(conv):
        if conv.kind is list:
            return st.integers(conv.lo, conv.lo + 50).map(str)
        lo = conv.lo if conv.lo is not None else -10.0
        if conv.kind is int:
            return st.integers(lo + int(conv.strict), lo + 50).map(str)
        return st.floats(lo, lo + 50, exclude_min=conv.strict).map(repr)

    def invalid(conv):
        if conv.kind is list:
            return st.integers(-10**6, conv.lo - 1).map(str)
        if conv.kind is int:
            bad = st.one_of(st.sampled_from(["x", "2.5", "nan", ""]), st.floats().map(repr))
            if conv.lo is not None:
                bad = st.one_of(bad, st.integers(-10**12, conv.lo - 1).map(str))
            return bad
        bad = st.sampled_from(["nan", "inf", "-inf", "x", "1e400"])
        if conv.lo is not None:
            bad = st.one_of(bad, st.floats(-1e300, conv.lo, exclude_max=not conv.strict)
                            .map(repr))
        return bad

    by_prefix: dict = {}
    for prefix, flag, conv in TYPED:
        by_prefix.setdefault(tuple(prefix), []).append((flag, conv))

    @st.composite
    def command_line(draw):
        prefix = draw(st.sampled_from(sorted(by_prefix)))
        flags = by_prefix[prefix]
        argv = list(prefix)
        for flag, conv in draw(st.lists(st.sampled_from(flags), max_size=4, unique=True)):
            argv.append(f"{flag}={draw(valid(conv))}")
        if prefix == ("lowerbound", "scale") and draw(st.booleans()):
            dims = draw(st.lists(st.integers(2, 10**6).map(str), max_size=3))
            bad = draw(st.sampled_from(["0", "1", "-5", "2.5", "1e12", "nan", "inf"]))
            dims.insert(draw(st.integers(0, len(dims))), bad)
            return argv + [f"--dims={','.join(dims)}"], "--dims"
        flag, conv = draw(st.sampled_from(flags))
        return argv + [f"{flag}={draw(invalid(conv))}"], flag

    out = tmp_path_factory.mktemp("fuzz") / "out"

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(command_line())
    def check(case):
        argv, flag = case
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = main(argv + ["--out", str(out)])
            except SystemExit as e:
                rc = e.code
        text = err.getvalue()
        assert rc == 2 and "Traceback" not in text, (argv, text)
        assert flag in text.strip().splitlines()[-1], (argv, text)
        assert not os.path.lexists(out), argv

    check()


# ----------------------------------------------------------------------------- crash safety


def test_resumable_csv_cuts_a_torn_last_line_in_place(tmp_path):
    path = tmp_path / "success_units.csv"
    book = CsvRows(path, ["a", "b", "v"], ["a", "b"])
    book.append(dict(a=1, b=0.25, v=3.0))
    whole = path.read_bytes()
    for torn in (b"2,0.5,4", b"2,0.5,", b"2"):  # killed mid-row (even after the last value)
        path.write_bytes(whole + torn)
        again = CsvRows(path, ["a", "b", "v"], ["a", "b"])
        assert path.read_bytes() == whole  # repaired on open, before anything is appended
        assert not again.done(a=2, b=0.5)
    again.append(dict(a=2, b=0.5, v=4.0))
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["a", "b", "v"], ["1", "0.25", "3.0"], ["2", "0.5", "4.0"]]
    path.write_bytes(b"a,b")  # a torn header: the file starts over
    fresh = CsvRows(path, ["a", "b", "v"], ["a", "b"])
    assert path.read_bytes() == b"" and fresh.rows == []


def test_corrupt_sweep_rows_are_removed_from_the_file(tmp_path):
    path = str(tmp_path / "rows-p0.jsonl")
    row = {"cell_id": "c000", "dim": 4, "num_steps": 2, "chunk": 0, "v": 1.5}
    good = [json.dumps({**row, "chunk": i}).encode() + b"\n" for i in range(3)]
    junk = [b"\x00\xffnot json\n", b'{"cell_id": "c000"}\n', b"[1, 2]\n", b"\n"]
    with open(path, "wb") as f:
        f.write(good[0] + junk[0] + good[1] + junk[1] + junk[2] + junk[3] + good[2] + b'{"cell')
    assert [r["chunk"] for r in store.read_rows(str(tmp_path))] == [0, 1, 2]
    with store.RowWriter(path) as w:  # opening to append repairs the file
        with open(path, "rb") as f:
            assert f.read() == b"".join(good)
        w.append({**row, "chunk": 3})
    assert [r["chunk"] for r in store.read_rows(str(tmp_path))] == [0, 1, 2, 3]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]
    clean = os.path.getmtime(path)
    with store.RowWriter(path):  # a clean file is left alone
        pass
    assert os.path.getmtime(path) == clean


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
