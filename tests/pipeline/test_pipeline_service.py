"""The service around the pipeline: byte-identical JSON for the same input, time-ordered ids, the
stage runner's trace, audit records with idempotent retries and replay, `credo decide`, `credo test`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from pipeline_helpers import MINI, MODELS, ROOT, application

from engine.audit.log import DecisionLog
from engine.cli import main
from engine.decision import FrozenMap, Outcome
from engine.pipeline import DecisionContext, Stage, StageResult, run_stages
from engine.pipeline.render import decision_from_dict, decision_json, stable_view
from engine.pipeline.runner import SHARED_ENTRIES, compile_stages
from engine.policy import load_policy
from engine.rules import ReferenceEvaluator
from engine.service import DecisionService, decide_for_tests


def test_same_input_gives_the_same_bytes_apart_from_id_time_and_millis() -> None:
    # real clock, ids and timer; two services, or the second call would be an idempotent retry
    first, second = (
        DecisionService(MINI.parent.parent, MODELS).decide("consumer_mini", application(), "same")
        for _ in range(2)
    )
    assert first.decision_id != second.decision_id
    one, two = (json.loads(decision_json(d)) for d in (first, second))
    assert decision_json(stable_view(one)) == decision_json(stable_view(two))


def test_frozen_clock_ids_and_timer_give_identical_bytes(
    make_service: Callable[..., DecisionService],
) -> None:
    texts = [decision_json(make_service().decide("consumer_mini", application(), "x")) for _ in range(2)]
    assert texts[0] == texts[1]
    assert '"millis": 0.0' in texts[0]


def test_decision_ids_are_time_ordered() -> None:
    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    times = iter(start + dt.timedelta(milliseconds=ms) for ms in (0, 1, 1, 5, 60_000))
    service = DecisionService(MINI.parent.parent, MODELS, clock=lambda: next(times))
    ids = [service.decide("consumer_mini", application(), f"t{i}").decision_id for i in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert all(i[14] == "7" for i in ids)  # UUID version 7


def test_the_default_clock_gives_one_instant_to_the_id_and_decided_at() -> None:
    """Without a store the default clock is read once, in µs, for the decision id, decided_at and
    the decision date: the id's milliseconds are decided_at's, both between the calls' clock reads."""
    service = DecisionService(MINI.parent.parent, MODELS)
    for i in range(50):
        before = dt.datetime.now(dt.UTC)
        decision = service.decide("consumer_mini", application(), f"clock-{i}")
        after = dt.datetime.now(dt.UTC)
        decided_at = dt.datetime.fromisoformat(decision.decided_at)
        assert before <= decided_at <= after
        millis = (decided_at - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)
        assert uuid.UUID(decision.decision_id).int >> 80 == millis
        assert decision.decided_at == decided_at.isoformat(timespec="microseconds")


def compiled_run(ctx: DecisionContext, table: Sequence[Stage], timer: Callable[[], float]) -> DecisionContext:
    """run_stages through the table's generated straight-line function (what run_pipeline runs)."""
    return compile_stages(table)[1](ctx, timer)


@pytest.mark.parametrize("run", [run_stages, compiled_run], ids=["loop", "compiled"])
def test_runner_times_every_stage_and_a_decline_skips_to_the_closing_stage(run: Any) -> None:
    ran: list[str] = []

    def stage(name: str, decline: bool = False) -> Stage:
        def run(ctx: DecisionContext) -> StageResult:
            ran.append(name)
            if decline:
                ctx.declines.append(object())  # type: ignore[arg-type]
            return StageResult(fired=(name,), values={"n": len(ran)})

        return Stage(name, run, closing=name == "close")

    clock = iter(range(100))
    ctx = DecisionContext(None, {}, ReferenceEvaluator(), lambda *a: (None, None))
    run(ctx, [stage("a"), stage("b", decline=True), stage("c"), stage("close")], lambda: next(clock))
    assert ran == ["a", "b", "close"]
    assert [(t.stage, t.fired, t.millis) for t in ctx.trace] == [
        ("a", ("a",), 1000.0),
        ("b", ("b",), 1000.0),
        ("close", ("close",), 1000.0),
    ]


@pytest.mark.parametrize("run", [run_stages, compiled_run], ids=["loop", "compiled"])
def test_a_stage_that_answers_only_its_values_is_traced_with_no_rule_fired(run: Any) -> None:
    """A stage that fires no rules (validate, outcome) returns its values dict alone; the trace
    reads as if it had returned StageResult(values=...), beside a stage that did."""
    stages = [Stage("quiet", lambda c: {"n": 1}), Stage("loud", lambda c: StageResult(("r",), {"n": 2}))]
    ctx = DecisionContext(None, {}, ReferenceEvaluator(), lambda *a: (None, None))
    run(ctx, stages, lambda: 0.0)
    assert [(t.stage, t.fired, t.values) for t in ctx.trace] == [
        ("quiet", (), {"n": 1}),
        ("loud", ("r",), {"n": 2}),
    ]


