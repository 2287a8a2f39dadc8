"""Drift reports of the monitoring page, computed off the request: a report reads every decision of
its window, which on a large store takes longer than a page may wait. A view waits a few seconds;
a window not done by then is shown as pending (the page reloads itself) while a daemon thread
finishes it, and a finished report is kept for a while."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.monitor.drift import DriftReport

__all__ = ["DriftJobs"]

Window = tuple[dt.datetime, dt.datetime]


@dataclass
class _Job:
    done: threading.Event = field(default_factory=threading.Event)
    report: DriftReport | None = None
    error: Exception | None = None
    finished: float = 0.0
    thread: threading.Thread | None = None


class DriftJobs:
    def __init__(
        self,
        compute: Callable[[dt.datetime, dt.datetime], DriftReport],
        *,
        wait: float,
        keep: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.compute = compute
        self.wait = wait  # seconds a page view waits for its report
        self.keep = keep  # seconds a finished report is shown before it is computed again
        self.clock = clock
        self._jobs: dict[Window, _Job] = {}
        self._lock = threading.Lock()
        self._closed = False

    def get(self, since: dt.datetime, until: dt.datetime) -> DriftReport | None:
        """The window's report, or None while it is still being computed. A failure is raised to
        the view that sees it, and the next view tries again."""
        key = (since, until)
        with self._lock:
            if self._closed:  # shutting down: no new computation on a store about to close
                return None
            now = self.clock()
            self._jobs = {
                k: j for k, j in self._jobs.items() if not j.done.is_set() or now - j.finished < self.keep
            }
            job = self._jobs.get(key)
            if job is None:
                job = self._jobs[key] = _Job()
                job.thread = threading.Thread(target=self._run, args=(job, since, until), daemon=True)
                job.thread.start()
        if not job.done.wait(self.wait):
            return None
        if job.error is not None:
            with self._lock:
                if self._jobs.get(key) is job:
                    del self._jobs[key]
            raise job.error
        return job.report

    def _run(self, job: _Job, since: dt.datetime, until: dt.datetime) -> None:
        try:
            job.report = self.compute(since, until)
        except Exception as exc:  # handed to the view that waits for it
            job.error = exc
        job.finished = self.clock()
        job.done.set()

    def close(self, timeout: float) -> bool:
        """Start no more computations and wait up to `timeout` seconds for those running; True when
        none is left running (only then may the store they read be closed under them)."""
        with self._lock:
            self._closed = True
            threads = [j.thread for j in self._jobs.values() if j.thread is not None]
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)
