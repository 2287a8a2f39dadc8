"""The decision record: everything needed to prove, explain and replay one decision, hash-chained.
`hash = sha256(prev_hash || canonical_json(record without "hash"))`; see `chain_hash`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

import engine
from engine.audit.canonical import canonical_json, dumps_plain, plain_text_floats, sha256_hex
from engine.decision import Decision, FloatRule, ModelRef, NotPlain, PolicyRef, fields_plainer
from engine.errors import CanonicalError
from engine.finance.dates import SAME_DAY, dated_as, due_dates, utc_date
from engine.finance.schedule import schedule_sha256

__all__ = [
    "GENESIS_HASH",
    "RECORD_VERSION",
    "DecisionRecord",
    "chain_hash",
    "decision_id_at",
    "decision_summary",
    "new_chain_id",
    "new_decision_id",
    "request_fingerprint",
    "utc_text",
]

RECORD_VERSION = 2  # 2: lean (schedules by sha256, no raw application, trace as stages)
GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class DecisionRecord:
    """One audit record. Every field is JSON-native (engine.decision.plain) so that the stored
    canonical bytes parse back to an equal record. Chain fields are filled by the log's writer.

    Lean, with the same guarantees: the record holds what decided (the validated input, derived
    values, raw model outputs, each stage's fired rules and values) and the Decision's summary
    (outcome, reasons, score, limit, rate, each offer's terms, instalment and totals); each offer's
    full schedule is kept as its sha256 with what recomputes it, and replay recomputes and compares
    it. The trace is the record's `stages` (timings as text)."""

    decision_id: str
    request_id: str
    request_fingerprint: str  # sha256 of the validated input and the options (see request_fingerprint)
    received_at: str
    policy: dict[str, Any]  # {name, version, sha256}: the policy text is archived by sha256
    models: list[dict[str, Any]]  # [{name, version, sha256}]: model.onnx archived by sha256
    engine_version: str
    input: dict[str, Any]  # the validated flat fact: replay validates and decides it again
    derived: dict[str, Any]
    model_outputs: dict[str, Any]  # raw model outputs (pd as exact text, features as scored)
    stages: list[dict[str, Any]]  # per stage: fired rules, values, millis (the Decision's trace)
    outcome: str
    decision: dict[str, Any]  # decision_summary(): the Decision without trace and schedule rows
    archive: dict[str, str] = field(default_factory=dict)  # {relative path: sha256} of archived files
    extra: dict[str, Any] = field(default_factory=dict)  # options (language), champion/challenger etc.
    record_version: int = RECORD_VERSION
    chain_id: str = ""
    seq: int = 0
    prev_hash: str = ""
    hash: str = ""

    @classmethod
    def build(
        cls,
        decision: Decision,
        *,
        request_fingerprint: str,
        received_at: dt.datetime | str,
        input: Mapping[str, Any],
        derived: Mapping[str, Any] | None = None,
        model_outputs: Mapping[str, Any] | None = None,
        rounding: str = "half_even",
        engine_version: str | None = None,
        archive: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> DecisionRecord:
        """A record of `decision` and the pipeline's values; `rounding` is the policy's, which
        recomputes the schedules. Floats (timings, raw probabilities) are kept as exact text.
        Every decision of a logged service builds one: its fields are set as seal() sets them (no
        frozen __init__: nothing here is checked there), and the policy's and models' refs, the
        same objects decision after decision, are made plain once."""
        if engine_version is None:
            engine_version = engine.__version__
        record = object.__new__(cls)
        record.__dict__.update(
            decision_id=decision.decision_id,
            request_id=decision.request_id,
            request_fingerprint=request_fingerprint,
            received_at=utc_text(received_at),
            policy=_plain_ref(decision.policy),
            models=[_plain_ref(model) for model in decision.models],
            engine_version=str(engine_version),
            input=plain_text_floats(input),
            derived=plain_text_floats(derived or {}),
            model_outputs=plain_text_floats(model_outputs or {}),
            stages=plain_text_floats(decision.trace),
            outcome=decision.outcome.value,
            decision=decision_summary(decision, rounding),
            archive=dict(archive or {}),
            extra=plain_text_floats(extra or {}),
            record_version=RECORD_VERSION,
            chain_id="",
            seq=0,
            prev_hash="",
            hash="",
        )
        return record

    def body(self) -> dict[str, Any]:
        """The hashed part: every field but `hash`."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "hash"}

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def canonical(self) -> bytes:
        """Canonical JSON of the whole record, hash included: one exported line."""
        return canonical_json(self.to_dict())

    def canonical_body(self) -> bytes:
        """The hashed bytes, canonical_json(body()): what the store keeps beside the hash."""
        cached: bytes | None = self.__dict__.get("_canonical_body")
        return cached if cached is not None else canonical_json(self.body())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecisionRecord:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown record fields: {sorted(unknown)}")
        return cls(**dict(data))

    def changed(self, changes: Mapping[str, Any]) -> DecisionRecord:
        """A copy with the fields `changes` (each plain, as build makes them): dataclasses.replace
        without __init__, on the decision path (personal data sealed). The chain fields are copied
        as they are; the sealed bytes kept by seal() are not (they are of the old fields)."""
        unknown = changes.keys() - _FIELD_NAMES
        if unknown:
            raise TypeError(f"unknown record fields: {sorted(unknown)}")
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.__dict__.pop("_canonical_body", None)
        copy.__dict__.update(changes)
        return copy

    def seal(self, chain_id: str, seq: int, prev_hash: str) -> DecisionRecord:
        """This record placed in a chain: chain fields set and hash computed. The log's leader
        seals every record of a batch while its callers wait, so this copies the record's fields
        once (no dataclasses.replace: nothing here needs __init__ again)."""
        mine = self.__dict__
        chained = {"chain_id": chain_id, "seq": seq, "prev_hash": prev_hash}
        body = dumps_plain({name: mine[name] for name in _BODY} | chained)  # build/from_dict: plain
        sealed = object.__new__(type(self))
        # the writer stores exactly these bytes
        sealed.__dict__.update(mine)
        sealed.__dict__.update(
            chained, hash=sha256_hex(prev_hash.encode("ascii") + body), _canonical_body=body
        )
        return sealed

    def computed_hash(self) -> str:
        return chain_hash(self.prev_hash, self.body())


_FIELD_NAMES = frozenset(f.name for f in fields(DecisionRecord))
_BODY = tuple(
    f.name for f in fields(DecisionRecord) if f.name not in ("hash", "chain_id", "seq", "prev_hash")
)


def chain_hash(prev_hash: str, body: Mapping[str, Any]) -> str:
    """sha256 over the ASCII hex of prev_hash followed by canonical_json(body); hex digest."""
    return sha256_hex(prev_hash.encode("ascii") + canonical_json(body))


def utc_text(when: dt.datetime | str) -> str:
    """A time as the log stores it: UTC ISO 8601 with microseconds, so text order is time order.
    Naive times are refused: the log must not guess a time zone."""
    if isinstance(when, str):
        when = dt.datetime.fromisoformat(when)
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"time {when.isoformat()} has no time zone")
    return when.astimezone(dt.UTC).isoformat(timespec="microseconds")


def decision_summary(decision: Decision, rounding: str) -> dict[str, Any]:
    """The Decision as its record keeps it: every field but the trace (the record's `stages`) and
    record_hash; each offer's schedule rows replaced by {"sha256", "rows", "rounding"}, enough to
    recompute them (engine.pipeline.candidates.offer_schedule) and prove them equal, plus "due" when
    the rows are dated (engine.finance.dates.dated_as: "same" or the first due date).
    That is plain_text_floats(replaced(decision, trace=(), offers=())) less trace and record_hash,
    and of each offer replaced(offer, schedule=()), written by code made per class that leaves
    those fields out (engine.decision.fields_plainer) instead of copying the values to plain."""
    try:
        body = _summary_plainer(type(decision), _NOT_SUMMED)(decision, "text")
        offers = []
        same_day: tuple[str, dt.date] | None = None  # (decided_at, its UTC date), read once
        for offer in decision.offers:
            terms = _summary_plainer(type(offer), _NOT_TERMS)(offer, "text")
            rows = offer.schedule
            kept = {"sha256": schedule_sha256(rows), "rows": len(rows), "rounding": rounding}
            if rows and rows[0].due_date:
                dates = tuple([row.due_date for row in rows])
                if same_day is None or same_day[0] != decision.decided_at:
                    same_day = (decision.decided_at, utc_date(decision.decided_at))
                # dated_as's first test, with the decision's date read once for all its offers
                same = dates == due_dates(same_day[1], len(dates), SAME_DAY, 0)
                kept["due"] = SAME_DAY if same else dated_as(decision.decided_at, dates)
            terms["schedule"] = kept
            offers.append(terms)
    except NotPlain as exc:
        raise CanonicalError(str(exc)) from None
    body["offers"] = offers
    return body


_NOT_SUMMED = frozenset({"trace", "record_hash", "offers"})  # offers: summed one by one
_NOT_TERMS = frozenset({"schedule"})
# (class, fields left out) -> its plainer: Decision and Offer, or a subclass a test makes
_summary_plainers: dict[tuple[type, frozenset[str]], Callable[[Any, FloatRule], dict[str, Any]]] = {}


def _summary_plainer(kind: type, leave_out: frozenset[str]) -> Callable[[Any, FloatRule], dict[str, Any]]:
    made = _summary_plainers.get((kind, leave_out))
    if made is None:
        made = _summary_plainers[kind, leave_out] = fields_plainer(kind, leave_out)
    return made


def _plain_ref(ref: Any) -> dict[str, Any]:
    """plain_text_floats(ref) of a policy or model ref, made once per ref object (a loaded policy
    binds its refs once, so every decision carries the same objects) and copied for each record;
    kept by identity (the object held, so its id is not reused) for at most _MAX_REFS refs."""
    hit = _refs.get(id(ref))
    if hit is not None and hit[0] is ref:
        return dict(hit[1])
    made: dict[str, Any] = plain_text_floats(ref)
    if type(ref) in _REF_TYPES and len(_refs) < _MAX_REFS:  # frozen: its plain form cannot change
        _refs[id(ref)] = (ref, dict(made))
    return made


_REF_TYPES = frozenset({PolicyRef, ModelRef})
_refs: dict[int, tuple[Any, dict[str, Any]]] = {}
_MAX_REFS = 1024


def request_fingerprint(policy: str, language: str, input: Mapping[str, Any]) -> str:
    """sha256 of what decides a request: the policy name, the options that change the answer
    (defaults applied: language "" is "en") and the *validated* input, in canonical JSON. The same
    request_id with the same fingerprint is a retry, with another one a conflict. The policy's
    version is left out: a retry after a reload still gets the decision it was given."""
    members = _scalar_members(input)
    if members is not None:  # scalars only (the common case): the same bytes without json.dumps
        text = f'{{"input":{{{members}}},"language":{_json_text(language)},"policy":{_json_text(policy)}}}'
        try:
            return sha256_hex(text.encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate: the general form refuses it with its error
            pass
    # plain once: canonical_json would walk the plain input a second time for the same bytes
    return sha256_hex(
        dumps_plain({"policy": policy, "language": language, "input": plain_text_floats(input)})
    )


_json_text = json.encoder.encode_basestring  # json.dumps' own string form (ensure_ascii=False)


def _scalar_members(input: Mapping[str, Any]) -> str | None:
    """The members of canonical_json(plain(input)) for an input of scalars only (str, int, bool,
    None, finite Decimal, date: what validation yields for scalar inputs), byte for byte; None
    when a value needs the general form."""
    plan = _member_plan(input)
    if plan is None:
        return None
    parts = []
    for name, key in plan:
        value = input[name]
        kind = type(value)
        if kind is str:
            parts.append(key + _json_text(value))
        elif kind is Decimal:
            if not value.is_finite():
                return None
            parts.append(f'{key}"{value}"')
        elif kind is int:
            parts.append(key + int.__repr__(value))
        elif value is None:
            parts.append(key + "null")
        elif kind is bool:
            parts.append(key + ("true" if value else "false"))
        elif kind is dt.date:
            parts.append(f'{key}"{value.isoformat()}"')
        else:
            return None
    return ",".join(parts)


def _member_plan(input: Mapping[str, Any]) -> list[tuple[str, str]] | None:
    """(name, the name's JSON text and a colon) for each name of `input`, sorted; None when a name
    is not a str. Made once per set of names (a policy's validated inputs have one or a few) and
    kept for at most _MAX_PLANS sets: past that, made on every call."""
    names = tuple(input)
    plan = _member_plans.get(names)
    if plan is None:
        if any(type(name) is not str for name in names):
            return None
        plan = [(name, f"{_json_text(name)}:") for name in sorted(names)]
        if len(_member_plans) < _MAX_PLANS:
            _member_plans[names] = plan
    return plan


# a set of input names, in the input's order -> its plan (the same few sets on every decision)
_member_plans: dict[tuple[str, ...], list[tuple[str, str]]] = {}
_MAX_PLANS = 1024


_id_lock = threading.Lock()
_last_ms = 0
_counter = 0
_ms_text = ""  # the id's first 13 hex digits (time, version) for _last_ms
# Random bits for ids are read from the OS in blocks (one urandom call per 512 ids, not one per id)
# and kept as hex text, each id cutting its last 19 characters from its own 16 digits; a forked
# worker drops its parent's block so no two processes share bits.
_RANDOM_BLOCK = 4096
_random_hex = ""  # the block as hex, 16 digits per id, the variant already set
_hex_at = 0  # where the next id's 16 digits start
_VARIANT = bytes((byte & 0x3F) | 0x80 for byte in range(256))  # 0b10xx xxxx: RFC 4122's variant
_COUNTER_TEXT = [f"{n:03x}" for n in range(256)]  # the counter's text, below 256 (nearly always)


def _forget_random() -> None:
    global _random_hex, _hex_at
    _random_hex, _hex_at = "", 0


os.register_at_fork(after_in_child=_forget_random)


def _random_block() -> str:
    """A block of random bits as hex text, 64 bits per id: the top two bits of each id's first
    byte set to the variant (62 random bits left)."""
    block = bytearray(os.urandom(_RANDOM_BLOCK))
    block[::8] = block[::8].translate(_VARIANT)
    return block.hex()


def new_decision_id(now: float | None = None) -> str:
    """A UUIDv7 string: 48-bit Unix milliseconds first, so ids sort by time; a 12-bit counter keeps
    ids from one process strictly increasing within a millisecond; 62 random bits."""
    return decision_id_at(int((time.time() if now is None else now) * 1000))


def decision_id_at(ms: int) -> str:
    """`new_decision_id` at Unix time `ms` in whole milliseconds (the service reads the clock once,
    in µs, for the id and decided_at both)."""
    global _last_ms, _counter, _ms_text, _random_hex, _hex_at
    _id_lock.acquire()  # not `with`: its __enter__ and __exit__ lookups cost as much as the lock
    try:
        if ms > _last_ms:
            _last_ms, _counter = ms, 0
            _ms_text = f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-7"
        else:
            _counter += 1
            if _counter > 0xFFF:
                _last_ms += 1
                _counter = 0
                _ms_text = f"{_last_ms >> 16:08x}-{_last_ms & 0xFFFF:04x}-7"
        at = _hex_at
        if at >= len(_random_hex):
            _random_hex, at = _random_block(), 0
        _hex_at = at + 16
        counter = _COUNTER_TEXT[_counter] if _counter < 256 else f"{_counter:03x}"
        # the tail "-vxxx-xxxxxxxxxxxx" cut here: two slices cost less than a block's 512 made ahead
        hex_ = _random_hex
        return f"{_ms_text}{counter}-{hex_[at : at + 4]}-{hex_[at + 4 : at + 16]}"
    finally:
        _id_lock.release()


def new_chain_id() -> str:
    """A fresh chain id for one writer process (time-ordered, like decision ids)."""
    return new_decision_id()
