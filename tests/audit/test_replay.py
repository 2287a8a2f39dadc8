"""`credo replay DECISION_ID` as an auditor runs it: MATCH for recorded decisions, rebuilt from the
archive only (today's files may have changed), a field-level diff, and a clear refusal (exit 2) when
an archived file is missing or altered — never a false MATCH."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from replay_helpers import MODELS, ROOT, copy_policies, service_with_log, shipped_inputs

import engine.replay as replay_module
from engine.audit.canonical import canonical_json
from engine.audit.log import DecisionLog
from engine.audit.sqlite import sqlite_path
from engine.cli import main
from engine.errors import ArchiveMissing, CredoError
from engine.rules import evaluator
from engine.service import DecisionService


def decide_all(service: DecisionService, policies: Path) -> list[str]:
    """Decide every shipped policy's test input (those that decide) and return the decision ids."""
    ids = []
    for policy, name, application in shipped_inputs(policies):
        try:
            decision = service.decide(policy, application, f"{policy}:{name}")
        except CredoError:
            continue  # a test that expects an error: nothing is recorded
        ids.append(decision.decision_id)
    return ids


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[str, Path, list[str]]:
    """A store holding a few consumer_loan decisions; (url, policies folder, decision ids)."""
    policies = copy_policies(tmp_path)
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    service = service_with_log(policies, url)
    inputs = [a for p, _, a in shipped_inputs(policies) if p == "consumer_loan"][:3]
    ids = [service.decide("consumer_loan", app, f"r{i}").decision_id for i, app in enumerate(inputs)]
    service.log.close()
    return url, policies, ids


def test_every_shipped_policy_test_input_replays_to_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = copy_policies(tmp_path)
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    service = service_with_log(policies, url)
    ids = decide_all(service, policies)
    names = {service.log.get(i).policy["name"] for i in ids}
    assert len(ids) >= 20 and names == {"consumer_loan", "credit_card", "german_credit"}
    results = [service.replay(i) for i in ids]
    assert [(r.decision_id, r.result, r.diffs) for r in results] == [(i, "MATCH", ()) for i in ids]
    service.log.close()
    assert main(["replay", ids[-1], "--store", url]) == 0
    assert capsys.readouterr().out == f"MATCH {ids[-1]}\n"


def test_the_archive_holds_policy_text_and_every_model_file(recorded: tuple[str, Path, list[str]]) -> None:
    url, _, ids = recorded
    service = service_with_log(copy_policies(Path(sqlite_path(url)).parent / "other"), url)
    record = service.log.get(ids[0])
    assert sorted(record.archive) == [
        "models/consumer_pd/1.0.0/card.json",
        "models/consumer_pd/1.0.0/model.cbm",
        "models/consumer_pd/1.0.0/model.onnx",
        "policies/consumer_loan/monitoring.yaml",  # the policy folder's files all go (its monitoring policy)
        "policies/consumer_loan/policy.yaml",
    ]
    assert record.archive["policies/consumer_loan/policy.yaml"] == record.policy["sha256"]
    service.log.close()


