"""`credo serve` (shipped policies and models, a real audit store) called as a hostile client would:
policy names that are paths, one field given twice, values no decision can use, bytes that are not
a message, errors too big for a client's headers, values that would flood the log. Each answer is a
clear INVALID_ARGUMENT with the field named; nothing is decided and nothing is recorded."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from credo.v1 import decision_pb2 as pb
from credo.v1 import decision_pb2_grpc as pb_grpc
from e2e_harness import POLICIES, Server, request, serve, shipped_cases
from grpc_status import rpc_status

from engine.server.errors import violations_from_status

POLICY = "consumer_loan"
APPROVED = next(
    app for p, name, app, want in shipped_cases() if p == POLICY and want.get("outcome") == "APPROVE"
)
DECIDE = "/credo.v1.DecisionService/Decide"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("hostile")
    with serve(
        tmp, policies=POLICIES, workers=1, extra=["--store", f"sqlite:///{tmp / 'audit.db'}"]
    ) as running:
        yield running


def application(**changes: Any) -> dict[str, Any]:
    """The approved shipped test application with dotted `changes` applied (nested)."""
    app = copy.deepcopy(APPROVED)
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = app
        for key in parents:
            node = node[key]
        node[leaf] = value
    return app


def refused(call: Any) -> tuple[grpc.StatusCode, list[Any], str]:
    """Run `call`, which must fail: its status code, field violations and message."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
    violations = violations_from_status(status) if status is not None else []
    return caught.value.code(), violations, caught.value.details() or ""


def not_recorded(server: Server, request_id: str) -> bool:
    code, _, _ = refused(
        lambda: server.stub.GetDecision(pb.GetDecisionRequest(request_id=request_id), timeout=10)
    )
    return code == grpc.StatusCode.NOT_FOUND


def raw_decide(server: Server, data: bytes) -> pb.Decision:
    """Decide with bytes as sent, not a message this client could build."""
    call = server.channel.unary_unary(
        DECIDE, request_serializer=lambda b: b, response_deserializer=pb.Decision.FromString
    )
    return call(data, timeout=30)


def nested_struct_bytes(depth: int) -> bytes:
    """A google.protobuf.Struct nested `depth` levels ({"a": {"a": ...}}), encoded by hand: the
    Python protobuf runtime refuses to build one this deep."""

    def length_delimited(field: int, payload: bytes) -> bytes:
        return _varint(field << 3 | 2) + _varint(len(payload)) + payload

    struct = b""
    for _ in range(depth):
        value = length_delimited(5, struct)  # Value.struct_value
        entry = length_delimited(1, b"a") + length_delimited(2, value)  # FieldsEntry key, value
        struct = length_delimited(1, entry)  # Struct.fields
    return struct


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def decide_bytes(request_id: str, policy: str, application_bytes: bytes) -> bytes:
    head = pb.DecideRequest(request_id=request_id, policy=policy).SerializeToString()
    return head + bytes([3 << 3 | 2]) + _varint(len(application_bytes)) + application_bytes


# -- defect 1: the policy field was a file path -------------------------------------------------


