"""engine.decision's value objects: built in one step, yet the same frozen dataclasses (defaults,
fresh default containers, equality, immutability, replace); and decided_at's text."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import pickle
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.decision import (
    Decision,
    FloatRule,
    FrozenMap,
    Instalment,
    ModelRef,
    Outcome,
    PolicyRef,
    TraceEntry,
    maker,
    plain,
    replaced,
)
from engine.service import _utc_text


def _decision(**over: object) -> Decision:
    fields: dict[str, object] = {
        "decision_id": "d",
        "request_id": "r",
        "outcome": Outcome.APPROVE,
        "reasons": (),
        "score": None,
        "segments": (),
        "limit": Decimal("100.00"),
        "annual_rate": None,
        "offers": (),
        "policy": PolicyRef("p", "1", "0" * 64),
        "models": (),
        "trace": (TraceEntry("validate", (), 0.001),),
        "decided_at": "2026-01-01T00:00:00.000000+00:00",
    }
    return Decision(**{**fields, **over})  # type: ignore[arg-type]


def test_value_objects_keep_their_defaults_and_a_fresh_container_each() -> None:
    first, second = _decision(), _decision()
    assert (first.currency, first.objective, first.record_hash, first.arm) == ("CNY", "", "", "")
    assert first.outputs == {} and first.outputs is not second.outputs
    assert first.trace[0].values == {} and first.trace[0].values is not TraceEntry("x", (), 0.0).values
    assert Instalment(1, Decimal(1), Decimal(1), Decimal(0), Decimal(0)).due_date == ""
    assert first == second and first.to_dict() == second.to_dict()


def test_value_objects_stay_frozen_and_refuse_what_the_dataclass_refuses() -> None:
    decision = _decision()
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.arm = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Decision(decision_id="d")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        PolicyRef("p", "1", "x", "extra")  # type: ignore[call-arg]
    assert hash(PolicyRef("p", "1", "x")) == hash(PolicyRef("p", "1", "x"))
    assert pickle.loads(pickle.dumps(decision)) == decision


def test_a_value_object_made_by_its_maker_or_copied_is_the_frozen_class_instance() -> None:
    """Value objects are filled as a mutable twin and handed over as the frozen class: whichever
    way one is made (the class, its maker, replace, copy, pickle) it is that class, equal, frozen."""
    decision = _decision()
    args = [getattr(decision, f.name) for f in dataclasses.fields(Decision)]
    made = maker(Decision)(*args)
    entry = maker(TraceEntry)("validate", (), 0.001)
    for value in (made, copy.copy(decision), copy.deepcopy(decision), replaced(decision, arm="")):
        assert type(value) is Decision and value == decision
        with pytest.raises(dataclasses.FrozenInstanceError):
            value.outcome = Outcome.DECLINE  # type: ignore[misc]
    assert type(entry) is TraceEntry and entry == decision.trace[0] and entry.values == {}
    assert entry.values is not maker(TraceEntry)("validate", (), 0.001).values
    assert pickle.loads(pickle.dumps(entry, protocol=0)) == entry
    assert hash(maker(PolicyRef)("p", "1", "x")) == hash(PolicyRef("p", "1", "x"))
    with pytest.raises(TypeError):
        maker(PolicyRef)("p", "1")


def test_replaced_is_dataclasses_replace_without_the_rebuild() -> None:
    decision = _decision()
    assert replaced(decision, arm="champion") == dataclasses.replace(decision, arm="champion")
    assert decision.arm == ""  # the original is untouched
    assert replaced(decision, record_hash="h").record_hash == "h"
    assert replaced(decision, record_hash="h").arm == ""  # each set of changes copies on its own
    both = dataclasses.replace(decision, arm="a", record_hash="h", limit=None)
    assert replaced(decision, arm="a", record_hash="h", limit=None) == both
    assert replaced(decision, limit=None, record_hash="h", arm="a") == both
    with pytest.raises(TypeError, match="no field 'armm'"):
        replaced(decision, armm="x")


@given(
    st.datetimes(
        min_value=dt.datetime(1970, 1, 1),
        max_value=dt.datetime(2100, 1, 1),
        timezones=st.sampled_from(
            [dt.UTC, dt.timezone(dt.timedelta(hours=8)), dt.timezone(-dt.timedelta(hours=5))]
        ),
    )
)
def test_decided_at_is_the_utc_isoformat_with_microseconds(when: dt.datetime) -> None:
    """decided_at keeps its text up to the second between decisions: the text is still exactly
    isoformat's, across seconds, days and zones."""
    assert _utc_text(when) == when.astimezone(dt.UTC).isoformat(timespec="microseconds")
    later = when + dt.timedelta(microseconds=999_999)
    assert _utc_text(later) == later.astimezone(dt.UTC).isoformat(timespec="microseconds")


