"""Writes consumer_loan.json: the consumer_loan policy's rule logic hand-translated into a ZEN JSON
Decision Model (`.venv/bin/python -m engine.bench.zen.build`); the rules below are ZEN expressions.

The graph, one node per Credo rule stage, each passing the context on:
  request -> eligibility (decision table, hit policy collect: one row per rule, a code per hit)
          -> grading (first: score.points bands -> grade, income multiple)
          -> spread (first: grade x requested term -> rate spread)
          -> post_score (collect) -> limit_adjustments (collect: code, multiply)
          -> price_adjustments (collect: code, add) -> result (expressions: limit formula, cap,
             round down to 100, floor; rate = base + spread + adds, floored and capped) -> response
Input: the nested application (applicant, debt, bureau, loan, flags) plus `dti` and `score.points`.
Output: the shape engine.bench.peer compares (codes per stage, grade, limit, annual_rate).
`engine.bench.peer.check_equivalence` asserts it agrees with Credo's rule stages before any timing.
"""

from __future__ import annotations

import itertools
import json
import sys
from typing import Any

from engine.bench.zen import CONSUMER_LOAN_JDM

ELIGIBILITY = [  # (code, condition) in policy order
    ("BLACKLISTED", "flags.blacklisted == true"),
    ("AGE_MIN", "applicant.age < 22"),
    ("AGE_AT_MATURITY", "applicant.age + loan.term_months / 12 > 60"),
    ("INCOME_MIN", "applicant.income_monthly < 3000"),
    ("EMPLOYMENT", "applicant.employment_type == 'unemployed'"),
    ("BANKRUPTCY", "bureau.bankruptcy == true"),
    ("DELINQUENCY", "bureau.delinquencies_24m >= 3"),
    ("BUREAU_SCORE", "bureau.score < 520"),
    ("DTI_MAX", "dti > 0.55"),
    ("PURPOSE", "loan.purpose in ['securities', 'property_purchase']"),
    ("THIN_FILE", "bureau.months_on_file < 6"),
    ("INQUIRIES", "bureau.inquiries_6m >= 6"),
    (
        "SHORT_TENURE",
        "applicant.employment_type in ['salaried', 'civil_servant'] and applicant.employment_months < 6",
    ),
    ("SELF_EMPLOYED_LARGE", "applicant.employment_type == 'self_employed' and loan.amount > 100000"),
    ("DELINQUENCY_REVIEW", "bureau.delinquencies_24m in [1, 2]"),
    ("UTILISATION", "bureau.utilisation > 0.9"),
    ("AMOUNT_TO_INCOME", "loan.amount > applicant.income_monthly * 20"),
    ("RETIRED_RENTING", "applicant.employment_type == 'retired' and applicant.residence_type == 'rent'"),
]
GRADES = [(">= 620", "A", 12), (">= 605", "B", 10), (">= 590", "C", 8), (">= 570", "D", 5), ("", "E", 3)]
SPREADS = [("A", "<= 60", "0"), ("A", "> 60", "0.005"), ("B", "<= 60", "0.02"), ("B", "> 60", "0.025"),
           ("C", "<= 60", "0.045"), ("C", "> 60", "0.05"), ("D", "<= 60", "0.08"), ("D", "> 60", "0.09"),
           ("E", "<= 60", "0.12"), ("E", "> 60", "0.13")]  # fmt: skip
