"""A real Dask LocalCluster of two worker processes for the engine tests, and a way to kill one of its
workers mid-run (the nanny restarts it)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

WORKERS = 2


@contextmanager
def local_cluster() -> Iterator[tuple[str, object]]:
    """(scheduler address, client) of a LocalCluster: 2 worker processes, one thread each."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield cluster.scheduler_address, client


def killer_after(client, first_done: int = 1):
    """A progress callback that SIGKILLs one worker process when `first_done` tasks are done; its
    `killed` list records that it fired."""
    # Both workers up first: a worker killed by the previous test may still be restarting, and the pid
    # picked must be one this run's tasks can land on.
    client.wait_for_workers(WORKERS, timeout=120)
    pid = next(iter(client.run(os.getpid).values()))

    def on_done(done: int) -> None:
        if done == first_done:
            os.kill(pid, signal.SIGKILL)
            on_done.killed.append(pid)

    on_done.killed = []
    return on_done


def assert_same_frames(a, b, rtol: float = 1e-9) -> None:
    """Row for row: the same columns and dtypes, floats allclose, list cells equal as lists, the rest equal."""
    import numpy as np
    import pandas as pd

    assert list(b.columns) == list(a.columns)
    assert b["customer_id"].tolist() == a["customer_id"].tolist()
    for column in a.columns:
        x, y = a[column], b[column]
        assert x.dtype == y.dtype, column
        if pd.api.types.is_float_dtype(x):
            np.testing.assert_allclose(y.to_numpy(float), x.to_numpy(float), rtol=rtol, atol=rtol, err_msg=column)
        elif x.dtype == object:
            as_lists = [[list(v) if isinstance(v, (list, np.ndarray)) else v for v in c] for c in (x, y)]
            assert as_lists[0] == as_lists[1], column
        else:
            assert x.equals(y), column
