"""The customers table's heavy columns served from a memory-mapped Arrow file, so a 10M-customer build
fits in memory.

Profile texts, the list columns (drivers, top categories, top/suggested products) and the model's f_*
features are most of a build's bytes, and pandas holds list cells as Python objects (~45 GB at 10M
customers). No filter or sort reads them, only the rows a tool returns, so they stay in an uncompressed
Arrow IPC file beside customers.parquet, mapped read-only: pages come from the file on first touch and the
kernel may drop them again, so the process's own memory grows only with the columns filters need.

The file is derived, not part of the build: written atomically on first load, keyed by the parquet's
size and mtime (a new build is a new file), and checked against a CRC of its bytes before it is mapped,
so a stale or damaged cache is rebuilt instead of answering wrong. Its key and CRC live in a small JSON
sidecar. Neither file is in the build's manifest, which only checks the files it lists.
"""

from __future__ import annotations

import errno
import json
import logging
import mmap
import os
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa

from predictor.atomic import atomic_path, write_json_atomic

log = logging.getLogger(__name__)

FORMAT = 1
BATCH_ROWS = 262_144  # ~130 MB of profile text a batch: bounds the writer's memory, whatever the table's size
_READ_BYTES = 1 << 23
# RFM scores are shown by get_customer; every other f_ column is a model feature no tool reads.
_NOT_FEATURES = frozenset({"f_score"})


class CacheMiss(Exception):
    """The mapped file cannot be used as it is (missing, stale or damaged): it is rebuilt."""


def heavy_columns(schema: pa.Schema) -> list[str]:
    """The columns kept in the mapped file: nested (list) columns, profile_text and model features."""
    return [f.name for f in schema if pa.types.is_nested(f.type) or f.name == "profile_text"
            or (f.name.startswith("f_") and f.name not in _NOT_FEATURES)]


def cache_paths(parquet: Path) -> tuple[Path, Path]:
    stem = parquet.name.removesuffix(".parquet")
    return parquet.with_name(f"{stem}.cache.arrow"), parquet.with_name(f"{stem}.cache.json")


def source_key(parquet: Path, columns: list[str]) -> dict:
    st = parquet.stat()
    return {"format": FORMAT, "source": parquet.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "columns": list(columns)}


def mapped_columns(parquet: Path, columns: list[str]) -> pa.Table:
    """`columns` of `parquet` as a table over the mapped file beside it (zero-copy), built first when
    missing, stale or damaged. Where the folder cannot be written (a read-only replica), the columns
    are read into memory as Arrow instead: correct, just not mapped."""
    cache, meta = cache_paths(parquet)
    key = source_key(parquet, columns)
    try:
        return open_mapped(cache, meta, key)
    except CacheMiss as why:
        log.info("building %s: %s", cache.name, why)
    try:
        write_cache(parquet, columns, cache, meta, key)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise OSError(exc.errno, f"cannot write {cache.name}: {exc.strerror or exc}") from exc
        log.warning("cannot write %s (%s): its columns are read into memory", cache.name, exc)
        import pyarrow.parquet as pq

        return pq.read_table(parquet, columns=columns)
    try:
        return open_mapped(cache, meta, key)
    except CacheMiss as why:  # another process replaced it between our write and our read
        raise OSError(f"{cache.name} changed while it was opened ({why}); load again") from None


def write_cache(parquet: Path, columns: list[str], cache: Path, meta: Path, key: dict) -> None:
    """Stream the columns into an Arrow file batch by batch (never the whole table in memory)."""
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    source = pq.ParquetFile(parquet)
    schema = pa.schema([source.schema_arrow.field(c) for c in columns])
    rows = 0
    with atomic_path(cache, mode=0o600) as tmp:
        with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, schema) as writer:
            for batch in source.iter_batches(batch_size=BATCH_ROWS, columns=columns):
                writer.write_batch(batch)
                rows += batch.num_rows
        fd = os.open(tmp, os.O_RDONLY)
        try:
            size, crc = os.fstat(fd).st_size, _crc(fd)
        finally:
            os.close(fd)
    # Written after the data file: a sidecar that names another file's CRC only causes a rebuild.
    write_json_atomic(meta, {**key, "rows": rows, "bytes": size, "crc32": crc})


