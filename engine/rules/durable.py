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
- An exception inside an action is only stored by durable in the session state (`exception`): the
  state returned by the assert is checked and a RuleActionError raised.
- Ruleset names are registered at most once per process (durable cannot unregister, and each ruleset
  leaks its C memory); asking again for the same RuleSet reuses it, a different one is RulesetConflict.
Values are encoded as order-preserving strings for exact comparisons: see engine.rules.encoding.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from durable import engine as durable_engine

from engine.rules.encoding import ALWAYS, CompiledRuleSet, compile_ruleset
from engine.rules.errors import RuleActionError, RuleEngineError, RulesetConflict
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
            definitions = {
                chunk_name: {
                    name: {"all": [{"m": condition}], "run": self._recorder(name)}
                    for name, condition in chunk.items()
                }
                for chunk_name, chunk in zip(compiled.chunk_names, compiled.chunks, strict=True)
            }
            try:
                self._host.register_rulesets(definitions)
            except Exception as error:
                raise RuleEngineError(f"durable_rules refused ruleset {ruleset.name!r}: {error}") from error
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
        try:
            state = self._host.assert_fact(name, message)
        except durable_engine.MessageNotHandledException as error:
            # Cannot happen (ALWAYS matches every message); deleting this state could crash.
            raise RuleEngineError(f"durable_rules did not fire {ALWAYS!r} on ruleset {name!r}") from error
        except Exception as error:
            # The state is left behind: deleting a state whose actions may not have run can crash.
            raise RuleEngineError(f"durable_rules failed on ruleset {name!r}: {error}") from error
        self._host.delete_state(name, message["sid"])
        if isinstance(state, dict) and state.get("exception"):
            raise RuleActionError(f"a rule action of {name!r} failed: {state['exception']}")

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

    def register(self, ruleset: RuleSet) -> None:
        """Register `ruleset` now (fire() does it on first use); RulesetConflict if the name is taken."""
        if _ENGINE.lookup(ruleset) is None:
            _ENGINE.register(ruleset)

    def fire(self, ruleset: RuleSet, fact: Mapping[str, Any]) -> list[str]:
        """Ids of the rules of `ruleset` whose condition holds for `fact`, in policy order."""
        compiled = _ENGINE.lookup(ruleset) or _ENGINE.register(ruleset)
        return _ENGINE.fire(compiled, compiled.message(fact, _ENGINE.next_sid()))
