"""The monitoring page shows drift as a model validator reads it: a day of applicants like the
training population is "stable", a day of poorer, riskier applicants is "action" with the features
that moved named, and each model's PSI is drawn per day against the watch and action lines."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from starlette.testclient import TestClient

from engine.audit.log import DecisionLog
from engine.batch.inputs import nest
from engine.console.app import ConsoleConfig, Reader, build_app
from engine.console.background import DriftJobs
from engine.errors import StoreUnavailable
from engine.models.synthetic import as_applications, generate
from engine.service import DecisionService

ROOT = Path(__file__).resolve().parents[2]
DAY1 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
DAY2 = DAY1 + dt.timedelta(days=1)
PER_DAY = 300


def applicants(n: int, seed: int, shift: bool) -> pd.DataFrame:
    frame = as_applications(generate(n, seed)).drop(columns=["default_12m"])
    if not shift:
        return frame
    return frame.assign(  # half the income, 80 bureau points less
        **{
            "applicant.income_monthly": (frame["applicant.income_monthly"] * 0.5).round(),
            "bureau.score": (frame["bureau.score"] - 80).clip(300, 900),
        }
    )


def seconds_from(start: dt.datetime) -> Callable[[], dt.datetime]:
    ticks = iter(range(10**9))
    return lambda: start + dt.timedelta(seconds=next(ticks))


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('drift') / 'audit.db'}"
    for day, seed, shift in ((DAY1, 101, False), (DAY2, 202, True)):
        service = DecisionService(
            ROOT / "policies", ROOT / "models", store=DecisionLog(url), clock=seconds_from(day)
        )
        for i, row in enumerate(applicants(PER_DAY, seed, shift).to_dict("records")):
            service.decide("consumer_loan", nest(row), f"{day:%Y%m%d}-{i}")
        assert service.log is not None
        service.log.close()
    return url


def monitoring(url: str, since: str, until: str) -> str:
    app = build_app(ConsoleConfig(store=url, policies=ROOT / "policies", models=ROOT / "models"))
    with TestClient(app) as client:
        response = client.get("/monitoring", params={"since": since, "until": until})
    assert response.status_code == 200
    return response.text


def test_a_day_like_the_training_population_is_stable(url: str) -> None:
    page = monitoring(url, "2026-03-01", "2026-03-01")
    assert re.search(r'consumer_pd 1\.0\.0: <span class="stable">stable</span>', page)


def test_a_shifted_day_is_action_with_the_features_that_moved(url: str) -> None:
    page = monitoring(url, "2026-03-02", "2026-03-02")
    assert re.search(r'consumer_pd 1\.0\.0: <span class="action">action</span>', page)
    caption = re.search(r"<figcaption>PSI per day: score and ([^<]+)</figcaption>", page)
    assert caption is not None
    assert {"income_monthly", "bureau_score"} <= set(caption.group(1).split(", "))


def test_psi_is_drawn_per_day_against_the_thresholds(url: str) -> None:
    page = monitoring(url, "2026-03-01", "2026-03-02")
    psi = page[page.index('<div id="psi">') :]
    assert "<svg" in psi and "watch 0.1" in psi and "action 0.25" in psi
    assert psi.count("<title>2026-03-0") >= 2  # a point per day


def test_a_window_not_computed_in_time_shows_pending_and_reloads_itself(url: str) -> None:
    app = build_app(
        ConsoleConfig(store=url, policies=ROOT / "policies", models=ROOT / "models", drift_wait=0.0)
    )
    with TestClient(app) as client:
        page = client.get("/monitoring", params={"since": "2026-03-01", "until": "2026-03-02"}).text
    assert 'id="psi-pending"' in page and '<meta http-equiv="refresh" content="10">' in page
    assert "decisions from 2026-03-01" in page  # the rest of the page does not wait for PSI


def test_drift_jobs_compute_once_keep_the_report_and_retry_a_failure() -> None:
    release = threading.Event()
    calls: list[tuple[dt.datetime, dt.datetime]] = []
    failing = [True]

    def compute(since: dt.datetime, until: dt.datetime) -> Any:
        calls.append((since, until))
        assert release.wait(60)
        if failing[0]:
            failing[0] = False
            raise StoreUnavailable("store gone")
        return "report"

    jobs = DriftJobs(compute, wait=0.0, keep=300.0)
    assert jobs.get(DAY1, DAY2) is None  # computing
    assert jobs.get(DAY1, DAY2) is None and len(calls) == 1  # still the same computation
    release.set()
    jobs.wait = 60.0
    with pytest.raises(StoreUnavailable):
        jobs.get(DAY1, DAY2)
    assert jobs.get(DAY1, DAY2) == "report" and len(calls) == 2  # a failure is tried again
    assert jobs.get(DAY1, DAY2) == "report" and len(calls) == 2  # a finished report is kept


def test_closing_waits_for_a_running_drift_job_and_starts_no_new_one() -> None:
    release = threading.Event()
    calls: list[tuple[dt.datetime, dt.datetime]] = []

    def compute(since: dt.datetime, until: dt.datetime) -> Any:
        calls.append((since, until))
        assert release.wait(60)
        return "report"

    jobs = DriftJobs(compute, wait=0.0, keep=300.0)
    assert jobs.get(DAY1, DAY2) is None  # computing
    assert jobs.close(timeout=0.05) is False  # still running: its store must stay open
    assert jobs.get(DAY2, DAY2) is None and len(calls) == 1  # closing: nothing new starts
    release.set()
    assert jobs.close(timeout=60) is True


def test_the_console_leaves_its_store_open_while_a_drift_job_still_reads_it(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: shutting the console down closed the SQLite connection under a drift job still
    querying it, and the process crashed in sqlite3 (seen once in a full test run)."""
    reader = Reader(
        ConsoleConfig(store=url, policies=ROOT / "policies", models=ROOT / "models", drift_wait=0.0)
    )
    release, finished = threading.Event(), threading.Event()
    counted: list[int] = []

    def compute(since: dt.datetime, until: dt.datetime) -> Any:
        try:
            assert release.wait(60)
            counted.append(sum(1 for _ in reader.store().iter_records()))  # reads after close()
        finally:
            finished.set()
        return "report"

    monkeypatch.setattr(reader.drift, "compute", compute)
    reader.store()  # opened, as by any page before shutdown
    assert reader.drift.get(DAY1, DAY2) is None
    reader.close(timeout=0.05)  # the job still runs: the store stays open under it
    release.set()
    assert finished.wait(60) and counted and counted[0] > 0
    reader.close(timeout=60)  # now nothing reads it: closed
