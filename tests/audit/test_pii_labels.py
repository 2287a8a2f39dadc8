"""Caller labels a policy declares `pii: true` (`labels:` section): sealed in the record like a
personal input, masked on export without the key, opened on replay with it, erased by `forget`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import raw_bytes

from engine.audit import DecisionLog
from engine.audit.connect import open_store
from engine.audit.pii import MASK, PiiVault
from engine.audit.pii_keys import MasterKey
from engine.audit.verify import verify_store
from engine.cli import main
from engine.errors import PolicyError
from engine.policy import load_policy_text
from engine.replay import Replayer
from engine.service import DecisionService, default_evaluator

ROOT = Path(__file__).resolve().parents[2]
OFFICER = "Wen Jiahui"  # the loan officer's name, a label the policy declares personal
ID_NUMBER = "11010519491231002X"
LABELS = """
labels:
  officer: {pii: true, description: the loan officer who took the application}
  channel: {description: where the application came from}
"""


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    dest = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", dest)
    for name in ("consumer_loan", "german_credit"):  # german_credit has no personal input at all
        with (dest / name / "policy.yaml").open("a", encoding="utf-8") as fh:
            fh.write(LABELS)
    return dest


def first_test_input(service: DecisionService, policy: str) -> dict[str, Any]:
    app = dict(service.policy(policy).tests[0].input)
    if policy == "consumer_loan":
        app["applicant"] = {**app["applicant"], "id_number": ID_NUMBER}
    return app


@pytest.mark.parametrize("policy", ["consumer_loan", "german_credit"])
def test_a_personal_label_is_sealed_masked_opened_and_erased(
    policies: Path, store_url: str, tmp_path: Path, policy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "master.key"
    master = MasterKey.create(key)
    log = DecisionLog(open_store(store_url))
    service = DecisionService(policies, ROOT / "models", store=log, pii=PiiVault(log.store, master))
    labels = {"officer": OFFICER, "channel": "web"}
    decision = service.decide(policy, first_test_input(service, policy), "r-1", labels=labels)
    stored = log.store.get(decision.decision_id)
    assert stored is not None
    assert stored.extra["labels"] == {"officer": {"$pii": "extra.labels.officer"}, "channel": "web"}
    assert service.replay(decision.decision_id).result == "MATCH"  # opened with the key
    with Replayer(log.store, default_evaluator(), vault=PiiVault(log.store, None)) as keyless:
        partial = keyless.replay(decision.decision_id)
    assert partial.result == "PARTIAL" and partial.unrestored["extra.labels.officer"] == "no key"
    log.close()

    raw = raw_bytes(store_url)
    assert decision.decision_id.encode() in raw and b'"channel":"web"' in raw
    assert OFFICER.encode() not in raw

    def exported(*key_args: str) -> dict[str, Any]:
        assert main(["audit", "export", "--store", store_url, *key_args]) == 0
        return dict(json.loads(capsys.readouterr().out.splitlines()[0])["extra"]["labels"])

    assert exported("--pii-key-file", str(key)) == labels
    assert exported() == {"officer": MASK, "channel": "web"}

    vault = PiiVault(open_store(store_url), master)
    try:
        if policy == "consumer_loan":
            vault.forget(ID_NUMBER)
        else:  # no subject key declared: the day's data key holds it
            subject = str(stored.extra["pii"]["subject"])
            vault.table.erase(subject, 1)
        assert verify_store(vault.store).ok
        with Replayer(vault.store, default_evaluator(), vault=vault) as replayer:
            erased = replayer.replay(decision.decision_id)
        assert erased.result == "PARTIAL" and erased.diffs == ()
        assert erased.unrestored["extra.labels.officer"] == "erased"
    finally:
        vault.store.close()
    assert exported("--pii-key-file", str(key)) == {"officer": MASK, "channel": "web"}


def test_a_bad_labels_section_is_located() -> None:
    text = (ROOT / "policies" / "german_credit" / "policy.yaml").read_text(encoding="utf-8")
    bad = text + "\nlabels:\n  officer: {pii: yes please}\n  'no spaces': {pii: true}\n"
    with pytest.raises(PolicyError) as failed:
        load_policy_text(bad, "policy.yaml")
    found = {(d.code, d.message.split(":")[0]) for d in failed.value.diagnostics}
    assert ("WRONG_TYPE", "wrong type for labels.officer.pii") in found
    assert any(code == "BAD_VALUE" and "bad label key 'no spaces'" in m for code, m in found)
