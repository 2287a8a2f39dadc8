"""Where batch chunks run: in this process, in local worker processes (all cores by default), or on a
Dask distributed cluster (`tcp://HOST:8786`, or `local:N` for a LocalCluster of N processes). Every
pool runs the same task function on the same chunks; results are taken back in submission order, so
whatever the pool's shape, the output is the same bytes. At most 2 x width chunks are in flight, so
reading a large file never runs ahead of the workers.

Workers keep what they load (policy, model sessions) in a per-process cache keyed by the task's
spec, so each worker loads a policy and its model once however many chunks it decides. On a remote
Dask cluster the policy and model paths must resolve on the workers (a shared volume or the same
image), as they do for `credo serve` hosts.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Protocol

from engine.errors import UsageError

__all__ = ["DaskPool", "InProcessPool", "LocalPool", "Pool", "open_pool", "run_in_order"]


class Pool(Protocol):
    width: int
    description: str

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A future: anything with `.result()`."""
        ...

    def close(self) -> None: ...


class _Done:
    def __init__(self, value: Any) -> None:
        self._value = value

    def result(self) -> Any:
        return self._value


class InProcessPool:
    """Run each chunk right here (one worker; no pickling, handy in tests and for small files)."""

    width = 1
    description = "in process"

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Done:
        return _Done(fn(*args))

    def close(self) -> None:
        return None


class LocalPool:
    """Worker processes on this machine (spawned, so no state leaks in from the parent)."""

    def __init__(self, workers: int) -> None:
        self.width = workers
        self.description = f"{workers} local processes"
        self._executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        return self._executor.submit(fn, *args)

    def close(self) -> None:
        self._executor.shutdown(cancel_futures=True)


class DaskPool:
    """A Dask distributed cluster: an existing scheduler by address, or a LocalCluster of N worker
    processes (one thread each: a worker's rule evaluator and model sessions are per process)."""

    def __init__(self, address: str) -> None:
        from distributed import Client, LocalCluster  # heavy: only when a cluster is asked for

        self._cluster: Any = None
        if address.startswith("local:"):
            workers = _positive(address.removeprefix("local:"), address)
            self._cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                # Without an address the scheduler still serves HTTP on 0.0.0.0:8787, and a second
                # cluster on the machine then warns (an error under pytest). Loopback, any free port.
                dashboard_address="127.0.0.1:0",
                silence_logs=40,
            )
            self._client = Client(self._cluster)
        else:
            try:
                self._client = Client(address, timeout=30)
            except (OSError, TimeoutError) as exc:
                raise UsageError(f"--cluster {address}: cannot reach the Dask scheduler ({exc})") from None
        self.width = max(1, len(self._client.scheduler_info().get("workers", {})))
        self.description = f"dask {address} ({self.width} workers)"

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._client.submit(fn, *args, pure=False)

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def open_pool(workers: int | None = None, cluster: str | None = None) -> Pool:
    """`cluster` (tcp://HOST:PORT or local:N) wins; else `workers` local processes (default: all
    cores); 1 worker runs in this process."""
    if cluster:
        if not (cluster.startswith(("tcp://", "tls://")) or cluster.startswith("local:")):
            raise UsageError(f"--cluster {cluster!r}: use tcp://HOST:PORT or local:N")
        if cluster.startswith("local:"):
            _positive(cluster.removeprefix("local:"), cluster)
        return DaskPool(cluster)
    count = workers if workers is not None else (os.cpu_count() or 1)
    if count < 1:
        raise UsageError(f"--workers {count}: give at least 1")
    return InProcessPool() if count == 1 else LocalPool(count)


def _positive(text: str, what: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"--cluster {what!r}: N must be a whole number of workers, at least 1")
    return int(text)


def run_in_order(pool: Pool, fn: Callable[..., Any], jobs: Iterable[tuple[Any, ...]]) -> Iterator[Any]:
    """fn(*job) for every job on the pool, yielded in job order; at most 2 x width in flight."""
    in_flight: deque[Any] = deque()
    for job in jobs:
        in_flight.append(pool.submit(fn, *job))
        while len(in_flight) > 2 * pool.width:
            yield in_flight.popleft().result()
    while in_flight:
        yield in_flight.popleft().result()
