"""A real Dask LocalCluster of two worker processes for the engine tests, and a way to kill one of its
workers mid-run (the nanny restarts it)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def local_cluster() -> Iterator[tuple[str, object]]:
    """(scheduler address, client) of a LocalCluster: 2 worker processes, one thread each."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield cluster.scheduler_address, client


def killer_after(client, first_done: int = 1):
    """A progress callback that SIGKILLs one worker process when `first_done` tasks are done; its
    `killed` list records that it fired."""
    pid = next(iter(client.run(os.getpid).values()))

    def on_done(done: int) -> None:
        if done == first_done:
            os.kill(pid, signal.SIGKILL)
            on_done.killed.append(pid)

    on_done.killed = []
    return on_done