POST_SCORE = [
    ("SCORE_LOW", "grading.grade == 'E'"),
    ("SCORE_REVIEW", "grading.grade == 'D' and dti > 0.4"),
]
LIMIT_ADJUSTMENTS = [
    ("LIMIT_THIN", "bureau.months_on_file < 12", "0.5"),
    ("LIMIT_DTI", "dti > 0.4", "0.7"),
    ("LIMIT_STABILITY", "applicant.residence_type == 'rent' and applicant.employment_months < 24", "0.8"),
]
PRICE_ADJUSTMENTS = [
    ("RATE_CIVIL_SERVANT", "applicant.employment_type == 'civil_servant'", "-0.005"),
    ("RATE_HOMEOWNER", "applicant.residence_type in ['own', 'mortgage']", "-0.003"),
]
# ZEN expressions have no product over a list: the (at most three) limit factors are multiplied in turn.
_FACTOR = "(len(limit_adjustments) > {i} ? limit_adjustments[{i}].multiply : 1)"
RESULT = [
    ("eligibility", "map(eligibility, #.code)"),
    ("grade", "grading.grade"),
    ("post_score", "map(post_score, #.code)"),
    ("limit_adjustments", "map(limit_adjustments, #.code)"),
    ("limit_raw", "applicant.income_monthly * grading.income_multiple * "
     + " * ".join(_FACTOR.format(i=i) for i in range(3))),
    ("limit", "floor(min([$.limit_raw, 200000]) / 100) * 100"),
    ("limit_below_floor", "$.limit < 1000 or $.limit <= 0"),
    ("price_adjustments", "map(price_adjustments, #.code)"),
    ("annual_rate", "min([max([0.072 + spread.spread + sum(map(price_adjustments, #.add)), 0.04]), 0.24])"),
]  # fmt: skip


def _node(node_id: str, kind: str, content: dict[str, Any], x: int) -> dict[str, Any]:
    return {"id": node_id, "type": kind, "name": node_id, "position": {"x": x, "y": 100}, "content": content}


def _table(node_id: str, hit: str, rows: list[list[str]], outputs: list[str], path: str, x: int,
           fields: tuple[str | None, ...] = (None,)) -> dict[str, Any]:  # fmt: skip
    """A decision table: per input column a unary test on its field, or (field None) an expression."""
    columns = [{"id": f"{node_id}_in{j}", "name": f or "when", **({"field": f} if f else {})}
               for j, f in enumerate(fields)]  # fmt: skip
    out_cols = [{"id": f"{node_id}_{name}", "name": name, "field": name} for name in outputs]
    table_rows = []
    for i, cells in enumerate(rows):
        row = {"_id": f"{node_id}_{i}"}
        row.update({col["id"]: cell for col, cell in zip(columns + out_cols, cells, strict=True)})
        table_rows.append(row)
    content = {
        "hitPolicy": hit, "inputs": columns, "outputs": out_cols, "rules": table_rows,
        "passThrough": True, "inputField": None, "outputPath": path, "executionMode": "single",
    }  # fmt: skip
    return _node(node_id, "decisionTableNode", content, x)


def _quote(text: str) -> str:
    return json.dumps(text)


def build() -> dict[str, Any]:
    nodes = [
        _node("request", "inputNode", {}, 0),
        _table("eligibility", "collect", [[c, _quote(code)] for code, c in ELIGIBILITY], ["code"],
               "eligibility", 200),
        _table("grading", "first", [[band, _quote(g), str(m)] for band, g, m in GRADES],
               ["grade", "income_multiple"], "grading", 400, fields=("score.points",)),
        _table("spread", "first", [[_quote(g), term, s] for g, term, s in SPREADS], ["spread"], "spread", 500,
               fields=("grading.grade", "loan.term_months")),
        _table("post_score", "collect", [[c, _quote(code)] for code, c in POST_SCORE], ["code"],
               "post_score", 600),
        _table("limit_adjustments", "collect", [[c, _quote(code), m] for code, c, m in LIMIT_ADJUSTMENTS],
               ["code", "multiply"], "limit_adjustments", 800),
        _table("price_adjustments", "collect", [[c, _quote(code), a] for code, c, a in PRICE_ADJUSTMENTS],
               ["code", "add"], "price_adjustments", 1000),
        _node("result", "expressionNode", {
            "expressions": [{"id": f"result_{k}", "key": k, "value": v} for k, v in RESULT],
            "passThrough": False, "inputField": None, "outputPath": None, "executionMode": "single"}, 1200),
        _node("response", "outputNode", {}, 1400),
    ]  # fmt: skip
    order = [n["id"] for n in nodes]
    edges = [
        {"id": f"e{i}", "sourceId": a, "targetId": b, "type": "edge"}
        for i, (a, b) in enumerate(itertools.pairwise(order))
    ]
    return {"contentType": "application/vnd.gorules.decision", "nodes": nodes, "edges": edges}


def main() -> int:
    CONSUMER_LOAN_JDM.write_text(json.dumps(build(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {CONSUMER_LOAN_JDM}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
