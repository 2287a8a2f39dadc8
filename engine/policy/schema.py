"""The policy file's schema as pydantic models (unknown keys forbidden, strict types), and the mapping
of pydantic errors back to the YAML node each one is about."""

from __future__ import annotations

import difflib
import re
from decimal import Decimal
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from engine.errors import DiagnosticSink
from engine.policy.experiment import REF_PATTERN
from engine.policy.source import PathKey, Source

Num = int | Decimal
Text = str | dict[str, str]
ExprSrc = str | bool | int | Decimal
Code = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
Ident = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
InputType = Literal["integer", "decimal", "boolean", "string", "enum", "date", "list", "object"]
OutputType = Literal["integer", "decimal", "boolean", "string", "enum", "date", "list", "object"]
MAX_ITEMS = 1000  # the longest list a policy may accept: each item is validated on every call


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class InputSpec(Strict):
    type: InputType
    min: Num | str | None = None  # str for dates
    max: Num | str | None = None
    values: list[str] | None = None
    required: bool = True
    default: Any = None
    pii: bool = False
    subject: bool = False  # the key naming whose personal data a record holds (must be pii)
    protected: bool = False
    description: str | None = None
    items: InputSpec | None = None  # type list: each item's declaration
    max_items: int | None = Field(default=None, ge=0, le=MAX_ITEMS)  # type list: required
    fields: dict[str, InputSpec] | None = None  # type object: its fields

    @model_validator(mode="after")
    def _containers(self) -> InputSpec:
        if (self.type == "list") != (self.items is not None):
            raise ValueError("`items` is required for type list and only allowed for it")
        if (self.type == "list") != (self.max_items is not None):
            raise ValueError(
                f"`max_items` (at most {MAX_ITEMS}) is required for type list and only allowed for it"
            )
        if (self.type == "object") != (self.fields is not None):
            raise ValueError("`fields` is required for type object and only allowed for it")
        if self.type == "object" and not self.fields:
            raise ValueError("an object needs at least one field")
        return self

    @model_validator(mode="after")
    def _values_for_enum(self) -> InputSpec:
        if (self.type == "enum") != (self.values is not None):
            raise ValueError("`values` is required for type enum and only allowed for it")
        if self.type == "enum" and not self.values:
            raise ValueError("an enum needs at least one value")
        if (self.min is not None or self.max is not None) and self.type not in ("integer", "decimal", "date"):
            raise ValueError(f"min/max are not allowed for type {self.type}")
        return self


class LabelSpec(Strict):
    """A caller label (DecideRequest.labels) the policy knows: `pii: true` seals its value in the
    record like a personal input's."""

    pii: bool = False
    description: str | None = None


class InputGroupSpec(Strict):
    """Fields sharing a dotted prefix (`bureau` for bureau.score, bureau.enquiries): what to do with a
    field of the group that no input declares."""

    unknown_fields: Literal["reject", "ignore"] = "reject"
    description: str | None = None


class DerivedSpec(Strict):
    expr: ExprSrc
    type: InputType | None = None
    description: str | None = None


class ReasonSpec(Strict):
    code: str = Code
    text: Text


class RuleSpec(Strict):
    id: str = Ident
    when: ExprSrc
    decline: ReasonSpec | None = None
    refer: ReasonSpec | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _one_effect(self) -> RuleSpec:
        if (self.decline is None) == (self.refer is None):
            raise ValueError("a rule needs exactly one effect: `decline` or `refer`")
        return self


class StageSpec(Strict):
    name: Literal["eligibility", "post_score"]
    rules: list[Any] = []  # validated one by one (RuleSpec) so one bad rule does not hide the others
    description: str | None = None


class ModelRefSpec(Strict):
    name: str
    version: str
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class ScalingSpec(Strict):
    base_points: int
    base_odds: Num
    pdo: Num


class GradeSpec(Strict):
    grade: str
    min_points: int


class DriftSpec(Strict):
    """Population-stability thresholds of the scoring model (engine.monitor.drift): an index below
    `watch` is stable, up to `action` watch, above it action."""

    watch: Num = Decimal("0.10")
    action: Num = Decimal("0.25")

    @model_validator(mode="after")
    def _ordered(self) -> DriftSpec:
        if not 0 < self.watch < self.action:
            raise ValueError(f"drift thresholds need 0 < watch < action, not {self.watch} and {self.action}")
        return self


