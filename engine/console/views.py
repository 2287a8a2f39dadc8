"""What each console page shows, built from the store, the policies folder and the reports folder:
plain data for the templates (no HTTP here), so every page's content is testable on its own."""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import functools
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.audit.pii import PiiVault
from engine.audit.record import DecisionRecord
from engine.audit.search import (
    DecisionQuery,
    archived_policies,
    latest_alerts,
    latest_scores,
    outcome_days,
    page,
)
from engine.audit.store import SqlStore
from engine.decision import Decision, Outcome, plain
from engine.errors import ArchiveMissing, CredoError
from engine.models.store import ModelStore
from engine.monitor.drift import DriftReport, drift_report
from engine.pipeline.render import decision_from_record
from engine.policy.testing import run_tests
from engine.release.bundle import select
from engine.release.signing import trusted_keys
from engine.service import DecisionService, decide_for_tests

__all__ = [
    "OUTCOMES",
    "decision_story",
    "decisions_page",
    "drift",
    "monitoring",
    "policies",
    "policy_diff",
    "reports",
]

OUTCOMES = tuple(o.value for o in Outcome)
SAMPLE = 5000  # decisions read for the score distribution and the top reasons
ALERTS = 50  # newest post-loan monitoring alerts shown
FLAGGED = 4  # flagged features drawn beside the score's PSI


def decisions_page(store: SqlStore, query: DecisionQuery) -> dict[str, Any]:
    found = page(store, query)
    rows = []
    for r in found.records:
        score = r.decision.get("score") or {}
        rows.append(
            {
                "decision_id": r.decision_id,
                "received_at": r.received_at[:19].replace("T", " "),
                "policy": f"{r.policy.get('name', '')} {r.policy.get('version', '')}",
                "outcome": r.outcome,
                "points": score.get("points", ""),
                "grade": score.get("grade", ""),
                "limit": r.decision.get("limit") or "",
            }
        )
    cursor = f"{found.next_before[0]}~{found.next_before[1]}" if found.next_before else ""
    return {"rows": rows, "next": cursor}


def decision_story(store: SqlStore, vault: PiiVault, record: DecisionRecord) -> dict[str, Any]:
    """Everything one decision's page shows; personal values masked unless `vault` holds the key."""
    shown = vault.masked(record)
    decision: Decision | None = None
    schedules_note = ""
    try:
        decision = decision_from_record(shown.decision, shown.stages)
    except (ArchiveMissing, CredoError, KeyError, ValueError) as exc:
        schedules_note = f"schedules could not be recomputed: {exc}"
    head = store.chain_head(record.chain_id)
    offers = []
    for i, terms in enumerate(shown.decision.get("offers", [])):
        schedule = decision.offers[i].schedule if decision is not None else ()
        offers.append(
            {
                "terms": {k: _text(v) for k, v in terms.items() if k != "schedule"},
                "schedule": [plain(row, "text") for row in schedule],
                "schedule_sha256": (terms.get("schedule") or {}).get("sha256", ""),
            }
        )
    sealed = set((record.extra.get("pii") or {}).get("sealed", []))
    return {
        "record": shown,
        "input": {k: _text(v) for k, v in shown.input.items()},
        "sealed": sealed,
        "masked": bool(sealed) and vault.master is None,
        "derived": {k: _text(v) for k, v in shown.derived.items()},
        "model_outputs": {k: _text(v) for k, v in shown.model_outputs.items()},
        "stages": [
            {
                "stage": s.get("stage", ""),
                "fired": list(s.get("fired", [])),
                "values": {k: _text(v) for k, v in (s.get("values") or {}).items()},
                "millis": s.get("millis", ""),
            }
            for s in shown.stages
        ],
        "reasons": list(shown.decision.get("reasons", [])),
        "score": shown.decision.get("score") or {},
        "summary": {
            k: _text(shown.decision.get(k))
            for k in ("limit", "annual_rate", "currency", "segments", "decided_at", "objective")
            if shown.decision.get(k) not in (None, "", [])
        },
        "offers": offers,
        "schedules_note": schedules_note,
        "head_seq": head.seq if head else None,
        "replay_error": "",
    }


@dataclass(frozen=True)
class Window:
    since: dt.datetime
    until: dt.datetime


