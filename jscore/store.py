"""Result files that are never half-written: atomic writes, fsynced JSON-lines rows, tables.

Every file jscore writes for a user (sweep rows and tables, network checkpoints, figures, demo
rows) goes through this module, so a crash (even SIGKILL) leaves either the old file or the new
one, never a mixture, and every file is created with mode ``0644`` (readable in a shared run
folder).

- :func:`atomic_write`: bytes, text, or a writer callback into a temporary file in the same folder,
  ``fsync``, ``os.replace``, ``fsync`` of the folder.
- :class:`RowStore`: the rows of one run folder, one JSON object per line in
  ``<stem>-<part>.jsonl`` (one file per writing process), each row keyed by a *unit* key; a
  ``config.json`` sidecar holds the hash of the configuration that produced them. Opening a run
  folder resumes it, discards it (``overwrite``) or refuses with an error naming the flag to
  pass. A row is one ``os.write`` on an ``O_APPEND`` descriptor plus ``fsync``, so after a crash
  a file holds whole rows and at most one torn last line; readers skip it and the next writer
  cuts it off (and drops corrupt complete lines) before appending.
- :class:`CsvRows`: the same keyed, fsynced, resumable rows as one CSV file with fixed columns
  (the exact-codebook lab's unit tables).
- :func:`write_json`, :func:`write_csv`, :func:`write_table`: a JSON document, records to one CSV,
  records to ``<stem>.csv`` and ``<stem>.parquet``, each atomically.
- :func:`read_dataframe`: a run folder's table (or its rows) as one ``pandas.DataFrame``.

This module imports only the standard library at load time (pandas and pyarrow on first use).
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import os
import tempfile
from typing import Callable

FILE_MODE = 0o644
CONFIG_FILE = "config.json"


# ----------------------------------------------------------------------------- atomic files


def fsync_dir(path) -> None:
    """``fsync`` a folder, so a rename or a new file in it survives a power cut (no-op where
    folders cannot be opened)."""
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write(path, data, *, mode: int = FILE_MODE) -> str:
    """Replace ``path`` with ``data`` atomically; returns ``path`` as a string.

    ``data`` is ``bytes``, ``str`` (written as UTF-8) or a callable ``write(f)`` that writes into
    the binary file object ``f`` (e.g. ``lambda f: fig.savefig(f, format="png")``). The parent
    folder is created if missing; the file gets ``mode`` (default ``0o644``).
    """
    path = os.fspath(path)
    if not (isinstance(data, (bytes, bytearray, memoryview, str)) or callable(data)):
        raise TypeError(f"atomic_write: data must be bytes, str or a callable write(f), got {type(data).__name__}")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(folder)
    return path


def json_default(o):
    """``json.dumps(default=...)`` for NumPy scalars and NumPy/JAX arrays."""
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray) or hasattr(o, "__array__"):  # NumPy and JAX arrays
        return np.asarray(o).tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path, obj, *, indent: int = 1) -> str:
    """Write ``obj`` as JSON to ``path`` atomically (NumPy scalars and arrays allowed); returns ``path``."""
    return atomic_write(path, json.dumps(obj, indent=indent, default=json_default))


def config_hash(config) -> str:
    """First 16 hex digits of the SHA-256 of ``config`` as canonical JSON (sorted keys)."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# ----------------------------------------------------------------------------- JSON-lines rows


def _encode_row(row: dict) -> bytes:
    return (json.dumps(row, separators=(",", ":"), default=json_default) + "\n").encode()


def append_jsonl(path, row: dict) -> None:
    """Append one row to ``path`` as a single fsynced line (file created ``0644``)."""
    path = os.fspath(path)
    new = not os.path.exists(path)
    with JsonlWriter(path) as w:
        w.append(row)
    if new:
        fsync_dir(os.path.dirname(os.path.abspath(path)))


def cut_torn_tail(path) -> int:
    """Truncate a torn last line (no trailing newline, left by a crash mid-write) in place and
    ``fsync``; returns the number of bytes cut (0 when the file ends in a newline or is empty)."""
    size = os.path.getsize(path)
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        pos, block, keep = size, 1 << 16, 0
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            i = f.read(pos - start).rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            pos = start
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return size - keep


