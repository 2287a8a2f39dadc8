"""Read-only queries over the decision log for people looking at it (the console): a page of
decisions newest first, filtered by outcome, policy and time, and tallies for monitoring.

Outcome and policy are read from the stored body through the expressions each store indexes
(`SqlStore.outcome_sql`, `policy_sql`), so a page of 50 never reads more than it shows.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.audit.monitor_log import MonitorRecord, has_monitor_chain
from engine.audit.record import DecisionRecord, utc_text
from engine.audit.store import SqlStore, parse_record

__all__ = [
    "PAGE",
    "DecisionPage",
    "DecisionQuery",
    "Scored",
    "archived_policies",
    "latest_alerts",
    "latest_scores",
    "outcome_days",
    "page",
]

PAGE = 50


@dataclass(frozen=True)
class DecisionQuery:
    """What a page of decisions shows: filters (empty = any) and the keyset cursor `before`, the
    (received_at, decision_id) of the last row of the previous page."""

    outcome: str = ""
    policy: str = ""
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    before: tuple[str, str] | None = None


@dataclass(frozen=True)
class DecisionPage:
    records: list[DecisionRecord]
    next_before: tuple[str, str] | None  # the cursor of the next (older) page, None on the last


def page(store: SqlStore, query: DecisionQuery, size: int = PAGE) -> DecisionPage:
    """The `size` newest decisions matching `query`, older than its cursor."""
    where, params = _window(query.since, query.until)
    if query.outcome:
        where.append(f"{store.outcome_sql} = ?")
        params.append(query.outcome)
    if query.policy:
        where.append(f"{store.policy_sql} = ?")
        params.append(query.policy)
    if query.before is not None:
        # (received_at, decision_id) < cursor, spelled so both stores use the received_at index
        where.append("received_at <= ? AND (received_at < ? OR decision_id < ?)")
        params += [query.before[0], query.before[0], query.before[1]]
    rows = store._query(
        "SELECT body, hash FROM audit_records"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY received_at DESC, decision_id DESC LIMIT {int(size) + 1}",
        params,
    )
    records = [parse_record(body, hash) for body, hash in rows[:size]]
    last = records[-1] if len(rows) > size else None
    return DecisionPage(records, (last.received_at, last.decision_id) if last else None)


def outcome_days(
    store: SqlStore, since: dt.datetime | None, until: dt.datetime | None, outcomes: Sequence[str]
) -> dict[str, dict[str, int]]:
    """{day (YYYY-MM-DD, UTC): {outcome: decisions}} for decisions received in [since, until). One
    query per outcome, each a range of the outcome index (one GROUP BY over the window would read
    every record's body)."""
    where, params = _window(since, until)
    days: dict[str, dict[str, int]] = {}
    for outcome in outcomes:
        matching = " AND ".join([f"{store.outcome_sql} = ?", *where])
        rows = store._query(
            "SELECT substr(received_at, 1, 10), COUNT(*) FROM audit_records"
            f" WHERE {matching} GROUP BY substr(received_at, 1, 10)",
            [outcome, *params],
        )
        for day, count in rows:
            days.setdefault(str(day), {})[outcome] = int(count)
    return dict(sorted(days.items()))


@dataclass(frozen=True)
class Scored:
    """What the monitoring page reads of one decision: its score points (None if not scored) and
    its reasons, without parsing the whole record."""

    points: int | None
    reasons: list[dict[str, Any]]


def latest_scores(
    store: SqlStore, since: dt.datetime | None, until: dt.datetime | None, limit: int
) -> list[Scored]:
    """Points and reasons of the `limit` newest decisions received in [since, until)."""
    where, params = _window(since, until)
    rows = store._query(
        f"SELECT {_json(store, 'decision', 'score', 'points')}, {_json(store, 'decision', 'reasons')}"
        " FROM audit_records"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY received_at DESC, decision_id DESC LIMIT {int(limit)}",
        params,
    )
    return [Scored(None if p is None else int(p), json.loads(r) if r else []) for p, r in rows]


def archived_policies(store: SqlStore) -> list[dict[str, Any]]:
    """Policy texts archived beside the records (by sha256), oldest first: {sha256, name, archived}."""
    rows = store._query(
        "SELECT sha256, name, created_at FROM audit_blobs WHERE kind = ? ORDER BY created_at, sha256",
        ("policy",),
    )
    return [{"sha256": str(s), "name": str(n), "archived": str(c)} for s, n, c in rows]


def latest_alerts(store: SqlStore, limit: int) -> list[MonitorRecord]:
    """The `limit` newest post-loan monitoring alerts (none when the store has no monitor chain)."""
    if not has_monitor_chain(store):
        return []
    rows = store._query(
        f"SELECT body, hash FROM monitor_records WHERE kind = ? ORDER BY seq DESC LIMIT {int(limit)}",
        ("alert",),
    )
    return [MonitorRecord.parse(body, hash) for body, hash in rows]


def _json(store: SqlStore, *path: str) -> str:
    """SQL reading one value of the stored body (a JSON text for an array)."""
    if store.placeholder == "?":  # SQLite
        return f"json_extract(body, '$.{'.'.join(path)}')"
    return f"((body::jsonb) #>> '{{{','.join(path)}}}')"


def _window(since: dt.datetime | None, until: dt.datetime | None) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append("received_at >= ?")
        params.append(utc_text(since))
    if until is not None:
        where.append("received_at < ?")
        params.append(utc_text(until))
    return where, params
