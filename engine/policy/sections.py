"""Compiler stages for what a policy decides: score, rule stages, segments, limit, price, products,
offers and the policy's own tests."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from engine.errors import InvalidInput, Location
from engine.expr import DECIMAL, INTEGER, Scope, enum_type
from engine.policy import model as m
from engine.policy import schema as s
from engine.policy.builder import BROKEN, SCORE_AFTER, Builder, RuleEntry, dec_or_none
from engine.policy.inputs import validate_application
from engine.policy.table_plan import grade_table_or_error


def score(b: Builder) -> None:
    for name in ("score.pd", "score.points", "score.grade"):
        b.unavailable[name] = SCORE_AFTER
    if "score" not in b.data:
        for name in ("score.pd", "score.points", "score.grade"):
            b.unavailable[name] = "is not available: the policy has no score section"
        return
    spec = s.validate_part(s.ScoreSpec, b.data["score"], ("score",), b.src, b.sink)
    if spec is None:
        for name in ("score.pd", "score.points", "score.grade"):
            b.unavailable[name] = BROKEN
        return
    grade_table = None
    if isinstance(spec.grades, str):  # a decision table grades score.points
        grade_table = grade_table_or_error(b, spec.grades)
        grade_type = b.score_names.get("score.grade", enum_type([]))
        spec_grades: list[s.GradeSpec] = []
    else:
        spec_grades = spec.grades
        grade_type = enum_type([g.grade for g in spec_grades])
    grades = tuple(sorted((m.Grade(g.grade, g.min_points) for g in spec_grades), key=lambda g: -g.min_points))
    b.score_names.update({"score.pd": DECIMAL, "score.points": INTEGER, "score.grade": grade_type})
    seen: dict[str, int] = {}
    for i, g in enumerate(spec_grades):
        if g.grade in seen or g.min_points in {x.min_points for x in spec_grades[:i]}:
            b.sink.error(
                "DUPLICATE_ID",
                f"grade '{g.grade}' ({g.min_points}) repeats a grade or band start",
                b.src.at(("score", "grades", i)),
            )
        seen[g.grade] = i
    feats = {}
    for name, value in spec.features.items():
        f = b.formula(("score", "features", name), value, b.scope(False), None)
        if f is not None:
            feats[name] = f
    sc = spec.scaling
    b.policy.score = m.ScoreSpec(
        spec.model.name,
        spec.model.version,
        spec.model.sha256,
        feats,
        m.Scaling(sc.base_points, Decimal(sc.base_odds), Decimal(sc.pdo)),
        grades,
        grade_table,
    )


def stages(b: Builder) -> None:
    seen: set[str] = set()
    for path, stage in b.items("stages", s.StageSpec):
        if stage.name in seen:
            b.sink.error("DUPLICATE_ID", f"stage '{stage.name}' is declared twice", b.src.at((*path, "name")))
            continue
        if stage.name == "eligibility" and "post_score" in seen:
            b.sink.error("BAD_VALUE", "stage eligibility must come before post_score", b.src.at(path))
        seen.add(stage.name)
        entries: list[RuleEntry] = []
        for i, raw in enumerate(stage.rules):
            rpath = (*path, "rules", i)
            rule = s.validate_part(s.RuleSpec, raw, rpath, b.src, b.sink)
            if rule is None:
                b.salvage(raw, rpath, b.scope(stage.name != "eligibility"))
                continue
            b.rule_id(rule.id, (*rpath, "id"))
            kind: Literal["decline", "refer"] = "decline" if rule.decline else "refer"
            reason = rule.decline or rule.refer
            assert reason is not None
            effect = m.Effect(
                kind,
                reason.code,
                b.texts((*rpath, kind, "text"), reason.text),
                rule.id,
                b.src.at(rpath),
            )
            entries.append((rule.id, (*rpath, "when"), rule.when, effect))
        b.policy.rule_stages.append(b.rule_stage(stage.name, entries, b.scope(stage.name != "eligibility")))


def segments(b: Builder) -> None:
    entries: list[RuleEntry] = []
    items = []
    ids: set[str] = set()
    for path, seg in b.items("segments", s.SegmentSpec):
        if seg.id in ids:
            b.sink.error("DUPLICATE_ID", f"segment id '{seg.id}' is used twice", b.src.at((*path, "id")))
            continue
        ids.add(seg.id)
        texts = b.texts((*path, "text"), seg.text)
        items.append(m.Segment(seg.id, texts, b.src.at(path)))
        entries.append(
            (
                seg.id,
                (*path, "when"),
                seg.when,
                m.Effect("adjust", seg.id, texts, seg.id, b.src.at(path)),
            )
        )
    if "segments" in b.data:
        b.policy.segments = m.SegmentsSpec(b.rule_stage("segments", entries, b.scope(True)), tuple(items))


def adjustments(b: Builder, section: str, raw: list[Any]) -> m.RuleStage:
    entries: list[RuleEntry] = []
    for i, item in enumerate(raw):
        path = (section, "adjustments", i)
        adj = s.validate_part(s.AdjustmentSpec, item, path, b.src, b.sink)
        if adj is None:
            b.salvage(item, path, b.scope(True))
            continue
        b.rule_id(adj.id, (*path, "id"))
        effect = m.Effect(
            "adjust",
            adj.code,
            b.texts((*path, "text"), adj.text),
            adj.id,
            b.src.at(path),
            dec_or_none(adj.multiply),
            dec_or_none(adj.add),
        )
        entries.append((adj.id, (*path, "when"), adj.when, effect))
    return b.rule_stage(section, entries, b.scope(True))


def limit(b: Builder) -> None:
    if "limit" not in b.data:
        return
    spec = s.validate_part(s.LimitSpec, b.data["limit"], ("limit",), b.src, b.sink)
    if spec is None:
        return
    f = b.formula(("limit", "formula"), spec.formula, b.scope(True))
    stage = adjustments(b, "limit", spec.adjustments)
    step = spec.round_to if spec.round_to is not None else spec.round_down_to
    if f is not None:
        b.policy.limit = m.LimitSpec(
            f,
            stage,
            dec_or_none(spec.floor),
            dec_or_none(spec.cap),
            Decimal(str(step).strip()) if step is not None else Decimal("0.01"),
            spec.rounding,
        )


def price(b: Builder) -> None:
    if "price" not in b.data:
        return
    spec = s.validate_part(s.PriceSpec, b.data["price"], ("price",), b.src, b.sink)
    if spec is None:
        return
    base = b.formula(("price", "base_rate"), spec.base_rate, b.scope(True))
    spread = None if spec.spread is None else b.formula(("price", "spread"), spec.spread, b.scope(True))
    stage = adjustments(b, "price", spec.adjustments)
    if base is not None:
        b.policy.price = m.PriceSpec(base, spread, stage, dec_or_none(spec.floor), dec_or_none(spec.cap))


def products(b: Builder) -> None:
    entries: list[RuleEntry] = []
    items: list[m.Product] = []
    for path, prod in b.items("products", s.ProductSpec):
        if any(p.id == prod.id for p in items):
            b.sink.error("DUPLICATE_ID", f"product id '{prod.id}' is used twice", b.src.at((*path, "id")))
            continue
        names = b.texts((*path, "name"), prod.name)
        if prod.amount.min > prod.amount.max:
            b.sink.error("BAD_VALUE", "amount.min is above amount.max", b.src.at((*path, "amount")))
        fee = prod.fee.upfront_rate if prod.fee else 0
        monthly_fee = prod.fee.monthly_rate if prod.fee else 0
        items.append(
            m.Product(
                prod.id,
                names,
                Decimal(prod.amount.min),
                Decimal(prod.amount.max),
                tuple(prod.terms),
                tuple(prod.methods),
                Decimal(fee),
                Decimal(prod.rate_adjustment),
                b.src.at(path),
                Decimal(monthly_fee),
                _revolving(prod.revolving),
            )
        )
        entries.append(
            (
                prod.id,
                (*path, "when"),
                prod.when,
                m.Effect("adjust", prod.id, names, prod.id, b.src.at(path)),
            )
        )
    if "products" in b.data:
        b.policy.products = m.ProductsSpec(b.rule_stage("products", entries, b.scope(True)), tuple(items))


def _revolving(spec: s.RevolvingSpec | None) -> m.Revolving | None:
    if spec is None:
        return None
    return m.Revolving(
        Decimal(spec.minimum_payment.fixed),
        Decimal(spec.minimum_payment.rate),
        spec.interest_free_days,
        Decimal(spec.ccf),
        Decimal(spec.utilisation),
        spec.horizon_months,
    )


def offers(b: Builder) -> None:
    if "offers" not in b.data:
        return
    spec = s.validate_part(s.OffersSpec, b.data["offers"], ("offers",), b.src, b.sink)
    if spec is None:
        return
    income = b.formula(("offers", "income"), spec.income, b.scope(True))
    existing = b.formula(("offers", "existing_payments"), spec.existing_payments, b.scope(True))
    requested = pd = None
    if spec.requested is not None:
        requested = b.formula(("offers", "requested"), spec.requested, b.scope(True))
        if requested is None:
            return
    if spec.pd is not None:
        pd = b.formula(("offers", "pd"), spec.pd, b.scope(True))
        if pd is None:
            return
    if not _offers_economics_valid(b, spec):
        return
    objective, rank_by, maximise = spec.objective, None, True
    if isinstance(objective, s.ObjectiveExprSpec):
        maximise = objective.maximise is not None
        direction = "maximise" if maximise else "minimise"
        source = objective.maximise if maximise else objective.minimise
        scope = b.scope(True)
        scope = Scope({**scope.names, **OFFER_FIGURES}, scope.tables, scope.unavailable)
        rank_by = b.formula(("offers", "objective", direction), source, scope)
        if rank_by is None:
            return
        objective = f"{direction}: {source}"
    if income is not None and existing is not None:
        life = spec.lifetime
        b.policy.offers = m.OffersSpec(
            spec.top,
            Decimal(spec.affordability_cap),
            income,
            existing,
            Decimal(spec.lgd),
            objective,
            requested,
            pd,
            None
            if life is None
            else m.Lifetime(
                "constant_hazard"
                if isinstance(life.pd_curve, str)
                else tuple(Decimal(w) for w in life.pd_curve),
                Decimal(life.cost_of_funds),
                Decimal(life.operating_cost.per_loan),
                Decimal(life.operating_cost.per_month),
            ),
            None if spec.balloon is None else spec.balloon.refinance_months,
            spec.validity_days or 30,
            "same" if spec.first_due is None else spec.first_due.day,
            0 if spec.first_due is None else spec.first_due.min_days,
            rank_by,
            maximise,
        )


# what an objective expression may name beside the applicant's fields (see engine/pipeline/offers.py)
OFFER_FIGURES = {
    "offer.expected_profit": DECIMAL,
    "offer.expected_loss": DECIMAL,
    "offer.instalment": DECIMAL,
    "offer.total_cost": DECIMAL,
    "offer.amount": DECIMAL,
    "offer.term_months": INTEGER,
}

# keys that only the lifetime objectives read: under the 1.x `expected_profit` they would be ignored
_LIFETIME_ONLY = ("pd", "lifetime", "balloon", "validity_days", "first_due")


def _offers_economics_valid(b: Builder, spec: s.OffersSpec) -> bool:
    """The objective and its inputs agree: every objective needs a PD source (a model's score or
    `offers.pd`) so expected loss is never a silent zero; the lifetime objectives need `lifetime`."""
    ok = True
    at = b.src.at(("offers", "objective")) if "objective" in b.data["offers"] else b.src.at(("offers",))
    if spec.objective == "expected_profit":
        for key in _LIFETIME_ONLY:
            if key in b.data["offers"]:
                b.sink.error(
                    "LIFETIME_ONLY",
                    f"offers.{key} is read only by the lifetime objectives (expected_profit_npv,"
                    " lowest_instalment, lowest_total_cost); `expected_profit` keeps the 1.x ranking",
                    b.src.at(("offers", key)),
                )
                ok = False
        for index, raw in enumerate(b.data.get("products") or []):
            if isinstance(raw, dict) and raw.get("type") == "revolving":
                b.sink.error(
                    "LIFETIME_ONLY",
                    "a revolving product is priced only under the lifetime objectives",
                    b.src.at(("products", index, "type")),
                )
                ok = False
            if isinstance(raw, dict) and isinstance(raw.get("fee"), dict) and "monthly_rate" in raw["fee"]:
                b.sink.error(
                    "LIFETIME_ONLY",
                    "fee.monthly_rate is charged only under the lifetime objectives",
                    b.src.at(("products", index, "fee", "monthly_rate")),
                )
                ok = False
    elif spec.lifetime is None:
        b.sink.error(
            "NO_LIFETIME",
            "this objective needs offers.lifetime (PD curve, cost of funds, operating cost)",
            at,
        )
        ok = False
    if spec.pd is None and "score" not in b.data:
        b.sink.error(
            "NO_PD_SOURCE",
            "the objective prices expected loss but nothing gives a PD: add a `score`"
            " section (a model) or offers.pd (an expression, e.g. a scorecard table's output)",
            at,
        )
        ok = False
    return ok


def tests(b: Builder) -> None:
    if not b.data.get("tests") and isinstance(b.src.data, dict):
        b.sink.warning(
            "NO_TESTS",
            "the policy has no tests: add `tests:` (an input and the expected outcome) so `credo test` "
            "and CI check what it decides",
            b.src.key_at(("tests",)) if "tests" in b.data else b.src.key_at(("policy",)),
        )
    names: dict[str, Location] = {}
    for path, raw in b.items("tests", s.TestSpec):
        loc = b.src.at(path)
        if raw.name in names:
            b.sink.error("DUPLICATE_ID", f"test name '{raw.name}' already used at {names[raw.name]}", loc)
        names[raw.name] = loc
        expect = raw.expect.model_dump(exclude_unset=True)
        if not b.sink.has_errors and "error" not in expect:
            try:
                validate_application(b.policy.inputs, raw.input, b.policy.open_groups, m.TEST_DATE)
            except InvalidInput as exc:
                for v in exc.violations:
                    b.sink.error(
                        "BAD_TEST_INPUT",
                        f"test '{raw.name}': {v.field}: {v.description}",
                        b.src.key_at((*path, "input", *v.field.split("."))),
                    )
        b.policy.tests.append(m.PolicyTest(raw.name, raw.input, expect, loc))
