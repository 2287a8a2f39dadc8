"""Champion/challenger and shadow policies: a stable hash of the key assigns the arm (the same
customer always gets the same arm, in any process), the Decision and its record name the arm, a
shadow decides after the answer and is recorded as a shadow but never answered, and the
experiment report's counts equal the store's."""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from release_helpers import MODELS, bump_version, copy_policies

from engine.audit.connect import open_store
from engine.audit.verify import verify_store
from engine.batch.experiment import experiment_report, wilson
from engine.cli import main
from engine.errors import PolicyError
from engine.policy import load_policy, load_policy_text
from engine.release.shadows import ShadowJob, ShadowRunner, spread_children
from engine.service import DecisionService

EXPERIMENT = """
experiment:
  key: applicant.id_number
  arms: [{policy: consumer_loan@2.1.0, share: SHARE}]
  shadows: [consumer_loan@3.0.0]
"""


def _experiment_policies(tmp_path: Path, share: str) -> Path:
    """consumer_loan 2.0.0 (champion, with the experiment), 2.1.0 (a lower cap) and 3.0.0 (a lower
    DTI limit) beside it as consumer_loan@VERSION/."""
    policies = copy_policies(tmp_path)
    source = policies / "consumer_loan" / "policy.yaml"
    text = source.read_text()
    challenger = (
        bump_version(text)
        .replace('version: "2.0.1"', 'version: "2.1.0"')
        .replace("cap: 200000", "cap: 150000")
    )
    shadow = text.replace('version: "2.0.0"', 'version: "3.0.0"', 1).replace(
        "when: dti > 0.55", "when: dti > 0.5"
    )
    for version, body in (("2.1.0", challenger), ("3.0.0", shadow)):
        (policies / f"consumer_loan@{version}").mkdir()
        (policies / f"consumer_loan@{version}" / "policy.yaml").write_text(body)
    source.write_text(text + EXPERIMENT.replace("SHARE", share))
    return policies


def _application(policies: Path, customer: str) -> dict[str, Any]:
    app = copy.deepcopy(load_policy(policies / "consumer_loan" / "policy.yaml").tests[0].input)
    app["applicant"]["id_number"] = customer
    return app


def test_ten_percent_arm_takes_ten_percent_of_ten_thousand_customers_stably(tmp_path: Path) -> None:
    policy = load_policy(_experiment_policies(tmp_path, "0.1") / "consumer_loan" / "policy.yaml")
    experiment = policy.experiment
    assert experiment is not None
    customers = [{"applicant": {"id_number": f"11010519900101{i:04d}"}} for i in range(10_000)]
    arms = [experiment.assign(c) for c in customers]
    share = sum(a is not None for a in arms) / len(arms)
    assert 0.09 <= share <= 0.11, share
    again = load_policy_text(policy.text, name="another worker").experiment  # another process, restart
    assert again is not None
    assert [again.assign(c) for c in customers] == arms
    assert experiment.assign({"applicant": {}}) is None  # no key: the champion


