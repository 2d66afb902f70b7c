"""The sampler sweeps' rows on :mod:`jscore.store`: the unit key and the flat table of a row.

Each process appends to its own ``rows-p<i>.jsonl`` through a :class:`jscore.store.RowStore`
keyed by :func:`row_key`, ``(cell, dim, num_steps, chunk)``: a restarted sweep skips the keys it
finds and recomputes the rest, and consolidation keeps the first row of any key, so no row is lost
or duplicated (torn and corrupt lines: see :mod:`jscore.store`).
"""

from __future__ import annotations

from .. import store as _store
from ..store import atomic_write, cut_torn_tail, json_default, write_table

ROWS_GLOB = "rows-p*.jsonl"


def row_key(row: dict) -> tuple:
    """The unit of a sweep row: ``(cell_id, dim, num_steps, chunk)``."""
    return (row["cell_id"], int(row["dim"]), int(row["num_steps"]), int(row["chunk"]))


def row_store(out_dir: str, pid: int = 0) -> _store.RowStore:
    """The sweep rows of ``out_dir``; this process writes ``rows-p<pid>.jsonl``."""
    return _store.RowStore(out_dir, row_key, part=f"p{pid}", what="sweep")


def RowWriter(path: str) -> _store.JsonlWriter:
    """Fsynced appender of sweep rows to one file (repairs a torn tail and corrupt lines first)."""
    return _store.JsonlWriter(path, row_key)


def read_rows_file(path: str) -> list[dict]:
    """Complete, valid sweep rows of one file."""
    return _store.read_jsonl(path, row_key)


def read_rows(out_dir: str) -> list[dict]:
    """All complete rows of all processes, first occurrence of each key, in file order."""
    return row_store(out_dir).rows()


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


# old names, for callers not yet ported (other branches); use jscore.store directly
atomic_write_text = atomic_write
_json_default = json_default

__all__ = ["RowWriter", "atomic_write", "cut_torn_tail", "flatten_row", "json_default", "read_rows", "read_rows_file", "row_key",
           "row_store", "write_table"]
