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
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import durable_rules_engine  # the C extension; only ever called under the engine lock

from engine.rules.durable import _ENGINE
from engine.rules.encoding import ALWAYS, CompiledRuleSet
from engine.rules.errors import RuleActionError, RuleEngineError
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

    def __len__(self) -> int:
        return len(self._home)

    def fire(self, key: str, fact: Mapping[str, Any]) -> list[str]:
        """Ids of the rules whose condition holds for `fact`, in policy order, in `key`'s session."""
        with _ENGINE.lock:
            shard = self._home.get(key)
            if shard is None:
                shard = self._open(key)
            compiled = self._shards[shard]
            fact_id = self._ids[key]
            self._ids[key] = fact_id + 1
            message = compiled.message(fact, self._prefix + key)
            message["id"] = str(fact_id)
            _ENGINE._fired.clear()
            for name in compiled.chunk_names:
                self._fire_chunk(name, message)
            return compiled.in_policy_order(_ENGINE._fired)

    def close(self, key: str) -> None:
        """Delete `key`'s session state (its loan closed); nothing if it has none."""
        with _ENGINE.lock:
            shard = self._home.pop(key, None)
            self._ids.pop(key, None)
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
        self._load[index] += 1
        self._home[key] = index
        self._ids[key] = 0
        return index

    @staticmethod
    def _fire_chunk(name: str, message: dict[str, Any]) -> None:
        handle = _ENGINE._handles[name]
        text = json.dumps(message, ensure_ascii=False)
        try:
            result = durable_rules_engine.assert_fact(handle, text)
            if result[0] in (1, 2):  # not matched / already seen: ALWAYS and fresh ids rule both out
                raise RuleEngineError(f"durable_rules did not fire {ALWAYS!r} on ruleset {name!r}")
            state = _ENGINE._run_actions(name, handle, 0 if result[0] == 3 else result[1])
            durable_rules_engine.retract_fact(handle, text)
        except RuleEngineError:
            raise
        except Exception as error:
            raise RuleEngineError(f"durable_rules failed on ruleset {name!r}: {error}") from error
        if state.get("exception"):
            raise RuleActionError(f"a rule action of {name!r} failed: {state['exception']}")


def _register(ruleset: RuleSet) -> CompiledRuleSet:
    # called with the engine lock held; _ENGINE.register takes it itself, so release around it
    _ENGINE.lock.release()
    try:
        return _ENGINE.register(ruleset)
    finally:
        _ENGINE.lock.acquire()