@pytest.mark.parametrize("run", [run_stages, compiled_run], ids=["loop", "compiled"])
def test_a_stage_answering_shared_values_is_traced_with_the_values_it_answered(run: Any) -> None:
    """A generated table reuses the trace entry of an earlier decision whose stage answered the same
    shared values (a FrozenMap) in the same time; one that answered other values in that time gets
    its own. Each trace reads what its own stage answered, however the decisions interleave."""
    approve, decline = FrozenMap(outcome="APPROVE"), FrozenMap(outcome="DECLINE")
    answered = [approve, decline, approve, approve]
    answers = iter(answered)
    stages = [Stage("outcome", lambda c: next(answers))]
    traced = []
    for _ in answered:
        ctx = DecisionContext(None, {}, ReferenceEvaluator(), lambda *a: (None, None))
        traced.append(run(ctx, stages, lambda: 0.0).trace[0])
    assert [entry.values for entry in traced] == answered
    assert all(entry.values is values for entry, values in zip(traced, answered, strict=True))
    assert {(entry.stage, entry.fired, entry.millis) for entry in traced} == {("outcome", (), 0.0)}


def test_a_generated_table_keeps_a_bounded_number_of_shared_entries() -> None:
    shared = FrozenMap(fields=1)
    _, run = compile_stages([Stage("validate", lambda c: shared)])
    for n in range(SHARED_ENTRIES + 50):  # every decision timed differently
        ticks = iter([0.0, n / 1e6]).__next__
        ctx = run(DecisionContext(None, {}, ReferenceEvaluator(), lambda *a: (None, None)), ticks)
        assert ctx.trace[0].millis == n / 1000 and ctx.trace[0].values is shared
    assert len(run.__globals__["entries_0"]) == SHARED_ENTRIES


def test_a_new_context_sets_every_field_with_containers_of_its_own() -> None:
    """DecisionContext's __init__ is written by hand (the dataclass one cost 2x): every declared
    field is set, and no list or dict two contexts share can be written to (a map one stage sets
    whole reads as an empty read-only one from the class until then)."""
    one, two = (DecisionContext(None, {}, ReferenceEvaluator(), lambda *a: (None, None)) for _ in range(2))
    names = [f.name for f in dataclasses.fields(DecisionContext)]
    assert all(hasattr(one, name) for name in names)
    for name in names:
        value = getattr(one, name)
        if isinstance(value, list | dict | Mapping):
            assert not value, name
            if value is getattr(two, name):
                assert not isinstance(value, list), name
                with pytest.raises(TypeError):
                    value["written"] = 1  # type: ignore[index]
            else:
                assert isinstance(value, list | dict), name
    assert (one.language, one.today, one.dated, one.outcome, one.objective) == ("en", None, (), None, "")


def test_a_context_that_arrives_declined_runs_only_the_closing_stages() -> None:
    """The batch engine runs a table's second half on a context the first half may have declined:
    the generated function checks for a decline before its first stage too, as the loop does."""
    stages = [Stage("a", lambda c: StageResult()), Stage("close", lambda c: StageResult(), closing=True)]
    for run in (run_stages, compiled_run):
        ctx = DecisionContext(None, {}, ReferenceEvaluator(), lambda *a: (None, None))
        ctx.declines.append(object())  # type: ignore[arg-type]
        run(ctx, stages, lambda: 0.0)
        assert [t.stage for t in ctx.trace] == ["close"]


def test_generated_stage_names_are_literals_whatever_they_hold() -> None:
    odd = 'x\'"""\n# not code'
    source, run = compile_stages([Stage(odd, lambda c: StageResult(("r",), {"k": 1}))])
    ctx = run(DecisionContext(None, {}, ReferenceEvaluator(), lambda *a: (None, None)), lambda: 0.0)
    assert [(t.stage, t.fired, t.values) for t in ctx.trace] == [(odd, ("r",), {"k": 1})]
    assert "not code" not in source.replace(repr(odd), "")


@pytest.mark.parametrize("run", [run_stages, compiled_run], ids=["loop", "compiled"])
def test_a_stages_millis_are_its_time_rounded_to_the_microsecond(run: Any) -> None:
    """The runner rounds a stage's seconds to whole µs then divides (round(x, 3) formatted the
    float): the trace still reads milliseconds with three decimals, as round(ms, 3) gives them."""
    ticks = iter([0.0, 0.0012344, 1.0, 1.0000006, 2.0, 2.25])
    ctx = DecisionContext(None, {}, ReferenceEvaluator(), lambda *a: (None, None))
    stages = [Stage(name, lambda c: StageResult()) for name in ("a", "b", "c")]
    run(ctx, stages, lambda: next(ticks))
    assert [t.millis for t in ctx.trace] == [1.234, 0.001, 250.0]
    assert [t.millis for t in ctx.trace] == [round(s * 1000, 3) for s in (0.0012344, 0.0000006, 0.25)]


