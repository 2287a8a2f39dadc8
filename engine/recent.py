"""Idempotency for a service that keeps no audit store: recent decisions by request_id, in memory,
bounded in bytes. With a store, the store's unique request_id index does this job instead.
"""

from __future__ import annotations

import datetime as dt
import operator
import sys
import threading
from collections import deque
from collections.abc import Mapping
from decimal import Decimal
from itertools import islice
from typing import Any, NamedTuple

from engine.audit.record import request_fingerprint
from engine.decision import Decision, Instalment, Offer, replaced
from engine.errors import IdempotencyConflict
from engine.finance.dates import due_dates, utc_date
from engine.finance.schedule import dated_schedule
from engine.pipeline.candidates import offer_schedule

__all__ = ["DEFAULT_MAX_BYTES", "RecentDecisions", "estimated_bytes"]

DEFAULT_MAX_BYTES = 64 * 1024 * 1024

# What one remembered Decision costs in memory (kept without its schedule rows, which are
# recomputed when asked for), from a recursive sys.getsizeof over the shipped policies' decisions
# (9-11 KB, ~65% of it the trace); tests/pipeline/test_recent_decisions.py keeps it an upper bound.
_BASE = 1024  # the Decision, its policy and model refs, score
_PER_STAGE = 768  # a trace entry with its values
_PER_REASON = 384
_PER_OFFER = 768  # an offer's terms; its schedule rows are not kept
_PER_KEY = 512  # the request_id, decision_id, fingerprint and the map's own entries
_PER_FIELD = 160  # an input field kept for its fingerprint: its value (a text's characters aside)
_ANSWER = _BASE + _PER_KEY  # what every answer is charged before its parts


def estimated_bytes(decision: Decision) -> int:
    """The memory `decision` is charged in the map (schedule rows left out): an estimate from its
    parts, an upper bound for the shipped policies' decisions."""
    return (
        _BASE
        + _PER_KEY
        + _PER_STAGE * len(decision.trace)
        + _PER_REASON * len(decision.reasons)
        + _PER_OFFER * len(decision.offers)
    )


# An offer is kept as its terms, every field but the schedule (rows recomputed when asked): one
# attrgetter call instead of a copy of the Offer without its rows (1 vs 7 µs for four offers).
_OFFER_TERMS = tuple(name for name in Offer.__dataclass_fields__ if name != "schedule")
_offer_terms = operator.attrgetter(*_OFFER_TERMS)
_NO_OFFERS: tuple[tuple[Any, ...], ...] = ()


# the values an input is kept as: validation bounds a Decimal's text to 64 characters and an int,
# bool, None or date is small; a text is charged by its length (a list or object is fingerprinted)
_SCALARS = frozenset({str, int, bool, type(None), Decimal, dt.date})
_PER_CHAR = 4  # a str's bytes per character at most (sys.getsizeof: 1, 2 or 4)
_getsizeof = sys.getsizeof
# an input kept as its values, at the end of the map's tuple: a slot of it and _PER_FIELD each
_PER_VALUE = _getsizeof((None,)) - _getsizeof(()) + _PER_FIELD


def _texts(asked: Mapping[str, Any]) -> tuple[str, ...] | None:
    """What Policy.text_inputs vouches for, found by looking at each value of `asked`: the names
    of its texts, or None when a value is no scalar (a list or an object)."""
    kinds = set(map(type, asked.values()))
    if not kinds <= _SCALARS:
        return None
    return tuple([name for name, value in asked.items() if type(value) is str]) if str in kinds else ()


