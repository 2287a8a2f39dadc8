"""Idempotency without an audit store: a service remembers its recent answers by request_id,
bounded in bytes; the fingerprint is of the validated input with defaults applied."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pipeline_helpers import application

from engine.decision import Instalment
from engine.errors import IdempotencyConflict, NotFound
from engine.recent import RecentDecisions, estimated_bytes
from engine.service import DecisionService


def test_a_retry_gets_the_first_answer_and_another_payload_is_refused(
    make_service: Callable[..., DecisionService],
) -> None:
    service = make_service()
    first = service.decide("consumer_mini", application(), "r-1")
    again = service.decide("consumer_mini", application(), "r-1")
    assert again == first and again.decision_id == first.decision_id
    with pytest.raises(IdempotencyConflict) as info:
        service.decide("consumer_mini", application(**{"applicant.age": 50}), "r-1")
    assert info.value.grpc_status == "ALREADY_EXISTS"
    assert service.get_decision(decision_id=first.decision_id) == first
    assert service.get_decision(request_id="r-1") == first
    with pytest.raises(NotFound):
        service.get_decision(request_id="never")


def test_an_omitted_default_and_its_explicit_value_are_one_request(
    make_service: Callable[..., DecisionService],
) -> None:
    """Regression (issue 12): a retry differing only in an omitted vs explicit default (language ""
    vs "en", a number sent as "20000" vs 20000) got ALREADY_EXISTS from one layer and the stored
    decision from another. The fingerprint is of the validated input, defaults applied."""
    service = make_service()
    first = service.decide("consumer_mini", application(), "r-2", language="")
    same = application(**{"applicant.income_monthly": 20000})  # "20000" in the first
    assert service.decide("consumer_mini", same, "r-2", language="en").decision_id == first.decision_id


def deep_size(value: Any, seen: set[int] | None = None) -> int:
    """sys.getsizeof over the whole object graph, each object once."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in value.items())
    elif isinstance(value, (list, tuple, set, frozenset)):
        size += sum(deep_size(v, seen) for v in value)
    elif hasattr(value, "__dataclass_fields__"):
        size += sum(deep_size(getattr(value, name), seen) for name in value.__dataclass_fields__)
    return size