class ScoreSpec(Strict):
    model: ModelRefSpec
    features: dict[str, ExprSrc]
    scaling: ScalingSpec
    # grade bands, or the name of a decision table that grades score.points
    grades: Annotated[list[GradeSpec], Field(min_length=1)] | str
    drift: DriftSpec | None = None


class SegmentSpec(Strict):
    id: str = Ident
    when: ExprSrc
    text: Text


class AdjustmentSpec(Strict):
    id: str = Ident
    when: ExprSrc
    multiply: Num | None = None
    add: Num | None = None
    code: str = Code
    text: Text

    @model_validator(mode="after")
    def _one_effect(self) -> AdjustmentSpec:
        if (self.multiply is None) == (self.add is None):
            raise ValueError("an adjustment needs exactly one of `multiply` or `add`")
        return self


RoundingMode = Literal["half_even", "half_up", "half_down", "down", "up", "floor", "ceiling"]


class LimitSpec(Strict):
    formula: ExprSrc
    adjustments: list[Any] = []  # validated one by one (AdjustmentSpec)
    floor: Num | None = None  # below it: declined LIMIT_BELOW_FLOOR; absent: a limit must be above 0
    cap: Num | None = None
    round_to: Num | str | None = None  # the step a limit is a multiple of; absent: 0.01 (cents)
    rounding: RoundingMode = "down"  # how a limit comes to the step (never above the cap)
    round_down_to: Num | None = None  # the 1.x spelling of `round_to` with `rounding: down`

    @model_validator(mode="after")
    def _one_step(self) -> LimitSpec:
        if self.round_to is not None and self.round_down_to is not None:
            raise ValueError("give the step once: `round_to` (with `rounding`) or the older `round_down_to`")
        if self.round_down_to is not None and "rounding" in self.model_fields_set and self.rounding != "down":
            raise ValueError("`round_down_to` always rounds down; write `round_to` to choose `rounding`")
        step = self.round_to if self.round_to is not None else self.round_down_to
        if step is not None and not _is_cent_step(step):
            raise ValueError(
                f"the rounding step must be a positive whole number of cents (0.01, 50, 100), got {step}"
            )
        return self


def _is_cent_step(step: Num | str) -> bool:
    try:
        value = Decimal(str(step).strip())
    except ArithmeticError:
        return False
    return value.is_finite() and value > 0 and value % Decimal("0.01") == 0


class PriceSpec(Strict):
    base_rate: ExprSrc
    spread: ExprSrc | None = None
    adjustments: list[Any] = []  # validated one by one (AdjustmentSpec)
    floor: Num | None = None
    cap: Num | None = None


class AmountRange(Strict):
    min: Num
    max: Num


class FeeSpec(Strict):
    upfront_rate: Num = 0
    monthly_rate: Num = 0  # of the amount lent, charged with every instalment (lifetime objectives only)


class MinimumPaymentSpec(Strict):
    fixed: Num = 0  # the minimum payment is max(fixed, rate x balance), capped by the balance
    rate: Num


class RevolvingSpec(Strict):
    minimum_payment: MinimumPaymentSpec
    interest_free_days: int = Field(default=0, ge=0, le=60)  # on purchases repaid in full; disclosed
    ccf: Num  # credit-conversion factor: the share of the undrawn limit drawn by default
    utilisation: Num  # the expected drawn share of the limit, for the economics
    horizon_months: int = Field(default=12, ge=1, le=120)  # the economics' horizon; the line revolves

    @model_validator(mode="after")
    def _shares(self) -> RevolvingSpec:
        for name in ("ccf", "utilisation"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"`{name}` is a share of the limit, between 0 and 1")
        if not 0 < self.minimum_payment.rate <= 1:
            raise ValueError("`minimum_payment.rate` is a share of the balance, above 0 and at most 1")
        return self