class _Entry(NamedTuple):
    """A remembered answer and what its request asked, as its fingerprint is of
    (engine.audit.record.request_fingerprint): the policy name, the language (defaults applied)
    and the validated input; an input of scalars is kept as asked (the fingerprint is worked out
    only if its request_id comes again), any other as its fingerprint. The map keeps it as a plain
    tuple, `decision` first (see RecentDecisions and _entry)."""

    policy: str
    language: str
    offers: tuple[tuple[Any, ...], ...]  # each offer's _OFFER_TERMS
    rounding: str
    size: int
    due: tuple[str | int, int] | None  # the policy's (due_day, due_min_days): a booked offer's dates
    names: tuple[str, ...] | None  # the input's names, in order, when `asked` is its values alone
    asked: tuple[Any, ...] | Mapping[str, Any] | str  # the validated input, its values, or its fingerprint
    decision: Decision  # without its offers: `offers`, `rounding` and `due` rebuild them

    @property
    def input(self) -> Mapping[str, Any] | str:
        """The validated input as the request asked it, or its fingerprint."""
        asked = self.asked
        if isinstance(asked, tuple):  # its values alone, in the order of the policy's names
            assert self.names is not None
            return dict(zip(self.names, asked, strict=True))
        return asked

    def fingerprint(self) -> str:
        asked = self.input
        return asked if isinstance(asked, str) else request_fingerprint(self.policy, self.language, asked)

    def full(self) -> Decision:
        """The Decision as answered: each offer's schedule recomputed from its terms (as the
        offers stage built it), a credit line's empty, a booked offer's rows dated again from the
        decision's date under the policy's first-due convention (as booking dated them)."""
        if not self.offers:
            return self.decision
        offers = []
        decided = None
        for terms in self.offers:
            kept: dict[str, Any] = dict(zip(_OFFER_TERMS, terms, strict=True))
            schedule: tuple[Instalment, ...] = ()
            if kept["revolving"] is None:  # a credit line has no schedule
                schedule = offer_schedule(
                    kept["amount"],
                    kept["annual_rate"],
                    kept["term_months"],
                    kept["repayment_method"],
                    self.rounding,
                )
                if kept["offer_id"] and self.due is not None:  # booked: its rows carry due dates
                    decided = decided or utc_date(self.decision.decided_at)
                    dates = due_dates(decided, len(schedule), *self.due)
                    schedule = dated_schedule(schedule, dates)
            offers.append(Offer(**kept, schedule=schedule))
        return replaced(self.decision, offers=tuple(offers))


# An _Entry as the map keeps it, one plain tuple: the decision first, then the other fields in
# order, `asked` last; an input kept as its values (`names` set) is there as the values themselves,
# the tuple's tail, instead of a tuple of its own (~50 bytes less and one object less to collect).
_Kept = tuple[Any, ...]


def _entry(kept: _Kept) -> _Entry:
    """The _Entry of an answer as RecentDecisions keeps it (see _Kept)."""
    return _Entry._make((*kept[1:8], kept[8:] if kept[7] is not None else kept[8], kept[0]))


