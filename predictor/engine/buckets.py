"""Order lines partitioned by customer, once: Parquet buckets by a hash of the customer id.

Every line of a customer lands in the same bucket, so each per-customer step (features at a cutoff,
prediction, explanations) runs on one bucket with the functions the local engine calls on the whole
log. Within a bucket the lines keep their order in the log, so a bucket's orders aggregate exactly as
the same customers' orders do in one process. A bucket set is a folder of `bucket-NNNNN.parquet` files
plus `buckets.json` (the population facts the reduce steps need: first and last day, customers, lines),
written under a temporary name and renamed into place whole: a reader sees every bucket or none.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from predictor.errors import DataError

BUCKETS_JSON = "buckets.json"
# A fixed key (not the random seed): a customer's bucket is the same in every build of every data set.
_BUCKET_HASH_KEY = "valuedesk-bucket"
# Aim for buckets of ~2 million lines (~100-150 MB in memory): within the 100-500 MB a Dask task handles
# well, and small enough that two workers of a 2-core machine stay far from their memory limits.
TARGET_LINES_PER_BUCKET = 2_000_000


@dataclass(frozen=True)
class BucketSet:
    """A written bucket folder and the population facts of the log it holds."""

    root: Path
    buckets: int
    lines: int
    customers: int
    first_day: str  # the log's first day (CustomerHistory.data_start for every bucket)
    last_day: str  # the log's last day (the scoring date)
    columns: tuple[str, ...]
    fingerprint: str = ""  # the source log's (predictor.data.load.source_fingerprint), when known

    @property
    def paths(self) -> list[Path]:
        return [bucket_path(self.root, i) for i in range(self.buckets)]

    @property
    def data_start(self) -> pd.Timestamp:
        return pd.Timestamp(self.first_day).as_unit("ns")  # the unit of the log's timestamps

    @property
    def as_of(self) -> pd.Timestamp:
        return pd.Timestamp(self.last_day).as_unit("ns")


def bucket_path(root: Path, number: int) -> Path:
    return Path(root) / f"bucket-{number:05d}.parquet"


def bucket_numbers(customer_ids: pd.Series, buckets: int) -> np.ndarray:
    """The bucket of each line's customer: a fixed 64-bit hash of the id, modulo the bucket count."""
    ids = customer_ids.astype("string").to_numpy(dtype=object)
    return (pd.util.hash_array(ids, hash_key=_BUCKET_HASH_KEY, categorize=False) % np.uint64(buckets)).astype(np.int64)


def bucket_count(lines: int, lines_per_bucket: int = TARGET_LINES_PER_BUCKET) -> int:
    return max(1, math.ceil(lines / lines_per_bucket))


def write_buckets(transactions: pd.DataFrame, root: Path | str, buckets: int | None = None,
                  fingerprint: str = "") -> BucketSet:
    """Partition cleaned order lines (predictor.data.load's table) into `buckets` Parquet files at `root`.

    Replaces a bucket set already at `root` in one rename; a failed write leaves it as it was."""
    root = Path(root)
    if not len(transactions):
        raise DataError("No order lines to partition: the cleaned log is empty.")
    buckets = buckets or bucket_count(len(transactions))
    numbers = bucket_numbers(transactions["customer_id"], buckets)
    # A stable sort by bucket keeps each bucket's lines in log order.
    order = np.argsort(numbers, kind="stable")
    bounds = np.searchsorted(numbers[order], np.arange(buckets + 1))
    table = pa.Table.from_pandas(transactions, preserve_index=False)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        for i in range(buckets):
            rows = pa.array(order[bounds[i]:bounds[i + 1]])
            pq.write_table(table.take(rows), bucket_path(staging, i))
        first_day, last_day = order_days(transactions)
        bucket_set = BucketSet(root=root, buckets=buckets, lines=len(transactions),
                               customers=int(transactions["customer_id"].nunique()), first_day=first_day,
                               last_day=last_day, columns=tuple(transactions.columns), fingerprint=fingerprint)
        _write_meta(staging, bucket_set)
        _swap_in(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return bucket_set


def order_days(transactions: pd.DataFrame) -> tuple[str, str]:
    """The first and last day of the orders a CustomerHistory builds from these lines (outlier lines left
    out, an order dated by its first line): the history start and scoring date every bucket shares."""
    lines = transactions.loc[~transactions["is_outlier"].astype(bool)] if "is_outlier" in transactions else transactions
    if not len(lines):
        raise DataError("Every order line is flagged as an outlier: nothing to model.")
    order_time = lines.groupby(["customer_id", "order_id"], sort=False, observed=True)["timestamp"].min()
    return str(order_time.min().normalize().date()), str(order_time.max().normalize().date())


def write_bucket_meta(root: Path | str, bucket_set: BucketSet) -> None:
    """For writers that produce the bucket files themselves (the scale benchmark bootstraps each bucket)."""
    _write_meta(Path(root), bucket_set)


def _write_meta(folder: Path, bucket_set: BucketSet) -> None:
    meta = {k: v for k, v in asdict(bucket_set).items() if k != "root"}
    meta["columns"] = list(bucket_set.columns)
    (folder / BUCKETS_JSON).write_text(json.dumps(meta, indent=2))


def _swap_in(staging: Path, root: Path) -> None:
    old = None
    if root.exists():
        old = root.with_name(f".{root.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(root, old)
    os.replace(staging, root)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_bucket_set(root: Path | str) -> BucketSet:
    """The bucket set at `root`, checked: every bucket file named in its buckets.json is present."""
    root = Path(root)
    meta_path = root / BUCKETS_JSON
    try:
        meta = json.loads(meta_path.read_text())
        bucket_set = BucketSet(root=root, buckets=int(meta["buckets"]), lines=int(meta["lines"]),
                               customers=int(meta["customers"]), first_day=str(meta["first_day"]),
                               last_day=str(meta["last_day"]), columns=tuple(meta["columns"]),
                               fingerprint=str(meta.get("fingerprint", "")))
    except FileNotFoundError:
        raise DataError(f"Not a bucket set: {BUCKETS_JSON} is missing", path=str(root),
                        expected="a folder written by `valuedesk score --engine dask --data FILE`") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"Unreadable bucket metadata ({exc})", path=str(meta_path),
                        expected="JSON with buckets, lines, customers, first_day, last_day, columns") from None
    missing = [p.name for p in bucket_set.paths if not p.exists()]
    if missing:
        raise DataError(f"{len(missing)} of {bucket_set.buckets} bucket files are missing (first: {missing[0]})",
                        path=str(root), expected="every bucket-NNNNN.parquet named by buckets.json; write the set again")
    return bucket_set


def read_bucket(path: Path) -> pd.DataFrame:
    """One bucket's lines, with the error naming the file when it cannot be read."""
    try:
        return pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"Cannot read this bucket ({exc})", path=str(path),
                        expected="a Parquet file of order lines written by predictor.engine.buckets") from None