def test_decisions_are_recorded_retries_return_the_stored_one_and_replay_matches(
    make_service: Callable[..., DecisionService], tmp_path: Path
) -> None:
    service = make_service(store=DecisionLog(f"sqlite:///{tmp_path / 'audit.db'}"))
    decision = service.decide("consumer_mini", application(), "req-1")
    again = service.decide("consumer_mini", application(), "req-1")
    assert again.decision_id == decision.decision_id
    assert decision_json(again) == decision_json(decision)
    assert service.get_decision(request_id="req-1").decision_id == decision.decision_id
    assert service.replay(decision.decision_id).to_dict() == {
        "decision_id": decision.decision_id,
        "result": "MATCH",
        "diffs": [],
    }


def test_a_decision_survives_its_dict_form(service: DecisionService) -> None:
    decision = service.decide("consumer_mini", application(**{"bureau.months_on_file": 3}), "d")
    back = decision_from_dict(json.loads(decision_json(decision)))
    assert decision_json(back) == decision_json(decision)
    assert (back.limit, back.offers, back.score) == (decision.limit, decision.offers, decision.score)


def test_credo_decide_prints_the_decision(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    app = tmp_path / "app.json"
    app.write_text(json.dumps(application(**{"applicant.age": 19})), encoding="utf-8")
    code = main(["decide", str(MINI), "--input", str(app), "--lang", "zh", "--models", str(MODELS)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["outcome"] == "DECLINE"
    assert out["reasons"] == [
        {"code": "AGE_MIN", "text": "申请人未满21岁", "stage": "eligibility", "rule_id": "age_min"}
    ]


def test_credo_decide_lists_every_bad_field(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    app = tmp_path / "app.json"
    app.write_text(json.dumps(application(**{"applicant.age": "x", "bureau.score": 1000})), encoding="utf-8")
    code = main(["decide", str(MINI), "--input", str(app), "--models", str(MODELS)])
    err = capsys.readouterr().err
    assert code == 1
    assert "applicant.age: expected an integer" in err and "bureau.score: must be <= 900" in err


def test_decide_for_tests_runs_the_policys_own_tests() -> None:
    policy = load_policy(MINI)
    assert policy.tests
    for case in policy.tests:
        got = decide_for_tests(policy, case.input)
        assert got["outcome"] == case.expect["outcome"], case.name
        if "reasons" in case.expect:
            assert [r["code"] for r in got["reasons"]][: len(case.expect["reasons"])] == case.expect[
                "reasons"
            ]
    assert decide_for_tests(policy, policy.tests[0].input)["outcome"] == Outcome.APPROVE.value


def test_shipped_policies_pass_their_own_tests_through_the_pipeline() -> None:
    from engine.policy.testing import run_tests

    shipped = sorted((ROOT / "policies").glob("*/policy.yaml"))
    assert shipped, "no shipped policies found"
    for path in shipped:
        policy = load_policy(path)
        report = run_tests(policy, decide_for_tests)
        problems = [(r.name, r.failures, r.skipped) for r in report.results if r.failures or r.skipped]
        assert problems == [], path
        assert report.passed == len(policy.tests) > 0


def test_list_policies_reports_a_broken_policy_and_keeps_the_others(tmp_path: Path) -> None:
    good = tmp_path / "consumer_mini"
    good.mkdir()
    (good / "policy.yaml").write_text(MINI.read_text(encoding="utf-8"), encoding="utf-8")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "policy.yaml").write_text(
        "policy: broken\nversion: '1'\ncurrency: CNY\nlimit: {formula: x +}\n"
    )
    service = DecisionService(tmp_path, MODELS, store=f"sqlite:///{tmp_path / 'audit.db'}")
    try:
        listed = {p["name"]: p for p in service.list_policies()}
        assert listed["broken"]["status"] == "INVALID" and listed["broken"]["errors"]
        assert listed["consumer_mini"]["status"] == "SERVING"
        assert listed["consumer_mini"]["models"][0]["name"] == "consumer_pd"
        decision = service.decide("consumer_mini", application(), "url-store")
        assert service.get_decision(decision_id=decision.decision_id).request_id == "url-store"
    finally:
        service.log.close()


def test_credo_decide_record_writes_an_audit_record(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    app = tmp_path / "app.json"
    app.write_text(json.dumps(application()), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    argv = [
        "decide",
        str(MINI),
        "--input",
        str(app),
        "--models",
        str(MODELS),
        "--record",
        url,
        "--request-id",
        "cli-1",
    ]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(argv) == 0  # the same request again: the stored decision, not a new one
    again = json.loads(capsys.readouterr().out)
    assert again["decision_id"] == first["decision_id"] and again["outcome"] == "APPROVE"


def test_cached_schedules_keep_the_rate_as_written() -> None:
    """Regression guard: Decimal('0.07') == Decimal('0.070'), but the cache must not hand one's
    schedule to the other, or an offer's printed annual_rate would depend on earlier decisions."""
    from engine.pipeline import candidates

    first = candidates._schedule("10000", "0.07", 12, "equal_instalment", "half_even")
    second = candidates._schedule("10000", "0.070", 12, "equal_instalment", "half_even")
    assert (str(first.annual_rate), str(second.annual_rate)) == ("0.07", "0.070")