def test_replay_after_the_policy_and_model_on_disk_changed_still_matches(
    recorded: tuple[str, Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, policies, ids = recorded
    policy_file = policies / "consumer_loan" / "policy.yaml"
    text = policy_file.read_text(encoding="utf-8")
    policy_file.write_text(text.replace("applicant.age < 22", "applicant.age < 99"), encoding="utf-8")
    # a service over the changed folder and no models at all: only the archive can rebuild the decision
    service = DecisionService(policies, tmp_path / "no-models", store=url)
    assert [service.replay(i).result for i in ids] == ["MATCH"] * len(ids)
    service.log.close()
    assert main(["replay", ids[0], "--store", url]) == 0
    assert capsys.readouterr().out == f"MATCH {ids[0]}\n"


def test_a_changed_outcome_is_shown_field_by_field_and_exits_1(
    recorded: tuple[str, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _, ids = recorded
    approved = next(i for i in ids if _body(url, i)["outcome"] == "APPROVE")
    body = _body(url, approved)
    real_apr = body["decision"]["offers"][0]["apr"]
    body["decision"]["offers"][0]["apr"] = "0.9999"
    body["derived"]["dti"] = "0.5"
    with sqlite3.connect(sqlite_path(url)) as conn:
        conn.execute("UPDATE audit_records SET body = ? WHERE decision_id = ?", (json.dumps(body), approved))
    assert main(["replay", approved, "--store", url]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"DIFF {approved}: 2 field(s) differ"
    assert f"  offers[0].apr: recorded 0.9999, replayed {real_apr}" in out
    assert any(line.startswith("  derived.dti: recorded 0.5, replayed ") for line in out)


def test_an_altered_schedule_hash_fails_verify_and_replay(
    recorded: tuple[str, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """Lean records keep each full schedule as its sha256 (issue 12.2): altering one is caught by
    verify (the record's hash) and by replay, which recomputes the schedule and compares."""
    url, _, ids = recorded
    approved = next(i for i in ids if _body(url, i)["outcome"] == "APPROVE")
    body = _body(url, approved)
    schedule = body["decision"]["offers"][0]["schedule"]  # type: ignore[index]
    real = schedule["sha256"]
    assert schedule["rows"] > 0 and len(real) == 64
    schedule["sha256"] = "0" * 64
    altered = canonical_json(body).decode()
    with sqlite3.connect(sqlite_path(url)) as conn:
        conn.execute("UPDATE audit_records SET body = ? WHERE decision_id = ?", (altered, approved))
    assert main(["audit", "verify", "--store", url]) == 1
    assert f"(decision {approved}): hash does not match its content" in capsys.readouterr().out
    assert main(["replay", approved, "--store", url]) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"  offers[0].schedule.sha256: recorded {'0' * 64}, replayed {real}" in out


@pytest.mark.parametrize("damage", ["policy text missing", "policy text altered", "model file missing"])
def test_a_damaged_archive_is_refused_never_a_false_match(
    recorded: tuple[str, Path, list[str]], damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url, policies, ids = recorded
    with sqlite3.connect(sqlite_path(url)) as conn:
        if damage == "policy text missing":
            conn.execute("DELETE FROM audit_blobs WHERE name LIKE 'policies/%'")
        elif damage == "policy text altered":
            conn.execute(
                "UPDATE audit_blobs SET data = CAST(replace(CAST(data AS TEXT), 'age < 22', 'age < 18')"
                " AS BLOB) WHERE name LIKE 'policies/%'"
            )
        else:
            conn.execute("DELETE FROM audit_blobs WHERE name LIKE '%/model.cbm'")
    assert main(["replay", ids[0], "--store", url]) == 2
    captured = capsys.readouterr()
    assert "MATCH" not in captured.out
    expected = {
        "policy text missing": "policies/consumer_loan/policy.yaml (sha256 ",
        "policy text altered": "policies/consumer_loan/policy.yaml (sha256 ",
        "model file missing": "models/consumer_pd/1.0.0/model.cbm (sha256 ",
    }[damage]
    assert "ARCHIVE_MISSING" in captured.err and expected in captured.err
    service = DecisionService(policies, policies.parent / "models", store=url)
    with pytest.raises(ArchiveMissing):
        service.replay(ids[0])
    service.log.close()


def test_grpc_replay_response_carries_match_and_diffs(recorded: tuple[str, Path, list[str]]) -> None:
    from engine.server.convert import replay_to_pb

    url, policies, ids = recorded
    service = DecisionService(policies, policies.parent / "models", store=url)
    response = replay_to_pb(service.replay(ids[0]))
    assert response.match and not response.diffs
    assert response.recorded.decision_id == response.replayed.decision_id == ids[0]
    service.log.close()


def test_unknown_decision_and_missing_arguments_exit_2(
    recorded: tuple[str, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _, _ = recorded
    assert main(["replay", "no-such-id", "--store", url]) == 2
    err = capsys.readouterr().err
    assert err.count("NOT_FOUND") == 1, err  # regression: printed "NOT_FOUND: NOT_FOUND: ..."
    assert main(["replay", "--store", url]) == 2


def _body(url: str, decision_id: str) -> dict[str, object]:
    with sqlite3.connect(sqlite_path(url)) as conn:
        (body,) = conn.execute(
            "SELECT body FROM audit_records WHERE decision_id = ?", (decision_id,)
        ).fetchone()
    result: dict[str, object] = json.loads(body)
    return result


@pytest.mark.parametrize("name", ["compiled", "durable", "reference"])
def test_the_record_names_its_rule_engine_and_replay_decides_on_it(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policies = copy_policies(tmp_path)
    log = DecisionLog(f"sqlite:///{tmp_path / 'audit.db'}")
    service = DecisionService(policies, MODELS, store=log, rule_engine=name)
    app = next(a for p, _, a in shipped_inputs(policies) if p == "consumer_loan")
    decision_id = service.decide("consumer_loan", app, "engine-1").decision_id
    assert log.get(decision_id).extra["rule_engine"] == name
    asked: list[str] = []
    monkeypatch.setattr(
        replay_module, "rule_engine", lambda engine: asked.append(engine) or evaluator(engine)
    )
    assert service.replay(decision_id).result == "MATCH"
    assert asked == [name]
    log.close()


def test_a_consumer_loan_1_0_0_record_still_matches_after_the_upgrade_to_2_0_0(tmp_path: Path) -> None:
    """Records decided on 1.0.0 (12-month margin ranking) replay on their archived text once 2.0.0
    (lifetime NPV ranking) is what serves: the new economics are a new version, not a new meaning.
    (That today's engine decides the 1.0.0 text exactly as the engine of its time did is proven
    against the old golden files in tests/pipeline/test_pipeline_golden.py.)"""
    legacy = tmp_path / "legacy"
    shutil.copytree(ROOT / "tests" / "pipeline" / "legacy", legacy)
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    old = service_with_log(legacy, url)
    inputs = [a for p, _, a in shipped_inputs(legacy) if p == "consumer_loan"]
    ids = [old.decide("consumer_loan", app, f"old-{i}").decision_id for i, app in enumerate(inputs)]
    first = old.log.get(ids[0])
    assert first.policy["version"] == "1.0.0" and "objective" not in first.decision
    old.log.close()
    upgraded = service_with_log(copy_policies(tmp_path), url)
    assert upgraded.policy("consumer_loan").version == "2.0.0"
    assert [upgraded.replay(i).result for i in ids] == ["MATCH"] * len(ids)
    upgraded.log.close()
