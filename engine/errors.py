"""Every error Credo reports, and the one registry of their codes (code -> gRPC status, HTTP status).

Hierarchy (each class names its default code; a raise may pass another registered code):

    Exception
     └── CredoError                     base: .code, .grpc_status, .http_status, .location
          ├── InvalidInput              INVALID_INPUT       bad application, every field listed
          ├── PolicyError               POLICY_INVALID      policy does not load, every diagnostic
          ├── TrainSpecError            TRAIN_SPEC_INVALID  training spec, every diagnostic
          ├── ScenarioError             SCENARIO_INVALID    stress scenario file, every diagnostic
          ├── UsageError                USAGE               bad command-line or URL argument
          ├── NotFound                  NOT_FOUND           unknown policy or decision
          ├── VersionNotLoaded          VERSION_NOT_LOADED  a pinned policy version not served
          ├── PolicyRuntimeError        POLICY_RUNTIME      a formula failed at decision time
          ├── PolicySetInvalid          POLICY_SET_INVALID  a served set that cannot start
          ├── ModelError                MODEL_ERROR         tampered, missing or misfed model
          │    └── FeatureRefused       FEATURE_*           a feature value the model refuses
          ├── ArchiveMissing            ARCHIVE_MISSING     replay cannot rebuild its inputs
          ├── IdempotencyConflict       IDEMPOTENCY_CONFLICT  request_id reused, other payload
          ├── DeadlineExceeded          DEADLINE_EXCEEDED   caller's deadline passed first
          ├── BadEvent                  BAD_EVENT           a refused loan event, its field named
          ├── MonitorLogMismatch        MONITOR_LOG_MISMATCH  the monitor chain vs a changed policy
          ├── Unavailable               UNAVAILABLE         retry later / elsewhere
          │    └── StoreUnavailable     AUDIT_STORE_UNAVAILABLE
          └── InternalError             INTERNAL            never the caller's fault
               ├── CanonicalError       CANONICAL_JSON
               ├── RequestClash         REQUEST_CLASH       store-internal race, retried
               └── RuleEngineError      RULE_ENGINE
                    ├── RulesetConflict     RULESET_CONFLICT
                    ├── RuleActionError     RULE_ACTION_FAILED
                    └── UnencodableValue    RULE_UNENCODABLE_VALUE

A code's statuses come from `REGISTRY`, never from the class, so one code means one status
everywhere. `docs/errors.md` is generated from the registry (`python scripts/errors_doc.py`).
Policy diagnostics (`Diagnostic`) are collected, never raised one at a time; `PolicyError` carries
all of them. Nothing here imports grpc: statuses are names, mapped in engine/server/errors.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

# ---- the code registry --------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorCode:
    """A stable error code a client can switch on, with its gRPC status name and HTTP status."""

    name: str
    grpc_status: str
    http_status: int
    meaning: str


REGISTRY: dict[str, ErrorCode] = {}


def _code(name: str, grpc_status: str, http_status: int, meaning: str) -> str:
    REGISTRY[name] = ErrorCode(name, grpc_status, http_status, meaning)
    return name


# bad input from the caller
INVALID_INPUT = _code(
    "INVALID_INPUT",
    "INVALID_ARGUMENT",
    400,
    "The application breaks the policy's declared inputs; every bad field is listed.",
)
USAGE = _code("USAGE", "INVALID_ARGUMENT", 400, "A command-line argument that cannot be used.")
BAD_URL = _code(
    "BAD_URL",
    "INVALID_ARGUMENT",
    400,
    "An audit store URL that is neither sqlite:///PATH nor postgresql://...",
)
ARCHIVE_PATH = _code(
    "ARCHIVE_PATH", "INVALID_ARGUMENT", 400, "An archived file path that is absolute or leaves its directory."
)
TRAIN_SPEC_INVALID = _code(
    "TRAIN_SPEC_INVALID",
    "INVALID_ARGUMENT",
    400,
    "A training spec that cannot be used; every diagnostic is listed.",
)
SCENARIO_INVALID = _code(
    "SCENARIO_INVALID",
    "INVALID_ARGUMENT",
    400,
    "A stress scenario file that cannot be used; every diagnostic is listed.",
)
# unknown things
NOT_FOUND = _code("NOT_FOUND", "NOT_FOUND", 404, "No such policy or decision.")
# a precondition of the call does not hold
VERSION_NOT_LOADED = _code(
    "VERSION_NOT_LOADED",
    "FAILED_PRECONDITION",
    412,
    "The request pins a policy version other than the one served.",
)
POLICY_INVALID = _code(
    "POLICY_INVALID", "FAILED_PRECONDITION", 412, "A policy that does not load; every diagnostic is listed."
)
POLICY_SET_INVALID = _code(
    "POLICY_SET_INVALID",
    "FAILED_PRECONDITION",
    412,
    "A set of policies to serve of which at least one does not load.",
)
POLICY_REFUSED = _code(
    "POLICY_REFUSED",
    "FAILED_PRECONDITION",
    412,
    "A policy refused by a release guard (its own tests fail, or its version changed text); not served.",
)
RELEASE_REFUSED = _code(
    "RELEASE_REFUSED",
    "FAILED_PRECONDITION",
    412,
    "A release bundle that is altered, unapproved or not approved by enough distinct trusted keys.",
)
POLICY_RUNTIME = _code(
    "POLICY_RUNTIME",
    "FAILED_PRECONDITION",
    422,
    "A formula failed at decision time (division by zero, out of domain); nothing is answered.",
)
RETENTION = _code(
    "RETENTION",
    "FAILED_PRECONDITION",
    412,
    "Retention refused: the chain does not verify or has no such record.",
)
ARCHIVE_MISSING = _code(
    "ARCHIVE_MISSING",
    "FAILED_PRECONDITION",
    412,
    "A record's archived policy or model file is absent or altered; replay is refused.",
)
MODEL_ERROR = _code("MODEL_ERROR", "FAILED_PRECONDITION", 412, "A model package that cannot be used.")
MODEL_MISSING = _code(
    "MODEL_MISSING", "FAILED_PRECONDITION", 412, "The model package a policy pins is not in the model store."
)
MODEL_HASH_MISMATCH = _code(
    "MODEL_HASH_MISMATCH",
    "FAILED_PRECONDITION",
    412,
    "A model file's sha256 differs from the pin in the policy or card.",
)
MODEL_CARD_INVALID = _code(
    "MODEL_CARD_INVALID",
    "FAILED_PRECONDITION",
    412,
    "A model card that is unreadable or disagrees with its files.",
)
MODEL_FILE_MISSING = _code(
    "MODEL_FILE_MISSING", "FAILED_PRECONDITION", 412, "A file the model card lists is missing."
)
MODEL_PARITY = _code(
    "MODEL_PARITY",
    "FAILED_PRECONDITION",
    412,
    "ONNX and native CatBoost probabilities disagree; the package is not written.",
)
BAD_PD = _code("BAD_PD", "FAILED_PRECONDITION", 412, "A probability of default outside [0, 1].")
BAD_SCALING = _code(
    "BAD_SCALING", "FAILED_PRECONDITION", 412, "Score scaling with a non-positive base odds or PDO."
)
NO_GRADE = _code("NO_GRADE", "FAILED_PRECONDITION", 412, "No grade band covers the score.")
FEATURE_MISSING = _code("FEATURE_MISSING", "FAILED_PRECONDITION", 412, "A model feature has no value.")
FEATURE_TYPE = _code("FEATURE_TYPE", "FAILED_PRECONDITION", 412, "A model feature of the wrong type.")
FEATURE_UNSEEN = _code(
    "FEATURE_UNSEEN",
    "FAILED_PRECONDITION",
    412,
    "A categorical model feature with a category unseen in training.",
)
FEATURE_NOT_FINITE = _code(
    "FEATURE_NOT_FINITE", "FAILED_PRECONDITION", 412, "A numeric model feature that is NaN or infinite."
)
FEATURE_OUT_OF_RANGE = _code(
    "FEATURE_OUT_OF_RANGE",
    "FAILED_PRECONDITION",
    412,
    "A numeric model feature outside the range seen in training.",
)
# post-loan monitoring: a loan event that is refused (the rest of its stream goes on)
BAD_EVENT = _code(
    "BAD_EVENT", "INVALID_ARGUMENT", 400, "A loan event field of the wrong type or form; the field is named."
)
UNKNOWN_EVENT = _code(
    "UNKNOWN_EVENT", "INVALID_ARGUMENT", 400, "A loan event type the monitoring policy does not declare."
)
UNKNOWN_FIELD = _code(
    "UNKNOWN_FIELD", "INVALID_ARGUMENT", 400, "A field the loan event's type does not declare."
)
MISSING_FIELD = _code(
    "MISSING_FIELD", "INVALID_ARGUMENT", 400, "A required field of the loan event is missing."
)
UNKNOWN_LOAN = _code(
    "UNKNOWN_LOAN", "INVALID_ARGUMENT", 400, "An event for a loan never disbursed, or already closed."
)
DUPLICATE_LOAN = _code(
    "DUPLICATE_LOAN", "INVALID_ARGUMENT", 400, "A loan.disbursed for a loan already known."
)
OUT_OF_ORDER = _code(
    "OUT_OF_ORDER", "INVALID_ARGUMENT", 400, "A loan event dated before that loan's last accepted event."
)
MONITOR_LOG_MISMATCH = _code(
    "MONITOR_LOG_MISMATCH",
    "FAILED_PRECONDITION",
    412,
    "An event on the monitor chain that the loaded monitoring policy no longer accepts.",
)
PII_KEY = _code(
    "PII_KEY",
    "FAILED_PRECONDITION",
    412,
    "The personal-data master key is missing, unreadable, or not the one the store's data keys are under.",
)
# conflicts
IDEMPOTENCY_CONFLICT = _code(
    "IDEMPOTENCY_CONFLICT", "ALREADY_EXISTS", 409, "A request_id seen before with a different payload."
)
# time and availability
DEADLINE_EXCEEDED = _code(
    "DEADLINE_EXCEEDED",
    "DEADLINE_EXCEEDED",
    504,
    "The caller's deadline passed before the decision could start.",
)
UNAVAILABLE = _code("UNAVAILABLE", "UNAVAILABLE", 503, "The server is draining or not ready; retry.")
AUDIT_STORE_UNAVAILABLE = _code(
    "AUDIT_STORE_UNAVAILABLE",
    "UNAVAILABLE",
    503,
    "The audit store cannot commit; nothing is answered unrecorded. Retry.",
)
# never the caller's fault
INTERNAL = _code(
    "INTERNAL", "INTERNAL", 500, "A bug; the message carries an incident id to find in the server log."
)
CANONICAL_JSON = _code(
    "CANONICAL_JSON", "INTERNAL", 500, "A value with no canonical JSON form reached the audit record."
)
REQUEST_CLASH = _code(
    "REQUEST_CLASH",
    "INTERNAL",
    500,
    "Another writer stored a request_id between check and insert (retried inside the log).",
)
RULE_ENGINE = _code("RULE_ENGINE", "INTERNAL", 500, "The rule engine failed.")
RULESET_CONFLICT = _code(
    "RULESET_CONFLICT", "INTERNAL", 500, "A ruleset name registered twice with different rules."
)
RULE_ACTION_FAILED = _code(
    "RULE_ACTION_FAILED", "INTERNAL", 500, "An exception inside a durable_rules action."
)
RULE_UNENCODABLE_VALUE = _code(
    "RULE_UNENCODABLE_VALUE",
    "INTERNAL",
    500,
    "A fact or constant the durable_rules encoding cannot represent exactly.",
)


def lookup(code: str) -> ErrorCode:
    """The registry entry of `code`; an unregistered code is INTERNAL (a bug in the raiser)."""
    return REGISTRY.get(code) or REGISTRY[INTERNAL]


# ---- locations and diagnostics ------------------------------------------------------------------


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


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of an application: `field` is its dotted path."""

    field: str
    description: str


