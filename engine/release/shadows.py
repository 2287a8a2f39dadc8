"""Shadow policies decided off the request path, in a process of their own.

A shadow version decides every request of its champion after the answer is stored, and its record
goes to the audit store as a shadow decision; it never answers. Deciding it on a thread of the
serving process would take the GIL (and so time) from the answers, so a service hands each answered
request to a child process through a bounded queue: the child, at a lower scheduling priority,
gathers what arrives for a moment, decides every shadow version of each request and commits the
records together (one group commit per batch, on a chain of its own).

Nothing is lost silently: a full queue drops the job, counts it (`dropped`, and the service's
`on_drop`, a Prometheus counter in a server) and logs it; `close()` lets the child record every job
queued before it stops, and logs an error with the number left if it could not.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["SHADOW_QUEUE", "ShadowJob", "ShadowRunner", "spread_children"]

log = logging.getLogger("credo.shadows")

SHADOW_QUEUE = 10_000  # answered requests waiting for their shadow decisions, at most
BATCH = 64  # requests decided per group commit in the shadow process, at most
LINGER = 0.25  # seconds the shadow process gathers a batch before deciding it

# The CPUs a shadow process may run on, when not the ones it inherits: a server worker pinned to one
# CPU would otherwise pin its shadow process there too, with the other CPUs idle.
_children_cpus: list[frozenset[int] | None] = [None]


def spread_children(cpus: frozenset[int] | None) -> None:
    """Run the shadow processes this process starts from now on `cpus` (a pinned server worker
    passes every CPU the server was given, read before it pinned itself; None: the ones inherited)."""
    _children_cpus[0] = cpus


@dataclass(frozen=True)
class ShadowJob:
    """One answered request for the shadow versions of its champion to decide."""

    shadows: tuple[tuple[str, str], ...]  # (name, version) of each shadow policy
    application: dict[str, Any]
    request_id: str
    language: str
    answered: str  # decision_id of the champion's answer


class ShadowRunner:
    """The shadow process of one service, started with the first job. `service` makes, in the child,
    the service that decides (picklable: e.g. a functools.partial of engine.service.DecisionService
    on the same folders and store URL); its `decide_shadows(job)` returns the pending records."""

    def __init__(
        self,
        service: Callable[[], Any],
        maxsize: int = SHADOW_QUEUE,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        self._service = service
        self._maxsize = maxsize
        self._on_drop = on_drop
        self._context = multiprocessing.get_context("spawn")  # never fork a threaded server
        self._queue: Any = None
        self._process: Any = None
        self._done: Any = None  # jobs the child has finished (recorded, or failed and logged)
        self._lock = threading.Lock()
        self.offered = 0
        self.dropped = 0

    def offer(self, job: ShadowJob) -> None:
        """Queue `job` without waiting; a full queue drops it, counted and logged."""
        with self._lock:
            if self._process is None:
                self._start()
            try:
                self._queue.put_nowait(job)
            except queue.Full:  # shadows never hold up answers or grow without bound
                self.dropped += 1
            else:
                self.offered += 1
                return
        if self._on_drop is not None:
            self._on_drop()
        log.warning(
            "shadow queue full; shadow decision dropped",
            extra={"event": "shadow_dropped", "request_id": job.request_id, "dropped": self.dropped},
        )

    def _start(self) -> None:
        self._queue = self._context.Queue(self._maxsize)
        self._done = self._context.Value("q", 0)
        self._process = self._context.Process(
            target=_shadow_main,
            args=(self._service, os.getpid(), self._queue, self._done, _children_cpus[0]),
            name="credo-shadows",
            daemon=True,
        )
        self._process.start()

    @property
    def done(self) -> int:
        return int(self._done.value) if self._done is not None else 0

    def close(self, timeout: float = 30.0) -> int:
        """Let the child record every queued job (at most `timeout` seconds), then stop it. Returns
        the number of jobs left unrecorded, logged as an error when not 0."""
        with self._lock:
            process, self._process = self._process, None
        if process is None:
            return 0
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        process.join(timeout)
        if process.is_alive():
            process.terminate()
            process.join(5)
        left = self.offered - self.done
        if left:
            log.error(
                "shadow decisions not recorded before stopping",
                extra={"event": "shadows_lost", "left": left, "offered": self.offered},
            )
        self._queue.close()
        return left


def _shadow_main(
    make_service: Callable[[], Any], parent: int, jobs: Any, done: Any, cpus: frozenset[int] | None = None
) -> None:
    """The shadow process: decide and record each job's shadows, a batch per group commit, until
    the sentinel None or the parent is gone."""
    os.nice(10)  # below the answers on a busy machine
    if cpus:  # off its parent's CPU when the machine has others (niced, it yields to the answers)
        try:
            os.sched_setaffinity(0, cpus)
        except OSError:  # a CPU was taken from the server since: the kernel places us
            log.warning("shadow process left on its parent's CPU", extra={"cpus": sorted(cpus)})
    service = make_service()
    stopping = False
    try:
        while not stopping:
            try:
                first = jobs.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != parent:  # the server is gone: nothing more will come
                    return
                continue
            batch = [first]
            # gather for a moment: one commit per batch, not one per answer, so the shadows' writes
            # seldom hold the store's write lock while an answer's commit waits for it
            until = time.monotonic() + LINGER
            while batch[-1] is not None and len(batch) < BATCH:
                try:
                    batch.append(jobs.get(timeout=max(0.0, until - time.monotonic())))
                except queue.Empty:
                    break
            stopping = None in batch
            _record(service, [job for job in batch if job is not None])
            with done.get_lock():
                done.value += sum(1 for job in batch if job is not None)
    finally:
        service.close()


def _record(service: Any, batch: list[ShadowJob]) -> None:
    pending = []
    for job in batch:
        try:
            pending += service.decide_shadows(job)
        except Exception:  # a shadow never affects serving; its failure is logged
            log.warning("shadow decision failed", exc_info=True, extra={"request_id": job.request_id})
    for item in pending:  # the first wait leads one group commit of the whole batch
        try:
            item.result()
        except Exception:
            log.warning("shadow record failed", exc_info=True, extra={"request_id": item.decision.request_id})
