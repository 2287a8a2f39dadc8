"""Per-decision cost of one eligibility ruleset on DurableEvaluator, ReferenceEvaluator and plain
Python (the floor), measured in the same run; `--policy PATH` benches a policy's eligibility stage."""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.rules import DurableEvaluator, ReferenceEvaluator
from engine.rules.ir import (
    MIRRORED,
    And,
    Compare,
    Condition,
    Const,
    Field,
    In,
    Operand,
    Or,
    Rule,
    RuleSet,
    Truth,
)
from engine.rules.reference import kind_of

Fire = Callable[[Mapping[str, Any]], list[str]]

ELIGIBILITY = RuleSet(
    "bench@000000/eligibility",
    (
        Rule("blacklisted", Compare("==", Field("flags.blacklisted"), Const(True))),
        Rule("age_min", Compare("<", Field("applicant.age"), Const(21))),
        Rule("age_max", Compare(">", Field("applicant.age"), Const(65))),
        Rule("income_min", Compare("<", Field("applicant.income_monthly"), Const(Decimal("3000")))),
        Rule("unemployed", Compare("==", Field("applicant.employment_type"), Const("unemployed"))),
        Rule("bankruptcy", Compare("==", Field("bureau.bankruptcy"), Const(True))),
        Rule("delinquencies", Compare(">=", Field("bureau.delinquencies_24m"), Const(3))),
        Rule("score_min", Compare("<", Field("bureau.score"), Const(520))),
        Rule("dti_max", Compare(">", Field("dti"), Const(Decimal("0.55")))),
        Rule("purpose", In(Field("loan.purpose"), ("securities", "property_purchase"))),
        Rule("thin_file", Compare("<", Field("bureau.months_on_file"), Const(6))),
        Rule(
            "short_tenure",
            And(
                (
                    In(Field("applicant.employment_type"), ("salaried", "civil_servant")),
                    Compare("<", Field("applicant.employment_months"), Const(6)),
                )
            ),
        ),
    ),
)


def hand_written(fact: Mapping[str, Any]) -> list[str]:
    """ELIGIBILITY written by hand: the floor (same missing-is-False semantics, bool kept apart)."""
    fired = []
    get = fact.get
    if get("flags.blacklisted") is True:
        fired.append("blacklisted")
    age = get("applicant.age")
    if age is not None and age < 21:
        fired.append("age_min")
    if age is not None and age > 65:
        fired.append("age_max")
    income = get("applicant.income_monthly")
    if income is not None and income < 3000:
        fired.append("income_min")
    employment = get("applicant.employment_type")
    if employment == "unemployed":
        fired.append("unemployed")
    if get("bureau.bankruptcy") is True:
        fired.append("bankruptcy")
    delinquencies = get("bureau.delinquencies_24m")
    if delinquencies is not None and delinquencies >= 3:
        fired.append("delinquencies")
    score = get("bureau.score")
    if score is not None and score < 520:
        fired.append("score_min")
    dti = get("dti")
    if dti is not None and dti > Decimal("0.55"):
        fired.append("dti_max")
    if get("loan.purpose") in ("securities", "property_purchase"):
        fired.append("purpose")
    months = get("bureau.months_on_file")
    if months is not None and months < 6:
        fired.append("thin_file")
    tenure = get("applicant.employment_months")
    if employment in ("salaried", "civil_servant") and tenure is not None and tenure < 6:
        fired.append("short_tenure")
    return fired


