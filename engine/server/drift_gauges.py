"""Drift gauges of the served models, refreshed from the audit store by a thread of the supervisor
(`credo serve --drift-every SECONDS`), never on a request's path: the PSI of each model's score
(feature="score") and CSI of each feature over the last `window` days, and each model's status.
A Prometheus collector of the supervisor's metrics endpoint: it shows the latest refresh.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from engine.audit.connect import open_store
from engine.models.store import ModelStore
from engine.monitor.drift import STATUSES, DriftReport, drift_report

__all__ = ["DriftGauges"]

log = logging.getLogger("credo.drift")

# the status gauge's values: stable 0, watch 1, action 2; a model whose card has no baseline -1
STATUS_VALUE = {status: float(i) for i, status in enumerate(STATUSES)}


class DriftGauges:
    """Refreshes `credo_model_psi` and `credo_model_drift_status` every `every` seconds until
    `stop()`. The first refresh runs at once; a failed one is logged and the gauges keep their
    last values (a store that cannot be read must not stop the server)."""

    def __init__(self, store_url: str, models_dir: str, every: float, window_days: float) -> None:
        self.latest: DriftReport | None = None
        self.store_url = store_url
        self.models = ModelStore(models_dir)
        self.every = every
        self.window = dt.timedelta(days=window_days)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="credo-drift", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # logged, retried next period: drift must never take the server down
                log.exception("drift refresh failed", extra={"event": "drift_refresh_failed"})
            self._stop.wait(self.every)

    def refresh(self) -> None:
        store = open_store(self.store_url, create=False, readonly=True)
        try:
            report = drift_report(store, since=dt.datetime.now(dt.UTC) - self.window, models=self.models)
        finally:
            store.close()
        self.latest = report  # one reference swap: a scrape sees the old report or the new one
        log.info(
            "drift refreshed",
            extra={"event": "drift_refreshed", "models": len(report.models), "records": report.records},
        )

    def collect(self) -> Iterator[Metric]:
        psi = GaugeMetricFamily(
            "credo_model_psi",
            "Population stability of a model's score (feature=score) and features against its "
            "training baseline",
            labels=["model", "version", "feature"],
        )
        status = GaugeMetricFamily(
            "credo_model_drift_status",
            "Drift status of a model: 0 stable, 1 watch, 2 action, -1 no baseline in its card",
            labels=["model", "version"],
        )
        for model in self.latest.models if self.latest is not None else ():
            status.add_metric([model.model, model.version], STATUS_VALUE.get(model.status, -1.0))
            for index in (model.score, *model.features):
                if index is not None and index.psi is not None:
                    psi.add_metric([model.model, model.version, index.name], index.psi)
        yield psi
        yield status
