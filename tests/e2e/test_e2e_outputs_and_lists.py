"""`credo serve` deciding the shipped credit_card policy over gRPC: the policy's own outputs arrive
in Decision.outputs (decimals and dates as strings, never doubles), and hostile lists (too long,
a bad item, the wrong shape) are INVALID_ARGUMENT naming the item index and field, never decided."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from credo.v1 import decision_pb2 as pb
from e2e_harness import POLICIES, Server, request, serve, shipped_cases
from google.protobuf.json_format import MessageToDict
from grpc_status import rpc_status

from engine.server.errors import violations_from_status

POLICY = "credit_card"
CLEAN = next(app for p, name, app, _ in shipped_cases() if p == POLICY and name.startswith("a clean file"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("outputs")
    with serve(
        tmp, policies=POLICIES, workers=1, extra=["--store", f"sqlite:///{tmp / 'audit.db'}"]
    ) as running:
        yield running


def refused(server: Server, request_id: str, application: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.Decide(request(request_id, POLICY, application), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
    assert status is not None
    with pytest.raises(grpc.RpcError) as missing:  # nothing was decided, so nothing was recorded
        server.stub.GetDecision(pb.GetDecisionRequest(request_id=request_id), timeout=10)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    return [(v.field, v.description) for v in violations_from_status(status)]


def test_outputs_arrive_typed_with_decimals_and_dates_as_strings(server: Server) -> None:
    decision = server.stub.Decide(request("outputs-1", POLICY, CLEAN), timeout=30)
    assert decision.outcome == pb.APPROVE
    outputs = MessageToDict(decision.outputs)
    assert outputs == {
        "risk.band": "low",
        "age": 40.0,
        "utilisation": "0.1000",  # a decimal: a string, never a double
        "months_since_delinquency": None,
        "benefits": ["paperless_statement", "cashback"],
        "greeting": "Welcome, online customer",
        "review": {"decided_for": "2026-01-01", "lenders": 2.0, "staff": False},
    }
    again = server.stub.GetDecision(pb.GetDecisionRequest(decision_id=decision.decision_id), timeout=10)
    assert MessageToDict(again.outputs) == outputs


def test_hostile_lists_are_refused_naming_the_item_and_field(server: Server) -> None:
    line = CLEAN["bureau"]["tradelines"][0]
    too_long = copy.deepcopy(CLEAN)
    too_long["bureau"]["tradelines"] = [line] * 61
    assert refused(server, "lists-1", too_long) == [("bureau.tradelines", "at most 60 items, got 61")]

    bad_item = copy.deepcopy(CLEAN)
    bad_item["bureau"]["tradelines"][1] = {**line, "kind": "payday", "balance": {"x": 1}, "extra": 1}
    del bad_item["bureau"]["tradelines"][1]["dpd"]
    fields = [field for field, _ in refused(server, "lists-2", bad_item)]
    assert fields == [
        "bureau.tradelines[1].balance",
        "bureau.tradelines[1].dpd",
        "bureau.tradelines[1].extra",
        "bureau.tradelines[1].kind",
    ]

    not_a_list = copy.deepcopy(CLEAN)
    not_a_list["bureau"]["tradelines"] = "none"
    assert refused(server, "lists-3", not_a_list) == [
        ("bureau.tradelines", "expected a list, got string 'none'")
    ]

    null_item = copy.deepcopy(CLEAN)
    null_item["bureau"]["tradelines"].append(None)
    assert refused(server, "lists-4", null_item) == [("bureau.tradelines[2]", "an item cannot be null")]