def monitoring(store: SqlStore, window: Window) -> dict[str, Any]:
    """Outcome volumes and rates per day, the score distribution and the top reasons (of the latest
    SAMPLE decisions in the window)."""
    days = outcome_days(store, window.since, window.until, OUTCOMES)
    points = sorted(days)
    volumes = {o: [float(days[d].get(o, 0)) for d in points] for o in OUTCOMES}
    totals = [sum(days[d].values()) for d in points]
    rates = {
        o: [days[d].get(o, 0) / total if total else None for d, total in zip(points, totals, strict=True)]
        for o in OUTCOMES
    }
    sample = latest_scores(store, window.since, window.until, SAMPLE)
    scores: Counter[int] = Counter()
    reasons: Counter[str] = Counter()
    texts: dict[str, str] = {}
    for scored in sample:
        if scored.points is not None:
            scores[scored.points // 10 * 10] += 1
        for reason in scored.reasons:
            reasons[str(reason.get("code", ""))] += 1
            texts.setdefault(str(reason.get("code", "")), str(reason.get("text", "")))
    total = sum(totals)
    return {
        "points": points,
        "volumes": volumes,
        "rates": rates,
        "total": total,
        "by_outcome": {o: sum(days[d].get(o, 0) for d in points) for o in OUTCOMES},
        "scores": sorted(scores.items()),
        "sample": len(sample),
        "reasons": [(code, n, texts[code]) for code, n in reasons.most_common(10)],
        "alerts": [
            {"seq": a.seq, "loan_id": a.loan_id, "date": a.date, **{k: _text(v) for k, v in a.data.items()}}
            for a in latest_alerts(store, ALERTS)
        ],
    }


def drift(store: SqlStore, window: Window, models: Path) -> DriftReport:
    """PSI of each model's score and CSI of its features against the training baseline of its card,
    per day of the window (engine.monitor.drift reads every decision of the window)."""
    return drift_report(store, since=window.since, until=window.until, by="day", models=ModelStore(models))


def drift_panels(report: DriftReport) -> list[dict[str, Any]]:
    """One panel per model: its status, the score's PSI and its flagged features' CSI per day
    (series for the chart, with the watch and action thresholds), and each feature's index."""
    panels = []
    for model in report.models:
        points = [p.period for p in model.periods]
        series: dict[str, list[float | None]] = {"score PSI": [p.score_psi for p in model.periods]}
        for name in model.flagged[:FLAGGED]:
            series[f"{name} CSI"] = [p.features.get(name) for p in model.periods]
        panels.append(
            {
                "model": f"{model.model} {model.version}",
                "status": model.status,
                "note": model.note,
                "count": model.count,
                "psi": None if model.score is None else model.score.psi,
                "thresholds": model.thresholds,
                "flagged": model.flagged,
                "features": sorted(
                    ((f.name, f.psi, f.status) for f in model.features), key=lambda f: -(f[1] or 0.0)
                ),
                "points": points,
                "series": series,
            }
        )
    return panels


def policies(service: DecisionService, store: SqlStore | None, config: Any = None) -> dict[str, Any]:
    """Policies served from the folder, each with its own tests' results, the versions archived in
    the store (every version that decided something) and, given a release folder, its releases."""
    served = []
    for info in service.list_policies():
        tests: dict[str, Any] = {"passed": 0, "failed": 0, "failures": []}
        if info["status"] == "SERVING":
            tests = _test_results(info["name"], info["sha256"], service)
        served.append({**info, "tests": tests})
    archived = [a for a in archived_policies(store) if a["name"].endswith("/policy.yaml")] if store else []
    found = releases(config.releases, config.trust, config.approvals, config.models) if config else None
    return {"served": served, "archived": archived, "releases": found}


def releases(
    root: Path | None, trust: Path | None, required: int, models: Path
) -> list[dict[str, Any]] | None:
    """Every release bundle under `root` with its verdict as `credo release list` gives it: approvers
    whose signatures hold against the trusted keys, and every reason it may not serve."""
    if root is None:
        return None
    trusted = trusted_keys(trust) if trust else {}
    active, verdicts = select(root, trusted, required, models)
    serving = {v.release.release_id for v in active.values()}
    return [{**v.to_dict(), "serving": v.release.release_id in serving} for v in reversed(verdicts)]


@functools.lru_cache(maxsize=64)
def _cached_tests(name: str, sha256: str, service: DecisionService) -> tuple[int, int, tuple[str, ...]]:
    policy = service.policy(name)
    report = run_tests(policy, decide_for_tests)
    failures = tuple(f"{r.location}: {r.name}: {f}" for r in report.results for f in r.failures)
    return report.passed, report.failed, failures


def _test_results(name: str, sha256: str, service: DecisionService) -> dict[str, Any]:
    passed, failed, failures = _cached_tests(name, sha256, service)  # by sha256: a new text runs again
    return {"passed": passed, "failed": failed, "failures": list(failures)}


def policy_diff(old: tuple[str, str], new: tuple[str, str]) -> list[tuple[str, str]]:
    """A unified text diff of two policy texts ((label, text) each), as (css class, line) pairs."""
    lines = difflib.unified_diff(
        old[1].splitlines(), new[1].splitlines(), fromfile=old[0], tofile=new[0], lineterm="", n=3
    )
    out = []
    for line in lines:
        kind = (
            "add"
            if line.startswith("+")
            else "del"
            if line.startswith("-")
            else "hunk"
            if line[:2] == "@@"
            else ""
        )
        out.append((kind, line))
    return out


def reports(directory: Path | None) -> list[dict[str, Any]]:
    """Reports the batch commands wrote under `directory` (each a folder with report.html and
    summary.json), newest first."""
    if directory is None or not directory.is_dir():
        return []
    found = []
    for html in directory.glob("*/report.html"):
        folder = html.parent
        summary: Mapping[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):  # a report without its figures is still listed
            summary = json.loads((folder / "summary.json").read_text("utf-8"))
        kind = "simulation" if "arms" in summary else "what-if" if summary else "report"
        found.append(
            {
                "name": folder.name,
                "kind": kind,
                "written": dt.datetime.fromtimestamp(html.stat().st_mtime, dt.UTC).strftime("%Y-%m-%d %H:%M"),
                "policy": _report_policy(summary),
            }
        )
    return sorted(found, key=lambda r: r["written"], reverse=True)


def _report_policy(summary: Mapping[str, Any]) -> str:
    for key in ("policy", "new_policy"):
        value = summary.get(key)
        if isinstance(value, Mapping):
            return f"{value.get('name', '')} {value.get('version', '')}".strip()
        if isinstance(value, str):
            return value
    return ""


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(plain(value, "text"), ensure_ascii=False, sort_keys=True, default=str)