def reaches(value: Any, kind: type, seen: set[int] | None = None) -> bool:
    """Whether an object of `kind` can be reached from `value` (as deep_size walks it)."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return False
    seen.add(id(value))
    if isinstance(value, kind):
        return True
    if isinstance(value, dict):
        return any(reaches(v, kind, seen) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(reaches(v, kind, seen) for v in value)
    if hasattr(value, "__dataclass_fields__"):
        return any(reaches(getattr(value, name), kind, seen) for name in value.__dataclass_fields__)
    return False


def test_the_byte_estimate_bounds_a_real_decision(make_service: Callable[..., DecisionService]) -> None:
    service = make_service()
    decision = service.decide("consumer_mini", application(), "r-3")
    assert decision.offers and decision.offers[0].schedule  # the biggest kind of answer
    assert service.recent is not None
    kept = service.recent._entry("r-3")
    assert not reaches(kept, Instalment)  # schedule rows are recomputed, not kept
    assert isinstance(kept.asked, tuple)  # the validated input's values, kept for a retry's fingerprint
    assert kept.input == service.policy("consumer_mini").validate(application())
    assert deep_size(kept) <= kept.size
    assert deep_size(kept.asked) <= kept.size - estimated_bytes(decision)  # the kept input is charged
    assert kept.full() == decision  # ... and recomputed exactly


def test_the_map_forgets_the_oldest_beyond_its_byte_budget(
    make_service: Callable[..., DecisionService],
) -> None:
    decision = make_service().decide("consumer_mini", application(), "r-4")
    asked = {"applicant.age": 35}
    sizer = RecentDecisions()
    sizer.remember("r", "consumer_mini", "en", asked, decision, "half_even")
    one = sizer.bytes
    recent = RecentDecisions(max_bytes=3 * one)
    for i in range(5):
        recent.remember(
            f"r{i}",
            "consumer_mini",
            "en",
            asked,
            dataclasses.replace(decision, decision_id=f"d{i}"),
            "half_even",
        )
    assert len(recent) == 3 and recent.bytes <= recent.max_bytes
    assert recent.get(request_id="r0") is None and recent.get(decision_id="d1") is None
    assert recent.get(decision_id="d4") is not None
    assert Decimal(recent.bytes) / one == 3


def test_a_decision_is_found_by_its_id_whenever_it_was_kept_and_until_it_is_forgotten(
    make_service: Callable[..., DecisionService],
) -> None:
    """The index by decision_id is filled only when such a get comes: answers kept before and after
    a get are found, forgotten ones are not, and a decision_id answered twice (a frozen id source)
    finds the newer answer, also once the older one is forgotten."""
    decision = make_service().decide("consumer_mini", application(), "r-10")
    asked = {"applicant.age": 35}
    sizer = RecentDecisions()
    sizer.remember("r", "consumer_mini", "en", asked, decision, "half_even")
    recent = RecentDecisions(max_bytes=4 * sizer.bytes)

    def keep(n: int, decision_id: str) -> None:
        again = dataclasses.replace(decision, decision_id=decision_id, request_id=f"r{n}")
        recent.remember(f"r{n}", "consumer_mini", "en", asked, again, "half_even")

    def found(decision_id: str) -> str | None:
        kept = recent.get(decision_id=decision_id)
        return None if kept is None else kept.request_id

    keep(0, "d0")
    keep(1, "d1")
    assert found("d1") == "r1" and found("d0") == "r0"
    keep(2, "d2")
    keep(3, "d1")  # the same id again: the newer answer
    assert found("d2") == "r2" and found("d1") == "r3" and found("d0") == "r0"
    keep(4, "d4")
    keep(5, "d5")  # r0 and r1 forgotten
    assert found("d0") is None and found("d5") == "r5" and found("d1") == "r3"
    for n in range(6, 12):
        keep(n, f"d{n}")
    assert found("d2") is None and found("d1") is None and found("d7") is None
    assert [found(f"d{n}") for n in range(8, 12)] == [f"r{n}" for n in range(8, 12)]
    assert found("never") is None


def test_a_service_keeps_the_map_it_is_given_even_while_empty(
    make_service: Callable[..., DecisionService],
) -> None:
    """Regression: `recent or RecentDecisions()` replaced a given empty (so falsy) map with a default
    64 MiB one; the memory bench's RSS then grew 40 MiB although it asked for a 1 MiB map."""
    small = RecentDecisions(max_bytes=1)
    service = make_service(recent=small)
    assert service.recent is small
    service.decide("consumer_mini", application(), "r-5")
    service.decide("consumer_mini", application(**{"applicant.age": 50}), "r-6")
    assert len(small) == 1  # the budget holds one entry at most


def test_a_retry_is_told_from_a_conflict_by_the_fingerprint_not_by_equal_values(
    make_service: Callable[..., DecisionService],
) -> None:
    """A first request keeps what it asked and its fingerprint is worked out only when its
    request_id comes again: the answer must still be the fingerprint's. 20000 and 20000.00 are
    equal Decimals but not the same canonical text, so the second is a conflict, as with a store."""
    service = make_service()
    service.decide("consumer_mini", application(), "r-7")
    with pytest.raises(IdempotencyConflict):
        service.decide("consumer_mini", application(**{"applicant.income_monthly": "20000.00"}), "r-7")
    with pytest.raises(IdempotencyConflict):  # the same input under another language is another request
        service.decide("consumer_mini", application(), "r-7", language="zh")


def test_an_input_with_a_list_is_kept_as_its_fingerprint(
    make_service: Callable[..., DecisionService],
) -> None:
    """Only scalars are kept as asked (their sizes bound what the map holds); an input holding a list
    or an object is fingerprinted at once, and retries and conflicts read the same."""
    decision = make_service().decide("consumer_mini", application(), "r-8")
    recent = RecentDecisions()
    asked = {"codes": ["a", "b"], "n": 1}
    assert recent.remember("r", "p", "en", asked, decision, "half_even") is decision
    assert isinstance(recent._entry("r").asked, str)
    again = dataclasses.replace(decision, decision_id="other")
    assert recent.remember("r", "p", "en", {"n": 1, "codes": ["a", "b"]}, again, "half_even") == decision
    with pytest.raises(IdempotencyConflict):
        recent.remember("r", "p", "en", {"codes": ["a", "c"], "n": 1}, again, "half_even")


