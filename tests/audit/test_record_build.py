"""A decision record built on the decision path equals the record's definition, byte for byte: the
summary written by per-class code (engine.decision.fields_plainer) against plain_text_floats of the
copied Decision, refs made plain once against made plain every time, and the personal-data vault's
kept ciphers and MACs against fresh ones.
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import fields
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine.audit.record as record_module
from engine.audit.canonical import canonical_json, plain_text_floats
from engine.audit.log import DecisionLog
from engine.audit.pii import PiiVault
from engine.audit.pii_keys import MasterKey
from engine.audit.record import DecisionRecord, decision_summary, utc_text
from engine.decision import (
    Decision,
    Fee,
    Instalment,
    ModelRef,
    Offer,
    Outcome,
    PolicyRef,
    Reason,
    RevolvingTerms,
    Score,
    TraceEntry,
    fields_plainer,
    replaced,
)
from engine.errors import CanonicalError
from engine.finance.dates import SAME_DAY, dated_as, due_dates, utc_date
from engine.finance.schedule import schedule_sha256

DECIDED_AT = "2026-01-31T23:59:59.123456+00:00"


def summary_by_definition(decision: Decision, rounding: str) -> dict[str, Any]:
    """decision_summary as the record format defines it (and as it was first written): the Decision
    copied without trace and offers, made plain, and each offer likewise without its rows."""
    body: dict[str, Any] = plain_text_floats(replaced(decision, trace=(), offers=()))
    del body["trace"], body["record_hash"]
    offers = []
    for offer in decision.offers:
        terms: dict[str, Any] = plain_text_floats(replaced(offer, schedule=()))
        terms["schedule"] = {
            "sha256": schedule_sha256(offer.schedule),
            "rows": len(offer.schedule),
            "rounding": rounding,
        }
        if offer.schedule and offer.schedule[0].due_date:
            dates = [row.due_date for row in offer.schedule]
            terms["schedule"]["due"] = dated_as(decision.decided_at, dates)
        offers.append(terms)
    body["offers"] = offers
    return body


def record_by_definition(decision: Decision, **options: Any) -> DecisionRecord:
    """DecisionRecord.build as first written: every part made plain by plain_text_floats."""
    return DecisionRecord(
        decision_id=decision.decision_id,
        request_id=decision.request_id,
        request_fingerprint=options["request_fingerprint"],
        received_at=utc_text(options["received_at"]),
        policy=plain_text_floats(decision.policy),
        models=plain_text_floats(list(decision.models)),
        engine_version=str(options["engine_version"]),
        input=plain_text_floats(options["input"]),
        derived=plain_text_floats(options.get("derived") or {}),
        model_outputs=plain_text_floats(options.get("model_outputs") or {}),
        stages=plain_text_floats(list(decision.trace)),
        outcome=decision.outcome.value,
        decision=summary_by_definition(decision, options.get("rounding", "half_even")),
        archive=dict(options.get("archive") or {}),
        extra=plain_text_floats(options.get("extra") or {}),
    )


money = st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=2)
rates = st.decimals(min_value=Decimal(0), max_value=Decimal(1), places=4)
texts = st.text(max_size=6)
fees = st.builds(Fee, st.sampled_from(["upfront", "monthly"]), money)
# what stage values and outputs hold: floats are kept as text, Decimals keep their exponent
leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), texts, money, st.floats(allow_nan=False), st.dates()
)
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def schedules(draw: st.DrawFn) -> tuple[Instalment, ...]:
    count = draw(st.integers(0, 4))
    dating = draw(st.sampled_from(["undated", "same", "fixed", "neither"]))
    if dating == "same":
        dates: tuple[str, ...] = due_dates(utc_date(DECIDED_AT), count, SAME_DAY, 0)
    elif dating == "fixed":
        dates = due_dates(utc_date(DECIDED_AT), count, draw(st.integers(1, 28)), draw(st.integers(0, 20)))
    elif dating == "neither":  # dated_as refuses them: so must the record
        dates = tuple(f"2026-0{1 + i % 2}-1{i}" for i in range(count))
    else:
        dates = ("",) * count
    return tuple(
        Instalment(i + 1, draw(money), draw(money), draw(money), draw(money), due_date=dates[i])
        for i in range(count)
    )


@st.composite
def offers(draw: st.DrawFn) -> Offer:
    return Offer(
        product=draw(texts),
        amount=draw(money),
        term_months=draw(st.integers(0, 60)),
        repayment_method=draw(st.sampled_from(["equal_instalment", "equal_principal", "revolving"])),
        annual_rate=draw(rates),
        apr=draw(rates),
        instalment=draw(money),
        total_interest=draw(money),
        expected_profit=draw(money),
        schedule=draw(schedules()),
        expected_loss=draw(st.none() | money),
        offer_id=draw(st.sampled_from(["", "of_1"])),
        valid_until=draw(st.sampled_from(["", "2026-02-14"])),
        product_name=draw(texts),
        fees=tuple(draw(st.lists(fees, max_size=2))),
        revolving=draw(
            st.none() | st.builds(RevolvingTerms, money, rates, st.integers(0, 60), st.integers(1, 36))
        ),
    )


@st.composite
def decisions(draw: st.DrawFn) -> Decision:
    trace = draw(
        st.lists(
            st.builds(
                TraceEntry,
                texts,
                st.lists(texts, max_size=2).map(tuple),
                st.floats(allow_nan=False),
                st.dictionaries(texts, values, max_size=3),
            ),
            max_size=4,
        )
    )
    return Decision(
        decision_id="01900000-0000-7000-8000-000000000001",
        request_id=draw(texts),
        outcome=draw(st.sampled_from(list(Outcome))),
        reasons=tuple(draw(st.lists(st.builds(Reason, texts, texts, texts, texts), max_size=2))),
        score=draw(st.none() | st.builds(Score, rates, st.integers(300, 900), texts)),
        segments=tuple(draw(st.lists(texts, max_size=2))),
        limit=draw(st.none() | money),
        annual_rate=draw(st.none() | rates),
        offers=tuple(draw(st.lists(offers(), max_size=3))),
        policy=PolicyRef("consumer_loan", "2.0.0", "a" * 64),
        models=(ModelRef("consumer_pd", "1.0.0", "b" * 64),),
        trace=tuple(trace),
        decided_at=DECIDED_AT,
        currency=draw(st.sampled_from(["CNY", "EUR"])),
        objective=draw(st.sampled_from(["", "expected_profit_npv"])),
        outputs=draw(st.dictionaries(texts, values, max_size=2)),
        record_hash=draw(st.sampled_from(["", "c" * 64])),
        arm=draw(st.sampled_from(["", "champion"])),
    )


def outcome_of(make: Any) -> tuple[str, Any]:
    """("ok", the value) or ("refused", the exception's type): both ways must agree on refusals."""
    try:
        return "ok", make()
    except (ValueError, CanonicalError) as exc:
        return "refused", type(exc)


@settings(max_examples=300, deadline=None)
@given(decisions(), st.sampled_from(["half_even", "half_up"]))
def test_the_summary_equals_the_copied_decision_made_plain(decision: Decision, rounding: str) -> None:
    fast = outcome_of(lambda: decision_summary(decision, rounding))
    assert fast == outcome_of(lambda: summary_by_definition(decision, rounding))
    if fast[0] == "ok":
        assert canonical_json(fast[1]) == canonical_json(summary_by_definition(decision, rounding))


@settings(max_examples=200, deadline=None)
@given(
    decisions(),
    st.dictionaries(texts, values, max_size=4),
    st.dictionaries(texts, values, max_size=2),
    st.dictionaries(texts, values, max_size=2),
)
def test_a_built_record_equals_the_record_by_definition(
    decision: Decision, fact: dict[str, Any], derived: dict[str, Any], extra: dict[str, Any]
) -> None:
    options: dict[str, Any] = {
        "request_fingerprint": "f" * 64,
        "received_at": dt.datetime(2026, 1, 31, 23, 59, 59, 123456, tzinfo=dt.UTC),
        "input": fact,
        "derived": derived,
        "model_outputs": {"consumer_pd": {"pd": 0.25, "features": fact}},
        "engine_version": "9.9.9",
        "archive": {"policies/p/policy.yaml": "d" * 64},
        "extra": extra,
    }
    for _ in range(2):  # the second time with the refs made plain before
        fast = outcome_of(lambda: DecisionRecord.build(decision, **options))
        assert fast[0] == outcome_of(lambda: record_by_definition(decision, **options))[0]
        if fast[0] == "ok":
            exact = record_by_definition(decision, **options)
            assert fast[1] == exact
            assert fast[1].canonical() == exact.canonical()
            assert fast[1].seal("chain", 3, "0" * 64).hash == exact.seal("chain", 3, "0" * 64).hash


def bare_decision() -> Decision:
    ref = PolicyRef("p", "1", "a")
    return Decision("id", "req", Outcome.APPROVE, (), None, (), None, None, (), ref, (), (), DECIDED_AT)


def test_a_summary_missing_a_field_is_caught() -> None:
    """The equality above bites: a plainer that drops one more field than it should differs."""
    decision = replaced(bare_decision(), objective="expected_profit_npv")
    broken = fields_plainer(Decision, frozenset({"trace", "record_hash", "offers", "objective"}))
    record_module._summary_plainers[Decision, record_module._NOT_SUMMED] = broken
    try:
        assert decision_summary(decision, "half_even") != summary_by_definition(decision, "half_even")
    finally:
        del record_module._summary_plainers[Decision, record_module._NOT_SUMMED]
    assert decision_summary(decision, "half_even") == summary_by_definition(decision, "half_even")


def test_a_records_refs_are_its_own() -> None:
    """Refs made plain once are copied into each record: changing one record's never changes another's."""
    decision = Decision(
        "id", "req", Outcome.APPROVE, (), None, (), None, None, (), PolicyRef("p", "1", "a"),
        (ModelRef("m", "1", "b"),), (), DECIDED_AT,
    )  # fmt: skip
    options: dict[str, Any] = {"request_fingerprint": "f", "received_at": DECIDED_AT, "input": {}}
    first = DecisionRecord.build(decision, **options)
    first.policy["name"] = "changed"
    first.models[0]["name"] = "changed"
    second = DecisionRecord.build(decision, **options)
    assert second.policy == {"name": "p", "version": "1", "sha256": "a"}
    assert second.models == [{"name": "m", "version": "1", "sha256": "b"}]


def test_changed_copies_a_record_as_replace_does() -> None:
    built = DecisionRecord.build(
        bare_decision(), request_fingerprint="f", received_at=DECIDED_AT, input={"a": 1}
    )
    sealed = built.seal("chain", 1, "0" * 64)
    changed = sealed.changed({"input": {"a": 2}})
    assert changed == replaced_record(sealed, input={"a": 2})
    assert changed.canonical_body() == replaced_record(sealed, input={"a": 2}).canonical_body()
    assert sealed.input == {"a": 1}
    assert sealed.canonical_body() == built.seal("chain", 1, "0" * 64).canonical_body()
    with pytest.raises(TypeError, match="nonsense"):
        built.changed({"nonsense": 1})


def replaced_record(record: DecisionRecord, **changes: Any) -> DecisionRecord:
    return DecisionRecord(**{f.name: changes.get(f.name, getattr(record, f.name)) for f in fields(record)})


def test_the_vaults_kept_macs_and_ciphers_equal_fresh_ones(tmp_path: Path) -> None:
    """Keyed fingerprints and subject hashes from the kept MACs are hmac.digest's; a record sealed
    with a kept cipher opens; after a subject is forgotten its cipher is gone with its key."""
    key = tmp_path / "key"
    MasterKey.create(key)
    log = DecisionLog(f"sqlite:///{tmp_path / 'a.db'}")
    vault = PiiVault(log.store, MasterKey.read(key))
    lookup = vault._lookup_key()

    def mac(purpose: bytes, text: str) -> str:
        return hmac.digest(lookup, purpose + text.encode(), "sha256").hex()

    for text in ["", "a" * 64, "李秀英", "x\0y"]:
        for _ in range(2):
            assert vault.keyed(text) == mac(b"fingerprint\0", text)
            assert vault.subject_hash(text) == mac(b"subject\0", text)
    assert vault._day_hash("2026-01-31") == mac(b"day\0", "2026-01-31")
    subject = vault.subject_hash("someone")
    first = vault._cipher(subject)
    assert vault._cipher(subject) is first  # kept while its key is
    message = first.encrypt(b"n" * 12, b"value", b"id")
    assert vault._cipher(subject).decrypt(b"n" * 12, message, b"id") == b"value"
    vault.forget("someone")
    assert subject not in vault._ciphers
    log.close()
