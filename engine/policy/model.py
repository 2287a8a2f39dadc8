"""The compiled policy: what the decision pipeline runs. Conditions are rule IR RuleSets (with their
hoisted fields), formulas are closures with Decimal semantics; everything is built once at load time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any, Literal

from engine.decision import Reason
from engine.errors import Diagnostic, Location, PolicyRuntimeError
from engine.expr.types import Type
from engine.models.scaling import scaler
from engine.policy.contract import Fact, InputDecl
from engine.policy.experiment import Experiment
from engine.policy.inputs import flatten, validate_application
from engine.policy.validator import FastValidator, fast_validator
from engine.rules.compiled import CompiledEvaluator
from engine.rules.ir import RuleSet

# the input kinds whose validated values are scalars (engine.policy.inputs.coerce)
SCALAR_KINDS = frozenset({"integer", "decimal", "boolean", "string", "enum", "date"})
_GRADED_MAX = 4096  # distinct points kept per grade table (points span a few hundred values)


@dataclass(frozen=True)
class Formula:
    """A compiled expression: `formula(fact)` returns its value (None if an optional input is missing)."""

    source: str
    location: Location
    type: Type
    fn: Callable[[Mapping[str, Any]], Any] = field(repr=False, compare=False)
    node: Any = field(default=None, repr=False, compare=False)  # the typed tree (engine.expr.types)
    # the formula as a function of the policy's generated module (engine.policy.codegen), set at load
    compiled: Callable[[Mapping[str, Any]], Any] | None = field(default=None, repr=False, compare=False)

    def __call__(self, fact: Mapping[str, Any]) -> Any:
        return self.fn(fact)

    def run(self, fact: Mapping[str, Any], evaluator: Any) -> Any:
        """The value on `fact`: the generated function on the compiled evaluator, else the closure."""
        if self.compiled is not None and isinstance(evaluator, CompiledEvaluator):
            return self.compiled(fact)
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
    """One ruleset of the policy with what its rules do. `fire(evaluator, fact)` runs it: the
    generated function on the compiled evaluator, else `evaluator.fire(ruleset, prepare(fact))`."""

    name: str
    ruleset: RuleSet
    effects: Mapping[str, Effect]
    hoisted: Mapping[str, Callable[[Mapping[str, Any]], Any]] = field(repr=False)
    locations: Mapping[str, Location] = field(default_factory=dict)
    # run first on the fact: computes post-score decision-table outputs the rules read, if not yet done
    before: Callable[[Mapping[str, Any]], None] | None = field(default=None, repr=False, compare=False)
    # prepare + fire in one generated function (engine.policy.codegen), set once when the policy loads
    compiled: Callable[[Mapping[str, Any]], list[str]] | None = field(default=None, repr=False, compare=False)
    hoisted_nodes: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)  # typed trees

    def fire(self, evaluator: Any, fact: Mapping[str, Any]) -> list[str]:
        """Ids of the rules that hold on `fact`, in policy order: the policy's generated function on
        the compiled evaluator, else `evaluator.fire` on the prepared fact."""
        if self.compiled is not None and isinstance(evaluator, CompiledEvaluator):
            return self.compiled(fact)
        fired: list[str] = evaluator.fire(self.ruleset, self.prepare(fact))
        return fired

    def prepare(self, fact: Mapping[str, Any]) -> Fact:
        """The fields the rules read (a missing one as None) plus the hoisted ones, with dates as
        ISO ordinals (the IR's representation)."""
        if self.before is not None:
            self.before(fact)
        out = {name: fact.get(name) for name in self.reads}
        for name, fn in self.hoisted.items():
            out[name] = fn(fact)
        for key, value in out.items():
            if isinstance(value, dt.date):
                out[key] = value.toordinal()
        return out

    def reason(self, rule_id: str, language: str, stage: str) -> Reason:
        """The Reason a fired rule gives in `language`, made once per rule and language (immutable)."""
        key = (rule_id, language, stage)
        found = self._reasons.get(key)
        if found is None:
            effect = self.effects[rule_id]
            found = self._reasons[key] = Reason(effect.code, effect.text(language), stage, rule_id)
        return found

    @cached_property
    def _reasons(self) -> dict[tuple[str, str, str], Reason]:
        return {}

    @cached_property
    def reads(self) -> tuple[str, ...]:
        """The fact fields the ruleset compares (its hoisted fields are computed by `prepare`)."""
        return tuple(name for name in self.ruleset.fields if name not in self.hoisted)


@dataclass(frozen=True)
class Scaling:
    base_points: int
    base_odds: Decimal
    pdo: Decimal

    @cached_property
    def scale(self) -> Callable[[float | Decimal], int]:
        """PD -> points under this scaling (engine.models.scaling.points, its constants converted once)."""
        return scaler(self.base_points, self.base_odds, self.pdo)


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
    grades: tuple[Grade, ...]  # highest min_points first (empty when a decision table grades)
    grade_table: Any = None  # engine.policy.decision_table.DecisionTable reading score.points, or None
    # the features as one function of the policy's generated module (codegen), set at load
    compiled: Callable[[Mapping[str, Any]], dict[str, Any]] | None = field(
        default=None, repr=False, compare=False
    )

    def features(self, fact: Mapping[str, Any], evaluator: Any = None) -> dict[str, Any]:
        """The model's features on `fact`: the generated function on the compiled evaluator."""
        if self.compiled is not None and isinstance(evaluator, CompiledEvaluator):
            return self.compiled(fact)
        return self.closure_features(fact)

    def closure_features(self, fact: Mapping[str, Any]) -> dict[str, Any]:
        return {name: f(fact) for name, f in self.feature_formulas.items()}

    def grade_for(self, points: int, evaluator: Any = None) -> str:
        """The grade of `points`: from the grade bands, or from the grade decision table fired on
        `evaluator` (the reference evaluator by default)."""
        return self.graded(points, evaluator)[0]

    def graded(self, points: int, evaluator: Any = None) -> tuple[str, tuple[str, ...]]:
        """(grade of `points`, the grade table's trace lines): the table is evaluated once. On the
        compiled evaluator the answer for each int `points` is kept: the grade table reads nothing
        else, so it is constant for the policy version."""
        table = self.grade_table
        if table is None:
            for g in self.grades:
                if points >= g.min_points:
                    return g.grade, ()
            return self.grades[-1].grade, ()
        compiled = table.compiled is not None and isinstance(evaluator, CompiledEvaluator)
        if compiled and points.__class__ is int:
            known = self._graded.get(points)
            if known is not None:
                return known
        if compiled:
            assert table.compiled is not None
            _, outputs, lines = table.compiled({"score.points": points})
            grade, shown = outputs[table.outputs[0].name], tuple(lines)
        else:
            hit = table.evaluate({"score.points": points}, evaluator)
            grade, shown = hit.outputs[table.outputs[0].name], hit.lines
        if grade is None:
            raise PolicyRuntimeError(
                f"no row of grade table {table.name} matches score.points = {points}", location=table.location
            )
        found = (str(grade), shown)
        if compiled and points.__class__ is int and len(self._graded) < _GRADED_MAX:
            self._graded[points] = found
        return found

    @cached_property
    def _graded(self) -> dict[int, tuple[str, tuple[str, ...]]]:
        """Per points, the grade table's answer on the compiled evaluator (graded)."""
        return {}


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
    round_to: Decimal = Decimal("0.01")  # a limit is a multiple of this step (cents by default)
    rounding: str = "down"  # how it reaches the step (schema.RoundingMode)

    @cached_property
    def step_quantum(self) -> Decimal | None:
        """1Ek when the step is a power of ten (0.01, 1, 100): rounding to it is a quantize to it."""
        quantum = self.round_to.normalize()
        return quantum if quantum.as_tuple().digits == (1,) else None


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
    monthly_fee_rate: Decimal = Decimal(0)
    revolving: Revolving | None = None  # set for a credit line (no terms or methods)


@dataclass(frozen=True)
class Revolving:
    """A credit line's terms (see engine/finance/lifetime.py for its economics)."""

    minimum_fixed: Decimal
    minimum_rate: Decimal
    interest_free_days: int
    ccf: Decimal
    utilisation: Decimal
    horizon_months: int


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
    requested: Formula | None = None
    pd: Formula | None = None  # the 12-month PD from the policy itself, when no model scores it
    lifetime: Lifetime | None = None  # the lifetime economics; None for the 1.x `expected_profit`
    refinance_months: int | None = None  # None: an interest-only balloon is budgeted in full
    validity_days: int = 30
    due_day: str | int = "same"  # "same" day of month as the decision date, or a fixed day 1-28
    due_min_days: int = 0
    rank_by: Formula | None = None  # an objective expression (`objective` then names it)
    maximise: bool = True


@dataclass(frozen=True)
class Lifetime:
    """How a 12-month PD extends over a term and what lending costs (see engine/finance/lifetime.py)."""

    pd_curve: str | tuple[Decimal, ...]
    cost_of_funds: Decimal
    operating_per_loan: Decimal
    operating_per_month: Decimal


@dataclass(frozen=True)
class Output:
    """One of the author's own results (`outputs:`): a typed value from an expression, or an object
    of named expressions (`fields`)."""

    name: str
    type: Type
    location: Location
    formula: Formula | None = None
    fields: Mapping[str, Formula] = field(default_factory=dict)

    def __call__(self, fact: Mapping[str, Any]) -> Any:
        if self.formula is None:
            return {name: _typed(f(fact), f.type) for name, f in self.fields.items()}
        value = _typed(self.formula(fact), self.type)
        if self.type.kind == "enum" and value is not None and value not in self.type.values:
            raise PolicyRuntimeError(
                f"output {self.name} = {value!r} is not one of its values {list(self.type.values)}",
                location=self.location,
            )
        return value


def _typed(value: Any, kind: Type) -> Any:
    """`value` in its declared type's own form: a decimal output is a Decimal even when an integer
    computed it (so the wire and the record spell it the same way every time)."""
    if value is None:
        return None
    if kind.kind == "decimal" and type(value) is int:
        return Decimal(value)
    if kind.kind == "list" and kind.item is not None:
        return tuple(_typed(v, kind.item) for v in value)
    if kind.kind == "object" and isinstance(value, Mapping):
        return {name: _typed(value.get(name), sub) for name, sub in kind.fields}
    return value


# The decision date a policy's own tests decide on (a `default: today` input a test leaves out)
TEST_DATE = dt.date(2026, 1, 1)


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
    pii_labels: frozenset[str] = frozenset()  # caller label keys declared `pii: true`
    open_groups: tuple[str, ...] = ()  # input groups whose undeclared fields are ignored, not refused
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
    outputs: dict[str, Output] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)  # warnings found while loading
    # decision tables by name (engine.policy.decision_table.DecisionTable), and the evaluation plan of
    # derived values and tables in dependency order: (phase "input" | "score", "derived" | "table", name)
    decision_tables: dict[str, Any] = field(default_factory=dict)
    plan: list[tuple[str, str, str]] = field(default_factory=list)
    late_names: tuple[str, ...] = ()  # names the "score" phase computes
    program: Any = field(default=None, repr=False, compare=False)  # engine.policy.codegen.PolicyProgram
    # wall time this process loaded it (ListPolicies); never part of a decision or of equality
    loaded_at: str = field(default="", compare=False)
    experiment: Experiment | None = None  # challengers and shadows (engine.policy.experiment)

    def validate(self, application: Mapping[str, Any], today: dt.date | None = None) -> Fact:
        """The typed flat fact of a nested JSON application; InvalidInput lists every bad field.
        `today` is the decision date for `default: today` inputs the application leaves out."""
        return self.validated(application, today)[0]

    def validated(
        self, application: Mapping[str, Any], today: dt.date | None = None
    ) -> tuple[Fact, tuple[str, ...]]:
        """`validate`, and the `default: today` inputs the application left out (their value is
        the decision date, not the caller's). A well-formed application takes this version's
        generated validator; any other is decided (and its errors listed) by validate_application."""
        fast = self._fast_validator
        if fast is not None:
            found = fast(application, today)
            if found is not None:
                return found
        fact = validate_application(self.inputs, application, self.open_groups, today)
        if not self.dated_inputs:
            return fact, ()
        sent, _ = flatten(application)
        return fact, tuple(name for name in self.dated_inputs if sent.get(name) is None)

    @cached_property
    def _fast_validator(self) -> FastValidator | None:
        return fast_validator(self.inputs, self.open_groups)

    @cached_property
    def text_inputs(self) -> tuple[str, ...] | None:
        """The string and enum inputs (their values' sizes vary with the request), or None when an
        input is a list or an object. Otherwise every validated value is a scalar (int, Decimal,
        bool, str, date or None): what a storeless service keeps as asked, charged by its texts'
        lengths (engine.recent), without looking at each value's type."""
        kinds = [decl.type.kind for decl in self.inputs.values()]
        if any(decl.type.container for decl in self.inputs.values()) or not set(kinds) <= SCALAR_KINDS:
            return None
        return tuple(
            name for name, kind in zip(self.inputs, kinds, strict=True) if kind in ("string", "enum")
        )

    @cached_property
    def input_names(self) -> tuple[str, ...]:
        """The declared inputs' names in declaration order: the keys, in order, of every input this
        version validates (a storeless service keeps an input as its values alone, engine.recent)."""
        return tuple(self.inputs)

    @cached_property
    def dated_inputs(self) -> tuple[str, ...]:
        """The date inputs that default to the decision date (`default: today`)."""
        return tuple(name for name, decl in self.inputs.items() if decl.default_today)

    def compute_outputs(self, fact: Mapping[str, Any]) -> dict[str, Any]:
        """The author's `outputs:` on a decided fact, in declaration order."""
        return {name: output(fact) for name, output in self.outputs.items()}

    def derive(self, fact: Fact, evaluator: Any = None) -> list[str]:
        """Add the derived values and the decision-table outputs that need no score to `fact`, in
        dependency order (PolicyRuntimeError on /0 etc.); tables fire on `evaluator` (reference by
        default). Returns the trace lines of the table rows that matched."""
        generated = self.program.derive_input if self.program is not None else None
        if generated is not None and isinstance(evaluator, CompiledEvaluator):  # without _run's lookups
            lines: list[str] = generated(fact)
            return lines
        if not self.plan:
            for name, formula in self.derived.items():
                fact[name] = formula(fact)
            return []
        return self._run("input", fact, evaluator)

    def derive_after_score(self, fact: Fact, evaluator: Any = None) -> list[str]:
        """After the score stage put score.* in `fact`: the grade table's trace line, and the derived
        values and decision tables that read score.*; returns the trace lines of matched rows."""
        lines: list[str] = []
        table = self.score.grade_table if self.score is not None else None
        if table is not None and fact.get("score.points") is not None:
            lines.extend(table.evaluate({"score.points": fact["score.points"]}, evaluator).lines)
        return lines + self.derive_late(fact, evaluator)

    def derive_late(self, fact: Fact, evaluator: Any = None) -> list[str]:
        """The derived values and decision tables that read score.* (not the grade table: the score
        stage has graded already); returns the trace lines of matched rows."""
        generated = self.program.derive_score if self.program is not None else None
        if generated is not None and isinstance(evaluator, CompiledEvaluator):  # without _run's lookups
            lines: list[str] = generated(fact)
            return lines
        return self._run("score", fact, evaluator)

    def ensure_after_score(self, fact: Mapping[str, Any]) -> None:
        """Compute the "score" phase now if nobody has (a formula or rule reading its outputs calls
        this first), on the reference evaluator; a no-op once the outputs are in `fact`."""
        if isinstance(fact, dict) and not self._late_set <= fact.keys():
            self._run("score", fact, None)

    @cached_property
    def _late_set(self) -> frozenset[str]:
        return frozenset(self.late_names)

    def _generated(self, phase: str, evaluator: Any) -> Callable[[Fact], list[str]] | None:
        """The generated module's function for `phase` of the plan, on the compiled evaluator."""
        if self.program is None or not isinstance(evaluator, CompiledEvaluator):
            return None
        generated: Callable[[Fact], list[str]] | None = (
            self.program.derive_input if phase == "input" else self.program.derive_score
        )
        return generated

    def _run(self, phase: str, fact: Fact, evaluator: Any) -> list[str]:
        generated = self._generated(phase, evaluator)
        if generated is not None:
            return generated(fact)
        lines: list[str] = []
        for step_phase, kind, name in self.plan:
            if step_phase != phase:
                continue
            if kind == "derived":
                fact[name] = self.derived[name](fact)
            else:
                lines.extend(self.decision_tables[name].evaluate(fact, evaluator).lines)
        return lines

    def stage(self, name: str) -> RuleStage | None:
        for stage in self.rule_stages:  # two or three stages: a loop beats building a map
            if stage.name == name:
                return stage
        return None