def open_mapped(cache: Path, meta: Path, key: dict) -> pa.Table:
    """The mapped table, after checking the sidecar's key and the file's size and CRC."""
    import pyarrow.ipc as ipc

    try:
        recorded = json.loads(meta.read_text())
    except FileNotFoundError:
        raise CacheMiss("no cache yet") from None
    except (OSError, ValueError) as exc:
        raise CacheMiss(f"unreadable sidecar ({type(exc).__name__})") from None
    if not isinstance(recorded, dict) or {k: recorded.get(k) for k in key} != key:
        raise CacheMiss("stale: written for another customers.parquet or other columns")
    try:
        fd = os.open(cache, os.O_RDONLY)
    except FileNotFoundError:
        raise CacheMiss("the data file is missing") from None
    try:
        # Checked and mapped through one descriptor: a file renamed over it meanwhile is not the one mapped.
        if os.fstat(fd).st_size != recorded.get("bytes") or _crc(fd) != recorded.get("crc32"):
            raise CacheMiss("damaged: its size or CRC differs from what was written")
        # The check read the whole file into the page cache in large folios, and a fault on a mapped page
        # maps its whole folio (~2 MB a row read, 2 GiB of RSS after 600 reads at 10M): drop them, so a
        # row read maps the pages it touches. Pages other processes have mapped are kept.
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        view = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        # Rows are read at random: read-ahead would fetch neighbours nobody asked for (at 10M the file is
        # larger than the memory left for the page cache; read-ahead put get_customer's p95 at 13-18 ms).
        if hasattr(mmap, "MADV_RANDOM"):
            view.madvise(mmap.MADV_RANDOM)
    finally:
        os.close(fd)
    try:
        table = ipc.open_file(pa.BufferReader(pa.py_buffer(view))).read_all()
    except (pa.ArrowException, ValueError) as exc:
        raise CacheMiss(f"unreadable ({type(exc).__name__})") from None
    if table.column_names != key["columns"] or table.num_rows != recorded.get("rows"):
        raise CacheMiss("its columns or row count differ from what was written")
    return table  # its buffers hold the map open


def _crc(fd: int) -> int:
    """CRC-32 of a file read through the page cache (reading, not mapping: the pages stay out of RSS)."""
    crc, offset = 0, 0
    while chunk := os.pread(fd, _READ_BYTES, offset):
        crc = zlib.crc32(chunk, crc)
        offset += len(chunk)
    return crc


class Chunks:
    """A chunked Arrow column read by position, chunk by chunk: pyarrow's ChunkedArray.take joins every
    chunk first (a copy of the whole column into memory, for a mapped column at 10M rows gigabytes)."""

    def __init__(self, data: pa.ChunkedArray | pa.Array, join: bool = False):
        chunks = list(data.chunks) if isinstance(data, pa.ChunkedArray) else [data]
        if join and len(chunks) > 1 and sum(c.nbytes for c in chunks) < 2**30:
            chunks = [pa.concat_arrays(chunks)]
        self.chunks = chunks or [pa.array([], type=data.type)]
        self.starts = np.cumsum([0] + [len(c) for c in self.chunks[:-1]])

    def take_arrow(self, idx: np.ndarray) -> pa.Array:
        """The values at `idx`, in `idx`'s order, as one Arrow array."""
        idx = np.asarray(idx, dtype=np.int64)
        if len(self.chunks) == 1:
            return self.chunks[0].take(idx)
        which = np.searchsorted(self.starts, idx, side="right") - 1
        order = np.argsort(which, kind="stable")
        parts = [self.chunks[c].take(idx[order][which[order] == c] - self.starts[c]) for c in np.unique(which)]
        joined = pa.concat_arrays(parts) if parts else self.chunks[0].slice(0, 0)
        return joined.take(np.argsort(order, kind="stable"))

    def take(self, idx: np.ndarray) -> np.ndarray:
        """The values at `idx` as Python objects (None where missing; lists as arrays, as pandas reads them)."""
        idx = np.asarray(idx, dtype=np.int64)
        if len(self.chunks) == 1:
            return self.chunks[0].take(idx).to_numpy(zero_copy_only=False)
        which = np.searchsorted(self.starts, idx, side="right") - 1
        out = np.empty(len(idx), dtype=object)
        for c in np.unique(which):
            sel = which == c
            out[sel] = self.chunks[c].take(idx[sel] - self.starts[c]).to_numpy(zero_copy_only=False)
        return out