@given(st.integers(min_value=0, max_value=4_102_444_800_000_000), st.integers(0, 2_000_000))
def test_decided_at_from_unix_micros_is_the_datetimes_text_and_date(micros: int, step: int) -> None:
    """The storeless decide reads the clock as whole µs since the epoch (as datetime.now truncates
    it): its decided_at text and decision date are the datetime's, across seconds and days."""
    for at in (micros, micros + step):  # the same second's cached text, or the next second's
        when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=at)
        assert _utc_text.at(at) == (when.isoformat(timespec="microseconds"), when.date())


def _plain_by_fields(value: object, floats: FloatRule) -> object:
    """plain()'s dataclass rule written out with dataclasses.fields: the generated walk's reference."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain_by_fields(getattr(value, f.name), floats)
            for f in dataclasses.fields(value)
            if not (f.metadata.get("omit_empty") and getattr(value, f.name) in (None, "", (), {}))
        }
    if isinstance(value, (list, tuple)):
        return [_plain_by_fields(item, floats) for item in value]
    if isinstance(value, dict):
        return {key: _plain_by_fields(item, floats) for key, item in value.items()}
    return plain(value, floats)


@pytest.mark.parametrize("floats", ["text", "number"])
@pytest.mark.parametrize("arm", ["", "challenger@2"])
def test_plain_of_a_decision_is_its_fields_with_empty_new_ones_left_out(floats: FloatRule, arm: str) -> None:
    """plain() walks a dataclass with code generated per class: it must give what reading every
    field does, an OMIT_EMPTY field (arm) left out only while empty, nested value objects too."""
    decision = _decision(
        arm=arm,
        trace=(TraceEntry("score", ("r1",), 0.25, {"pd": Decimal("0.031"), "n": 3, "ok": True}),),
        models=(ModelRef("m", "1", "1" * 64),),
    )
    walked = plain(decision, floats)
    assert walked == _plain_by_fields(decision, floats)
    assert ("arm" in walked) == bool(arm)
    undated = Instalment(1, Decimal("10.00"), Decimal("9.00"), Decimal("1.00"), Decimal("91.00"))
    dated = replaced(undated, due_date="2026-02-01")
    row = {"period": 1, "payment": "10.00", "principal": "9.00", "interest": "1.00", "balance": "91.00"}
    assert plain([undated, dated], floats) == [row, {**row, "due_date": "2026-02-01"}]


def test_a_frozen_map_reads_as_a_dict_and_refuses_every_write() -> None:
    """The trace values every decision of a policy shares (engine.decision.FrozenMap) cannot be
    changed through any one decision, yet compare, copy, pickle and turn plain as a dict would."""
    shared = FrozenMap(outcome="APPROVE", model_reasons=())
    assert shared == {"outcome": "APPROVE", "model_reasons": ()} and isinstance(shared, dict)
    for write in (
        lambda m: m.__setitem__("k", 1),
        lambda m: m.__delitem__("outcome"),
        lambda m: m.update(k=1),
        lambda m: m.setdefault("k", 1),
        lambda m: m.pop("outcome"),
        lambda m: m.popitem(),
        lambda m: m.clear(),
        lambda m: m.__ior__({"k": 1}),
    ):
        with pytest.raises(TypeError):
            write(shared)
    assert shared == {"outcome": "APPROVE", "model_reasons": ()}
    again = pickle.loads(pickle.dumps(shared))
    assert type(again) is FrozenMap and again == shared
    assert copy.copy(shared) is shared and copy.deepcopy(shared) is shared
    assert plain(shared) == {"outcome": "APPROVE", "model_reasons": []}
    assert shared | {"k": 1} == {"outcome": "APPROVE", "model_reasons": (), "k": 1}  # a new dict
