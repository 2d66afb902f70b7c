"""jscore.store: atomic 0644 files, fsynced keyed rows with torn-line repair, resume/overwrite/refuse,
CSV + Parquet tables and pandas read-back."""

import json
import math
import os
import pathlib
import stat

import numpy as np
import pytest

from jscore import store


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _key(row):
    return (row["unit"],)


def test_atomic_write_creates_0644_files_for_bytes_text_and_callbacks(tmp_path):
    old = os.umask(0o077)  # even a strict umask: result files are shared-folder readable
    try:
        p1 = store.atomic_write(tmp_path / "a.bin", b"\x00\x01")
        p2 = store.atomic_write(tmp_path / "sub" / "b.txt", "h\u00e9")
        p3 = store.atomic_write(tmp_path / "c.npy", lambda f: np.save(f, np.arange(3)))
        rows = store.RowStore(tmp_path / "run", _key).open("h0")
        rows.append({"unit": 1})
        rows.close()
        store.append_jsonl(tmp_path / "d.jsonl", {"x": 1})
        tables = store.write_table(tmp_path / "t", [{"a": 1}])
        p4 = store.write_json(tmp_path / "j.json", {"v": np.float32(0.5), "a": np.arange(2)})
        p5 = store.write_csv(tmp_path / "w.csv", [{"a": 1}, {"b": [1, 2]}])
        book = store.CsvRows(tmp_path / "u.csv", ["k", "v"], ["k"])
        book.append({"k": 1, "v": 2.5})
    finally:
        os.umask(old)
    for p in (p1, p2, p3, p4, p5, book.path, rows.path, rows.config_path, tmp_path / "d.jsonl", *tables):
        assert _mode(p) == 0o644, p
    assert pathlib.Path(p1).read_bytes() == b"\x00\x01"
    assert pathlib.Path(p2).read_text(encoding="utf-8") == "h\u00e9"
    np.testing.assert_array_equal(np.load(p3), np.arange(3))
    assert json.loads(pathlib.Path(p4).read_text()) == {"v": 0.5, "a": [0, 1]}
    assert pathlib.Path(p5).read_text().splitlines() == ["a,b", "1,", ',"[1, 2]"']
    assert pathlib.Path(book.path).read_text().splitlines() == ["k,v", "1,2.5"]
    assert sorted(os.listdir(tmp_path)) == ["a.bin", "c.npy", "d.jsonl", "j.json", "run", "sub", "t.csv",
                                            "t.parquet", "u.csv", "w.csv"]
    with pytest.raises(ValueError, match="no records"):
        store.write_csv(tmp_path / "empty.csv", [])


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    p = store.atomic_write(tmp_path / "f.txt", "old")

    def boom(f):
        f.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        store.atomic_write(p, boom)
    assert pathlib.Path(p).read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]
    with pytest.raises(TypeError, match="data must be bytes, str or a callable"):
        store.atomic_write(p, 3)


def test_torn_last_line_is_skipped_then_cut_and_corrupt_lines_dropped(tmp_path):
    s = store.RowStore(tmp_path, _key).open("h")
    for u in range(3):
        s.append({"unit": u, "v": [u, 0.5]})
    s.close()
    with open(s.path, "ab") as f:  # a crash mid-write: no newline
        f.write(b'{"unit": 3, "v": [3, 0.')
    assert [r["unit"] for r in s.rows()] == [0, 1, 2]
    size = os.path.getsize(s.path)
    # a complete but corrupt line in the middle (bad JSON) and a row without a key
    lines = pathlib.Path(s.path).read_bytes().split(b"\n")
    body = b"\n".join(lines[:1] + [b"{not json", b'{"nokey": 1}'] + lines[1:])
    pathlib.Path(s.path).write_bytes(body)
    assert [r["unit"] for r in s.rows()] == [0, 1, 2]
    s2 = store.RowStore(tmp_path, _key).open("h")
    s2.append({"unit": 3, "v": [3, 0.5]})  # the first append repairs the file
    s2.close()
    raw = pathlib.Path(s.path).read_bytes()
    assert raw.count(b"\n") == 4 and raw.endswith(b"\n") and b"not json" not in raw and b"nokey" not in raw
    assert [r["unit"] for r in s2.rows()] == [0, 1, 2, 3]
    assert size > 0 and store.cut_torn_tail(s.path) == 0