class ProductSpec(Strict):
    id: str = Ident
    name: Text
    when: ExprSrc = True
    amount: AmountRange  # for a revolving line: its credit limit
    type: Literal["instalment", "revolving"] = "instalment"
    terms: list[int] = []
    methods: list[Literal["equal_instalment", "equal_principal", "interest_only"]] = []
    fee: FeeSpec | None = None
    rate_adjustment: Num = 0
    revolving: RevolvingSpec | None = None

    @model_validator(mode="after")
    def _shape_of_type(self) -> ProductSpec:
        if self.type == "instalment" and not (self.terms and self.methods):
            raise ValueError("an instalment product needs `terms` and `methods`")
        if self.type == "revolving":
            if self.revolving is None:
                raise ValueError("a revolving product needs `revolving` (minimum payment, ccf, utilisation)")
            if self.terms or self.methods or self.fee is not None:
                raise ValueError("a revolving product has no `terms`, `methods` or `fee`")
        elif self.revolving is not None:
            raise ValueError("`revolving` is only for products of type revolving")
        return self


class OperatingCostSpec(Strict):
    per_loan: Num = 0
    per_month: Num = 0


class LifetimeSpec(Strict):
    pd_curve: Literal["constant_hazard"] | Annotated[list[Num], Field(min_length=1)] = "constant_hazard"
    cost_of_funds: Num
    operating_cost: OperatingCostSpec = OperatingCostSpec()


class BalloonSpec(Strict):
    refinance_months: int = Field(ge=1)  # budget the balloon as an equal-instalment loan of this term


class FirstDueSpec(Strict):
    day: Literal["same"] | Annotated[int, Field(ge=1, le=28)] = "same"
    min_days: int = Field(default=0, ge=0, le=45)  # a fixed day falls a month later if sooner than this


class ObjectiveExprSpec(Strict):
    """Rank by an expression over the applicant and offer.* figures, highest or lowest first."""

    maximise: ExprSrc | None = None
    minimise: ExprSrc | None = None

    @model_validator(mode="after")
    def _one_direction(self) -> ObjectiveExprSpec:
        if (self.maximise is None) == (self.minimise is None):
            raise ValueError("an objective expression needs exactly one of `maximise` or `minimise`")
        return self


class OffersSpec(Strict):
    top: int = Field(default=3, ge=1)
    affordability_cap: Num
    income: ExprSrc
    existing_payments: ExprSrc
    requested: ExprSrc | None = None  # the amount asked for: offers lend min(requested, limit, product max)
    lgd: Num
    # expected_profit: the 1.x ranking (12-month PD x LGD x amount, first-instalment affordability),
    # kept so old policy versions decide as they did; the others need `lifetime`.
    objective: (
        Literal["expected_profit", "expected_profit_npv", "lowest_instalment", "lowest_total_cost"]
        | ObjectiveExprSpec
    ) = "expected_profit"
    pd: ExprSrc | None = None  # the 12-month PD when no model scores it (a scorecard's table)
    lifetime: LifetimeSpec | None = None
    balloon: BalloonSpec | None = None  # absent: the interest-only balloon is budgeted in full
    validity_days: int | None = Field(default=None, ge=1)
    first_due: FirstDueSpec | None = None


class OutputSpec(Strict):
    """An author's own result, returned in the Decision: its type and how it is computed (`expr`, or
    `fields` for an object)."""

    type: OutputType
    expr: ExprSrc | None = None
    fields: dict[str, ExprSrc] | None = None  # type object: each field's expression
    values: list[str] | None = None  # type enum
    description: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> OutputSpec:
        if (self.type == "object") == (self.expr is not None) or (self.type == "object") != (
            self.fields is not None
        ):
            raise ValueError("an output needs `expr`, or `fields` (one expression each) for type object")
        if (self.type == "enum") != (self.values is not None):
            raise ValueError("`values` is required for type enum and only allowed for it")
        return self


class ExpectSpec(Strict):
    outcome: Literal["APPROVE", "DECLINE", "REFER"] | None = None
    reasons: list[str] | None = None
    grade: str | None = None
    limit: Num | str | None = None
    annual_rate: Num | str | None = None
    segments: list[str] | None = None
    offers: int | None = None
    error: str | None = None
    outputs: dict[str, Any] | None = None  # output name -> value (decimals as numbers or strings)
    derived: dict[str, Any] | None = None  # derived value or decision-table output -> value
    fired: dict[str, list[str]] | None = None  # trace: stage -> the rule ids that fired there


class TableOutputSpec(Strict):
    values: list[bool | int | Decimal | str] | None = None  # allowed values; priority order (first wins)
    default: bool | int | Decimal | str | None = None  # when no row matches
    description: str | None = None