def random_facts(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    facts = []
    for _ in range(count):
        income = Decimal(rng.randint(1500, 60000))
        facts.append(
            {
                "flags.blacklisted": rng.random() < 0.02,
                "applicant.age": rng.randint(18, 75),
                "applicant.income_monthly": income,
                "applicant.employment_type": rng.choice(
                    ["salaried", "civil_servant", "self_employed", "unemployed"]
                ),
                "applicant.employment_months": rng.randint(0, 120),
                "bureau.bankruptcy": rng.random() < 0.03,
                "bureau.delinquencies_24m": rng.randint(0, 4),
                "bureau.score": rng.randint(300, 900),
                "dti": Decimal(rng.randint(0, 30000)) / income,
                "loan.purpose": rng.choice(["consumption", "education", "securities", "travel"]),
                "bureau.months_on_file": rng.choice([None, *range(0, 120)]),
            }
        )
    return facts


def compile_python(ruleset: RuleSet) -> Fire:
    """The IR turned into one Python function (generated source): the floor for a policy's ruleset."""

    checks = {"number": "type({0}) in NUMBER", "string": "type({0}) is str", "bool": "type({0}) is bool"}

    def operand(node: Operand) -> str:
        return f"get({node.name!r})" if isinstance(node, Field) else repr(node.value)

    def compare(op: str, left: Operand, right: Operand) -> str:
        if isinstance(left, Const) and isinstance(right, Field):
            left, right, op = right, left, MIRRORED[op]
        if isinstance(right, Const):  # the common case, specialised on the constant's kind
            value = operand(left)
            return f"({checks[kind_of(right.value)].format(value)} and {value} {op} {right.value!r})"
        return f"(same({operand(left)}, {operand(right)}) and {operand(left)} {op} {operand(right)})"

    def condition(node: Condition) -> str:
        if isinstance(node, Compare):
            return compare(node.op, node.left, node.right)
        if isinstance(node, In):
            return (
                "("
                + " or ".join([*(compare("==", node.operand, Const(v)) for v in node.values), "False"])
                + ")"
            )
        if isinstance(node, And):
            return "(" + " and ".join([*map(condition, node.items), "True"]) + ")"
        if isinstance(node, Or):
            return "(" + " or ".join([*map(condition, node.items), "False"]) + ")"
        if isinstance(node, Truth):
            return repr(node.value)
        raise TypeError(node)

    lines = ["def fire(fact):", "    get = fact.get", "    fired = []"]
    for rule in ruleset.rules:
        lines += [f"    if {condition(rule.condition)}:", f"        fired.append({rule.id!r})"]
    lines.append("    return fired")

    def same(left: Any, right: Any) -> bool:
        return left is not None and right is not None and kind_of(left) == kind_of(right)

    namespace: dict[str, Any] = {"same": same, "Decimal": Decimal, "NUMBER": (int, Decimal)}
    exec("\n".join(lines), namespace)
    fire: Fire = namespace["fire"]
    return fire


def policy_stage(path: str, stage_name: str) -> tuple[RuleSet, list[dict[str, Any]]]:
    from engine.policy import load_policy

    policy = load_policy(path)
    stage = next(s for s in policy.rule_stages if s.name == stage_name)
    facts = []
    for test in policy.tests:
        try:
            fact = policy.validate(test.input)
            policy.derive(fact)
            facts.append(dict(stage.prepare(fact)))
        except Exception:  # a test that expects invalid input has no fact to bench
            continue
    return stage.ruleset, facts


def per_decision_us(fire: Fire, facts: Sequence[Mapping[str, Any]], decisions: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for i in range(decisions):
            fire(facts[i % len(facts)])
        best = min(best, (time.perf_counter() - started) / decisions)
    return best * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--policy", help="bench this policy's stage instead of the built-in ruleset")
    parser.add_argument("--stage", default="eligibility")
    parser.add_argument("--decisions", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    if args.policy:
        ruleset, facts = policy_stage(args.policy, args.stage)
        floor_name, floor = "generated Python (floor)", compile_python(ruleset)
    else:
        ruleset, facts = ELIGIBILITY, random_facts(500)
        floor_name, floor = "hand-written Python (floor)", hand_written
    durable, reference = DurableEvaluator(), ReferenceEvaluator()
    durable.register(ruleset)
    for fact in facts:  # all three must agree before their cost means anything
        want = reference.fire(ruleset, fact)
        assert durable.fire(ruleset, fact) == want and floor(fact) == want, fact

    rows = [
        ("DurableEvaluator", lambda fact: durable.fire(ruleset, fact)),
        ("ReferenceEvaluator", lambda fact: reference.fire(ruleset, fact)),
        (floor_name, floor),
    ]
    costs = {name: per_decision_us(fire, facts, args.decisions, args.repeats) for name, fire in rows}
    base = costs[floor_name]
    print(f"ruleset {ruleset.name}: {len(ruleset.rules)} rules, {len(facts)} distinct facts, ", end="")
    print(f"{args.decisions} decisions x {args.repeats} repeats (best)")
    print(f"{'evaluator':<30} {'us/decision':>12} {'x floor':>9}")
    for name, cost in costs.items():
        print(f"{name:<30} {cost:>12.2f} {cost / base:>9.1f}")
    print(f"durable / reference: {costs['DurableEvaluator'] / costs['ReferenceEvaluator']:.1f}x")
    fired = sum(len(reference.fire(ruleset, fact)) for fact in facts) / len(facts)
    print(f"rules fired per decision (mean): {fired:.2f}; durable runs one action per fired rule, plus one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