def test_policy_named_by_a_path_is_invalid_argument_and_reads_no_file(server: Server, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / POLICY
    outside.mkdir(parents=True)
    outside.joinpath("policy.yaml").write_bytes((POLICIES / POLICY / "policy.yaml").read_bytes())
    names = [
        "/etc/passwd",
        "../../../../etc/passwd",
        "/etc/shadow",
        str(outside / "policy.yaml"),  # a valid policy, outside the served set
        str(outside),
        "p" * 300,
        "Consumer_Loan",
    ]
    for i, name in enumerate(names):
        request_id = f"path-{i}"
        code, violations, message = refused(
            lambda name=name, rid=request_id: server.stub.Decide(request(rid, name, APPROVED), timeout=30)
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT, name
        assert [v.field for v in violations] == ["policy"], name
        assert "root:" not in message and "YAML" not in message and "line" not in message
        assert len(message) < 600
        assert not_recorded(server, request_id), name


def test_a_served_policy_by_name_still_decides(server: Server) -> None:
    decision = server.stub.Decide(request("by-name", POLICY, APPROVED), timeout=30)
    assert decision.outcome == pb.APPROVE and decision.policy.name == POLICY


# -- defect 2: one field, two values ------------------------------------------------------------


def test_field_given_nested_and_dotted_is_invalid_argument_naming_both(server: Server) -> None:
    # the probe's case: nested age 35 approves, the dotted duplicate 20 would not; which one won
    # depended on map order, so a live APPROVE replayed as DECLINE
    twice = application(**{"applicant.age": 35})
    twice["applicant.age"] = 20
    code, violations, _ = refused(lambda: server.stub.Decide(request("twice-1", POLICY, twice), timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    named = [v for v in violations if v.field == "applicant.age"]
    assert len(named) == 1, violations
    assert "'applicant' -> 'age'" in named[0].description and "'applicant.age'" in named[0].description
    assert not_recorded(server, "twice-1")


# -- defect 4: INTERNAL where the caller is wrong -----------------------------------------------


@pytest.mark.parametrize(
    "income",
    ["1e999999", "9" * 1_000_000, "１２０００", "١٢٠٠٠", "NaN", "-Infinity", "1e-999999"],
    ids=["huge-exponent", "1MB-of-digits", "full-width", "arabic-indic", "nan", "infinity", "tiny"],
)
def test_hostile_decimal_is_invalid_argument_naming_the_field(server: Server, income: str) -> None:
    rid = f"dec-{len(income)}-{abs(hash(income)) % 10**6}"
    app = application(**{"applicant.income_monthly": income})
    code, violations, _ = refused(lambda: server.stub.Decide(request(rid, POLICY, app), timeout=60))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations] == ["applicant.income_monthly"]
    assert all(len(v.description) < 400 for v in violations)
    assert not_recorded(server, rid)


def test_struct_nested_too_deep_is_invalid_argument(server: Server) -> None:
    code, violations, _ = refused(
        lambda: raw_decide(server, decide_bytes("deep", POLICY, nested_struct_bytes(60)))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert violations and "not a valid credo.v1.DecideRequest" in violations[0].description


@pytest.mark.parametrize(
    "data",
    [
        pb.DecideRequest(request_id="bad-utf8", policy="x").SerializeToString().replace(b"x", b"\xff"),
        request("truncated", POLICY, APPROVED).SerializeToString()[:-7],
        b"\xff\xff\xff\xff",
    ],
    ids=["invalid-utf8", "truncated", "garbage"],
)
def test_undecodable_request_is_invalid_argument_not_internal(server: Server, data: bytes) -> None:
    code, _, message = refused(lambda: raw_decide(server, data))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "deserializing" not in message


def test_decide_stream_answers_an_undecodable_row_with_error_and_goes_on(server: Server) -> None:
    rows = [request(f"stream-{i}", POLICY, APPROVED).SerializeToString() for i in range(4)]
    rows.insert(2, b"\x0a\x05ab")  # a truncated request_id
    rows.insert(4, decide_bytes("stream-deep", POLICY, nested_struct_bytes(60)))
    call = server.channel.stream_stream(
        "/credo.v1.DecisionService/DecideStream",
        request_serializer=lambda b: b,
        response_deserializer=pb.Decision.FromString,
    )
    answers = list(call(iter(rows), timeout=120))
    assert len(answers) == len(rows)
    assert [a.error.status for a in answers] == ["", "", "INVALID_ARGUMENT", "", "INVALID_ARGUMENT", ""]
    assert [a.outcome for i, a in enumerate(answers) if i not in (2, 4)] == [pb.APPROVE] * 4


@pytest.mark.parametrize("request_id", ["nul\x00byte", "tab\tbell\x07", "x" * 129])
def test_control_characters_in_request_id_are_invalid_argument(server: Server, request_id: str) -> None:
    code, violations, _ = refused(
        lambda: server.stub.Decide(request(request_id, POLICY, APPROVED), timeout=30)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations] == ["request_id"]


def test_number_the_model_refuses_is_invalid_argument_naming_the_field(server: Server) -> None:
    # the policy declares no upper bound for inquiries; the model was trained on [0, 100]
    app = application(**{"bureau.inquiries_6m": 5000})
    code, violations, _ = refused(lambda: server.stub.Decide(request("model-range", POLICY, app), timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations] == ["bureau.inquiries_6m"]
    assert not_recorded(server, "model-range")


# -- defect 5: errors too big for a default client ----------------------------------------------


def test_three_hundred_unknown_fields_fit_a_default_client(server: Server) -> None:
    app = application()
    app.update({f"unknown_field_{i:03d}_{'x' * 40}": i for i in range(300)})
    with grpc.insecure_channel(server.target) as default_client:  # default 8 KB metadata limit
        code, violations, message = refused(
            lambda: pb_grpc.DecisionServiceStub(default_client).Decide(
                request("many", POLICY, app), timeout=30
            )
        )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert 1 < len(violations) <= 21
    assert violations[-1].field == "" and "more violation(s) not listed" in violations[-1].description
    assert message


def test_echoing_a_20_kb_bad_value_fits_a_default_client(server: Server) -> None:
    app = application(**{"applicant.employment_type": "z" * 20_000})
    with grpc.insecure_channel(server.target) as default_client:
        code, violations, _ = refused(
            lambda: pb_grpc.DecisionServiceStub(default_client).Decide(
                request("echo", POLICY, app), timeout=30
            )
        )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    [violation] = violations
    assert violation.field == "applicant.employment_type"
    assert "(20000 chars)" in violation.description and len(violation.description) < 400


# -- defect 8 (input side): log lines, language -------------------------------------------------


def test_a_one_megabyte_value_does_not_make_a_megabyte_log_line(server: Server) -> None:
    big = "L" * 1_000_000
    server.stub.Decide(request("big-label", POLICY, APPROVED, labels={"note": big}), timeout=30)
    refused(lambda: server.stub.Decide(request("big-policy", "q" * 1_000_000, APPROVED), timeout=30))
    lines = server.log().splitlines()
    assert any("(1000000 chars)" in line for line in lines)
    assert max(len(line) for line in lines) < 20_000
    for line in lines:
        json.loads(line)  # each line is still one JSON object


@pytest.mark.parametrize("language", ["xx", "EN", "e" * 1_000_000])
def test_unknown_language_is_invalid_argument_not_english(server: Server, language: str) -> None:
    rid = f"lang-{len(language)}-{language[:2]}"
    code, violations, _ = refused(
        lambda: server.stub.Decide(request(rid, POLICY, APPROVED, language=language), timeout=30)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations] == ["language"]
    assert not_recorded(server, rid)


def test_declared_languages_decide_and_empty_is_the_policy_default(server: Server) -> None:
    declined = application(**{"flags.blacklisted": True})
    default = server.stub.Decide(request("lang-default", POLICY, declined), timeout=30)
    chinese = server.stub.Decide(request("lang-zh", POLICY, declined, language="zh"), timeout=30)
    english = server.stub.Decide(request("lang-en", POLICY, declined, language="en"), timeout=30)
    assert default.outcome == pb.DECLINE and default.reasons
    assert [r.text for r in default.reasons] == [r.text for r in english.reasons]  # en is listed first
    assert [r.text for r in chinese.reasons] != [r.text for r in english.reasons]