def _parse(line: bytes, key: Callable | None):
    """The row of one complete line, or None for a corrupt one (bad JSON, not an object, no key)."""
    try:
        row = json.loads(line)
        if not isinstance(row, dict):
            return None
        if key is not None:
            key(row)
    except (ValueError, TypeError, KeyError):  # JSONDecodeError/UnicodeDecodeError are ValueErrors
        return None
    return row


def read_jsonl(path, key: Callable | None = None) -> list[dict]:
    """Complete, valid rows of one file: a torn last line and corrupt lines (bad JSON, or
    ``key(row)`` failing) are skipped."""
    rows = []
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break  # torn tail (a writer may still be appending)
            row = _parse(line, key)
            if row is not None:
                rows.append(row)
    return rows


def repair_jsonl(path, key: Callable | None = None) -> None:
    """Leave only whole, valid rows in ``path``: cut a torn last line in place, then, if a
    complete line is corrupt, rewrite the file atomically without it."""
    cut_torn_tail(path)
    with open(path, "rb") as f:
        lines = f.readlines()
    good = [ln for ln in lines if _parse(ln, key) is not None]
    if len(good) < len(lines):
        atomic_write(path, b"".join(good))


class JsonlWriter:
    """Append-only, fsynced JSON-lines writer for one file (one writing process per file).

    Opening an existing file repairs it first (:func:`repair_jsonl` with ``key``).
    """

    def __init__(self, path, key: Callable | None = None):
        self.path = os.fspath(path)
        existed = os.path.exists(self.path)
        if existed:
            repair_jsonl(self.path, key)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        if not existed:
            os.fchmod(self.fd, FILE_MODE)  # whatever the umask

    def append(self, row: dict) -> None:
        """Write ``row`` as one line and ``fsync`` it."""
        view = memoryview(_encode_row(row))
        while view:
            view = view[os.write(self.fd, view):]
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RowStore:
    """The keyed rows of one run folder.

    **Arguments:**
    - ``directory``: the run folder (created by :meth:`open`).
    - ``key``: ``key(row) -> hashable``, the unit a row belongs to; rows without one are corrupt.
    - ``part``: this process's file, ``<stem>-<part>.jsonl`` (e.g. ``"p0"``); ``stem``: ``"rows"``.
    - ``what``: how error messages name the run (``"sweep"``).

    :meth:`open` checks the folder against a configuration hash, :meth:`append` adds a row,
    :meth:`rows` reads back every part's valid rows (first row of each key).
    """

    def __init__(self, directory, key: Callable, *, part: str = "p0", stem: str = "rows", what: str = "run"):
        if not callable(key):
            raise TypeError(f"RowStore: key must be a callable key(row), got {key!r}")
        self.directory = os.fspath(directory)
        self.key, self.part, self.stem, self.what = key, str(part), stem, what
        self.path = os.path.join(self.directory, f"{stem}-{part}.jsonl")
        self._writer = None

    @property
    def config_path(self) -> str:
        return os.path.join(self.directory, CONFIG_FILE)

    def files(self) -> list[str]:
        """Every part's rows file, sorted."""
        return sorted(glob.glob(os.path.join(glob.escape(self.directory), f"{self.stem}-*.jsonl")))

    def read_config(self) -> dict | None:
        """The sidecar (``{"config_hash": ..., ...}``), or None when there is none."""
        if not os.path.exists(self.config_path):
            return None
        with open(self.config_path) as f:
            return json.load(f)

    def open(self, config_hash: str, payload: dict | None = None, *, resume="auto", overwrite: bool = False):
        """Make the folder hold rows of configuration ``config_hash``; returns ``self``.

        - ``overwrite=True``: delete existing rows files and sidecar first.
        - A sidecar of another hash: ``ValueError`` (use another folder or ``overwrite``).
        - ``resume="auto"``: keep existing rows; ``True``: they must exist; ``False``: they must not.

        A new sidecar ``{"config_hash": config_hash, **payload}`` is written atomically.
        """
        if resume not in ("auto", True, False):
            raise ValueError(f"resume must be 'auto', True or False, got {resume!r}")
        if overwrite:
            for p in self.files():
                os.unlink(p)
            if os.path.exists(self.config_path):
                os.unlink(self.config_path)
        os.makedirs(self.directory, exist_ok=True)
        has_rows = bool(self.files())
        old = self.read_config()
        if old is not None:
            if old.get("config_hash") != config_hash:
                raise ValueError(
                    f"{self.directory!r} holds results of another {self.what} configuration (hash "
                    f"{old.get('config_hash')} != {config_hash}); use another output folder (--out), or "
                    "pass --overwrite (overwrite=True) to discard them."
                )
            if resume is False and has_rows:
                raise ValueError(
                    f"{self.directory!r} already holds rows of this {self.what}; resume it (--resume, "
                    "resume=True) or pass --overwrite (overwrite=True)."
                )
        else:
            if resume is True and not has_rows:
                raise ValueError(f"--resume: {self.directory!r} holds no rows of this {self.what} to resume.")
            atomic_write(self.config_path, json.dumps({"config_hash": config_hash, **(payload or {})}, indent=2,
                                                      default=json_default))
        return self

    def rows(self) -> list[dict]:
        """Valid rows of every part, first row of each key, in file order."""
        rows, seen = [], set()
        for path in self.files():
            for row in read_jsonl(path, self.key):
                k = self.key(row)
                if k not in seen:
                    seen.add(k)
                    rows.append(row)
        return rows

    def keys(self) -> set:
        return {self.key(r) for r in self.rows()}

    def append(self, row: dict) -> None:
        """Append ``row`` (it must have a key) to this part's file, fsynced."""
        self.key(row)
        if self._writer is None:
            new = not os.path.exists(self.path)
            self._writer = JsonlWriter(self.path, self.key)
            if new:
                fsync_dir(self.directory)
        self._writer.append(row)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class CsvRows:
    """Append-only CSV of finished units with fixed columns, keyed by ``key_fields`` (resume = skip
    the keys already there): the CSV twin of :class:`RowStore` for experiments whose unit table is
    read as a spreadsheet.

    Each :meth:`append` is one ``os.write`` of one line on an ``O_APPEND`` descriptor plus
    ``fsync`` (file created ``0644``), so an interrupted run loses at most the unit in progress.
    Opening the file cuts a torn last line in place (that unit is recomputed); a row with an empty
    last column is dropped and a key written twice counts once. Keys compare as ``str`` of the
    values (Python floats round-trip through ``repr``); :attr:`rows` and :meth:`select` give rows
    as strings, as read back from the file.
    """

    def __init__(self, path, fields, key_fields):
        self.path = os.fspath(path)
        self.fields = list(fields)
        self.key_fields = list(key_fields)
        missing = [k for k in self.key_fields if k not in self.fields]
        if missing:
            raise ValueError(f"key fields {missing} are not columns of {self.path}")
        rows = []
        if os.path.exists(self.path):
            cut_torn_tail(self.path)
        if os.path.exists(self.path) and os.path.getsize(self.path) > 0:
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                if reader.fieldnames != self.fields:
                    raise ValueError(
                        f"{self.path} has columns {reader.fieldnames}, expected {self.fields}; "
                        "it was written by another version or experiment. Use a new --out folder "
                        "or delete the file.")
                rows = [r for r in reader if r.get(self.fields[-1]) not in (None, "")]
        self.rows, self._done = [], set()
        for r in rows:
            k = self._key(r)
            if k not in self._done:
                self._done.add(k)
                self.rows.append(r)

    def _key(self, row):
        return tuple(str(row[k]) for k in self.key_fields)

    def done(self, **key) -> bool:
        """Whether the unit with these key values is already in the file."""
        return self._key(key) in self._done

    def append(self, row: dict) -> None:
        """Write one finished unit as one fsynced line (the header first, for a new file)."""
        if list(row) != self.fields:
            raise ValueError(f"row columns {list(row)} differ from {self.fields}")
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.fields)
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        if new:
            w.writeheader()
        w.writerow(row)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            if new:
                os.fchmod(fd, FILE_MODE)  # whatever the umask
            view = memoryview(buf.getvalue().encode())
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            fsync_dir(os.path.dirname(os.path.abspath(self.path)))
        srow = {k: str(v) for k, v in row.items()}
        self.rows.append(srow)
        self._done.add(self._key(srow))

    def select(self, **match):
        """Rows (as strings) whose columns equal ``match`` (compared as ``str``)."""
        return [r for r in self.rows if all(r[k] == str(v) for k, v in match.items())]


