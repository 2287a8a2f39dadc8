"""Stress driver run in a subprocess by test_rules_stress.py: 8 threads drive DurableEvaluator over
three rule sets for 50,000 decisions, checked against the reference; prints a JSON summary."""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from decimal import Decimal
from typing import Any

from engine.rules import DurableEvaluator, ReferenceEvaluator
from engine.rules.ir import And, Compare, Const, Field, In, Or, Rule, RuleSet, Truth

THREADS = 8
DECISIONS = 50_000
WARM_UP = 4_000

ELIGIBILITY = RuleSet(
    "stress@000000/eligibility",
    (
        Rule("age_min", Compare("<", Field("applicant.age"), Const(21))),
        Rule("age_max", Compare(">", Field("applicant.age"), Const(70))),
        Rule("income_min", Compare("<", Field("applicant.income_monthly"), Const(Decimal("3000.00")))),
        Rule("unemployed", In(Field("applicant.employment_type"), ("unemployed",))),
        Rule("bankrupt", Compare("==", Field("bureau.bankruptcy"), Const(True))),
        Rule("blacklisted", Compare("==", Field("flags.blacklisted"), Const(True))),
        Rule("dti_max", Compare(">", Field("dti"), Const(Decimal("0.55")))),
        Rule("delinquent", Compare(">=", Field("bureau.delinquencies_24m"), Const(3))),
        Rule("inquiries", Compare(">", Field("bureau.inquiries_6m"), Const(6))),
        Rule("thin_file", Compare("<", Field("bureau.months_on_file"), Const(6))),
        Rule(
            "self_employed_short",
            And(
                (
                    Compare("==", Field("applicant.employment_type"), Const("self_employed")),
                    Compare("<", Field("applicant.employment_months"), Const(24)),
                )
            ),
        ),
        Rule(
            "amount_over_income",
            Or(
                (
                    Compare(">", Field("loan.amount"), Field("income_x10")),
                    Compare("<", Field("bureau.score"), Const(450)),
                )
            ),
        ),
    ),
)
POST_SCORE = RuleSet(
    "stress@000000/post_score",
    (
        Rule("grade_c", Compare("==", Field("score.grade"), Const("C"))),
        Rule("high_pd", Compare(">=", Field("score.pd"), Const(Decimal("0.2")))),
        Rule("always", Truth(True)),
    ),
)
SEGMENTS = RuleSet(
    "stress@000000/segments",
    (
        Rule("prime", In(Field("score.grade"), ("A", "B"))),
        Rule("young", Compare("<=", Field("applicant.age"), Const(25))),
    ),
)
RULESETS = (ELIGIBILITY, POST_SCORE, SEGMENTS)


def random_fact(rng: random.Random) -> dict[str, Any]:
    income = Decimal(rng.randint(1000, 60000)).scaleb(-2) * 100
    fact: dict[str, Any] = {
        "applicant.age": rng.randint(16, 80),
        "applicant.income_monthly": income,
        "applicant.employment_type": rng.choice(["salaried", "civil_servant", "self_employed", "unemployed"]),
        "applicant.employment_months": rng.randint(0, 120),
        "bureau.bankruptcy": rng.random() < 0.05,
        "flags.blacklisted": rng.random() < 0.02,
        "dti": (Decimal(rng.randint(0, 10000)) / Decimal(7919)),
        "bureau.delinquencies_24m": rng.randint(0, 5),
        "bureau.inquiries_6m": rng.randint(0, 10),
        "bureau.months_on_file": rng.choice([None, *range(0, 40)]),
        "loan.amount": Decimal(rng.randint(1000, 300000)),
        "income_x10": income * 10,
        "bureau.score": rng.randint(300, 900),
        "score.grade": rng.choice(["A", "B", "C", None]),
        "score.pd": Decimal(rng.randint(1, 999)).scaleb(-3),
    }
    return fact


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def drive(count: int, seed: int, barrier: threading.Barrier | None, errors: list[str]) -> None:
    durable, reference, rng = DurableEvaluator(), ReferenceEvaluator(), random.Random(seed)
    if barrier is not None:
        barrier.wait()  # all threads start together, racing for the first registrations too
    for i in range(count):
        ruleset = RULESETS[i % len(RULESETS)]
        fact = random_fact(rng)
        try:
            got, want = durable.fire(ruleset, fact), reference.fire(ruleset, fact)
        except Exception as error:  # reported, not raised: the summary must still be printed
            errors.append(f"{type(error).__name__}: {error}")
            continue
        if got != want:
            errors.append(f"{ruleset.name} {fact}: durable {got} != reference {want}")


def run_threads(total: int, seed: int, errors: list[str]) -> None:
    barrier = threading.Barrier(THREADS)
    threads = [
        threading.Thread(target=drive, args=(total // THREADS, seed + n, barrier, errors))
        for n in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main() -> int:
    errors: list[str] = []
    started = time.perf_counter()
    run_threads(WARM_UP, 1, errors)
    rss_warm = rss_kb()
    run_threads(DECISIONS, 1000, errors)
    summary = {
        "decisions": DECISIONS - DECISIONS % THREADS,
        "warm_up": WARM_UP,
        "threads": THREADS,
        "errors": len(errors),
        "first_errors": errors[:5],
        "rss_warm_kb": rss_warm,
        "rss_end_kb": rss_kb(),
        "seconds": round(time.perf_counter() - started, 2),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
