"""Policy.validate: nested JSON in, typed flat fact out; every bad field reported with its path."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from engine.errors import InvalidInput
from engine.policy import load_policy_text

POLICY = """
policy: p
version: "1"
currency: CNY
inputs:
  applicant.age: {type: integer, min: 18, max: 100}
  applicant.income: {type: decimal, min: 0}
  applicant.kind: {type: enum, values: [salaried, retired]}
  applicant.name: {type: string, required: false, pii: true}
  applicant.born: {type: date, required: false}
  flags.vip: {type: boolean, required: false, default: false}
derived:
  yearly: "applicant.income * 12"
  ratio: "applicant.income / applicant.age"
stages:
  - name: eligibility
    rules:
      - id: young
        when: "applicant.age < 21 and applicant.kind == 'salaried' and not flags.vip"
        decline: {code: A, text: x}
      - {id: born_early, when: "applicant.born < applicant.born or yearly > 0", refer: {code: B, text: x}}
"""


def good(**over: object) -> dict[str, object]:
    app: dict[str, object] = {"applicant": {"age": 30, "income": "1234.50", "kind": "salaried"}}
    app["applicant"].update(over)  # type: ignore[union-attr]
    return app


def test_valid_application_is_typed_and_defaults_applied() -> None:
    policy = load_policy_text(POLICY)
    fact = policy.validate(good(born="1990-05-01"))
    assert fact == {
        "applicant.age": 30,
        "applicant.income": Decimal("1234.50"),
        "applicant.kind": "salaried",
        "applicant.name": None,
        "applicant.born": dt.date(1990, 5, 1),
        "flags.vip": False,
    }
    policy.derive(fact)
    assert fact["yearly"] == Decimal("14814.00") and isinstance(fact["yearly"], Decimal)
    assert fact["ratio"] == Decimal("41.15")


def test_float_income_goes_through_repr_not_binary() -> None:
    fact = load_policy_text(POLICY).validate(good(income=0.1))
    assert fact["applicant.income"] == Decimal("0.1")


def test_every_violation_is_listed_with_its_path() -> None:
    app = {
        "applicant": {"age": True, "income": "12,5", "kind": "boss", "extra": 1, "born": "yesterday"},
        "flags": {"vip": "yes"},
        "other": {"x": 1},
    }
    with pytest.raises(InvalidInput) as info:
        load_policy_text(POLICY).validate(app)
    fields = {v.field: v.description for v in info.value.violations}
    assert set(fields) == {
        "applicant.age",
        "applicant.income",
        "applicant.kind",
        "applicant.extra",
        "applicant.born",
        "flags.vip",
        "other.x",
    }
    assert "expected an integer" in fields["applicant.age"]
    assert "unknown field" in fields["other.x"]


def test_missing_required_and_range() -> None:
    with pytest.raises(InvalidInput) as info:
        load_policy_text(POLICY).validate({"applicant": {"age": 17, "income": -1}})
    fields = {v.field: v.description for v in info.value.violations}
    assert fields == {
        "applicant.age": "must be >= 18, got 17",
        "applicant.income": "must be >= 0, got -1",
        "applicant.kind": "required field is missing",
    }


def test_prepare_adds_hoisted_fields_and_date_ordinals() -> None:
    policy = load_policy_text(POLICY)
    fact = policy.validate(good(born="1990-05-01"))
    policy.derive(fact)
    stage = policy.rule_stages[0]
    prepared = stage.prepare(fact)
    assert prepared["applicant.born"] == dt.date(1990, 5, 1).toordinal()
    from engine.rules.reference import ReferenceEvaluator

    assert ReferenceEvaluator().fire(stage.ruleset, prepared) == ["born_early"]
    young = policy.validate(good(age=19))
    policy.derive(young)
    assert ReferenceEvaluator().fire(stage.ruleset, stage.prepare(young)) == ["young", "born_early"]


def test_division_by_zero_is_a_located_runtime_error() -> None:
    from engine.errors import PolicyRuntimeError

    text = POLICY.replace("applicant.income / applicant.age", "applicant.age / applicant.income")
    policy = load_policy_text(text, "p.yaml")
    fact = policy.validate(good(income=0))
    with pytest.raises(PolicyRuntimeError) as info:
        policy.derive(fact)
    assert "division by zero" in str(info.value)
    assert str(info.value.location) == "p.yaml:14:10"


def test_field_given_nested_and_as_a_dotted_key_is_refused_naming_both() -> None:
    twice = good(age=35)
    twice["applicant.age"] = 20
    with pytest.raises(InvalidInput) as caught:
        load_policy_text(POLICY).validate(twice)
    [violation] = caught.value.violations
    assert violation.field == "applicant.age"
    assert "'applicant' -> 'age'" in violation.description and "'applicant.age'" in violation.description


def test_field_given_through_two_dotted_spellings_is_refused() -> None:
    app = {"applicant": {"income": "1", "kind": "retired", "x.y": 1}, "applicant.x": {"y": 2}, "z": 0}
    app["applicant.age"] = 40
    with pytest.raises(InvalidInput) as caught:
        load_policy_text(POLICY).validate(app)
    twice = [v for v in caught.value.violations if "given twice" in v.description]
    assert [v.field for v in twice] == ["applicant.x.y"]


@pytest.mark.parametrize(
    "income",
    [
        "１２３４",
        "١٢٣٤",
        "۱۲۳۴",
        "1e999999",
        "1e-999999",
        "9" * 100_000,
        "1_000",
        " ",
        "0x10",
        "1.2.3",
        10**30,
    ],
)
def test_decimal_must_be_ascii_digits_within_bounds(income: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_policy_text(POLICY).validate(good(income=income))
    [violation] = caught.value.violations
    assert violation.field == "applicant.income" and len(violation.description) < 200


@pytest.mark.parametrize("income", ["1234.50", "-0", "1E+3", ".5", "999999999999999999.5", " 12 "])
def test_plain_decimals_still_pass(income: str) -> None:
    fact = load_policy_text(POLICY.replace("{type: decimal, min: 0}", "{type: decimal}")).validate(
        good(income=income)
    )
    assert fact["applicant.income"] == Decimal(income.strip())


def test_a_formula_that_always_overflows_fails_validate_not_decisions() -> None:
    from engine.errors import PolicyError

    text = POLICY.replace('"applicant.income * 12"', '"applicant.income * 1e999999 * 1e999999"')
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "p.yaml")
    [error] = [d for d in caught.value.diagnostics if d.is_error]
    assert error.code == "BAD_VALUE" and "1e999999" in error.message


def test_arithmetic_beyond_the_context_is_a_located_runtime_error_not_a_crash() -> None:
    from engine.errors import PolicyRuntimeError

    # literals are bounded, but a product of bounded inputs can still leave 28 digits far behind
    text = POLICY.replace(
        '"applicant.income * 12"', '"round(applicant.income * applicant.income * 100000, 2)"'
    )
    policy = load_policy_text(text, "p.yaml")
    fact = policy.validate(good(income="999999999999999999"))
    with pytest.raises(PolicyRuntimeError) as info:
        policy.derive(fact)
    assert info.value.location is not None


CONTAINERS = """
policy: p
version: "1"
currency: CNY
inputs:
  xs: {type: list, max_items: 3, items: {type: integer, min: 0}}
  home: {type: object, fields: {city: {type: string}, years: {type: integer, min: 0}}}
  as_of: {type: date, default: today}
