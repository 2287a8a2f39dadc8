"""Canonical JSON: the specified byte form (sorted keys, no whitespace, UTF-8, Decimal as string,
ISO dates, floats refused), stable and round-tripping under random values."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.audit import record
from engine.audit.canonical import canonical_json, dumps_plain, json_dumps_plain, plain, plain_text_floats
from engine.audit.record import chain_hash, request_fingerprint
from engine.decision import Instalment
from engine.errors import CanonicalError
from engine.finance.schedule import schedule_sha256


def test_canonical_form_follows_the_spec() -> None:
    value = {
        "b": [1, True, None, "x"],
        "a": {"z": Decimal("1.50"), "é": "中文", "m": dt.date(2026, 1, 2)},
        "t": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "q": 'say "hi"\n',
    }
    assert (
        canonical_json(value)
        == (
            '{"a":{"m":"2026-01-02","z":"1.50","é":"中文"},"b":[1,true,null,"x"],'
            '"q":"say \\"hi\\"\\n","t":"2026-01-02T03:04:05+00:00"}'
        ).encode()
    )


def test_decimal_keeps_its_exponent() -> None:
    assert canonical_json(Decimal("1.5")) != canonical_json(Decimal("1.50"))


@pytest.mark.parametrize(
    "bad",
    [
        1.5,
        {"a": [0.1]},
        {1: "int key"},
        Decimal("NaN"),
        Decimal("Infinity"),
        dt.datetime(2026, 1, 1),  # naive
        b"bytes",
        {"s": {1, 2}},
        "\ud800",  # lone surrogate
    ],
)
def test_values_without_a_canonical_form_are_refused(bad: object) -> None:
    with pytest.raises(CanonicalError):
        canonical_json(bad)


def test_chain_hash_covers_prev_hash_and_body() -> None:
    body = {"seq": 1, "limit": Decimal("100")}
    assert chain_hash("0" * 64, body) != chain_hash("1" * 64, body)
    assert chain_hash("0" * 64, body) != chain_hash("0" * 64, {"seq": 1, "limit": Decimal("100.0")})


def test_fingerprint_ignores_key_order() -> None:
    fact = {"a": 1, "b": Decimal("2")}
    assert request_fingerprint("p", "en", fact) == request_fingerprint(
        "p", "en", dict(reversed(fact.items()))
    )


def test_fingerprint_covers_policy_language_and_every_value_exactly() -> None:
    fact = {"a": 1, "b": Decimal("2.0")}
    base = request_fingerprint("p", "en", fact)
    assert base != request_fingerprint("q", "en", fact)
    assert base != request_fingerprint("p", "zh", fact)
    assert base != request_fingerprint("p", "en", {"a": 1, "b": Decimal("2.00")})  # exponent kept


def test_schedule_hash_is_the_sha256_of_the_rows_canonical_json() -> None:
    """The record keeps schedules by this hash; its bytes are defined, so any tool can recompute it."""
    rows = (
        Instalment(1, Decimal("100.50"), Decimal("90.00"), Decimal("10.50"), Decimal("910.00")),
        Instalment(2, Decimal("100.50"), Decimal("91.00"), Decimal("9.50"), Decimal("819.00")),
    )
    table = [[r.period, r.payment, r.principal, r.interest, r.balance] for r in rows]
    assert schedule_sha256(rows) == hashlib.sha256(canonical_json(table)).hexdigest()
    assert schedule_sha256(rows) == schedule_sha256(list(rows))  # cached by identity, same value
    changed = (
        rows[0],
        Instalment(2, Decimal("100.50"), Decimal("91.00"), Decimal("9.50"), Decimal("819.01")),
    )
    assert schedule_sha256(changed) != schedule_sha256(rows)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.text()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.dates()
    | st.datetimes(timezones=st.just(dt.UTC))
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(values)
def test_canonical_is_stable_and_round_trips(value: object) -> None:
    try:
        first = canonical_json(value)
    except CanonicalError:
        return  # lone surrogates in random text
    assert canonical_json(value) == first
    parsed = json.loads(first)
    assert parsed == plain(value)
    assert canonical_json(parsed) == first
    # no insignificant whitespace outside strings: re-serialising compactly changes nothing
    assert json.dumps(parsed, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode() == first


# every character class json.dumps treats apart: escapes, controls, DEL, line separators, astral, surrogates
tricky_text = st.text(
    st.sampled_from(
        ['"', "\\", "/", "\x00", "\x1f", "\x7f", "\u2028", "\ufeff", "é", "李", "\U0001f600", "\ud800"]
    )
    | st.characters(),
    max_size=12,
)
plain_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**200), max_value=2**200) | tricky_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(tricky_text, children, max_size=5),
    max_leaves=24,
)


@given(plain_values)
def test_the_fast_encoder_writes_json_dumps_bytes_for_every_plain_value(value: object) -> None:
    """dumps_plain (msgspec) must write exactly the reference json.dumps bytes: every record hash
    stored before the switch verifies only if they are the same, and a lone surrogate is refused
    by both."""
    try:
        reference = json_dumps_plain(value)
    except CanonicalError:
        with pytest.raises(CanonicalError):
            dumps_plain(value)
        return
    assert dumps_plain(value) == reference


def test_a_str_or_int_subclass_takes_the_reference_encoder() -> None:
    class Name(str):
        pass

    class Count(int):
        pass

    value = {Name("b"): [Name("x\n"), Count(7)], "a": True}
    assert dumps_plain(value) == json_dumps_plain(value) == b'{"a":true,"b":["x\\n",7]}'


@given(st.dictionaries(st.text(max_size=5), st.integers(), max_size=6))
def test_key_order_does_not_matter(mapping: dict[str, int]) -> None:
    reversed_mapping = dict(reversed(list(mapping.items())))
    with contextlib.suppress(CanonicalError):
        assert canonical_json(mapping) == canonical_json(reversed_mapping)


def test_one_value_to_json_function_with_three_float_rules() -> None:
    """Issue 21: seven near-copies turned values into JSON with slightly different rules; there is
    one (engine.decision.plain), and canonical JSON is that contract with floats refused."""
    from enum import Enum

    from engine.decision import NotPlain
    from engine.decision import plain as to_plain

    class Kind(Enum):
        A = "a"

    value = {"d": Decimal("1.50"), "e": Kind.A, "t": (1, "x"), "day": dt.date(2026, 1, 2), "f": 0.1}
    assert to_plain(value, "number") == {"d": "1.50", "e": "a", "t": [1, "x"], "day": "2026-01-02", "f": 0.1}
    assert to_plain(value, "text")["f"] == "0.1"
    with pytest.raises(NotPlain):
        to_plain(value)  # floats refused by default
    with pytest.raises(CanonicalError):
        canonical_json(value)
    for bad in ({1: "int key"}, {b"x"}, Decimal("NaN"), dt.datetime(2026, 1, 1), float("inf")):
        with pytest.raises(NotPlain):
            to_plain(bad, "number")


def test_fingerprint_value_is_pinned_across_versions() -> None:
    """Stored records and retries across restarts compare fingerprints: the value of a known
    request never changes (sha256 of its canonical JSON, written out here by hand)."""
    fact = {
        "applicant.age": 40,
        "loan.amount": Decimal("5000.00"),
        "name": 'Zoë "Z"',
        "dob": dt.date(1990, 1, 2),
    }
    text = (
        '{"input":{"applicant.age":40,"dob":"1990-01-02","loan.amount":"5000.00","name":"Zoë \\"Z\\""},'
        '"language":"en","policy":"p"}'
    )
    assert request_fingerprint("p", "en", fact) == hashlib.sha256(text.encode("utf-8")).hexdigest()


fact_values = scalars | st.floats(allow_nan=False) | st.lists(st.integers(), max_size=3)


@given(st.dictionaries(st.text(max_size=6), fact_values, max_size=6), st.text(max_size=4))
def test_fingerprint_equals_the_canonical_json_of_the_request(fact: dict[str, object], language: str) -> None:
    """The fingerprint's scalar fast path writes the very bytes canonical JSON writes (with floats
    as text), for every value a validated fact can hold; lone surrogates are refused alike."""
    request = {"policy": "p", "language": language, "input": plain_text_floats(fact)}
    try:
        want = hashlib.sha256(dumps_plain(request)).hexdigest()
    except CanonicalError:
        with pytest.raises(CanonicalError):
            request_fingerprint("p", language, fact)
        return
    assert request_fingerprint("p", language, fact) == want


def test_fingerprints_of_endless_new_field_names_keep_their_bytes_and_a_bounded_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fingerprint keeps each set of field names' sorted JSON texts for the next decision;
    sets past its bound (inputs no policy validates, say) are written out each time, to the same
    bytes."""
    monkeypatch.setattr(record, "_member_plans", {})
    monkeypatch.setattr(record, "_MAX_PLANS", 8)
    for n in range(40):
        fact = {f"field.{n}": n, f'"odd" {n}': "x", "a": None}
        want = hashlib.sha256(dumps_plain({"policy": "p", "language": "en", "input": fact})).hexdigest()
        assert request_fingerprint("p", "en", fact) == want
        assert request_fingerprint("p", "en", fact) == want  # the second time from a kept plan
    assert len(record._member_plans) == 8