# ----------------------------------------------------------------------------- tables


def _cell(v):
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, sort_keys=True, default=json_default)
    return v


def _columns(records: list[dict]) -> list[str]:
    """The union of the records' keys, in first-seen order."""
    cols: list[str] = []
    for r in records:
        cols.extend(k for k in r if k not in cols)
    return cols


def _csv_text(records: list[dict]) -> str:
    cols = _columns(records)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in records:
        w.writerow({k: _cell(v) for k, v in r.items()})
    return buf.getvalue()


def write_csv(path, records: list[dict]) -> str:
    """Write flat ``records`` to the CSV file ``path`` atomically; returns ``path``.

    Columns are the union of the records' keys in first-seen order; dict/list values are stored
    as JSON strings; a missing value is an empty field. Raises ``ValueError`` for no records.
    """
    if not records:
        raise ValueError(f"write_csv: no records to write to {os.fspath(path)!r}.")
    return atomic_write(path, _csv_text(records))


def _arrow_column(values: list):
    """``values`` as one Arrow column; a column mixing kinds Arrow cannot hold together (text and
    numbers) is stored as text, each value as its ``str`` (None stays null), as in the CSV."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def write_table(path_stem, records: list[dict]) -> list[str]:
    """Write flat ``records`` to ``<stem>.csv`` and ``<stem>.parquet`` atomically; returns both paths.

    Columns are the union of the records' keys in first-seen order; dict/list values are stored as
    JSON strings; a missing value is an empty CSV field and a Parquet null; a Parquet column whose
    values mix text and numbers holds them as text.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    stem = os.fspath(path_stem)
    csv_path = atomic_write(stem + ".csv", _csv_text(records))
    table = pa.table({k: _arrow_column([_cell(r.get(k)) for r in records])
                      for k in _columns(records)})
    pq_path = atomic_write(stem + ".parquet", lambda f: pq.write_table(table, f))
    return [csv_path, pq_path]


