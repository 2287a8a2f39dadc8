"""The compiled policy: what the decision pipeline runs. Conditions are rule IR RuleSets (with their
hoisted fields), formulas are closures with Decimal semantics; everything is built once at load time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from engine.errors import Diagnostic, Location
from engine.expr.types import Type
from engine.rules.ir import RuleSet

Fact = dict[str, Any]


@dataclass(frozen=True)
class Formula:
    """A compiled expression: `formula(fact)` returns its value (None if an optional input is missing)."""

    source: str
    location: Location
    type: Type
    fn: Callable[[Mapping[str, Any]], Any] = field(repr=False, compare=False)

    def __call__(self, fact: Mapping[str, Any]) -> Any:
        return self.fn(fact)


@dataclass(frozen=True)
class Effect:
    """What a fired rule does: decline/refer with a reason, or adjust (limit/price) by multiply or add."""

    kind: Literal["decline", "refer", "adjust"]
    code: str
    texts: Mapping[str, str]
    rule_id: str
    location: Location
    multiply: Decimal | None = None
    add: Decimal | None = None

    def text(self, language: str) -> str:
        if language in self.texts:
            return self.texts[language]
        return next(iter(self.texts.values()), self.code)


@dataclass(frozen=True)
class RuleStage:
    """One ruleset of the policy with what its rules do. Call `prepare(fact)` and hand the result to an
    evaluator's `fire(stage.ruleset, prepared)`."""

    name: str
    ruleset: RuleSet
    effects: Mapping[str, Effect]
    hoisted: Mapping[str, Callable[[Mapping[str, Any]], Any]] = field(repr=False)
    locations: Mapping[str, Location] = field(default_factory=dict)

    def prepare(self, fact: Mapping[str, Any]) -> Fact:
        """The fact plus hoisted fields, with dates as ISO ordinals (the IR's representation)."""
        out = dict(fact)
        for name, fn in self.hoisted.items():
            out[name] = fn(fact)
        for key, value in out.items():
            if isinstance(value, dt.date):
                out[key] = value.toordinal()
        return out


@dataclass(frozen=True)
class InputDecl:
    name: str
    type: Type
    location: Location
    required: bool = True
    default: Any = None
    min: Any = None
    max: Any = None
    pii: bool = False
    protected: bool = False


@dataclass(frozen=True)
class Scaling:
    base_points: int
    base_odds: Decimal
    pdo: Decimal


@dataclass(frozen=True)
class Grade:
    grade: str
    min_points: int


@dataclass(frozen=True)
class ScoreSpec:
    """The model stage: which model (sha256 None = pin whatever the store holds for name+version),
    how to compute its features, and how to turn PD into points and a grade."""

    model_name: str
    model_version: str
    model_sha256: str | None
    feature_formulas: Mapping[str, Formula]
    scaling: Scaling
    grades: tuple[Grade, ...]  # highest min_points first

    def features(self, fact: Mapping[str, Any]) -> dict[str, Any]:
        return {name: f(fact) for name, f in self.feature_formulas.items()}

    def grade_for(self, points: int) -> str:
        for g in self.grades:
            if points >= g.min_points:
                return g.grade
        return self.grades[-1].grade


@dataclass(frozen=True)
class Segment:
    id: str
    texts: Mapping[str, str]
    location: Location


@dataclass(frozen=True)
class SegmentsSpec:
    stage: RuleStage  # rule id == segment id
    items: tuple[Segment, ...]


@dataclass(frozen=True)
class LimitSpec:
    formula: Formula
    adjustments: RuleStage  # effects of kind "adjust"
    floor: Decimal | None
    cap: Decimal | None
    round_down_to: Decimal | None


@dataclass(frozen=True)
class PriceSpec:
    base_rate: Formula
    spread: Formula | None
    adjustments: RuleStage
    floor: Decimal | None
    cap: Decimal | None


@dataclass(frozen=True)
class Product:
    id: str
    names: Mapping[str, str]
    amount_min: Decimal
    amount_max: Decimal
    terms: tuple[int, ...]
    methods: tuple[str, ...]
    upfront_fee_rate: Decimal
    rate_adjustment: Decimal
    location: Location


@dataclass(frozen=True)
class ProductsSpec:
    stage: RuleStage  # rule id == product id: the product's eligibility
    items: tuple[Product, ...]


@dataclass(frozen=True)
class OffersSpec:
    top: int
    affordability_cap: Decimal
    income: Formula
    existing_payments: Formula
    lgd: Decimal
    objective: str


@dataclass(frozen=True)
class PolicyTest:
    name: str
    input: Mapping[str, Any]
    expect: Mapping[str, Any]  # only the keys the author wrote
    location: Location


@dataclass
class Policy:
    """A loaded, type-checked, compiled policy."""

    name: str
    version: str
    currency: str
    sha256: str
    text: str
    languages: tuple[str, ...]
    path: str
    rounding: str
    description: str = ""
    inputs: dict[str, InputDecl] = field(default_factory=dict)
    derived: dict[str, Formula] = field(default_factory=dict)  # in dependency order
    tables: dict[str, dict[Any, Any]] = field(default_factory=dict)
    rule_stages: list[RuleStage] = field(default_factory=list)
    score: ScoreSpec | None = None
    segments: SegmentsSpec | None = None
    limit: LimitSpec | None = None
    price: PriceSpec | None = None
    products: ProductsSpec | None = None
    offers: OffersSpec | None = None
    tests: list[PolicyTest] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)  # warnings found while loading

    def validate(self, application: Mapping[str, Any]) -> Fact:
        """The typed flat fact of a nested JSON application; InvalidInput lists every bad field."""
        from engine.policy.inputs import validate_application

        return validate_application(self.inputs, application)

    def derive(self, fact: Fact) -> None:
        """Add the derived values to `fact` in dependency order (PolicyRuntimeError on /0 etc.)."""
        for name, formula in self.derived.items():
            fact[name] = formula(fact)

    def stage(self, name: str) -> RuleStage | None:
        return next((s for s in self.rule_stages if s.name == name), None)