derived:
  n: {type: integer, expr: "count(xs, . > 1) + home.years"}
  every: {type: list, expr: xs}
stages:
  - name: eligibility
    rules:
      - {id: r, when: "n > 3 and 2 in xs and startswith(home.city, 'Bei')", decline: {code: X, text: x}}
"""


def test_list_and_object_inputs_are_validated_item_by_item_and_field_by_field() -> None:
    policy = load_policy_text(CONTAINERS)
    assert sorted(policy.inputs) == ["as_of", "home.city", "home.years", "xs"]  # an object is its fields
    with pytest.raises(InvalidInput) as caught:
        policy.validate({"xs": [1, "a", -3], "home": {"city": 3}}, dt.date(2026, 5, 1))
    assert [(v.field, v.description) for v in caught.value.violations] == [
        ("home.city", "expected a string, got number 3"),
        ("home.years", "required field is missing"),
        ("xs[1]", "expected an integer, got string 'a'"),
        ("xs[2]", "must be >= 0, got -3"),
    ]
    with pytest.raises(InvalidInput) as caught:
        policy.validate({"xs": [1, 2, 3, 4], "home": {"city": "x", "years": 1}}, dt.date(2026, 5, 1))
    assert [(v.field, v.description) for v in caught.value.violations] == [("xs", "at most 3 items, got 4")]


def test_a_date_defaulting_to_today_takes_the_decision_date_unless_the_caller_pins_it() -> None:
    policy = load_policy_text(CONTAINERS)
    app = {"xs": [1, 2], "home": {"city": "Beijing", "years": 5}}
    assert policy.validate(app, dt.date(2026, 5, 1)) == {
        "xs": (1, 2),
        "home.city": "Beijing",
        "home.years": 5,
        "as_of": dt.date(2026, 5, 1),
    }
    assert policy.validate({**app, "as_of": "2025-12-31"}, dt.date(2026, 5, 1))["as_of"] == dt.date(
        2025, 12, 31
    )
    with pytest.raises(InvalidInput) as caught:  # no decision date known and none sent
        policy.validate(app)
    assert [v.field for v in caught.value.violations] == ["as_of"]
