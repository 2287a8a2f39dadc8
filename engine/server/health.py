"""A worker's gRPC health follows its audit store: NOT_SERVING while the store cannot commit a decision,
SERVING again once it can. The decision log reports every commit; a probe write finds the store back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from grpc_health.v1 import health, health_pb2

log = logging.getLogger("credo.worker")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class StoreHealth:
    """Called with each commit's outcome (None = committed, else the error). While the store fails, a
    probe write every `interval` seconds turns health back to SERVING when one commits: a worker that
    is NOT_SERVING gets no traffic from a health-checking balancer, so no decision would tell it."""

    def __init__(
        self,
        servicer: health.HealthServicer,
        services: Sequence[str],
        probe: Callable[[], None],
        interval: float = 1.0,
    ):
        self.servicer = servicer
        self.services = tuple(services)
        self.probe = probe
        self.interval = interval
        self.ok = True
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._prober: threading.Thread | None = None

    def __call__(self, error: BaseException | None) -> None:
        with self._lock:
            if (error is None) == self.ok:
                return
            self.ok = error is None
            if not self.ok and (self._prober is None or not self._prober.is_alive()):
                self._prober = threading.Thread(target=self._probe_until_ok, name="store-probe", daemon=True)
                self._prober.start()
        for name in self.services:
            self.servicer.set(name, SERVING if self.ok else NOT_SERVING)
        if self.ok:
            log.warning("audit store commits again: health SERVING")
        else:
            log.error("audit store cannot commit: health NOT_SERVING", extra={"error": str(error)})

    def _probe_until_ok(self) -> None:
        while not self.ok and not self._stopped.wait(self.interval):
            try:
                self.probe()
            except Exception as exc:
                log.debug("store probe failed", extra={"error": str(exc)})
                continue
            self(None)

    def close(self) -> None:
        self._stopped.set()
