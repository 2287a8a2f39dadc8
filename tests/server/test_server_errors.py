"""The one mapping from Credo errors to gRPC statuses: codes, field violations, and INTERNAL with
no internals in the message."""

from __future__ import annotations

import logging

import grpc
import pytest
from google.rpc import error_details_pb2

from engine.errors import (
    CredoError,
    FieldViolation,
    IdempotencyConflict,
    InvalidInput,
    ModelError,
    NotFound,
    PolicyRuntimeError,
)
from engine.server.errors import map_error, violations_from_status


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NotFound("no policy 'x'"), grpc.StatusCode.NOT_FOUND),
        (PolicyRuntimeError("division by zero in dti"), grpc.StatusCode.FAILED_PRECONDITION),
        (ModelError("model sha256 mismatch"), grpc.StatusCode.FAILED_PRECONDITION),
        (IdempotencyConflict("request_id reused"), grpc.StatusCode.ALREADY_EXISTS),
    ],
)
def test_credo_errors_map_by_their_grpc_status(error: CredoError, code: grpc.StatusCode) -> None:
    mapped = map_error(error)
    assert mapped.code == code
    assert mapped.status.code == code.value[0]
    assert error.code in mapped.message


def test_invalid_input_carries_every_field_violation() -> None:
    error = InvalidInput(
        [FieldViolation("applicant.age", "must be >= 18"), FieldViolation("loan.amount", "required")]
    )
    mapped = map_error(error)
    assert mapped.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [(v.field, v.description) for v in violations_from_status(mapped.status)] == [
        ("applicant.age", "must be >= 18"),
        ("loan.amount", "required"),
    ]
    infos = [d for d in mapped.status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    assert len(infos) == 1


def test_violations_are_capped_to_fit_a_default_clients_headers() -> None:
    many = [FieldViolation(f"unknown_{i}_{'x' * 200}", "unknown field " + "y" * 5000) for i in range(300)]
    mapped = map_error(InvalidInput(many))
    assert mapped.code is grpc.StatusCode.INVALID_ARGUMENT
    listed = violations_from_status(mapped.status)
    assert 1 < len(listed) <= 21
    assert listed[0].field.endswith(f"... ({len(many[0].field)} chars)")
    assert listed[-1] == FieldViolation("", f"{300 - len(listed) + 1} more violation(s) not listed")
    # base64 of the details plus the message stay far below the 8 KB default header limit
    assert len(mapped.status.SerializeToString()) * 4 / 3 + len(mapped.message) * 3 < 6000


def test_unexpected_exception_is_internal_logged_and_not_leaked(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="credo.server"):
        mapped = map_error(KeyError("secret_column"), {"request_id": "r9", "policy": "consumer_loan"})
    assert mapped.code == grpc.StatusCode.INTERNAL
    assert "secret_column" not in mapped.message and "KeyError" not in mapped.message
    assert "incident" in mapped.message
    record = caplog.records[-1]
    assert record.request_id == "r9"  # type: ignore[attr-defined]
    assert record.exc_info is not None


def test_credo_error_with_an_unregistered_code_is_internal() -> None:
    assert map_error(CredoError("x", code="NOT_A_CODE")).code == grpc.StatusCode.INTERNAL
