"""Results that are never lost: atomic JSON-lines rows, resume, consolidation to CSV/Parquet.

Each process appends to its own ``rows-p<i>.jsonl``. A row is one ``os.write`` of one line on an
``O_APPEND`` descriptor followed by ``fsync``, so after a crash (even SIGKILL) the file holds whole
rows plus at most one torn last line. Readers ignore a torn line; the writer cuts it off before
appending and drops corrupt complete lines (rewriting the file atomically). Rows are keyed by ``(cell, dim, num_steps, chunk)``: a restarted sweep skips the keys it
finds and recomputes the rest, and consolidation keeps the first row of any key, so no row is lost
or duplicated.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import tempfile

ROWS_GLOB = "rows-p*.jsonl"


def row_key(row: dict) -> tuple:
    return (row["cell_id"], int(row["dim"]), int(row["num_steps"]), int(row["chunk"]))


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


class RowWriter:
    """Append-only, fsynced JSON-lines writer (one process per file)."""

    def __init__(self, path: str):
        self.path = path
        existed = os.path.exists(path)
        if existed:
            _repair_tail(path)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if not existed:
            _fsync_dir(os.path.dirname(os.path.abspath(path)))

    def append(self, row: dict) -> None:
        data = (json.dumps(row, separators=(",", ":"), default=_json_default) + "\n").encode()
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _json_default(o):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def cut_torn_tail(path: str) -> int:
    """Truncate a torn last line (no trailing newline, left by a crash mid-write) in place and
    fsync; returns the number of bytes cut (0 when the file ends in a newline or is empty)."""
    size = os.path.getsize(path)
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        # find the last newline
        pos, block = size, 1 << 16
        keep = 0
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            pos = start
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return size - keep


def _parse_row(line: bytes):
    """The row of one complete line, or None for a corrupt one (bad JSON or no row key)."""
    try:
        row = json.loads(line)
        row_key(row)
    except (ValueError, TypeError, KeyError):  # JSONDecodeError/UnicodeDecodeError are ValueErrors
        return None
    return row


def _repair_tail(path: str) -> None:
    """Make ``path`` hold only whole, valid rows before appending: cut a torn last line in place,
    then, if any complete line is corrupt, rewrite the file atomically without it."""
    cut_torn_tail(path)
    with open(path, "rb") as f:
        lines = f.readlines()
    good = [ln for ln in lines if _parse_row(ln) is not None]
    if len(good) < len(lines):
        atomic_write_text(path, b"".join(good).decode("utf-8"))


def read_rows_file(path: str) -> list[dict]:
    """Complete, valid rows of one file (a torn last line and corrupt lines are ignored)."""
    rows = []
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break  # torn tail (a writer may still be appending)
            row = _parse_row(line)
            if row is not None:
                rows.append(row)
    return rows


def read_rows(out_dir: str) -> list[dict]:
    """All complete rows of all processes, first occurrence of each key, in file order."""
    rows, seen = [], set()
    for path in sorted(glob.glob(os.path.join(out_dir, ROWS_GLOB))):
        for row in read_rows_file(path):
            k = row_key(row)
            if k in seen:
                continue
            seen.add(k)
            rows.append(row)
    return rows


def atomic_write_text(path: str, text: str) -> None:
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(d)


def write_table(path_stem: str, records: list[dict]) -> list[str]:
    """Write ``records`` (flat dicts) to ``<stem>.csv`` and, if pyarrow is installed, ``.parquet``."""
    import io

    cols: list[str] = []
    for r in records:
        for k in r:
            if k not in cols:
                cols.append(k)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in records:
        w.writerow({k: _cell(v) for k, v in r.items()})
    atomic_write_text(path_stem + ".csv", buf.getvalue())
    paths = [path_stem + ".csv"]
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return paths
    table = pa.Table.from_pylist([{k: _cell(r.get(k)) for k in cols} for r in records])
    tmp = path_stem + ".parquet.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, path_stem + ".parquet")
    paths.append(path_stem + ".parquet")
    return paths


def _cell(v):
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, sort_keys=True, default=_json_default)
    return v


def flatten_row(row: dict) -> dict:
    """Scalar columns of a row (per-seed arrays dropped; nested dicts as ``a.b`` columns)."""
    out = {}
    for k, v in row.items():
        if k == "per_seed":
            continue
        if isinstance(v, dict) and k in ("summary", "metrics", "versions", "device", "cell"):
            for kk, vv in v.items():
                out[f"{k}.{kk}"] = vv
        else:
            out[k] = v
    return out


__all__ = ["RowWriter", "cut_torn_tail", "read_rows", "read_rows_file", "row_key", "write_table", "flatten_row", "atomic_write_text"]
