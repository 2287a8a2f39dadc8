"""Errors as data: one base `CredoError` with a stable code, a gRPC status name and a location.

Policy diagnostics (`Diagnostic`) are collected, never raised one at a time; `PolicyError` carries
all of them. The gRPC layer maps `grpc_status` names in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True, order=True)
class Location:
    """A position in a source file; line and col are 1-based."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    """One finding about a policy (or a training spec): printed `file:line:col: CODE: message`."""

    code: str
    message: str
    location: Location
    severity: Severity = Severity.ERROR

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.location.file, self.location.line, self.location.col, self.code)

    def __str__(self) -> str:
        tag = "" if self.is_error else " (warning)"
        return f"{self.location}: {self.code}{tag}: {self.message}"


class CredoError(Exception):
    """Base of every error Credo reports to a user. `code` is stable; `grpc_status` is a
    grpc.StatusCode name, kept as a string so nothing below server/ imports grpc."""

    code: str = "CREDO_ERROR"
    grpc_status: str = "INTERNAL"

    def __init__(self, message: str, *, code: str | None = None, location: Location | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.location = location

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.code}: {self.message}"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of an application: `field` is its dotted path."""

    field: str
    description: str


class InvalidInput(CredoError):
    """An application that does not satisfy the policy's declared inputs; lists every bad field."""

    code = "INVALID_INPUT"
    grpc_status = "INVALID_ARGUMENT"

    def __init__(self, violations: list[FieldViolation]):
        self.violations = list(violations)
        text = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(f"invalid application: {text}")


class PolicyError(CredoError):
    """A policy that cannot be loaded; carries every diagnostic found, sorted by position."""

    code = "POLICY_INVALID"
    grpc_status = "FAILED_PRECONDITION"

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        errors = [d for d in self.diagnostics if d.is_error]
        first = errors[0] if errors else (self.diagnostics[0] if self.diagnostics else None)
        summary = f"{len(errors)} error(s)" + (f", first: {first}" if first else "")
        super().__init__(summary, location=first.location if first else None)


class PolicyRuntimeError(CredoError):
    """A formula that failed at decision time (division by zero, out of domain): the decision is
    refused, never answered with a wrong number."""

    code = "POLICY_RUNTIME"
    grpc_status = "FAILED_PRECONDITION"


class NotFound(CredoError):
    code = "NOT_FOUND"
    grpc_status = "NOT_FOUND"


class ModelError(CredoError):
    """A model that cannot be used: tampered file, missing or bad feature."""

    code = "MODEL_ERROR"
    grpc_status = "FAILED_PRECONDITION"


@dataclass
class DiagnosticSink:
    """Collects diagnostics across a load so every error in a file is reported in one run."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, code: str, message: str, location: Location) -> None:
        self.items.append(Diagnostic(code, message, location, Severity.ERROR))

    def warning(self, code: str, message: str, location: Location) -> None:
        self.items.append(Diagnostic(code, message, location, Severity.WARNING))

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=Diagnostic.sort_key)
