"""The durable_rules evaluator, contained: one owner per process (a lock) around every call into the
C engine, each ruleset name registered once, each decision one fact in a fresh session.

Containment (see /work/shared/DESIGN.md, "The rule engine"):
- durable_rules is not thread-safe. `_Engine` is the only code that touches it, and every one of its
  entry points (registration; assert + action dispatch + state deletion) runs under one process-wide
  lock, so the engine is never entered by two threads. A lock rather than a dedicated thread: the
  thread hand-off measured ~60 us per decision, the lock well under 1 us. Nothing else in Credo may
  import `durable`.
- `durable.engine.Host()` starts two `threading.Timer` chains that enter the C engine every 0.2 s to
  dispatch queued actions and timers. Our Host subclass switches them off (`_run` does nothing): our
  actions are synchronous and run inside the assert call, and we use no durable timers.
- One decision = one fact asserted under a fresh sid, then that sid's state is deleted (durable keeps
  session state in C memory until then: without the delete, the state table fills and the assert
  raises MemoryError after a few thousand decisions). A fact, not an event: an event is consumed by
  the first rule that matches it, so only one rule would fire.
- Every ruleset gets an extra rule `always` that matches every message. durable's createStateNode
  leaves the session's action context uninitialised; only running an action sets it, so deleting
  the state of a fact that matched nothing frees garbage pointers (segfault / "free(): invalid
  pointer", measured on the very first decision of a ruleset). With `always`, every decision runs at
  least one action, `MessageNotHandledException` never happens, and deletion is safe. Cost: one
  extra action (~12 us) per decision.
- More than 64 rule activations on one fact crash durable too: see engine.rules.encoding for the
  chunking that prevents it (a large RuleSet may be several durable rulesets, `name#1`, ...).
- Dispatch: durable's Python Host runs each fired action through a Closure, a Promise and a
  callback, with a JSON round trip of the message and the session state per action (~30 us a fire,
  more than the C matching). Our actions only record the rule name, so `_fire_chunk` drives the
  same C calls itself, in durable's order (assert_fact; start_action_for_state; per action:
  update_state with the unchanged state, complete_and_start_action; on failure abandon_action),
  and reads the action name off the message text without parsing it.
- An exception inside an action is stored in the session state (`exception`), as durable does; the
  state is checked after the fire and a RuleActionError raised.
- Ruleset names are registered at most once per process (durable cannot unregister, and each ruleset
  leaks its C memory); asking again for the same RuleSet reuses it, a different one is RulesetConflict.
Values are encoded as order-preserving strings for exact comparisons: see engine.rules.encoding.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import durable_rules_engine  # the C extension under durable.engine (only ever called under the lock)
from durable import engine as durable_engine

from engine.errors import RuleActionError, RuleEngineError, RulesetConflict
from engine.rules.encoding import ALWAYS, CompiledRuleSet, compile_ruleset
from engine.rules.ir import RuleSet

__all__ = ["DurableEvaluator"]

_SAFE_NAME = re.compile(r"[A-Za-z0-9_.@/:+-]{1,200}")


class _QuietHost(durable_engine.Host):
    """A durable_rules Host without the background dispatch/timer threads."""

    def _run(self) -> None:
        return None


class _Engine:
    """Everything that touches durable_rules, each entry point under the one process-wide lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._host: Any = None
        self._rulesets: dict[str, CompiledRuleSet] = {}
        self._handles: dict[str, int] = {}  # durable ruleset (chunk) name -> its C handle
        self._actions: dict[str, dict[str, Callable[[Any], None]]] = {}  # chunk -> rule -> action
        self._fired: list[str] = []
        self._sids = itertools.count()

    def lookup(self, ruleset: RuleSet) -> CompiledRuleSet | None:
        """The registered translation of `ruleset`, None if not yet registered (a dict read: no lock)."""
        compiled = self._rulesets.get(ruleset.name)
        if compiled is None:
            return None
        if compiled.ruleset is not ruleset and compiled.ruleset != ruleset:
            raise RulesetConflict(f"ruleset {ruleset.name!r} is already registered with different rules")
        return compiled

    def register(self, ruleset: RuleSet) -> CompiledRuleSet:
        with self.lock:
            known = self.lookup(ruleset)
            if known is not None:
                return known
            if not _SAFE_NAME.fullmatch(ruleset.name):
                raise RuleEngineError(f"ruleset name {ruleset.name!r} is not usable in durable_rules")
            compiled = compile_ruleset(ruleset)
            if self._host is None:
                self._host = _QuietHost()
            chunks = dict(zip(compiled.chunk_names, compiled.chunks, strict=True))
            # kept apart from the definitions, which durable's Ruleset strips of their "run" entries
            actions = {
                chunk_name: {name: self._recorder(name) for name in chunk}
                for chunk_name, chunk in chunks.items()
            }
            definitions = {
                chunk_name: {
                    name: {"all": [{"m": condition}], "run": actions[chunk_name][name]}
                    for name, condition in chunk.items()
                }
                for chunk_name, chunk in chunks.items()
            }
            try:
                self._host.register_rulesets(definitions)
                for chunk_name in definitions:
                    self._handles[chunk_name] = self._host.get_ruleset(chunk_name)._handle
            except Exception as error:
                raise RuleEngineError(f"durable_rules refused ruleset {ruleset.name!r}: {error}") from error
            self._actions.update(actions)
            self._rulesets[ruleset.name] = compiled
            return compiled

    def _recorder(self, rule_name: str) -> Callable[[Any], None]:
        fired = self._fired

        def record(c: Any) -> None:  # durable requires exactly one parameter for a synchronous action
            fired.append(rule_name)

        return record

    def fire(self, compiled: CompiledRuleSet, message: dict[str, Any]) -> list[str]:
        with self.lock:
            self._fired.clear()
            for name in compiled.chunk_names:
                self._fire_chunk(name, message)
            return compiled.in_policy_order(self._fired)

    def _fire_chunk(self, name: str, message: dict[str, Any]) -> None:
        """durable.engine.Host.assert_fact + delete_state, minus durable's per-action Python machinery."""
        handle = self._handles[name]
        try:
            result = durable_rules_engine.assert_fact(handle, json.dumps(message, ensure_ascii=False))
        except Exception as error:
            raise RuleEngineError(f"durable_rules failed on ruleset {name!r}: {error}") from error
        if result[0] == 1:
            # Cannot happen (ALWAYS matches every message); deleting this state could crash.
            raise RuleEngineError(f"durable_rules did not fire {ALWAYS!r} on ruleset {name!r}")
        try:
            if result[0] == 2:
                raise durable_engine.MessageObservedException(message)
            state = self._run_actions(name, handle, 0 if result[0] == 3 else result[1])
        except Exception as error:
            # The state is left behind: deleting a state whose actions may not have run can crash.
            raise RuleEngineError(f"durable_rules failed on ruleset {name!r}: {error}") from error
        durable_rules_engine.delete_state(handle, str(message["sid"]))
        if state.get("exception"):
            raise RuleActionError(f"a rule action of {name!r} failed: {state['exception']}")

    def _run_actions(self, name: str, handle: int, state_handle: int) -> dict[str, Any]:
        """durable.engine.Ruleset.do_actions for synchronous actions: the same C calls in the same
        order; returns the session state (with `exception` set if an action raised, as durable does)."""
        started = durable_rules_engine.start_action_for_state(handle, state_handle)
        if not started:
            return {}
        state: dict[str, Any] = json.loads(started[0])
        # durable writes json.dumps(state) back after every action; it only changes if one raises
        state_text = json.dumps(state, ensure_ascii=False)
        actions = self._actions[name]
        pending: str | None = started[1]
        while pending:
            try:
                actions[self._action_name(actions, pending)](None)  # our actions never read the closure
            except Exception as error:
                state["exception"] = (
                    f"exception caught {error}, traceback {traceback.format_tb(error.__traceback__)}"
                )
                state_text = json.dumps(state, ensure_ascii=False)
            try:
                durable_rules_engine.update_state(handle, state_text)
                pending = durable_rules_engine.complete_and_start_action(handle, state_handle)
            except Exception:
                durable_rules_engine.abandon_action(handle, state_handle)
                raise
        return state

    @staticmethod
    def _action_name(actions: Mapping[str, Any], pending: str) -> str:
        """The action to run: the first key of durable's `{"<rule>": {"m": ...}}` message text. Our
        rule names are plain identifiers (`r12`, `always`), so no JSON escape can hide the closing
        quote; anything unexpected is parsed properly."""
        end = pending.find('"', 2)
        if pending.startswith('{"') and end > 2 and pending[2:end] in actions:
            return pending[2:end]
        return str(next(iter(json.loads(pending))))

    def next_sid(self) -> str:
        return str(next(self._sids))


_ENGINE = _Engine()
# A fork while another thread is inside the engine would copy it mid-call, with the lock held forever.
os.register_at_fork(
    before=_ENGINE.lock.acquire, after_in_parent=_ENGINE.lock.release, after_in_child=_ENGINE.lock.release
)


class DurableEvaluator:
    """Evaluates RuleSets on durable_rules. Safe to call from any number of threads: all engine
    work is serialised by the process's single engine lock."""

    name = "durable"

    def register(self, ruleset: RuleSet) -> None:
        """Register `ruleset` now (fire() does it on first use); RulesetConflict if the name is taken."""
        if _ENGINE.lookup(ruleset) is None:
            _ENGINE.register(ruleset)

    def fire(self, ruleset: RuleSet, fact: Mapping[str, Any]) -> list[str]:
        """Ids of the rules of `ruleset` whose condition holds for `fact`, in policy order."""
        compiled = _ENGINE.lookup(ruleset) or _ENGINE.register(ruleset)
        return _ENGINE.fire(compiled, compiled.message(fact, _ENGINE.next_sid()))
