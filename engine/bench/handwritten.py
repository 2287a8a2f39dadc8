"""The consumer_loan policy's eligibility, grading, post-score, limit and price logic written by hand in
plain Python on the validated fact: the floor the rule engine is compared to, and a third oracle."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal
from typing import Any

__all__ = ["GRADES", "consumer_loan_eligibility", "consumer_loan_rules"]

GRADES = ((620, "A"), (605, "B"), (590, "C"), (570, "D"))
INCOME_MULTIPLE = {"A": 12, "B": 10, "C": 8, "D": 5, "E": 3}
# (spread up to 60 months, spread beyond): the policy's RATE_SPREAD decision table
GRADE_SPREAD = {
    g: (Decimal(a), Decimal(b))
    for g, (a, b) in {"A": ("0", "0.005"), "B": ("0.02", "0.025"), "C": ("0.045", "0.05"),
                      "D": ("0.08", "0.09"), "E": ("0.12", "0.13")}.items()
}  # fmt: skip
_D055, _D04, _D09 = Decimal("0.55"), Decimal("0.4"), Decimal("0.9")
_HALF, _D07, _D08 = Decimal("0.5"), Decimal("0.7"), Decimal("0.8")
_BASE, _CIVIL, _HOME = Decimal("0.072"), Decimal("-0.005"), Decimal("-0.003")
_RATE_FLOOR, _RATE_CAP = Decimal("0.04"), Decimal("0.24")
_HUNDRED, _CAP, _FLOOR = Decimal(100), Decimal(200000), Decimal(1000)


def consumer_loan_eligibility(f: Mapping[str, Any]) -> list[str]:
    """Decline and refer codes of the eligibility stage, in policy order."""
    codes = []
    employment = f["applicant.employment_type"]
    if f["flags.blacklisted"]:
        codes.append("BLACKLISTED")
    if f["applicant.age"] < 22:
        codes.append("AGE_MIN")
    if f["applicant.age"] + Decimal(f["loan.term_months"]) / 12 > 60:
        codes.append("AGE_AT_MATURITY")
    if f["applicant.income_monthly"] < 3000:
        codes.append("INCOME_MIN")
    if employment == "unemployed":
        codes.append("EMPLOYMENT")
    if f["bureau.bankruptcy"]:
        codes.append("BANKRUPTCY")
    if f["bureau.delinquencies_24m"] >= 3:
        codes.append("DELINQUENCY")
    if f["bureau.score"] < 520:
        codes.append("BUREAU_SCORE")
    if f["dti"] > _D055:
        codes.append("DTI_MAX")
    if f["loan.purpose"] in ("securities", "property_purchase"):
        codes.append("PURPOSE")
    if f["bureau.months_on_file"] < 6:
        codes.append("THIN_FILE")
    if f["bureau.inquiries_6m"] >= 6:
        codes.append("INQUIRIES")
    if employment in ("salaried", "civil_servant") and f["applicant.employment_months"] < 6:
        codes.append("SHORT_TENURE")
    if employment == "self_employed" and f["loan.amount"] > 100000:
        codes.append("SELF_EMPLOYED_LARGE")
    if f["bureau.delinquencies_24m"] in (1, 2):
        codes.append("DELINQUENCY_REVIEW")
    if f["bureau.utilisation"] > _D09:
        codes.append("UTILISATION")
    if f["loan.amount"] > f["applicant.income_monthly"] * 20:
        codes.append("AMOUNT_TO_INCOME")
    if employment == "retired" and f["applicant.residence_type"] == "rent":
        codes.append("RETIRED_RENTING")
    return codes


def consumer_loan_rules(f: Mapping[str, Any], points: int) -> dict[str, Any]:
    """Eligibility, grade, post-score rules, limit and price of one fact (see engine.bench.peer for
    the shape every implementation returns)."""
    grade = next((g for floor, g in GRADES if points >= floor), "E")
    post = []
    if grade == "E":
        post.append("SCORE_LOW")
    if grade == "D" and f["dti"] > _D04:
        post.append("SCORE_REVIEW")
    limit = f["applicant.income_monthly"] * INCOME_MULTIPLE[grade]
    limit_codes: list[str] = []
    if f["bureau.months_on_file"] < 12:
        limit, limit_codes = limit * _HALF, [*limit_codes, "LIMIT_THIN"]
    if f["dti"] > _D04:
        limit, limit_codes = limit * _D07, [*limit_codes, "LIMIT_DTI"]
    if f["applicant.residence_type"] == "rent" and f["applicant.employment_months"] < 24:
        limit, limit_codes = limit * _D08, [*limit_codes, "LIMIT_STABILITY"]
    limit = min(limit, _CAP)
    limit = (limit / _HUNDRED).to_integral_value(rounding=ROUND_DOWN) * _HUNDRED
    rate = _BASE + GRADE_SPREAD[grade][f["loan.term_months"] > 60]
    price_codes: list[str] = []
    if f["applicant.employment_type"] == "civil_servant":
        rate, price_codes = rate + _CIVIL, [*price_codes, "RATE_CIVIL_SERVANT"]
    if f["applicant.residence_type"] in ("own", "mortgage"):
        rate, price_codes = rate + _HOME, [*price_codes, "RATE_HOMEOWNER"]
    rate = min(max(rate, _RATE_FLOOR), _RATE_CAP)
    return {
        "eligibility": consumer_loan_eligibility(f),
        "grade": grade,
        "post_score": post,
        "limit_adjustments": limit_codes,
        "limit": limit,
        "limit_below_floor": limit < _FLOOR or limit <= 0,
        "price_adjustments": price_codes,
        "annual_rate": rate,
    }