class DecisionTableSpec(Strict):
    description: str | None = None
    hit: Literal["first", "unique", "priority", "collect"] = "unique"
    aggregate: Literal["sum", "min", "max", "count"] | None = None  # collect only
    complete: bool = False  # every input must match a row: a gap is an error
    inputs: dict[str, ExprSrc] = Field(min_length=1)
    outputs: list[str] | dict[str, TableOutputSpec | None] = Field(min_length=1)
    rows: list[Any] = Field(min_length=1)  # each a list of cells (inputs then outputs) or a mapping

    @model_validator(mode="after")
    def _aggregate_for_collect(self) -> DecisionTableSpec:
        if self.aggregate is not None and self.hit != "collect":
            raise ValueError("`aggregate` is only allowed with hit policy collect")
        return self


class TestSpec(Strict):
    name: str
    input: dict[str, Any]
    expect: ExpectSpec


class ArmSpec(Strict):
    """A challenger: NAME@VERSION and its share of the traffic."""

    policy: str = Field(pattern=REF_PATTERN)
    share: Decimal = Field(gt=0, lt=1)


class ExperimentSpec(Strict):
    """Champion/challenger and shadow versions (engine.policy.experiment)."""

    key: str
    arms: list[ArmSpec] = Field(default_factory=list)
    shadows: list[Annotated[str, Field(pattern=REF_PATTERN)]] = Field(default_factory=list)


class Header(Strict):
    policy: str = Ident
    version: str
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    languages: list[str] = Field(default=["en"], min_length=1)
    description: str | None = None
    rounding: RoundingMode = "half_even"


SECTIONS: dict[str, Any] = {
    "inputs": dict[str, InputSpec],
    "labels": dict[str, LabelSpec],
    "input_groups": dict[str, InputGroupSpec],
    "derived": dict[str, ExprSrc | DerivedSpec],
    "tables": dict[str, dict[str | int, Num | str]],
    "decision_tables": dict[str, Any],
    "score": ScoreSpec,
    "stages": list[StageSpec],
    "segments": list[SegmentSpec],
    "limit": LimitSpec,
    "price": PriceSpec,
    "products": list[ProductSpec],
    "offers": OffersSpec,
    "outputs": dict[str, OutputSpec],
    "tests": list[Any],
    "experiment": ExperimentSpec,  # validated by engine.policy.experiment_section
}
HEADER_KEYS = set(Header.model_fields)
_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def adapter(kind: Any) -> TypeAdapter[Any]:
    if kind not in _ADAPTERS:
        _ADAPTERS[kind] = TypeAdapter(kind)
    return _ADAPTERS[kind]


_PERCENT = re.compile(r"([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*%")


def percent_message(text: str) -> str | None:
    """The one message for a rate written as a percentage (`18%`, "3.45%"), None for other text."""
    found = _PERCENT.search(text)
    if found is None or not (found.group(0) == text.strip() or re.search(r"\d\s*%(?!\s*[\w(])", text)):
        return None
    number = found.group(1)
    fraction = (Decimal(number) / 100).normalize()
    return (
        f"{number}% is a percentage: write rates as decimal fractions, {number}% is {fraction:f}"
        " (a number, no quotes)"
    )


def validate_part(kind: Any, data: Any, path: PathKey, src: Source, sink: DiagnosticSink) -> Any:
    """Validate `data` (found at `path`) against `kind`; None, with located diagnostics, on failure."""
    try:
        return adapter(kind).validate_python(data)
    except ValidationError as exc:
        report(exc, path, data, src, sink)
        return None