class RecentDecisions:
    """request_id -> (fingerprint, Decision) of this process's recent answers, the oldest forgotten
    first once their estimated size passes `max_bytes` (default 64 MiB: ~5,000 decisions with three
    offers; a schedule is kept as its terms and recomputed when the answer is asked for again).

    What is lost without a store: a retry that reaches another worker or process, or comes after
    its entry was forgotten or the process restarted, is decided again (possibly differently), and
    GetDecision finds only what this process remembers.

    Every answer costs one entry in a plain dict by request_id (the _Entry's fields as one plain
    tuple, the Decision first) and one in a deque that remembers the order: an OrderedDict's
    setdefault costs ~0.3 µs more than a dict's, on every answer. The index by decision_id is
    filled only when a get by decision_id comes (GetDecision: rare beside answers) with the answers
    kept since the last such get: one insert less per answer, and ~30 bytes."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: dict[str, _Kept] = {}  # by request_id (see _Kept)
        self._by_decision: dict[str, str] = {}  # decision_id -> request_id, of the oldest answers
        self._order: deque[str] = deque()  # the kept request_ids, oldest first
        self._indexed = 0  # how many of them, from the oldest, _by_decision holds
        self._lock = threading.Lock()

    def remember(
        self,
        request_id: str,
        policy: str,
        language: str,
        asked: Mapping[str, Any],
        decision: Decision,
        rounding: str,
        due: tuple[str | int, int] | None = None,
        texts: tuple[str, ...] | None = None,
        names: tuple[str, ...] | None = None,
    ) -> Decision:
        """Keep `decision` as the answer to `request_id`, whose request asked `policy` in `language`
        with the validated input `asked`, and return it; if the request_id was seen before, return
        that earlier answer instead (never two decisions), or raise IdempotencyConflict when it
        came with another fingerprint. `rounding` (the policy's) recomputes the schedules, and `due`
        (the policy's offers' due_day and due_min_days) dates a booked offer's rows again. `texts`
        (the policy's Policy.text_inputs) vouches that every value of `asked` is a scalar and names
        the text ones; None: each value's type is looked at. `names` (the policy's
        Policy.input_names) are the keys of every input it validates: an input of scalars with
        them all is kept as its values alone, in the entry's own tuple (~180 bytes less than a dict
        of one input, ~500 of fifteen). The fingerprints are worked out only for a request_id seen
        before: a first request (nearly all of them) only keeps what it asked."""
        slim, offers = decision, _NO_OFFERS  # offers are kept as terms, without their schedule rows
        if decision.offers:
            slim, offers = replaced(decision, offers=()), tuple([_offer_terms(o) for o in decision.offers])
        # estimated_bytes(decision), inline: one call less on every answer
        size = _ANSWER + _PER_STAGE * len(decision.trace)
        if decision.reasons:
            size += _PER_REASON * len(decision.reasons)
        if offers:
            size += _PER_OFFER * len(offers)
        # What the answer keeps of its request to recognise a retry, and its bytes beyond the
        # decision's: an input of scalars as its values (with all the policy's names, else as it
        # is), any other as the request's fingerprint.
        kept: Mapping[str, Any] | str = asked
        if texts is None:  # not vouched for: each value's type looked at
            texts = _texts(asked)
        if texts is None:
            kept, names = request_fingerprint(policy, language, asked), None
        else:
            if names is not None and len(names) == len(asked):  # not when `today` filled one in
                size += _PER_VALUE * len(names)
            else:
                names = None
                size += _getsizeof(asked) + _PER_FIELD * len(asked)
            if texts:
                size += _PER_CHAR * sum(
                    [len(text) for text in map(asked.get, texts) if isinstance(text, str)]
                )
        entry: _Kept
        if names is not None:  # the values at the tuple's end: no tuple of their own
            entry = (slim, policy, language, offers, rounding, size, due, names, *asked.values())
        else:
            entry = (slim, policy, language, offers, rounding, size, due, None, kept)
        lock = self._lock
        lock.acquire()  # not `with`: its __enter__ and __exit__ lookups cost as much as the lock
        try:
            earlier = self._entries.setdefault(request_id, entry)
            if earlier is entry:
                self._order.append(request_id)
                self.bytes += size
                if self.bytes > self.max_bytes:
                    self._forget_oldest()
                return decision
        finally:
            lock.release()
        # a request_id seen before (an entry is never changed once kept: compared outside the lock)
        if _entry(earlier).fingerprint() != _entry(entry).fingerprint():
            raise IdempotencyConflict(
                f"request_id {request_id!r} was already used for a different request; use a new request_id"
            )
        return _entry(earlier).full()

    def _forget_oldest(self) -> None:
        """Forget the oldest answers until the map is back within its bytes (the newest stays)."""
        entries, order, index = self._entries, self._order, self._by_decision
        while self.bytes > self.max_bytes and len(order) > 1:
            request_id = order.popleft()
            old = entries.pop(request_id)
            if self._indexed:
                self._indexed -= 1
                if index.get(old[0].decision_id) == request_id:  # not a newer answer's, same id
                    del index[old[0].decision_id]
            self.bytes -= old[5]  # its size

    def _entry(self, request_id: str) -> _Entry | None:
        """The answer kept for `request_id` with what its request asked, or None (under the lock)."""
        kept = self._entries.get(request_id)
        return None if kept is None else _entry(kept)

    def get(self, *, request_id: str = "", decision_id: str = "") -> Decision | None:
        with self._lock:
            if decision_id:
                self._index()
                request_id = self._by_decision.get(decision_id, "")
            kept = self._entries.get(request_id) if request_id else None
        return _entry(kept).full() if kept is not None else None

    def _index(self) -> None:
        """Put the answers kept since the last get by decision_id in the index (under the lock)."""
        order, entries, index = self._order, self._entries, self._by_decision
        fresh = list(islice(reversed(order), len(order) - self._indexed))
        for request_id in reversed(fresh):  # oldest first: a decision_id kept twice finds the newer
            index[entries[request_id][0].decision_id] = request_id
        self._indexed = len(order)

    def __len__(self) -> int:
        return len(self._entries)
