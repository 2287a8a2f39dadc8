"""Stateful durable_rules sessions, one per key (a loan id), inside the same single-owner
containment as engine.rules.durable: every call into the C engine holds that module's one lock.

Why the shapes below (measured on durable_rules 2.0.28, see tests/monitor):
- A durable ruleset holds at most 1024 live sessions (the 1025th assert raises MemoryError). So a
  RuleSet is served by shards, each a durable ruleset `<name>+s<k>` holding up to SHARD_SESSIONS
  keys; a shard is registered the first time every earlier one is full and reused for ever after
  (names register once per process and leak their C memory, so shards are never dropped).
- A key keeps its session until `close(key)` deletes its state (a loan closing). Each evaluation
  asserts one fact with a fresh id under sid = key, runs the fired actions, then retracts the fact,
  so a long-lived session holds no facts between evaluations (RSS stays flat over 1M events).
- Every ruleset carries the ALWAYS rule (see durable.py): each fact runs an action, so the
  session's action context is initialised before its state is ever deleted.
- Rules are pure functions of the fact, so a key whose fact (the fields the rules read) equals the
  one it last asserted gets the last answer without entering the engine: most loan events (a tick,
  an on-time payment) change nothing a rule reads. This memo made monitoring ~2x faster.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import durable_rules_engine  # the C extension; only ever called under the engine lock

from engine.errors import RuleEngineError
from engine.rules.durable import _ENGINE
from engine.rules.encoding import ALWAYS, MISSING, SENTINEL, CompiledRuleSet, encode_value
from engine.rules.ir import RuleSet

__all__ = ["SHARD_SESSIONS", "DurableSessions"]

SHARD_SESSIONS = 1000


@dataclass
class _Pool:
    """The shards of one RuleSet in this process, shared by every DurableSessions over it."""

    shards: list[CompiledRuleSet] = field(default_factory=list)
    load: list[int] = field(default_factory=list)  # live sessions per shard


_POOLS: dict[str, _Pool] = {}
_INSTANCES = itertools.count()


class DurableSessions:
    """A RuleSet evaluated per key on durable_rules, each key its own session. The sid is the key,
    prefixed by this object's number when another DurableSessions over the same RuleSet came first
    in the process (two monitors of one policy must not share a loan's session)."""

    def __init__(self, ruleset: RuleSet):
        self.ruleset = ruleset
        instance = next(_INSTANCES)
        self._prefix = f"{instance}:" if ruleset.name in _POOLS else ""
        self._pool = _POOLS.setdefault(ruleset.name, _Pool())
        self._shards = self._pool.shards
        self._load = self._pool.load
        self._home: dict[str, int] = {}  # key -> shard index
        self._ids: dict[str, int] = {}  # key -> next fact id
        self._reads: list[tuple[str, ...]] = []  # per shard: the fact fields its rules read
        self._last: dict[str, tuple[tuple[Any, ...], list[str]]] = {}  # key -> (last read values, fired)

    def __len__(self) -> int:
        return len(self._home)

    def fire(self, key: str, fact: Mapping[str, Any]) -> list[str]:
        """Ids of the rules whose condition holds for `fact`, in policy order, in `key`'s session."""
        shard = self._home.get(key)
        if shard is not None:
            # the values the rules read; equal values encode equally (1 == Decimal("1.0") both ways,
            # and a field's kind is fixed by its declared type, so True == 1 cannot meet here)
            read = tuple(map(fact.get, self._reads[shard]))
            last = self._last.get(key)
            if last is not None and last[0] == read:
                return list(last[1])  # no engine call: the memo is this object's own state
        with _ENGINE.lock:
            if shard is None:
                shard = self._open(key)
                read = tuple(map(fact.get, self._reads[shard]))
            compiled = self._shards[shard]
            fact_id = self._ids[key]
            self._ids[key] = fact_id + 1
            text = _message_text(compiled, fact, self._prefix + key, fact_id)
            names: list[str] = []
            for name in compiled.chunk_names:
                _fire_chunk(name, text, names)
            fired = compiled.in_policy_order(names)
            self._last[key] = (read, fired)
            return list(fired)

    def close(self, key: str) -> None:
        """Delete `key`'s session state (its loan closed); nothing if it has none."""
        with _ENGINE.lock:
            shard = self._home.pop(key, None)
            self._ids.pop(key, None)
            self._last.pop(key, None)
            if shard is None:
                return
            self._load[shard] -= 1
            for name in self._shards[shard].chunk_names:
                durable_rules_engine.delete_state(_ENGINE._handles[name], self._prefix + key)

    def _open(self, key: str) -> int:
        free = [i for i, load in enumerate(self._load) if load < SHARD_SESSIONS]
        if free:
            index = free[0]
        else:
            index = len(self._shards)
            shard = RuleSet(f"{self.ruleset.name}+s{index}", self.ruleset.rules, self.ruleset.fields)
            self._shards.append(_ENGINE.lookup(shard) or _register(shard))
            self._load.append(0)
        while len(self._reads) < len(self._shards):
            compiled = self._shards[len(self._reads)]
            self._reads.append((*compiled.fields, *compiled.copies))
        self._load[index] += 1
        self._home[key] = index
        self._ids[key] = 0
        return index


_ENCODED: dict[Any, str] = {}  # value -> its encoding; most fact values repeat (days past due, counts)


def _encoded(value: Any) -> str:
    key = (value.__class__, value)
    text = _ENCODED.get(key)
    if text is None:
        if len(_ENCODED) >= 65_536:
            _ENCODED.clear()
        text = _ENCODED[key] = encode_value(value)
    return text


def _message_text(compiled: CompiledRuleSet, fact: Mapping[str, Any], sid: str, fact_id: int) -> str:
    """The JSON text of CompiledRuleSet.message(fact, sid) with id `fact_id`, written directly:
    property names (f0, g0, t, id) and encoded values never need a JSON escape; the sid is escaped."""
    parts = [f'{{"sid":{json.dumps(sid, ensure_ascii=False)},"id":"{fact_id}","{SENTINEL}":"1"']
    for name, prop in compiled.fields.items():
        value = fact.get(name)
        if value is not None:
            parts.append(f'"{prop}":"{_encoded(value)}"')
    for name, prop in compiled.copies.items():
        value = fact.get(name)
        parts.append(f'"{prop}":"{MISSING if value is None else _encoded(value)}"')
    return ",".join(parts) + "}"


def _fire_chunk(name: str, text: str, fired: list[str]) -> None:
    """Assert the fact, run its actions (each only records its rule name), retract the fact: the C
    calls of durable.py's _fire_chunk/_run_actions in the same order, minus decoding and re-encoding
    the session state, which our actions never change."""
    handle = _ENGINE._handles[name]
    try:
        result = durable_rules_engine.assert_fact(handle, text)
        if result[0] in (1, 2):  # not matched / already seen: ALWAYS and fresh ids rule both out
            raise RuleEngineError(f"durable_rules did not fire {ALWAYS!r} on ruleset {name!r}")
        state_handle = 0 if result[0] == 3 else result[1]
        started = durable_rules_engine.start_action_for_state(handle, state_handle)
        if started:
            state_text, pending = started
            actions = _ENGINE._actions[name]
            while pending:
                fired.append(_ENGINE._action_name(actions, pending))
                try:
                    durable_rules_engine.update_state(handle, state_text)
                    pending = durable_rules_engine.complete_and_start_action(handle, state_handle)
                except Exception:
                    durable_rules_engine.abandon_action(handle, state_handle)
                    raise
        durable_rules_engine.retract_fact(handle, text)
    except RuleEngineError:
        raise
    except Exception as error:
        raise RuleEngineError(f"durable_rules failed on ruleset {name!r}: {error}") from error


def _register(ruleset: RuleSet) -> CompiledRuleSet:
    # called with the engine lock held; _ENGINE.register takes it itself, so release around it
    _ENGINE.lock.release()
    try:
        return _ENGINE.register(ruleset)
    finally:
        _ENGINE.lock.acquire()
