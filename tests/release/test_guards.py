"""Guards that always hold: a policy whose own tests fail never serves (listed REFUSED with the
failed tests while the others serve), and a version names one text only — a changed text under a
version this server or the audit store's archive already holds is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from release_helpers import MODELS, POLICIES, break_a_test, bump_version, copy_policies

from engine.errors import PolicyRefused
from engine.policy import load_policy
from engine.release.guards import VersionLedger
from engine.service import DecisionService

# the shipped policy's first own test: a salaried applicant with a clean file, approved
APPLICATION = load_policy(POLICIES / "consumer_loan" / "policy.yaml").tests[0].input


def test_policy_whose_own_test_fails_is_refused_and_the_others_serve(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)
    source = policies / "consumer_loan" / "policy.yaml"
    source.write_text(bump_version(break_a_test(source.read_text())))
    service = DecisionService(policies, MODELS)
    listed = {p["name"]: p for p in service.list_policies()}
    refused = listed["consumer_loan"]
    assert refused["status"] == "REFUSED"
    assert refused["version"] == "2.0.1"
    assert any("applicant under 22 is declined" in e and "policy.yaml:" in e for e in refused["errors"])
    assert listed["german_credit"]["status"] == "SERVING"
    with pytest.raises(PolicyRefused) as caught:
        service.decide("consumer_loan", APPLICATION, "refused")
    assert caught.value.grpc_status == "FAILED_PRECONDITION"


def test_changed_text_under_an_archived_version_is_refused(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    first = DecisionService(policies, MODELS, store=url)
    assert first.decide("consumer_loan", APPLICATION, "archived").policy.version == "2.0.0"
    first.log.close()  # type: ignore[union-attr]
    source = policies / "consumer_loan" / "policy.yaml"
    source.write_text(source.read_text().replace("cap: 200000", "cap: 150000", 1))  # tests still pass
    second = DecisionService(policies, MODELS, store=url)
    try:
        listed = {p["name"]: p for p in second.list_policies()}
        assert listed["consumer_loan"]["status"] == "REFUSED"
        (reason,) = listed["consumer_loan"]["errors"]
        assert "version 2.0.0 changed" in reason and "audit store" in reason
        source.write_text(bump_version(source.read_text()))  # a new version for the new text serves
        third = DecisionService(policies, MODELS, store=second.log)
        assert third.decide("consumer_loan", APPLICATION, "bumped").policy.version == "2.0.1"
    finally:
        second.log.close()  # type: ignore[union-attr]


def test_changed_text_under_a_version_this_server_served_is_refused(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)
    ledger = VersionLedger(tmp_path / "versions.json")
    served = DecisionService(policies, MODELS, ledger=ledger.path).list_policies()
    ledger.record(served)
    assert ledger.serving() == {"consumer_loan", "credit_card", "german_credit"}
    source = policies / "german_credit" / "policy.yaml"
    source.write_text(source.read_text() + "\n# a comment is a change of text too\n")
    listed = {p["name"]: p for p in DecisionService(policies, MODELS, ledger=ledger.path).list_policies()}
    assert listed["german_credit"]["status"] == "REFUSED"
    assert "changed: this server holds it" in listed["german_credit"]["errors"][0]
    assert listed["consumer_loan"]["status"] == "SERVING"