def test_cut_torn_tail_counts_the_bytes_it_cuts(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"a":1}\n{"a":2')
    assert store.cut_torn_tail(p) == len(b'{"a":2') and p.read_bytes() == b'{"a":1}\n'
    p.write_bytes(b"no newline at all")
    assert store.cut_torn_tail(p) == 17 and p.read_bytes() == b""


def test_rows_of_several_parts_keep_the_first_row_of_each_key(tmp_path):
    a = store.RowStore(tmp_path, _key, part="p0").open("h")
    b = store.RowStore(tmp_path, _key, part="p1").open("h")
    a.append({"unit": 0, "who": "a"})
    b.append({"unit": 0, "who": "b"})
    b.append({"unit": 1, "who": "b"})
    a.close(), b.close()
    assert [(r["unit"], r["who"]) for r in a.rows()] == [(0, "a"), (1, "b")]
    assert a.keys() == {(0,), (1,)}
    with pytest.raises(KeyError):
        a.append({"no": "unit"})


def test_resume_overwrite_refuse_and_config_hash_mismatch(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ValueError, match="holds no rows"):
        store.RowStore(run, _key).open("h1", resume=True)
    s = store.RowStore(run, _key).open("h1", {"spec": {"d": 4}})
    assert json.loads(pathlib.Path(s.config_path).read_text()) == {"config_hash": "h1", "spec": {"d": 4}}
    s.append({"unit": 0})
    s.close()
    # auto and True resume; False refuses, naming the flags
    assert store.RowStore(run, _key).open("h1").rows() == [{"unit": 0}]
    assert store.RowStore(run, _key).open("h1", resume=True).rows() == [{"unit": 0}]
    with pytest.raises(ValueError, match=r"already holds rows.*--resume.*--overwrite"):
        store.RowStore(run, _key).open("h1", resume=False)
    with pytest.raises(ValueError, match=r"another run configuration \(hash h1 != h2\).*--out.*--overwrite"):
        store.RowStore(run, _key).open("h2")
    with pytest.raises(ValueError, match="resume must be"):
        store.RowStore(run, _key).open("h1", resume="yes")
    s = store.RowStore(run, _key).open("h2", overwrite=True)
    assert s.rows() == [] and json.loads(pathlib.Path(s.config_path).read_text())["config_hash"] == "h2"


def test_config_hash_is_canonical():
    assert store.config_hash({"a": 1, "b": [1, 2]}) == store.config_hash({"b": [1, 2], "a": 1})
    assert store.config_hash({"a": 1}) != store.config_hash({"a": 2})
    assert len(store.config_hash({})) == 16


def test_table_round_trips_through_csv_parquet_and_read_dataframe(tmp_path):
    recs = [{"cell": "euler", "dim": 16, "slope": 0.5, "dims": [16, 64]},
            {"cell": "heun", "dim": 64, "slope": math.nan, "extra": 3}]
    csv_path, pq_path = store.write_table(tmp_path / "slopes", recs)
    for path in (pq_path, tmp_path):
        df = store.read_dataframe(path, table="slopes") if path == tmp_path else store.read_dataframe(path)
        assert list(df.columns) == ["cell", "dim", "slope", "dims", "extra"]
        assert df["cell"].tolist() == ["euler", "heun"] and df["dim"].tolist() == [16, 64]
        assert df["slope"].iloc[0] == 0.5 and math.isnan(df["slope"].iloc[1])
        assert json.loads(df["dims"].iloc[0]) == [16, 64]
        assert math.isnan(df["extra"].iloc[0]) and df["extra"].iloc[1] == 3
    df = store.read_dataframe(csv_path)
    assert df["cell"].tolist() == ["euler", "heun"] and df["dim"].tolist() == [16, 64]
    with pytest.raises(ValueError, match=r"no table 'qstar'.*\['slopes'\]"):
        store.read_dataframe(tmp_path, table="qstar")


def test_read_dataframe_of_a_folder_with_rows_only_flattens_them(tmp_path):
    s = store.RowStore(tmp_path, _key).open("h")
    s.append({"unit": 0, "summary": {"q": 4}})
    s.append({"unit": 1, "summary": {"q": 8}})
    s.close()
    df = store.read_dataframe(tmp_path)
    assert df["unit"].tolist() == [0, 1] and df["summary.q"].tolist() == [4, 8]
    assert store.read_dataframe(s.path)["summary.q"].tolist() == [4, 8]


def test_read_dataframe_of_a_unit_experiment_folder_reads_its_units(tmp_path):
    """A unit experiment stores ``units-p<i>.jsonl``: without a results table, those rows
    (every part, flattened); a sampler sweep's ``rows-*`` files come first when both exist."""
    for part, units in (("p0", [0, 2]), ("p1", [1])):
        s = store.RowStore(tmp_path, _key, part=part, stem="units").open("h")
        for u in units:
            s.append({"unit": u, "out": {"q": 10 * u}})
        s.close()
    df = store.read_dataframe(tmp_path)
    assert sorted(df["unit"]) == [0, 1, 2] and sorted(df["out.q"]) == [0, 10, 20]
    s = store.RowStore(tmp_path, _key).open("h")
    s.append({"unit": 7})
    s.close()
    assert store.read_dataframe(tmp_path)["unit"].tolist() == [7]


def test_table_with_a_column_mixing_text_and_numbers(tmp_path):
    """Parquet cannot hold text and numbers in one column: that column is stored as text (as the
    CSV has it), the other columns keep their types, and a missing value is a null."""
    records = [{"k": 4, "v": 1.5, "w": 2}, {"k": "all", "v": 2.5}]
    csv_path, pq_path = store.write_table(tmp_path / "t", records)
    df = store.read_dataframe(pq_path)
    assert df["k"].tolist() == ["4", "all"] and df["v"].tolist() == [1.5, 2.5]
    assert df["w"].iloc[0] == 2 and df["w"].isna().iloc[1]
    assert store.read_dataframe(csv_path)["k"].tolist() == ["4", "all"]