def test_service_routes_arms_records_them_and_shadows_are_never_answered(tmp_path: Path) -> None:
    policies = _experiment_policies(tmp_path, "0.3")
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    service = DecisionService(policies, MODELS, store=url)
    listed = {p["name"]: p for p in service.list_policies()}
    # candidates are listed with their champion
    assert list(listed) == ["consumer_loan", "credit_card", "german_credit"]
    assert listed["consumer_loan"]["experiment"]["arms"] == [
        {"policy": "consumer_loan@2.1.0", "share": "0.3"}
    ]
    answers = {}
    try:
        for i in range(40):
            decision = service.decide("consumer_loan", _application(policies, f"C{i}"), f"r{i}")
            answers[f"r{i}"] = decision
            want = "2.1.0" if decision.arm == "consumer_loan@2.1.0" else "2.0.0"
            assert decision.arm in ("champion", "consumer_loan@2.1.0") and decision.policy.version == want
        again = service.decide("consumer_loan", _application(policies, "C7"), "again-7")
        assert again.arm == answers["r7"].arm  # same customer, same arm
        pinned = service.decide("consumer_loan", _application(policies, "C7"), "pinned", version="2.0.0")
        assert pinned.arm == "" and pinned.policy.version == "2.0.0"
    finally:
        service.close()  # waits for the shadow process to record what was queued
    store = open_store(url, create=False)
    try:
        records = list(store.iter_records())
        report = experiment_report(store, None, None)
        verified = verify_store(store)  # the answers' chain and the shadow process's chain
    finally:
        store.close()
    assert verified.ok and len(verified.chains) == 2 and verified.records == len(records)
    shadows = [r for r in records if r.decision.get("arm", "").startswith("shadow:")]
    relabelled = dataclasses.replace(shadows[0], decision={**shadows[0].decision, "arm": "champion"})
    assert relabelled.computed_hash() != shadows[0].hash  # the arm is under the record's hash
    assert len(shadows) == 41 and all(r.policy["version"] == "3.0.0" for r in shadows)
    assert {r.extra["shadow_of"] for r in shadows} == {
        r.decision_id for r in records if r.request_id in answers or r.request_id == "again-7"
    }
    assert not any(a.arm.startswith("shadow") for a in answers.values())
    by_id = {r.decision_id: r for r in records}
    for shadow in shadows:  # personal data is sealed in a shadow record as in the answer's
        sealed = shadow.extra["pii"]["sealed"]
        assert sealed and sealed == by_id[shadow.extra["shadow_of"]].extra["pii"]["sealed"]
    arms = report["policies"]["consumer_loan"]
    challenger = sum(a.arm == "consumer_loan@2.1.0" for a in answers.values())
    assert arms["consumer_loan@2.1.0"]["decisions"] == challenger + (answers["r7"].arm != "champion")
    assert (
        sum(t["decisions"] for t in arms.values()) + report["outside_experiments"]
        == report["records"]
        == len(records)
    )
    assert report["outside_experiments"] == 1  # the pinned call
    assert sum(arms["shadow:consumer_loan@3.0.0"]["swaps"].values()) == 41


def test_experiment_key_must_be_a_declared_input(tmp_path: Path) -> None:
    policies = _experiment_policies(tmp_path, "0.1")
    source = policies / "consumer_loan" / "policy.yaml"
    source.write_text(source.read_text().replace("key: applicant.id_number", "key: applicant.id_numbr"))
    with pytest.raises(PolicyError, match=r"did you mean 'applicant\.id_number'"):
        load_policy(source)


def test_a_missing_challenger_refuses_the_champion(tmp_path: Path) -> None:
    policies = _experiment_policies(tmp_path, "0.1")
    (policies / "consumer_loan@2.1.0" / "policy.yaml").unlink()
    listed = {p["name"]: p for p in DecisionService(policies, MODELS).list_policies()}
    assert listed["consumer_loan"]["status"] == "REFUSED"
    assert "consumer_loan@2.1.0" in listed["consumer_loan"]["errors"][0]


def test_wilson_interval_brackets_the_rate() -> None:
    low, high = wilson(100, 1000)
    assert low < 0.1 < high and high - low < 0.04


def test_credo_experiment_report_writes_html_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = _experiment_policies(tmp_path, "0.5")
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    service = DecisionService(policies, MODELS, store=url)
    try:
        for i in range(6):
            service.decide("consumer_loan", _application(policies, f"K{i}"), f"k{i}")
    finally:
        service.close()
    assert main(["experiment", "report", "--store", url, "--report", str(tmp_path / "out")]) == 0
    assert "experiment.html" in capsys.readouterr().out
    assert "Champion / challenger" in (tmp_path / "out" / "experiment.html").read_text()


