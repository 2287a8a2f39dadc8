"""The one place where Credo errors become gRPC statuses (CredoError.grpc_status -> grpc.StatusCode).

InvalidInput carries google.rpc.BadRequest field violations; anything unexpected is INTERNAL, logged.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from engine.errors import AUDIT_STORE_UNAVAILABLE, CredoError, FieldViolation, InvalidInput

log = logging.getLogger("credo.server")


# What a caller is told instead of the exception's own text, which names the store's host, port, user
# or file path; that text goes to the server log only.
PUBLIC_MESSAGES = {
    AUDIT_STORE_UNAVAILABLE: "the decision could not be recorded (audit store unavailable); "
    "nothing was decided, retry later",
}


@dataclass(frozen=True)
class MappedError:
    """A gRPC status ready to send: code, message and the packed google.rpc.Status (with details)."""

    code: grpc.StatusCode
    message: str
    credo_code: str
    violations: tuple[FieldViolation, ...] = ()
    status: status_pb2.Status = field(default_factory=status_pb2.Status)


def plain_error(code: grpc.StatusCode, message: str) -> MappedError:
    """A status without details (deadline passed, unauthenticated, ...)."""
    return MappedError(code, message, code.name, (), status_pb2.Status(code=_rpc_code(code), message=message))


def status_code(name: str) -> grpc.StatusCode:
    """grpc.StatusCode by name; unknown names are INTERNAL (a bug in an error class)."""
    return grpc.StatusCode.__members__.get(name, grpc.StatusCode.INTERNAL)


def map_error(exc: BaseException, context: Mapping[str, Any] | None = None) -> MappedError:
    """The gRPC status for an exception. Unexpected exceptions are logged with `context` and
    answered with a generic INTERNAL message plus an incident id to correlate with the log."""
    if isinstance(exc, CredoError):
        code = status_code(exc.grpc_status)
        if code is grpc.StatusCode.INTERNAL:
            return _internal(exc, context)
        violations = capped(exc.violations) if isinstance(exc, InvalidInput) else ()
        message = cut(exc.message if isinstance(exc, InvalidInput) else str(exc), MAX_MESSAGE)
        if exc.code in PUBLIC_MESSAGES:
            log.warning("refused", extra={"error_code": exc.code, "error": message})
            message = PUBLIC_MESSAGES[exc.code]
        status = status_pb2.Status(code=_rpc_code(code), message=message)
        if violations:
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in violations
                ]
            )
            detail = any_pb2.Any()
            detail.Pack(bad)
            status.details.append(detail)
        info = error_details_pb2.ErrorInfo(reason=exc.code, domain="credo")
        detail = any_pb2.Any()
        detail.Pack(info)
        status.details.append(detail)
        return MappedError(code, message, exc.code, violations, status)
    return _internal(exc, context)


# A default client refuses response headers beyond 8 KB (grpc.max_metadata_size): the message goes
# in grpc-message (percent-encoded) and the details in grpc-status-details-bin (base64), so both
# are kept well inside it, however many fields were wrong or however long an echoed value was.
MAX_MESSAGE = 400
MAX_VIOLATIONS = 20
VIOLATIONS_BUDGET = 3000  # UTF-8 bytes of field paths and descriptions, before base64
MAX_FIELD = 120
MAX_DESCRIPTION = 240


def cut(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def capped(violations: Sequence[FieldViolation]) -> tuple[FieldViolation, ...]:
    """The first violations that fit the budget, each cut to size, and one more saying how many
    were left out."""
    kept: list[FieldViolation] = []
    used = 0
    for v in violations:
        short = FieldViolation(cut(v.field, MAX_FIELD), cut(v.description, MAX_DESCRIPTION))
        size = len(short.field.encode()) + len(short.description.encode()) + 8
        if len(kept) == MAX_VIOLATIONS or used + size > VIOLATIONS_BUDGET:
            break
        kept.append(short)
        used += size
    left = len(violations) - len(kept)
    if left:
        kept.append(FieldViolation("", f"{left} more violation(s) not listed"))
    return tuple(kept)


def _internal(exc: BaseException, context: Mapping[str, Any] | None) -> MappedError:
    incident = uuid.uuid4().hex[:12]
    log.error(
        "internal error",
        exc_info=exc,
        extra={"incident": incident, "error_type": type(exc).__name__, **dict(context or {})},
    )
    message = f"internal error (incident {incident})"
    status = status_pb2.Status(code=code_pb2.INTERNAL, message=message)
    return MappedError(grpc.StatusCode.INTERNAL, message, "INTERNAL", (), status)


def _rpc_code(code: grpc.StatusCode) -> int:
    return int(code.value[0])


def abort(context: grpc.ServicerContext, mapped: MappedError) -> None:
    """Abort the call with the mapped status and its details (raises)."""
    context.abort_with_status(rpc_status.to_status(mapped.status))


def violations_from_status(status: status_pb2.Status) -> list[FieldViolation]:
    """Field violations packed in a google.rpc.Status (the client side of map_error)."""
    found: list[FieldViolation] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.extend(FieldViolation(v.field, v.description) for v in bad.field_violations)
    return found