def read_dataframe(path, table: str = "results"):
    """One table of a run as a ``pandas.DataFrame``.

    ``path`` is a ``.parquet``, ``.csv`` or ``.jsonl`` file, or a run folder: then
    ``<table>.parquet``, else ``<table>.csv``, else (for ``table="results"``) the stored rows,
    nested objects flattened to ``a.b`` columns: every ``rows-*.jsonl`` row (a sampler sweep),
    else every ``units-*.jsonl`` row (one per finished unit of a unit experiment).
    """
    import pandas as pd

    path = os.fspath(path)
    if os.path.isdir(path):
        for ext in (".parquet", ".csv"):
            p = os.path.join(path, table + ext)
            if os.path.exists(p):
                return read_dataframe(p)
        for stem in ("rows", "units") if table == "results" else ():
            parts = sorted(glob.glob(os.path.join(glob.escape(path), f"{stem}-*.jsonl")))
            if parts:
                return pd.json_normalize([r for p in parts for r in read_jsonl(p)])
        have = sorted({os.path.splitext(f)[0] for f in os.listdir(path) if f.endswith((".csv", ".parquet"))})
        raise ValueError(f"read_dataframe: no table {table!r} in {path!r}; tables there: {have or 'none'}.")
    if path.endswith(".parquet"):
        return pd.read_parquet(path)
    if path.endswith(".csv"):
        return pd.read_csv(path)
    if path.endswith(".jsonl"):
        return pd.json_normalize(read_jsonl(path))
    raise ValueError(f"read_dataframe: {path!r} is not a folder or a .parquet, .csv or .jsonl file.")


__all__ = [
    "FILE_MODE",
    "CsvRows",
    "JsonlWriter",
    "RowStore",
    "append_jsonl",
    "atomic_write",
    "config_hash",
    "cut_torn_tail",
    "fsync_dir",
    "json_default",
    "read_dataframe",
    "read_jsonl",
    "repair_jsonl",
    "write_csv",
    "write_json",
    "write_table",
]
