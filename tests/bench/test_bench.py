"""`credo bench` without timing: the ratio arithmetic, the --compare table, and the ZEN peer decision
agreeing with Credo's own rule stages (and disagreeing when its logic is changed)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from engine.bench.report import RATIO_KEYS, TARGETS, compute_ratios
from engine.cli import main

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "consumer_loan" / "policy.yaml"

SECTIONS: dict[str, Any] = {
    "pipeline": {
        "consumer_loan": {
            "approve_p50_ms": 0.9,
            "floor_ms": 0.6,
            "by_outcome": {"APPROVE": {"p50_ms": 0.9}, "REFER": {"p50_ms": 1.08}},
            "varied": {"decisions": 300, "by_outcome": {"APPROVE": {"n": 300, "p50_ms": 4.5}}},
        }
    },
    "floor": {"decide_us": 24.0, "zen_us": 8.0},
    "rules": {"engine": "compiled", "compiled_us": 6.0, "durable_us": 120.0, "handwritten_us": 1.5},
    "peer": {"credo_us": 300.0, "zen_us": 50.0},
    "grpc": {
        "rows": {
            "echo@1": {"p50_ms": 0.5, "rps": 2000.0},
            "decide@1": {"p50_ms": 1.0, "rps": 900.0},
            "echo@16": {"p50_ms": 4.0, "rps": 3200.0},
            "decide@16": {
                "p50_ms": 40.0,
                "rps": 400.0,
                "worker_shares": [0.6, 0.4],
                "worker_share_min": 0.4,
                "channels": 4,
            },
            "decide@16+log": {"p50_ms": 46.0, "rps": 350.0},
        }
    },
    "batch": {
        "credo_per_s": 750.0,
        "floor_per_s": 1500.0,
        "applications": 2000,
        "scaling": {"rows": 400, "workers_1_per_s": 500.0, "workers_2_per_s": 900.0},
    },
    "memory": {"rss_before": 200 * 2**20, "rss_after": 205 * 2**20, "decisions": 20000},
    "monitor": {
        "events": 24000,
        "credo_events_per_s": 40000.0,
        "handwritten_events_per_s": 300000.0,
        "memory": {"events": 100000, "rss_before": 100 * 2**20, "rss_after": 101 * 2**20},
    },
    "records": {"records": 36, "record_bytes": 3981.5},
    "pii": {"seal_p50_ms": 0.02, "decide_p50_ms": 1.0, "new_subject_p50_ms": 0.5, "sealed_fields": 4},
    "experiment": {"p50_ms": 2.0, "shadow_p50_ms": 2.1, "shadows_recorded": 200},
}


def test_every_ratio_is_the_quotient_of_its_two_side_by_side_figures() -> None:
    ratios, made = compute_ratios(SECTIONS)
    assert set(ratios) == set(RATIO_KEYS)
    assert ratios["decide_p50_vs_parts"] == pytest.approx(1.5)
    assert ratios["refer_vs_approve_p50"] == pytest.approx(1.2)
    assert ratios["varied_vs_repeated_p50"] == pytest.approx(5.0)  # no two alike / repeated inputs
    assert ratios["decide_floor_vs_zen_floor"] == pytest.approx(3.0)
    assert ratios["rules_vs_handwritten"] == pytest.approx(4.0)  # the default (compiled) evaluator
    assert ratios["rules_vs_zen"] == pytest.approx(6.0)
    assert ratios["grpc_p50_vs_echo"] == pytest.approx(2.0)  # 1 in flight
    assert ratios["grpc_throughput_vs_echo"] == pytest.approx(0.125)  # 16 in flight
    assert ratios["audit_log_latency_cost"] == pytest.approx(0.15)  # 46 / 40 - 1
    assert ratios["worker_share_min"] == pytest.approx(0.4)  # the smaller of two workers' shares
    assert "0.60 / 0.40" in made["worker_share_min"]
    assert ratios["batch_vs_floor"] == pytest.approx(0.5)
    assert ratios["batch_scaling_2w"] == pytest.approx(1.8)
    assert ratios["rss_growth"] == pytest.approx(1.025)
    assert ratios["monitor_vs_handwritten"] == pytest.approx(7.5)
    assert ratios["monitor_rss_growth"] == pytest.approx(1.01)
    assert ratios["record_bytes"] == 3981.5  # a mean size, not a ratio
    assert ratios["pii_encryption_cost"] == pytest.approx(0.02)
    assert ratios["shadow_latency_cost"] == pytest.approx(0.05)  # 2.1 / 2.0 - 1
    assert "ZenEngine.evaluate 50.0 µs" in made["rules_vs_zen"]
    assert "compiled evaluator 6.0 µs" in made["rules_vs_handwritten"]
    assert TARGETS["batch_vs_floor"].met(0.8) and not TARGETS["batch_vs_floor"].met(0.5)
    assert TARGETS["batch_scaling_2w"].met(1.8) and not TARGETS["rules_vs_zen"].met(6.0)


def test_a_failed_section_leaves_its_ratios_out() -> None:
    ratios, _ = compute_ratios({k: v for k, v in SECTIONS.items() if k != "grpc"})
    assert not {
        "grpc_p50_vs_echo",
        "grpc_throughput_vs_echo",
        "audit_log_latency_cost",
        "worker_share_min",
    } & set(ratios)
    assert "rules_vs_zen" in ratios


def test_compare_shows_the_change_of_every_ratio(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before, _ = compute_ratios(SECTIONS)
    after = dict(before, rules_vs_zen=3.0, batch_vs_floor=0.4)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"ratios": before}))
    b.write_text(json.dumps({"ratios": after}))
    assert main(["bench", "--compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    for key in RATIO_KEYS:
        assert key in out
    zen_row = next(line for line in out.splitlines() if "rules_vs_zen" in line)
    assert re.search(r"6\.000 .* 3\.000 .* -3\.000 \(-50\.0%\) .* better", zen_row)
    batch_row = next(line for line in out.splitlines() if "batch_vs_floor" in line)
    assert re.search(r"0\.500 .* 0\.400 .* -0\.100 \(-20\.0%\) .* worse", batch_row)


def test_compare_refuses_a_missing_file(tmp_path: Path) -> None:
    assert main(["bench", "--compare", str(tmp_path / "no.json"), str(tmp_path / "no.json")]) == 2


def _inputs(count: int) -> tuple[Any, list[Any]]:
    from engine.bench.facts import scored_facts
    from engine.policy import load_policy

    policy = load_policy(POLICY)
    tests = [t.input for t in policy.tests if "error" not in t.expect]
    return policy, scored_facts(policy, ROOT / "models", count, extra=tests)


def test_the_zen_decision_agrees_with_credos_rule_stages() -> None:
    pytest.importorskip("zen")
    from engine.bench.handwritten import consumer_loan_rules
    from engine.bench.peer import (
        check_equivalence,
        credo_rule_stages,
        zen_context,
        zen_engine,
        zen_rule_stages,
    )
    from engine.service import default_evaluator

    policy, inputs = _inputs(40)
    engine, evaluator = zen_engine(), default_evaluator()
    coverage = check_equivalence(
        {
            "credo": lambda i: credo_rule_stages(policy, evaluator, i.fact, i.points),
            "zen": lambda i: zen_rule_stages(engine, zen_context(i.fact, i.points)),
            "handwritten": lambda i: consumer_loan_rules(i.fact, i.points),
        },
        inputs,
    )
    # the policy's own tests reach declines and refers the generator rarely draws
    assert {"BLACKLISTED", "PURPOSE", "THIN_FILE", "AMOUNT_TO_INCOME"} <= set(coverage)


def test_a_zen_decision_with_different_logic_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("zen")
    import zen

    from engine.bench import peer
    from engine.bench.zen import CONSUMER_LOAN_JDM
    from engine.service import default_evaluator

    policy, inputs = _inputs(0)
    graph = json.loads(CONSUMER_LOAN_JDM.read_text(encoding="utf-8"))
    text = json.dumps(graph).replace("bureau.score < 520", "bureau.score < 730")
    engine = zen.ZenEngine({"loader": {"type": "static", "content": {peer.ZEN_KEY: json.loads(text)}}})
    evaluator = default_evaluator()
    with pytest.raises(peer.EquivalenceError, match="eligibility"):
        peer.check_equivalence(
            {
                "credo": lambda i: peer.credo_rule_stages(policy, evaluator, i.fact, i.points),
                "zen": lambda i: peer.zen_rule_stages(engine, peer.zen_context(i.fact, i.points)),
            },
            inputs,
        )


def test_the_pipeline_section_times_every_shipped_policy_dated_inputs_included() -> None:
    """`credo bench`'s pipeline section failed on credit_card, whose decision date defaults to today:
    its floor validated the tests' inputs without the date the tests decide on."""
    from engine.bench.pipeline import bench_policy
    from engine.service import DecisionService

    service = DecisionService(ROOT / "policies", ROOT / "models")
    for name in ("consumer_loan", "german_credit", "credit_card"):
        policy = service.policy(name)
        result = bench_policy(service, policy, rounds=1)
        valid = [t for t in policy.tests if "error" not in t.expect]
        assert result["decisions"] == len(valid) and result["floor_ms"] > 0, name  # every input decided


def test_varied_applications_are_valid_and_no_two_alike_in_amount_and_income() -> None:
    """The live-traffic row decides applications the caches have not seen: each is valid for the
    policy (a bad one would be timed as an error, not a decision) and differs from the others."""
    from engine.bench.pipeline import varied_applications
    from engine.policy.model import TEST_DATE
    from engine.service import DecisionService

    service = DecisionService(ROOT / "policies", ROOT / "models")
    policy = service.policy("consumer_loan")
    apps = varied_applications(policy, 200)
    assert len(apps) == 200
    pairs = {(a["loan"]["amount"], a["applicant"]["income_monthly"]) for a in apps}
    assert len(pairs) > 190
    for app in apps:
        policy.validate(app, today=TEST_DATE)
    tested = [dict(t.input) for t in policy.tests]
    assert not [a for a in apps if a in tested]
    assert varied_applications(service.policy("credit_card"), 10) == []  # no offers to vary