SHOWN_CHARS = 64


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """A caller's value as echoed in an error or a log (a string quoted, a number as written), cut
    to `limit` characters with its full length said, so a hostile 1 MB value never makes a 1 MB message."""
    if isinstance(value, (str, bytes)):
        if len(value) > limit:  # repr of the head only: a 4 MB text costs ms to repr whole
            return f"{_head_repr(value, limit)[:limit]}... ({len(value)} chars)"
        text = repr(value)
        size = len(value)
    else:
        text = str(value)
        size = len(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({size} chars)"


def _head_repr(value: str | bytes, limit: int) -> str:
    """repr() of `value`'s first `limit` characters, quoted and escaped as repr() of all of `value`
    would be (repr quotes with " only when the text holds ' and no "): a probe made of the head and
    a quote or two makes repr choose the same quotes, and what it adds lies past the cut."""
    if isinstance(value, str):
        tail = "'" if "'" in value and '"' not in value else "'\""
        return repr(value[:limit] + tail)
    tail_bytes = b"'" if b"'" in value and b'"' not in value else b"'\""
    return repr(value[:limit] + tail_bytes)


# ---- the errors ---------------------------------------------------------------------------------


class CredoError(Exception):
    """Base of every error Credo reports. `code` is stable and registered; its gRPC and HTTP statuses
    come from the registry (names only, so nothing below server/ imports grpc)."""

    code: str = INTERNAL

    def __init__(self, message: str, *, code: str | None = None, location: Location | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.location = location

    @property
    def grpc_status(self) -> str:
        return lookup(self.code).grpc_status

    @property
    def http_status(self) -> int:
        return lookup(self.code).http_status

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.code}: {self.message}"


class InvalidInput(CredoError):
    """An application that does not satisfy the policy's declared inputs; lists every bad field."""

    code = INVALID_INPUT

    def __init__(self, violations: list[FieldViolation]):
        self.violations = list(violations)
        text = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(f"invalid application: {text}")


class PolicyError(CredoError):
    """A policy that cannot be loaded; carries every diagnostic found, sorted by position."""

    code = POLICY_INVALID

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        errors = [d for d in self.diagnostics if d.is_error]
        first = errors[0] if errors else (self.diagnostics[0] if self.diagnostics else None)
        summary = f"{len(errors)} error(s)" + (f", first: {first}" if first else "")
        super().__init__(summary, location=first.location if first else None)


class TrainSpecError(CredoError):
    """A training spec that cannot be used; carries every diagnostic, sorted by position."""

    code = TRAIN_SPEC_INVALID

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        first = self.diagnostics[0] if self.diagnostics else None
        summary = f"{len(self.diagnostics)} error(s)" + (f", first: {first}" if first else "")
        super().__init__(summary, location=first.location if first else None)


class ScenarioError(CredoError):
    """A stress scenario file that cannot be used; carries every diagnostic, sorted by position."""

    code = SCENARIO_INVALID

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        first = self.diagnostics[0] if self.diagnostics else None
        summary = f"{len(self.diagnostics)} error(s)" + (f", first: {first}" if first else "")
        super().__init__(summary, location=first.location if first else None)


class UsageError(CredoError):
    """An argument (command-line option, store URL, path) that cannot be used as given."""

    code = USAGE


class NotFound(CredoError):
    """An unknown policy or decision."""

    code = NOT_FOUND


class VersionNotLoaded(CredoError):
    """A request pins a policy version other than the one served: FAILED_PRECONDITION, not NOT_FOUND
    (the policy exists; the caller's precondition on it does not hold)."""

    code = VERSION_NOT_LOADED


class PolicyRuntimeError(CredoError):
    """A formula that failed at decision time (division by zero, out of domain): the decision is
    refused, never answered with a wrong number."""

    code = POLICY_RUNTIME


class PolicySetInvalid(CredoError):
    """A set of policies to serve that cannot start; `errors` names each policy's problem."""

    code = POLICY_SET_INVALID

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


class PolicyRefused(CredoError):
    """A policy that loads but may not serve: its own tests fail, or its version names another
    text elsewhere (versions are immutable); `reasons` lists every refusal."""

    code = POLICY_REFUSED

    def __init__(self, name: str, reasons: list[str]):
        super().__init__(f"policy {name} is refused: " + "; ".join(reasons))
        self.reasons = reasons


class ReleaseRefused(CredoError):
    """A release bundle that may not serve: altered content, a bad or untrusted signature, too few
    distinct approvals, or an approval by the author."""

    code = RELEASE_REFUSED


class ModelError(CredoError):
    """A model that cannot be used: tampered file, missing or bad feature."""

    code = MODEL_ERROR


class FeatureRefused(ModelError):
    """A feature value the model does not accept (out of its range, unseen category, not a number):
    `feature` names it, so a caller's input behind it can be named too."""

    code = FEATURE_OUT_OF_RANGE

    def __init__(self, feature: str, message: str, *, code: str):
        super().__init__(message, code=code)
        self.feature = feature


class ArchiveMissing(CredoError):
    """A record refers to an archived file the store does not hold (or holds altered): replay is
    refused rather than run on today's files."""

    code = ARCHIVE_MISSING


class IdempotencyConflict(CredoError):
    """A request_id seen before with a different payload: the caller reused an id by mistake."""

    code = IDEMPOTENCY_CONFLICT


class DeadlineExceeded(CredoError):
    """The caller's deadline passed before the decision could start."""

    code = DEADLINE_EXCEEDED

    def __init__(self, message: str = "deadline exceeded"):
        super().__init__(message)


class Unavailable(CredoError):
    """Not able to answer now (draining, not ready, store down): the caller retries."""

    code = UNAVAILABLE


class StoreUnavailable(Unavailable):
    """The audit store cannot be reached or written (down, disk full): nothing is answered unrecorded."""

    code = AUDIT_STORE_UNAVAILABLE


class InternalError(CredoError):
    """A failure that is never the caller's fault: answered INTERNAL with an incident id."""

    code = INTERNAL


class CanonicalError(InternalError):
    """A value that has no canonical form (a float, a non-string key, NaN, a lone surrogate ...)."""

    code = CANONICAL_JSON


class RequestClash(InternalError):
    """Another writer stored one of these request_ids between our check and our insert; the decision
    log retries, so a caller never sees it."""

    code = REQUEST_CLASH


class RuleEngineError(InternalError):
    """The rule engine failed; never the applicant's fault."""

    code = RULE_ENGINE


class RulesetConflict(RuleEngineError):
    """A ruleset name already registered in this process with different rules (names are registered
    once per process: a new policy version must get a new name and is loaded by fresh workers)."""

    code = RULESET_CONFLICT


class RuleActionError(RuleEngineError):
    """An exception raised inside a durable_rules action (which durable_rules only stores in the
    session state, `c.s.exception`)."""

    code = RULE_ACTION_FAILED


class UnencodableValue(RuleEngineError):
    """A fact value or constant outside what the exact encoding supports (float, NaN, huge exponent)."""

    code = RULE_UNENCODABLE_VALUE


class BadEvent(CredoError):
    """A loan event refused by the monitoring engine; `field` names the culprit, nothing changed."""

    code = BAD_EVENT

    def __init__(self, field: str, message: str, *, code: str | None = None):
        self.field = field
        super().__init__(f"{field}: {message}", code=code)


class MonitorLogMismatch(CredoError):
    """The monitor chain holds an event the loaded monitoring policy refuses (the policy changed)."""

    code = MONITOR_LOG_MISMATCH


class PiiKeyError(CredoError):
    """No usable master key for the personal data in an audit store (the message never holds a key)."""

    code = PII_KEY
