"""Batch section: decisions/s of the batch decider every batch job shares (engine.batch.decider.BatchDecider,
native CatBoost on each batch) over synthetic consumer_loan applications, against the floor: hand-written
Python for the same decision (parse, rules, grade, limit, price, lifetime-priced offers) plus native
CatBoost batches."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from engine.batch.decider import Undecided
from engine.bench.handwritten import consumer_loan_eligibility, consumer_loan_rules
from engine.finance.lifetime import LifetimeTerms
from engine.models.scaling import points as scale_points
from engine.pipeline.candidates import Candidate, OfferTerms, ProductPricing, Refused, clear_caches
from engine.pipeline.offers import rank_offers
from engine.pipeline.revolving import RevolvingCandidate, RevolvingPlan
from engine.policy.model import Revolving

__all__ = ["FloorDecider", "bench_batch"]

_PD_PLACES, _CENT = Decimal("0.000001"), Decimal("0.01")
_AFFORDABLE, _LGD, _APR_CAP, _RATE_FLOOR = Decimal("0.5"), Decimal("0.45"), Decimal("0.24"), Decimal("0.04")
# offers.lifetime of consumer_loan 2.0.0: cost of funds, operating cost per loan and per month
_COST_OF_FUNDS, _PER_LOAN, _PER_MONTH = Decimal("0.035"), Decimal(300), Decimal(8)
# (id, amount min, amount max, terms, methods, upfront fee rate, monthly fee rate, rate adjustment)
_PRODUCTS = (
    ("personal_std", Decimal(1000), Decimal(200000), (12, 24, 36),
     ("equal_instalment", "equal_principal", "interest_only"), Decimal("0.01"), Decimal(0), Decimal(0)),
    ("personal_flex", Decimal(1000), Decimal(50000), (3, 6, 12),
     ("equal_instalment", "interest_only"), Decimal(0), Decimal("0.0005"), Decimal("0.01")),
)  # fmt: skip
# the credit_line product: limit min and max, rate adjustment, minimum payment, CCF, utilisation, horizon
_LINE_MIN, _LINE_MAX, _LINE_ADJUSTMENT = Decimal(5000), Decimal(50000), Decimal("0.05")
_LINE = Revolving(Decimal(100), Decimal("0.03"), 50, Decimal("0.5"), Decimal("0.4"), 24)
_DECIMALS = ("applicant.income_monthly", "debt.monthly_payments", "bureau.utilisation", "loan.amount")
_FEATURES = {
    "age": "applicant.age", "income_monthly": "applicant.income_monthly",
    "employment_type": "applicant.employment_type", "employment_months": "applicant.employment_months",
    "residence_type": "applicant.residence_type", "dti": "dti", "bureau_score": "bureau.score",
    "delinquencies_24m": "bureau.delinquencies_24m", "inquiries_6m": "bureau.inquiries_6m",
    "utilisation": "bureau.utilisation", "months_on_file": "bureau.months_on_file",
    "loan_amount": "loan.amount", "term_months": "loan.term_months",
}  # fmt: skip


def _fact(app: Mapping[str, Any]) -> dict[str, Any]:
    fact = {f"{group}.{name}": value for group, fields in app.items() for name, value in fields.items()}
    for name in _DECIMALS:
        value = fact[name]
        fact[name] = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    fact.setdefault("loan.purpose", "consumption")
    income = fact["applicant.income_monthly"]
    fact["dti"] = fact["debt.monthly_payments"] / income if income > 0 else Decimal("9.99")
    return fact


class FloorDecider:
    """The floor: the consumer_loan 2.0.0 decision by hand (decision tables, the requested amount,
    offers priced over their lifetime and ranked by NPV expected profit), scoring each batch's
    survivors in one call."""

    def __init__(self, package: Any) -> None:
        from engine.models.scoring import NativeScorer

        self.scorer = NativeScorer(package, thread_count=1)

    def decide(self, applications: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        facts = [_fact(app) for app in applications]
        alive = [i for i, f in enumerate(facts) if not _declines(consumer_loan_eligibility(f))]
        rows = [{k: facts[i][path] for k, path in _FEATURES.items()} for i in alive]
        pds: Any = self.scorer.pd_matrix(self.scorer.encoder.encode_rows(rows)) if rows else []
        out: list[dict[str, Any]] = [{"outcome": "DECLINE"} for _ in facts]
        for i, raw_pd in zip(alive, pds, strict=True):
            out[i] = _decide(facts[i], float(raw_pd))
        return out


_DECLINE_CODES = frozenset(
    {"BLACKLISTED", "AGE_MIN", "AGE_AT_MATURITY", "INCOME_MIN", "EMPLOYMENT", "BANKRUPTCY", "DELINQUENCY",
     "BUREAU_SCORE", "DTI_MAX", "PURPOSE", "SCORE_LOW"}
)  # fmt: skip


def _declines(codes: list[str]) -> bool:
    return any(code in _DECLINE_CODES for code in codes)


def _decide(fact: dict[str, Any], raw_pd: float) -> dict[str, Any]:
    points = scale_points(raw_pd, 600, 50, 20)
    pd = Decimal(repr(raw_pd)).quantize(_PD_PLACES, rounding=ROUND_HALF_EVEN)
    rules = consumer_loan_rules(fact, points)
    result: dict[str, Any] = {"grade": rules["grade"], "points": points, "pd": pd}
    if _declines(rules["post_score"]) or rules["limit_below_floor"]:
        return {"outcome": "DECLINE", **result}
    offers = _offers(fact, rules["grade"], pd, rules["limit"], rules["annual_rate"])
    if not offers:
        return {"outcome": "DECLINE", **result}
    refer = [c for c in rules["eligibility"] + rules["post_score"] if c not in _DECLINE_CODES]
    outcome = "REFER" if refer else "APPROVE"
    return {
        "outcome": outcome,
        "limit": rules["limit"],
        "rate": rules["annual_rate"],
        "offers": offers,
        **result,
    }


def _offers(
    fact: dict[str, Any], grade: str, pd: Decimal, limit: Decimal, rate: Decimal
) -> list[tuple[Any, ...]]:
    """The top 4 offers: every affordable term x method (and the credit line) priced over its life."""
    income, existing = fact["applicant.income_monthly"], fact["debt.monthly_payments"]
    economics = LifetimeTerms(pd, _LGD, _COST_OF_FUNDS, _PER_LOAN, _PER_MONTH)
    terms = OfferTerms(income, existing, _AFFORDABLE, _LGD, pd, _APR_CAP, 4, objective="expected_profit_npv",
                       lifetime=economics)  # fmt: skip
    tenure = fact["applicant.employment_months"]
    candidates: list[Candidate | RevolvingCandidate | Refused] = []
    for index, (product, low, high, product_terms, methods, fee, monthly, adjustment) in enumerate(_PRODUCTS):
        if product == "personal_flex" and tenure < 12:
            continue
        amount = min(high, limit, fact["loan.amount"]).quantize(_CENT, rounding="ROUND_DOWN")
        if amount < low or amount <= 0:
            continue
        product_rate = min(max(rate + adjustment, _RATE_FLOOR), _APR_CAP)
        pricing = ProductPricing(product, index, amount, product_rate, fee, terms, monthly)
        for term in product_terms:
            for method in methods:
                candidates.append(pricing.candidate(term, method))
    line = min(_LINE_MAX, limit).quantize(_CENT, rounding="ROUND_DOWN")
    if grade in ("A", "B", "C") and tenure >= 12 and line >= _LINE_MIN:
        allowed = _AFFORDABLE * income - existing if income > 0 else Decimal(-1)
        line_rate = min(max(rate + _LINE_ADJUSTMENT, _RATE_FLOOR), _APR_CAP)
        line_offer = RevolvingPlan("credit_line", 2, line, line_rate, _LINE, economics, allowed,
                                   "half_even", "", "expected_profit_npv")  # fmt: skip
        candidates.append(line_offer.priced())
    offers, _ = rank_offers(candidates, terms)
    return [_offer_view(o) for o in offers]


def _offer_view(offer: Any) -> tuple[Any, ...]:
    return (offer.product, offer.amount, offer.term_months, offer.repayment_method, offer.apr,
            offer.expected_profit)  # fmt: skip


def _credo_view(decided: Any) -> dict[str, Any]:
    if isinstance(decided, Undecided):
        return {"outcome": "ERROR", "error": decided.code}
    out: dict[str, Any] = {"outcome": decided.outcome.value}
    if decided.score is not None:
        score = decided.score
        out.update({"grade": score.grade, "points": score.points, "pd": score.pd})
    if out["outcome"] != "DECLINE":
        offers = [_offer_view(o) for o in decided.offers]
        out.update({"limit": decided.limit, "rate": decided.annual_rate, "offers": offers})
    return out


def bench_batch(
    policy_path: Path | str, models_dir: Path | str, count: int, batch: int = 500, check: int = 1000
) -> dict[str, Any]:
    """Decisions/s of BatchDecider (scorer native) and of the floor over `count` applications, in
    batches of `batch`, one process each; the first `check` decisions must agree (outcome, grade,
    points, pd, limit, rate, and each offer's product, amount, term, method, APR and expected profit)
    or EquivalenceError."""
    from engine.batch.decider import BatchDecider
    from engine.bench.data import applications
    from engine.bench.peer import EquivalenceError
    from engine.models.store import ModelStore
    from engine.policy import load_policy

    policy = load_policy(policy_path)
    assert policy.score is not None
    package = ModelStore(models_dir).load(policy.score.model_name, policy.score.model_version)
    apps = applications(count, seed=23)
    chunks = [apps[i : i + batch] for i in range(0, len(apps), batch)]
    credo = BatchDecider(policy, package, scorer="native")
    floor = FloorDecider(package)
    sample = apps[:check]
    want = [_credo_view(d) for d in credo.decide(sample)]
    got = floor.decide(sample)
    bad = [(a, w, g) for a, w, g in zip(sample, want, got, strict=True) if w != g]
    if bad:
        shown = "\n  ".join(f"{a}: credo {w} vs floor {g}" for a, w, g in bad[:5])
        raise EquivalenceError(
            f"batch floor disagrees with BatchDecider on {len(bad)} of {len(sample)}:\n  {shown}"
        )
    timings = {}
    for name, decider in (("credo", credo), ("floor", floor)):
        clear_caches()  # each side starts with the same cold offer caches
        start = time.perf_counter()
        for chunk in chunks:
            decider.decide(chunk)
        timings[name] = time.perf_counter() - start
    outcomes: dict[str, int] = {}
    for w in want:
        outcomes[w["outcome"]] = outcomes.get(w["outcome"], 0) + 1
    return {
        "applications": count,
        "batch": batch,
        "checked": len(sample),
        "sample_outcomes": outcomes,
        "credo_per_s": count / timings["credo"],
        "floor_per_s": count / timings["floor"],
        "credo_seconds": timings["credo"],
        "floor_seconds": timings["floor"],
    }


def bench_scaling(
    policy_path: Path | str, models_dir: Path | str, rows: int, chunk: int = 250
) -> dict[str, Any]:
    """Simulation rows/s of the same synthetic file on 1 and on 2 local worker processes (each pool
    warmed up first, so both workers have loaded the policy and model before the clock starts)."""
    import tempfile

    from engine.batch.pool import LocalPool
    from engine.batch.simulate import SimulationOptions, simulate
    from engine.models.synthetic import write

    with tempfile.TemporaryDirectory(prefix="credo-bench-") as tmp:
        data, warm = Path(tmp) / "apps.parquet", Path(tmp) / "warm.parquet"
        write(rows, 41, data, applications=True)
        write(chunk * 4, 43, warm, applications=True)
        out: dict[str, Any] = {"rows": rows, "chunk": chunk}
        for workers in (1, 2):
            pool = LocalPool(workers)
            try:
                for path in (warm, data):
                    start = time.perf_counter()
                    simulate(
                        SimulationOptions(Path(policy_path), path, models_dir=Path(models_dir), chunk=chunk),
                        pool,
                    )
                out[f"workers_{workers}_per_s"] = rows / (time.perf_counter() - start)
            finally:
                pool.close()
    return out