def test_a_long_text_input_is_charged_its_size(make_service: Callable[..., DecisionService]) -> None:
    """Regression guard for keeping inputs: a caller's 100 kB text counts against the byte budget,
    so the map cannot be made to hold far more than it is allowed."""
    decision = make_service().decide("consumer_mini", application(), "r-9")
    recent = RecentDecisions()
    recent.remember("r", "p", "en", {"note": "x" * 100_000}, decision, "half_even")
    assert recent.bytes > 100_000 + estimated_bytes(decision)


@pytest.mark.parametrize("due", ["", "first_due: {day: 15, min_days: 20}"], ids=["same-day", "fixed-day"])
def test_a_storeless_retry_answers_every_shipped_decision_as_first_answered(due: str, tmp_path: Path) -> None:
    """Regression: a service without a store rebuilt a remembered answer's offers from their terms
    as undated loan schedules: a retried request_id (or GetDecision) whose answer held a credit line
    failed (a zero-month schedule, INTERNAL over gRPC), and booked offers lost their due dates.
    Every shipped policy's valid test inputs and the README applicant, retried, get the first
    answer, dated rows and lines included; with a fixed first-due day too."""
    from pipeline_helpers import ROOT

    from engine.policy import load_policy, load_policy_text

    policies = [load_policy(path) for path in sorted((ROOT / "policies").glob("*/policy.yaml"))]
    if due:  # consumer_loan with a fixed first-due day: its rows dated on another convention
        text = (ROOT / "policies" / "consumer_loan" / "policy.yaml").read_text(encoding="utf-8")
        assert text.count("first_due: {day: same}") == 1
        policies = [load_policy_text(text.replace("first_due: {day: same}", due))]
    readme = json.loads((ROOT / "tests" / "pipeline" / "readme_applicant.json").read_text(encoding="utf-8"))
    service = DecisionService(tmp_path, ROOT / "models")
    dated = lines = 0
    for policy in policies:
        inputs = [case.input for case in policy.tests if "error" not in case.expect]
        if policy.name == "consumer_loan":
            inputs.append(readme)  # offered a credit line beside its loans
        for n, asked in enumerate(inputs):
            first = service.decide(policy, asked, f"r-{policy.name}-{n}")
            assert service.decide(policy, asked, f"r-{policy.name}-{n}") == first, (policy.name, n)
            assert service.get_decision(decision_id=first.decision_id) == first
            dated += sum(1 for o in first.offers if o.schedule and o.schedule[0].due_date)
            lines += sum(1 for o in first.offers if o.revolving is not None)
    assert dated and lines  # the cases above reach both


def test_a_policy_of_scalar_inputs_keeps_and_charges_as_looking_at_each_value(tmp_path: Path) -> None:
    """The service vouches from the policy's declarations (Policy.text_inputs) that an input is all
    scalars, so the map need not look at each value: every shipped policy's valid test inputs are
    kept and charged as looking at each value keeps and charges them."""
    from pipeline_helpers import ROOT

    from engine.policy import load_policy

    service = DecisionService(tmp_path, ROOT / "models")
    vouched = 0
    for path in sorted((ROOT / "policies").glob("*/policy.yaml")):
        policy = load_policy(path)
        for n, case in enumerate(c for c in policy.tests if "error" not in c.expect):
            decision = service.decide(policy, case.input, f"r-{policy.name}-{n}")
            if policy.text_inputs is None:  # a list or object input: each value is looked at anyway
                continue
            assert service.recent is not None
            kept = service.recent._entry(f"r-{policy.name}-{n}")
            fact, dated = policy.validated(case.input, dt.date(2026, 12, 1))  # kept without dated inputs
            assert kept.input == {k: v for k, v in fact.items() if k not in dated}, policy.name
            looked = RecentDecisions()
            looked.remember(
                "r", policy.name, kept.language, kept.input, decision, kept.rounding, kept.due,
                names=policy.input_names,
            )  # fmt: skip
            assert (kept.asked, kept.size) == (looked._entry("r").asked, looked.bytes), policy.name
            vouched += 1
    assert vouched > 10  # most shipped policies declare scalar inputs only
