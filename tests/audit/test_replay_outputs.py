"""A policy's own outputs, list inputs and the decision date in the audit log: recorded, replayed
exactly (never reading the clock), and compared field by field like every other field."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

from replay_helpers import MODELS, copy_policies, minute_clock, service_with_log, shipped_inputs

from engine.audit.sqlite import sqlite_path
from engine.cli import main
from engine.service import DecisionService


def _credit_card_input(policies: Path, name_part: str) -> dict[str, object]:
    return next(a for p, n, a in shipped_inputs(policies) if p == "credit_card" and name_part in n)


def _body(url: str, decision_id: str) -> dict[str, object]:
    with sqlite3.connect(sqlite_path(url)) as conn:
        (body,) = conn.execute(
            "SELECT body FROM audit_records WHERE decision_id = ?", (decision_id,)
        ).fetchone()
    result: dict[str, object] = json.loads(body)
    return result


def test_the_decision_date_is_recorded_and_replay_years_later_matches_without_the_clock(
    tmp_path: Path,
) -> None:
    policies = copy_policies(tmp_path)
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    service = service_with_log(policies, url, clock=minute_clock(dt.datetime(2026, 2, 1, 9, tzinfo=dt.UTC)))
    application = _credit_card_input(policies, "today when the caller leaves it out")
    assert "decision_date" not in application
    decision = service.decide("credit_card", application, "cc-1")
    assert decision.outputs["review"]["decided_for"] == dt.date(2026, 2, 1)
    assert decision.outputs["age"] == 10  # born 2015-06-01: ten on 2026-02-01
    service.log.close()
    body = _body(url, decision.decision_id)
    assert body["input"]["decision_date"] == "2026-02-01"  # type: ignore[index]
    assert body["decision"]["outputs"]["age"] == 10  # type: ignore[index]
    assert len(body["input"]["bureau.tradelines"]) == 1  # type: ignore[index]
    # five years on, a service whose clock says 2031 replays the record as it was decided
    later = DecisionService(policies, MODELS, store=url, clock=lambda: dt.datetime(2031, 6, 1, tzinfo=dt.UTC))
    result = later.replay(decision.decision_id)
    assert (result.result, result.diffs) == ("MATCH", ())
    later.log.close()


def test_a_changed_output_in_the_record_is_a_field_level_diff(tmp_path: Path, capsys: object) -> None:
    policies = copy_policies(tmp_path)
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    service = service_with_log(policies, url)
    decision = service.decide("credit_card", _credit_card_input(policies, "almost fully drawn"), "cc-2")
    assert decision.outputs["risk.band"] == "high"
    service.log.close()
    body = _body(url, decision.decision_id)
    body["decision"]["outputs"]["risk.band"] = "low"  # type: ignore[index]
    body["decision"]["outputs"]["benefits"] = ["welcome_gift", "cashback"]  # type: ignore[index]
    with sqlite3.connect(sqlite_path(url)) as conn:
        conn.execute(
            "UPDATE audit_records SET body = ? WHERE decision_id = ?",
            (json.dumps(body), decision.decision_id),
        )
    assert main(["replay", decision.decision_id, "--store", url]) == 1
    out = capsys.readouterr().out.splitlines()  # type: ignore[attr-defined]
    assert out[0] == f"DIFF {decision.decision_id}: 2 field(s) differ"
    assert "  outputs.risk.band: recorded low, replayed high" in out
    assert "  outputs.benefits[1]: recorded cashback, replayed (absent)" in out


def test_a_retry_after_midnight_is_the_same_request_not_a_conflict(tmp_path: Path) -> None:
    """Regression: the decision date a caller leaves out was part of the idempotency fingerprint, so
    the retry of a request across midnight (UTC) was refused as another application under the same id."""
    policies = copy_policies(tmp_path)
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    times = iter(
        [dt.datetime(2026, 2, 1, 23, 59, 59, tzinfo=dt.UTC), dt.datetime(2026, 2, 2, 0, 0, 5, tzinfo=dt.UTC)]
    )
    service = service_with_log(policies, url, clock=lambda: next(times))
    application = _credit_card_input(policies, "today when the caller leaves it out")
    first = service.decide("credit_card", application, "midnight")
    again = service.decide("credit_card", application, "midnight")
    assert again.decision_id == first.decision_id
    assert again.outputs["review"]["decided_for"] in (dt.date(2026, 2, 1), "2026-02-01")
    service.log.close()
