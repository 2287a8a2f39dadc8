"""Converters between credo.v1 messages and domain types: exact decimals from Struct doubles,
every bad field reported, Decisions encoded with decimal strings."""

from __future__ import annotations

from decimal import Decimal

import pytest
from credo.v1 import decision_pb2 as pb
from google.protobuf import struct_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from test_server_wire_bytes import CASES

from engine.decision import Decision, Instalment, Offer, Outcome, PolicyRef, Reason, Score, TraceEntry
from engine.errors import InvalidInput
from engine.server import convert


def _struct(value: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


def test_numbers_become_int_when_integral_and_shortest_decimal_otherwise() -> None:
    app = convert.struct_to_application(
        _struct({"applicant": {"age": 30, "income": 12000.5, "rate": 0.1, "neg": -3.0, "name": "Li"}})
    )
    assert app == {
        "applicant": {
            "age": 30,
            "income": Decimal("12000.5"),
            "rate": Decimal("0.1"),
            "neg": -3,
            "name": "Li",
        }
    }
    assert type(app["applicant"]["age"]) is int
    assert str(app["applicant"]["rate"]) == "0.1"  # not 0.1000000000000000055511151231257827


def test_strings_bools_nulls_and_lists_pass_through() -> None:
    app = convert.struct_to_application(_struct({"a": "12.30", "b": True, "c": None, "d": [1, 2.5, "x"]}))
    assert app == {"a": "12.30", "b": True, "c": None, "d": [1, Decimal("2.5"), "x"]}


def test_inexact_numbers_are_field_violations() -> None:
    s = _struct({"loan": {"amount": 2.0**60}, "x": {"y": float("nan")}, "z": float("inf")})
    with pytest.raises(InvalidInput) as caught:
        convert.struct_to_application(s)
    assert sorted(v.field for v in caught.value.violations) == ["loan.amount", "x.y", "z"]


def test_request_lists_every_bad_field_at_once() -> None:
    request = pb.DecideRequest(request_id="", policy="", application=_struct({"n": float("nan")}))
    with pytest.raises(InvalidInput) as caught:
        convert.request_to_call(request)
    assert [v.field for v in caught.value.violations] == ["request_id", "policy", "application.n"]


def test_request_to_call_leaves_language_and_version_to_the_policy() -> None:
    call = convert.request_to_call(
        pb.DecideRequest(request_id="r", policy="p", application=_struct({"a": 1}))
    )
    assert call == {
        "policy": "p",
        "application": {"a": 1},
        "request_id": "r",
        "language": None,  # the policy's first declared language, not a hard-coded "en"
        "version": None,
        "labels": {},
    }
    pinned = convert.request_to_call(
        pb.DecideRequest(request_id="r", policy="p", policy_version="1.2.0", language="zh")
    )
    assert pinned["version"] == "1.2.0" and pinned["language"] == "zh"


def _decision(**overrides: object) -> Decision:
    fields: dict[str, object] = dict(
        decision_id="d1",
        request_id="r1",
        outcome=Outcome.APPROVE,
        reasons=(Reason("THIN_FILE", "Short credit history", "eligibility", "thin_file"),),
        score=Score(Decimal("0.0312"), 701, "B"),
        segments=("prime",),
        limit=Decimal("50000.00"),
        annual_rate=Decimal("0.0850"),
        offers=(
            Offer(
                "personal_std",
                Decimal("50000.00"),
                12,
                "equal_instalment",
                Decimal("0.0850"),
                Decimal("0.1021"),
                Decimal("4360.85"),
                Decimal("2330.20"),
                Decimal("812.40"),
                (
                    Instalment(
                        1, Decimal("4360.85"), Decimal("4006.68"), Decimal("354.17"), Decimal("45993.32")
                    ),
                ),
            ),
        ),
        policy=PolicyRef("consumer_loan", "1.0.0", "ab" * 32),
        models=(),
        trace=(TraceEntry("limit", (), 0.25, {"limit": Decimal("50000.00"), "cap": 200000}),),
        decided_at="2026-11-28T16:00:00+00:00",
        currency="CNY",
    )
    fields.update(overrides)
    return Decision(**fields)  # type: ignore[arg-type]


def test_decision_encodes_amounts_and_rates_as_decimal_strings() -> None:
    msg = convert.decision_to_pb(_decision(), record_hash="f" * 64)
    assert msg.outcome == pb.APPROVE and msg.currency == "CNY" and msg.record_hash == "f" * 64
    assert msg.limit == "50000.00" and msg.annual_rate == "0.0850"
    assert (msg.score.pd, msg.score.points, msg.score.grade) == ("0.0312", 701, "B")
    offer = msg.offers[0]
    assert (offer.amount, offer.apr, offer.instalment) == ("50000.00", "0.1021", "4360.85")
    assert offer.schedule[0].balance == "45993.32"
    assert msg.reasons[0].code == "THIN_FILE" and msg.reasons[0].rule_id == "thin_file"
    assert msg.trace[0].values["limit"] == "50000.00" and msg.trace[0].values["cap"] == 200000


def test_absent_limit_rate_and_score_stay_unset() -> None:
    msg = convert.decision_to_pb(_decision(outcome=Outcome.DECLINE, limit=None, annual_rate=None, score=None))
    assert msg.outcome == pb.DECLINE
    assert not msg.HasField("limit") and not msg.HasField("annual_rate") and not msg.HasField("score")


def test_policy_info_from_mapping_or_object() -> None:
    info = convert.policy_info_to_pb(
        {"name": "p", "version": "1", "sha256": "a" * 64, "models": [PolicyRef("m", "2", "b" * 64)]}
    )
    assert (info.name, info.status, info.models[0].name) == ("p", "SERVING", "m")
    assert convert.policy_info_to_pb(PolicyRef("q", "3", "c" * 64)).name == "q"


def test_outputs_go_on_the_wire_with_decimals_and_dates_as_strings() -> None:
    import datetime as dt

    outputs = {
        "risk.band": "low",
        "utilisation": Decimal("0.1000"),
        "age": 40,
        "big": 2**60,  # a double cannot hold it exactly: sent as text
        "review": {"decided_for": dt.date(2026, 1, 31), "lenders": 2, "staff": False},
        "benefits": ("cashback", "staff_rate"),
        "none": None,
    }
    msg = convert.decision_to_pb(_decision(outputs=outputs))
    assert msg.outputs["utilisation"] == "0.1000" and msg.outputs["age"] == 40
    assert msg.outputs["big"] == str(2**60)
    assert msg.outputs["review"]["decided_for"] == "2026-01-31" and msg.outputs["review"]["staff"] is False
    assert list(msg.outputs["benefits"]) == ["cashback", "staff_rate"]
    assert msg.outputs.fields["none"].WhichOneof("kind") == "null_value"
    assert not convert.decision_to_pb(_decision()).HasField("outputs")  # a policy without outputs


def _reference_value(val: struct_pb2.Value, path: str, violations: list) -> object:
    """The plain recursive reading struct_to_application must keep giving (values, types, violations)."""
    kind = val.WhichOneof("kind")
    if kind == "number_value":
        return convert.number_from_double(val.number_value, path, violations)
    if kind == "string_value":
        return val.string_value
    if kind == "bool_value":
        return val.bool_value
    if kind == "struct_value":
        return {k: _reference_value(v, f"{path}.{k}", violations) for k, v in val.struct_value.fields.items()}
    if kind == "list_value":
        return [_reference_value(v, f"{path}[{i}]", violations) for i, v in enumerate(val.list_value.values)]
    return None


_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**60), 2**60).map(float),
    st.sampled_from([2.0**53, -(2.0**53), 2.0**53 + 2, 0.1, -0.0, 1e300]),
)
_SCALARS = st.one_of(_NUMBERS, st.text(max_size=5), st.booleans(), st.none())
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=4), _JSON, max_size=6))
def test_an_application_reads_as_the_plain_recursive_reading_does(application: dict) -> None:
    struct = _struct(application)
    expected_violations: list = []
    expected = {k: _reference_value(v, k, expected_violations) for k, v in struct.fields.items()}
    try:
        got = convert.struct_to_application(struct)
    except InvalidInput as exc:
        assert exc.violations == expected_violations
    else:
        assert not expected_violations
        assert got == expected
        assert repr(got) == repr(expected)  # same types too: int, Decimal, bool, None


def _reference_application(struct: struct_pb2.Struct) -> tuple[dict, list]:
    violations: list = []
    return {k: _reference_value(v, k, violations) for k, v in struct.fields.items()}, violations


@pytest.mark.parametrize("policy,slug,application", CASES, ids=[f"{p}/{s}" for p, s, _ in CASES])
def test_every_shipped_input_reads_as_the_plain_recursive_reading_does(
    policy: str, slug: str, application: dict
) -> None:
    struct = _struct(application)
    expected, violations = _reference_application(struct)
    assert not violations
    got = convert.struct_to_application(struct)
    assert got == expected
    assert repr(got) == repr(expected)  # same types too: int, Decimal, bool, None