def report(exc: ValidationError, base: PathKey, data: Any, src: Source, sink: DiagnosticSink) -> None:
    seen: dict[tuple[PathKey, str], list[str]] = {}
    for err in exc.errors(include_url=False):
        path = tuple(base)
        leftover: list[Any] = []
        for part in err["loc"]:
            if (*path, part) in src.values:
                path = (*path, part)
            else:
                leftover.append(part)
        kind = err["type"]
        rate = percent_message(err["input"]) if isinstance(err.get("input"), str) else None
        if rate is not None:
            seen.setdefault((path, "RATE_AS_PERCENT"), []).append(rate)
            continue
        if kind == "extra_forbidden":
            code = "UNKNOWN_KEY"
        elif kind == "missing":
            code = "MISSING_KEY"
        elif kind.endswith(("_type", "_parsing")) or kind in ("model_attributes_type", "dict_type"):
            code = "WRONG_TYPE"
        else:
            code = "BAD_VALUE"
        seen.setdefault((path, code), []).append(_message(err, code, path, leftover))
    # a deeper error explains the value; the union's other branch ("got mapping; expected string") is noise
    for path, code in list(seen):
        deeper = any(len(p) > len(path) and p[: len(path)] == path for p, _ in seen)
        if code == "WRONG_TYPE" and deeper and all("got mapping" in m for m in seen[(path, code)]):
            del seen[(path, code)]
    missing = {
        path: m.split("'")[1] for (path, code), ms in seen.items() if code == "MISSING_KEY" for m in ms
    }
    for (path, code), messages in seen.items():
        where = src.key_at(path) if code == "UNKNOWN_KEY" else src.at(path)
        if code == "UNKNOWN_KEY" and len(path) >= 2 and path[-2] in LISTED_KEYS:
            messages = [messages[0] + _allowed(str(path[-1]), LISTED_KEYS[str(path[-2])])]
        elif code == "UNKNOWN_KEY" and path[:-1] in missing:
            close = difflib.get_close_matches(str(path[-1]), [missing[path[:-1]]], n=1)
            messages = [messages[0] + (f"; did you mean '{close[0]}'?" if close else "")]
        if code == "WRONG_TYPE" and len(messages) > 1:
            wants = sorted({m.split("; expected ", 1)[-1] for m in messages})
            message = messages[0].split("; expected ", 1)[0] + "; expected " + " or ".join(wants)
        else:
            message = messages[0]
        if code in ("UNKNOWN_KEY", "WRONG_TYPE") and _split_by_comma(src, path):
            message += (
                f"; a comma inside {{...}} starts a new key: if '{path[-1]}' belongs to the text before it,"
                " put that text in quotes"
            )
        sink.error(code, message, where)


# mappings whose unknown keys are answered with the keys they allow (a test's `expect`)
LISTED_KEYS: dict[str, type[BaseModel]] = {"expect": ExpectSpec}


def _allowed(key: str, model: type[BaseModel]) -> str:
    names = list(model.model_fields)
    close = difflib.get_close_matches(key, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"; {hint}allowed: {', '.join(names)}"


def _split_by_comma(src: Source, path: PathKey) -> bool:
    """Whether `path` is a key without a value in a flow mapping: `{name: Loan, 12 months}` made
    `12 months` a key of its own."""
    parent, node = src.nodes.get(tuple(path[:-1])), src.nodes.get(tuple(path))
    return (
        isinstance(parent, yaml.MappingNode)
        and bool(parent.flow_style)
        and isinstance(node, yaml.ScalarNode)
        and node.value == ""
        and node.style is None
    )


def _dotted(path: PathKey) -> str:
    return ".".join(str(p) for p in path) or "<document>"


def _message(err: Any, code: str, path: PathKey, leftover: list[Any]) -> str:
    if code == "UNKNOWN_KEY":
        return f"unknown key '{path[-1]}' in {_dotted(path[:-1])}"
    if code == "MISSING_KEY":
        missing = next((p for p in reversed(leftover) if isinstance(p, str)), "?")
        return f"missing required key '{missing}' in {_dotted(path)}"
    if code == "WRONG_TYPE":
        got = type(err.get("input")).__name__
        got = {
            "dict": "mapping",
            "list": "list",
            "str": "string",
            "Decimal": "number",
            "NoneType": "null",
        }.get(got, got)
        want = (
            err["msg"]
            .removeprefix("Input should be ")
            .removeprefix("a valid ")
            .removeprefix("an instance of ")
        )
        return f"wrong type for {_dotted(path)}: got {got}; expected {want}"
    message = f"bad value for {_dotted(path)}: {err['msg'].removeprefix('Value error, ')}"
    if err["type"] == "literal_error" and isinstance(err.get("input"), str):
        options = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
        close = difflib.get_close_matches(err["input"], options, n=1)
        message += f"; did you mean '{close[0]}'?" if close else ""
    return message
