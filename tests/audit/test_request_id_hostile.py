"""Caller-chosen ids with control characters (a NUL byte above all) are refused by the decision
core before any store sees them: PostgreSQL cannot store a NUL in text and answered INTERNAL,
SQLite stored it. Same answer on both stores, and nothing is recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from replay_helpers import copy_policies, service_with_log

from engine.errors import InvalidInput, NotFound


def approved_application(policies: Path) -> dict:
    doc = yaml.safe_load((policies / "consumer_loan" / "policy.yaml").read_text(encoding="utf-8"))
    case = next(c for c in doc["tests"] if c["expect"].get("outcome") == "APPROVE")
    return json.loads(json.dumps(case["input"], default=str))


@pytest.mark.parametrize("request_id", ["nul\x00byte", "line\nbreak", "\x7f"])
def test_nul_byte_in_request_id_is_invalid_input_on_every_store(
    store_url: str, tmp_path: Path, request_id: str
) -> None:
    policies = copy_policies(tmp_path)
    service = service_with_log(policies, store_url)
    try:
        with pytest.raises(InvalidInput) as caught:
            service.decide("consumer_loan", approved_application(policies), request_id)
        assert [v.field for v in caught.value.violations] == ["request_id"]
        with pytest.raises(InvalidInput):
            service.get_decision(request_id=request_id)
        with pytest.raises(InvalidInput):
            service.get_decision(decision_id=request_id)
        with pytest.raises(InvalidInput):
            service.replay(request_id)
        assert service.log.store.count() == 0
        decided = service.decide("consumer_loan", approved_application(policies), "plain-id")
        assert service.get_decision(request_id="plain-id").decision_id == decided.decision_id
        with pytest.raises(NotFound):
            service.get_decision(request_id="unknown-id")
    finally:
        service.log.close()