@pytest.mark.slow
def test_ten_thousand_decisions_assign_ten_percent_and_the_report_counts_equal_the_store(
    tmp_path: Path,
) -> None:
    policies = _experiment_policies(tmp_path, "0.1")
    source = policies / "consumer_loan" / "policy.yaml"
    source.write_text(source.read_text().replace("  shadows: [consumer_loan@3.0.0]\n", ""))
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    service = DecisionService(policies, MODELS, store=url)
    arms: dict[str, str] = {}
    try:
        base = _application(policies, "")
        for i in range(10_000):
            app = copy.deepcopy(base)
            app["applicant"]["id_number"] = f"11010519900101{i:04d}"
            arms[app["applicant"]["id_number"]] = service.decide("consumer_loan", app, f"d{i}").arm
        repeat = copy.deepcopy(base)
        repeat["applicant"]["id_number"] = "110105199001010042"
        assert service.decide("consumer_loan", repeat, "repeat").arm == arms["110105199001010042"]
    finally:
        service.close()
    share = sum(a == "consumer_loan@2.1.0" for a in arms.values()) / len(arms)
    assert 0.09 <= share <= 0.11, share
    store = open_store(url, create=False)
    try:
        report = experiment_report(store, None, None)
        assert report["records"] == store.count() == 10_001
    finally:
        store.close()
    by_arm = report["policies"]["consumer_loan"]
    assert sum(t["decisions"] for t in by_arm.values()) == 10_001
    assert by_arm["consumer_loan@2.1.0"]["decisions"] == sum(a != "champion" for a in arms.values()) + (
        arms["110105199001010042"] != "champion"
    )


def test_challenger_and_champion_decisions_replay_as_match(tmp_path: Path) -> None:
    """Regression: a challenger's text was archived under its folder NAME@VERSION (replay refused
    the name) and the replayed decision lacked the recorded arm (a false difference)."""
    policies = _experiment_policies(tmp_path, "0.5")
    service = DecisionService(policies, MODELS, store=f"sqlite:///{tmp_path / 'audit.db'}")
    try:
        decisions = [
            service.decide("consumer_loan", _application(policies, f"X{i}"), f"x{i}") for i in range(6)
        ]
        assert {d.arm for d in decisions} == {"champion", "consumer_loan@2.1.0"}
        for decision in decisions:
            result = service.replay(decision.decision_id)
            assert result.match, result.diffs
    finally:
        service.close()


def test_a_full_shadow_queue_counts_its_drops_and_close_records_every_queued_job(tmp_path: Path) -> None:
    policies = _experiment_policies(tmp_path, "0.1")
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    drops: list[int] = []
    make = functools.partial(DecisionService, policies, MODELS, url)
    runner = ShadowRunner(make, maxsize=2, on_drop=lambda: drops.append(1))
    shadows = (("consumer_loan", "3.0.0"),)
    for i in range(30):  # far faster than the shadow process can start: the queue of 2 fills
        runner.offer(ShadowJob(shadows, _application(policies, f"S{i}"), f"q{i}", "en", f"answer-{i}"))
    assert runner.close(timeout=120) == 0  # nothing queued is left unrecorded
    assert runner.dropped == len(drops) >= 1 and runner.offered + runner.dropped == 30
    store = open_store(url, create=False)
    try:
        records = list(store.iter_records())
    finally:
        store.close()
    assert len(records) == runner.offered
    assert all(r.decision["arm"] == "shadow:consumer_loan@3.0.0" for r in records)
    assert {r.request_id for r in records} <= {f"q{i}#shadow:consumer_loan@3.0.0" for i in range(30)}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin one")
def test_a_pinned_workers_shadow_process_runs_on_every_cpu_the_server_was_given(tmp_path: Path) -> None:
    policies = _experiment_policies(tmp_path, "0.1")
    make = functools.partial(DecisionService, policies, MODELS, f"sqlite:///{tmp_path / 'audit.db'}")
    given = frozenset(os.sched_getaffinity(0))
    runner = ShadowRunner(make)
    job = ShadowJob((("consumer_loan", "3.0.0"),), _application(policies, "S1"), "q1", "en", "answer-1")

    def pinned_worker() -> None:  # as engine.server.worker.pin: one CPU; the process starts from here
        spread_children(given)
        os.sched_setaffinity(0, {min(given)})  # this thread only: the test process keeps its CPUs
        runner.offer(job)

    try:
        thread = threading.Thread(target=pinned_worker)
        thread.start()
        thread.join()
        pid = runner._process.pid
        # the child starts on its parent's one CPU and widens itself first thing
        for _ in range(600):
            if os.sched_getaffinity(pid) == given or runner.done:
                break
            time.sleep(0.05)
        assert os.sched_getaffinity(pid) == given
    finally:
        spread_children(None)
        assert runner.close(timeout=120) == 0
