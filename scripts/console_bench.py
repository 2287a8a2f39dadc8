"""Server time of the console's decision pages on a large store (the issue's target: a page of 50 in
under 200 ms on 1M decisions).

Fills a SQLite store with N sealed, hash-chained records (real decisions of the shipped policies'
test inputs, each copied with a fresh decision_id, request_id and received time spread over 90
days), then times the console's pages in-process, median of repeated requests:

    .venv/bin/python scripts/console_bench.py --records 1000000 --store /tmp/console-bench.db

Filling 1M takes minutes (run it in the background); a second run on the same file reuses it.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import html
import re
import statistics
import sys
import time
import urllib.parse
import warnings
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.audit.connect import open_store  # noqa: E402
from engine.audit.record import GENESIS_HASH, DecisionRecord, new_chain_id, new_decision_id, utc_text  # noqa: E402
from engine.service import DecisionService  # noqa: E402

BATCH = 10_000
DAYS = 90


def templates(scratch: Path) -> list[DecisionRecord]:
    """Records of real decisions: every test input of the shipped policies, decided and recorded."""
    service = DecisionService(ROOT / "policies", ROOT / "models", store=f"sqlite:///{scratch}")
    for name in ("consumer_loan", "german_credit"):
        for i, case in enumerate(service.policy(name).tests):
            try:
                service.decide(name, case.input, f"template-{name}-{i}")
            except Exception:  # a test that expects an error
                continue
    assert service.log is not None
    return list(service.log.store.iter_records())


def fill(url: str, count: int, start: dt.datetime) -> None:
    scratch = Path(url.removeprefix("sqlite:///") + ".templates")
    scratch.unlink(missing_ok=True)
    models = templates(scratch)
    store = open_store(url)
    source = open_store(f"sqlite:///{scratch}")
    store.append([], list(source.iter_blobs()))  # the archive replay needs
    have = store.count()
    chain = new_chain_id()
    prev, seq = GENESIS_HASH, 0
    step = dt.timedelta(days=DAYS) / count
    began = time.perf_counter()
    while have < count:
        batch = []
        for k in range(min(BATCH, count - have)):
            n = have + k
            model = models[n % len(models)]
            when = start + step * n
            decision_id = new_decision_id(when.timestamp())
            request_id = f"bench-{n}"
            summary = copy.copy(model.decision)
            summary.update(decision_id=decision_id, request_id=request_id, decided_at=utc_text(when))
            record = replace(
                model,
                decision_id=decision_id,
                request_id=request_id,
                received_at=utc_text(when),
                decision=summary,
            )
            seq += 1
            sealed = record.seal(chain, seq, prev)
            prev = sealed.hash
            batch.append(sealed)
        store.append(batch)
        have += len(batch)
        rate = have / (time.perf_counter() - began)
        print(f"\r{have:,} records ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    store.close()
    source.close()
    scratch.unlink(missing_ok=True)


def timed(client: object, path: str, runs: int) -> tuple[float, int]:
    times = []
    status = 0
    for _ in range(runs):
        began = time.perf_counter()
        response = client.get(path)  # type: ignore[attr-defined]
        times.append((time.perf_counter() - began) * 1e3)
        status = response.status_code
    return statistics.median(times), status


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--store", type=Path, default=Path("/tmp/console-bench.db"))
    parser.add_argument("--runs", type=int, default=9, help="requests per page (median reported)")
    args = parser.parse_args()
    url = f"sqlite:///{args.store.resolve()}"
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    store = open_store(url)  # a writer's open: creates the schema and the console's indexes
    have = store.count()
    store.close()
    if have < args.records:
        fill(url, args.records, start)

    warnings.simplefilter("ignore", DeprecationWarning)
    from starlette.testclient import TestClient

    from engine.console.app import ConsoleConfig, build_app

    config = ConsoleConfig(store=url, policies=ROOT / "policies", models=ROOT / "models", drift_wait=3600.0)
    app = build_app(config)  # drift_wait: the first monitoring view waits for its PSI, so it is timed
    with TestClient(app) as client:
        first = client.get("/decisions").text
        cursor = re.search(r'name="before" value="([^"]+)"', first)
        decision = re.search(r'href="/decisions/([0-9a-f-]{36})"', first)
        assert cursor and decision, "the list page shows no decisions"
        pages = {
            "newest 50": "/decisions",
            "next page (cursor)": f"/decisions?before={urllib.parse.quote(html.unescape(cursor.group(1)))}",
            "outcome=REFER": "/decisions?outcome=REFER",
            "policy=german_credit": "/decisions?policy=german_credit",
            "outcome+policy": "/decisions?outcome=APPROVE&policy=consumer_loan",
            "one day (mid-range)": "/decisions?since=2026-02-10&until=2026-02-10",
            "day + outcome": "/decisions?since=2026-02-10&until=2026-02-10&outcome=DECLINE",
            "decision page": f"/decisions/{decision.group(1)}",
        }
        print(f"{have if have >= args.records else args.records:,} records in {args.store}")
        print(f"{'page':<24} {'median ms':>10}  status")
        for label, path in pages.items():
            millis, status = timed(client, path, args.runs)
            print(f"{label:<24} {millis:>10.1f}  {status}")
        # monitoring reads every decision of its window (drift): timed once, on its first view
        for label, path in (
            ("monitoring, 1 day", "/monitoring?since=2026-02-10&until=2026-02-10"),
            ("monitoring, 7 days", "/monitoring?since=2026-02-10&until=2026-02-16"),
        ):
            millis, status = timed(client, path, 1)
            print(f"{label:<24} {millis:>10.1f}  {status}  (first view: computes PSI)")
            millis, status = timed(client, path, args.runs)
            print(f"{label:<24} {millis:>10.1f}  {status}  (PSI kept)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
