"""The shadow check: a sample of live decisions re-run on a second rule engine (durable_rules by
default) after they are answered, on one background thread, comparing what fired at every stage.

A decision is one fact evaluated once; a second, independent engine catches a bug in the first
(the compiled evaluator) on live traffic. The check never delays or changes an answer: it waits
for the decision's audit commit (the answer goes out right after it), runs off the request
thread, and a full queue drops the check (counted as "skipped") rather than holding a request.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from engine.decision import TraceEntry
from engine.errors import CredoError
from engine.pipeline.context import ModelProvider
from engine.pipeline.table import run_pipeline
from engine.policy.model import Policy
from engine.rules import Evaluator

__all__ = ["ShadowCheck", "stage_firings"]

log = logging.getLogger("credo.shadow")
RESULTS = ("agree", "disagree", "error", "skipped")
QUEUE_MAX = 1024


def stage_firings(trace: Sequence[TraceEntry]) -> list[tuple[str, list[str], Any]]:
    """What the rule engine decided at each stage: the rules that fired and the table rows matched."""
    return [(e.stage, list(e.fired), e.values.get("tables")) for e in trace]


class Committed(Protocol):
    """The audit commit of a decision (a Future or the log's ticket): `result()` waits for it."""

    def result(self) -> Any: ...


@dataclass(frozen=True)
class _Job:
    policy: Policy
    application: Mapping[str, Any]
    language: str
    decision_id: str
    firings: list[tuple[str, list[str], Any]]
    models: ModelProvider
    committed: Committed | None


class ShadowCheck:
    """Re-runs `rate` of the decisions offered to it on `evaluator`; `on_result(result)` is called
    once per offered decision with one of agree, disagree, error, skipped (a metrics counter)."""

    def __init__(
        self,
        rate: float,
        evaluator: Evaluator,
        on_result: Callable[[str], None] = lambda result: None,
        sample: Callable[[], float] = random.random,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"shadow rate must be between 0 and 1, not {rate}")
        self.rate = rate
        self.evaluator = evaluator
        self.on_result = on_result
        self._sample = sample
        self._jobs: queue.Queue[_Job | None] = queue.Queue(QUEUE_MAX)
        self._thread = threading.Thread(target=self._run, name="credo-shadow", daemon=True)
        self._thread.start()

    def wanted(self) -> bool:
        """Whether the next decision is in the sample."""
        return self.rate > 0.0 and (self.rate >= 1.0 or self._sample() < self.rate)

    def offer(
        self,
        policy: Policy,
        application: Mapping[str, Any],
        language: str,
        decision_id: str,
        trace: Sequence[TraceEntry],
        models: ModelProvider,
        committed: Committed | None = None,
    ) -> None:
        """Queue the decision for the check if it is in the sample; never blocks (a full queue
        skips it). Cheap when it is not: called on the request thread, with the decision's trace (its
        firings are read only for a decision in the sample)."""
        if not self.wanted():
            return
        job = _Job(policy, application, language, decision_id, stage_firings(trace), models, committed)
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            self.on_result("skipped")

    def drain(self) -> None:
        """Wait until every check queued so far has reported its result."""
        self._jobs.join()

    def close(self, timeout: float = 5.0) -> None:
        """Finish the checks queued so far (up to `timeout`), then stop the thread."""
        self._jobs.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                self.on_result(self.check(job))
            finally:
                self._jobs.task_done()

    def check(self, job: _Job) -> str:
        if job.committed is not None:
            try:
                job.committed.result()  # the answer is released with the commit: check after it
            except Exception:
                return "skipped"  # not committed, so not answered: nothing to check
        try:
            ctx = run_pipeline(job.policy, job.application, self.evaluator, job.models, job.language)
            again = stage_firings(ctx.trace)
        except CredoError as exc:
            log.error(
                "shadow check failed",
                extra={"decision_id": job.decision_id, "engine": self.evaluator.name, "error": exc.code},
            )
            return "error"
        except Exception:
            log.exception("shadow check crashed", extra={"decision_id": job.decision_id})
            return "error"
        if again == job.firings:
            return "agree"
        log.error(
            "shadow disagreement",
            extra={
                "decision_id": job.decision_id,
                "policy": f"{job.policy.name}@{job.policy.version}",
                "engine": self.evaluator.name,
                "decided": [[stage, fired] for stage, fired, _ in job.firings],
                "shadow": [[stage, fired] for stage, fired, _ in again],
            },
        )
        return "disagree"
