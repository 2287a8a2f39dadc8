"""Where a decision's audit record goes: µs per part (median over N decisions) of decide() with a
durable SQLite decision log, one caller (each record its own commit), for the README applicant on
consumer_loan with a name and an ID number added (sealed personal data), beside decide() without a
log.

    .venv/bin/python scripts/record_budget.py [N]

Parts are timed inside the very decide() calls measured (as scripts/decide_budget.py does), each
exclusive of the parts it calls: "encode" and "hash" are the chain seal's canonical JSON of the body
and its sha256, "seal into chain" the rest of DecisionRecord.seal; "insert" is the INSERT of the
record row, "commit" the rest of the store's transaction (BEGIN, the chain head, COMMIT and its
fsync); "log" is DecisionLog's own work around them (queueing, the leader); "the rest" is decide()
minus the pipeline and every part above."""

from __future__ import annotations

import functools
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import engine.audit.record
import engine.service
from engine.audit.log import DecisionLog
from engine.audit.pii import PiiVault
from engine.audit.record import DecisionRecord
from engine.audit.store import SqlStore
from engine.service import DecisionService

ROOT = Path(__file__).resolve().parents[1]
PERSON = {"name": "李秀英", "id_number": "11010519491231002X"}  # engine.bench.pii's applicant
_REQUESTS = itertools.count()


@contextmanager
def timed_parts(spent: dict[str, float]) -> Iterator[None]:
    """Charge each part's calls to `spent` (seconds), exclusive of the parts they call; "encode" and
    "hash" only inside DecisionRecord.seal. The originals are put back on exit."""
    stack: list[list[Any]] = []  # [part, time spent in parts it called]

    def wrap(fn: Callable[..., Any], part: str, inside: str | None = None) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if inside is not None and (not stack or stack[-1][0] != inside):
                return fn(*args, **kwargs)
            stack.append([part, 0.0])
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                _, nested = stack.pop()
                spent[part] += elapsed - nested
                if stack:
                    stack[-1][1] += elapsed

        return timed

    targets: list[tuple[Any, str, str, str | None]] = [
        (engine.service, "run_pipeline", "pipeline", None),
        (PiiVault, "keyed", "keyed fingerprint", None),
        (DecisionRecord, "build", "build", None),
        (PiiVault, "protect", "seal personal data", None),
        (DecisionLog, "submit", "log", None),
        (DecisionLog, "_wait", "log", None),
        (DecisionRecord, "seal", "seal into chain", None),
        (engine.audit.record, "dumps_plain", "encode", "seal into chain"),
        (engine.audit.record, "sha256_hex", "hash", "seal into chain"),
        (SqlStore, "append", "commit", None),
        (SqlStore, "_insert_records", "insert", None),
    ]
    saved = [(owner, name, owner.__dict__[name]) for owner, name, _, _ in targets]
    try:
        for owner, name, part, inside in targets:
            original = owner.__dict__[name]
            if isinstance(original, classmethod):
                setattr(owner, name, classmethod(wrap(original.__func__, part, inside)))
            else:
                setattr(owner, name, wrap(original, part, inside))
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def budget(service: DecisionService, policy: Any, application: dict[str, Any], n: int) -> dict[str, float]:
    ids = (f"record-budget-{i}" for i in _REQUESTS)
    for _ in range(200):  # warm up: sessions, caches, the store's pages
        service.decide(policy, application, next(ids))
    parts: dict[str, list[float]] = defaultdict(list)
    spent: dict[str, float] = defaultdict(float)
    with timed_parts(spent):
        for _ in range(n):
            spent.clear()
            start = time.perf_counter()
            service.decide(policy, application, next(ids))
            total = time.perf_counter() - start
            for part, seconds in spent.items():
                parts[part].append(seconds * 1e6)
            parts["the rest"].append((total - sum(spent.values())) * 1e6)
            parts["decide() total"].append(total * 1e6)
    return {name: statistics.median(samples) for name, samples in parts.items()}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    readme = json.loads((ROOT / "tests" / "pipeline" / "readme_applicant.json").read_text(encoding="utf-8"))
    application = {**readme, "applicant": {**readme["applicant"], **PERSON}}
    with tempfile.TemporaryDirectory() as tmp:
        logged = DecisionService(str(ROOT / "policies"), str(ROOT / "models"), store=f"sqlite:///{tmp}/a.db")
        try:
            rows = {
                "with a SQLite decision log": budget(logged, logged.policy("consumer_loan"), application, n)
            }
        finally:
            logged.close()
    bare = DecisionService(str(ROOT / "policies"), str(ROOT / "models"))
    rows["without a log"] = budget(bare, bare.policy("consumer_loan"), application, n)
    for title, parts in rows.items():
        print(f"README applicant with personal data, consumer_loan, {title} (µs, median of {n})")
        for name, us in parts.items():
            print(f"  {name:22s} {us:9.1f}")


if __name__ == "__main__":
    main()
