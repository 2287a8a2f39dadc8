"""Exact replay of a recorded decision on the policy text and model files archived beside it (never
today's files), re-run through the same pipeline and compared field by field with the record.

Replayed policies stay loaded: durable_rules registers a ruleset name (`<policy>@<sha12>/<stage>`)
once per process and cannot unregister it, so a replay of a policy whose sha256 is already loaded
reuses its rulesets (same name = same sha = same rules), and every *other* archived policy version
replayed in one process adds its rulesets for the life of the process. Replaying thousands of
distinct policy versions in one process therefore grows memory; run such audits in a short-lived
process (`credo replay` is one).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import shutil
import tempfile
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.audit.canonical import canonical_json
from engine.audit.pii import PiiVault
from engine.audit.record import DecisionRecord
from engine.audit.store import AuditStore
from engine.decision import Decision, plain
from engine.errors import ArchiveMissing, CredoError, ModelError, NotFound
from engine.finance.dates import utc_date
from engine.pipeline import ModelProvider, build_decision, run_pipeline
from engine.pipeline.render import decision_from_dict, decision_from_record
from engine.policy import Policy
from engine.rules import Evaluator
from engine.rules import evaluator as rule_engine
from engine.sources import ArchiveSource

__all__ = ["FieldDiff", "ReplayResult", "Replayer", "diff_values"]

RECORD_FIELDS = ("input", "derived", "model_outputs", "stages")  # compared beside the Decision
TIMING_KEYS = frozenset({"millis"})  # the only recorded values allowed to differ (stages[].millis)


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class FieldDiff:
    """One differing value: `path` like `offers[0].apr` or `derived.dti`."""

    path: str
    recorded: Any
    replayed: Any

    def __str__(self) -> str:
        return f"{self.path}: recorded {_show(self.recorded)}, replayed {_show(self.replayed)}"


@dataclass(frozen=True)
class ReplayResult:
    """The outcome of one replay: MATCH when no field differs (timings aside)."""

    decision_id: str
    recorded: Decision
    replayed: Decision | None  # None when the re-run raised (the error is the first diff)
    diffs: tuple[FieldDiff, ...]
    unrestored: dict[str, str] = field(default_factory=dict)  # sealed path -> why not opened

    @property
    def match(self) -> bool:
        """Every field restored and equal."""
        return not self.diffs and not self.unrestored

    @property
    def result(self) -> str:
        """MATCH, DIFF, or PARTIAL: no difference, but personal fields could not be restored."""
        return "DIFF" if self.diffs else "PARTIAL" if self.unrestored else "MATCH"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "decision_id": self.decision_id,
            "result": self.result,
            "diffs": [
                {"path": d.path, "recorded": _plain(d.recorded), "replayed": _plain(d.replayed)}
                for d in self.diffs
            ],
        }
        if self.unrestored:  # personal fields left sealed (no key) or erased: path -> why
            out["unrestored"] = dict(sorted(self.unrestored.items()))
        return out


def diff_values(recorded: Any, replayed: Any, path: str = "") -> list[FieldDiff]:
    """Every leaf where two JSON-like values differ, in a stable order; keys in TIMING_KEYS skipped."""
    out: list[FieldDiff] = []
    _diff(recorded, replayed, path, out)
    return out


def _diff(a: Any, b: Any, path: str, out: list[FieldDiff]) -> None:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b), key=str):
            if key in TIMING_KEYS:
                continue
            _diff(a.get(key, ABSENT), b.get(key, ABSENT), f"{path}.{key}" if path else str(key), out)
    elif isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            _diff(a[i] if i < len(a) else ABSENT, b[i] if i < len(b) else ABSENT, f"{path}[{i}]", out)
    elif a is ABSENT or b is ABSENT or type(a) is not type(b) or a != b:
        out.append(FieldDiff(path or "(record)", a, b))


class Replayer:
    """Re-runs recorded decisions from `store` on their archived files. Restored archives (one temp
    folder per distinct archive index) and loaded policies/models are kept until `close()`: model
    explanations load the native model lazily from the restored folder."""

    def __init__(
        self,
        store: AuditStore,
        evaluator: Evaluator | None = None,
        workdir: Path | str | None = None,
        vault: PiiVault | None = None,
    ) -> None:
        self.store = store
        self.evaluator = evaluator  # None: each record on the rule engine that decided it
        self.vault = vault  # opens personal fields; without one (or its key) they are left unrestored
        self._root = Path(tempfile.mkdtemp(prefix="credo-replay-", dir=workdir))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._root, True)
        self._lock = threading.Lock()
        self._policies: dict[str, Policy] = {}  # by policy sha256: one loaded Policy per version
        self._sources: dict[str, ArchiveSource] = {}  # by archive key: the restored files

    def replay(self, decision_id: str) -> ReplayResult:
        record = self.store.get(decision_id)
        if record is None:
            raise NotFound(f"no decision {decision_id!r} in {self.store.url}")
        return self.replay_record(record)

    def replay_record(self, record: DecisionRecord) -> ReplayResult:
        """Re-run `record`'s validated input with its decision_id, request_id, decided_at and arm
        injected and compare: the Decision's summary (each schedule by the sha256 of the one
        recomputed), the input, derived values, model outputs and stages. ArchiveMissing (or
        PolicyError) when its policy or model cannot be rebuilt from the archive."""
        policy, models = self.materialise(record)
        unrestored: dict[str, str] = {}
        if self.vault is not None:
            opened = self.vault.reveal(record)
            record, unrestored = opened.record, opened.unrestored
        elif record.extra.get("pii"):
            unrestored = {path: "no key" for path in record.extra["pii"].get("sealed", [])}
        if unrestored:
            record = _without_unrestored(record, unrestored, policy)
        try:
            recorded = decision_from_record(record.decision, record.stages)
        except ArchiveMissing:  # a schedule not recomputable: shown as its sha256 differing below
            terms = [{**o, "schedule": []} for o in record.decision.get("offers", [])]
            recorded = decision_from_dict({**record.decision, "offers": terms, "trace": record.stages})
        language = str(record.extra.get("language", "en"))
        # records from before the compiled evaluator were decided on durable_rules
        engine = self.evaluator or rule_engine(str(record.extra.get("rule_engine", "durable")))
        try:
            # the recorded input holds the decision date a `default: today` input took; the record's
            # own decided_at stands in for inputs recorded before it, never the clock
            today = utc_date(str(record.decision["decided_at"]))
            ctx = run_pipeline(policy, record.input, engine, models, language, today=today)
        except CredoError as exc:  # the recorded input no longer decides: a difference, not a crash
            failed = FieldDiff("outcome", record.outcome, f"error {exc.code}: {exc}")
            return ReplayResult(record.decision_id, recorded, None, (failed,), unrestored)
        again = build_decision(ctx, record.decision_id, record.request_id, str(record.decision["decided_at"]))
        # the experiment arm is an assignment made before the policy ran, like the ids: injected
        again = dataclasses.replace(again, arm=recorded.arm)
        rebuilt = DecisionRecord.build(
            again,
            request_fingerprint=record.request_fingerprint,
            received_at=record.received_at,
            input=ctx.input,
            derived=ctx.derived,
            model_outputs=ctx.model_outputs,
            rounding=ctx.rounding,
        )
        diffs = diff_values(record.decision, rebuilt.decision)
        for name in RECORD_FIELDS:
            diffs += diff_values(getattr(record, name), getattr(rebuilt, name), name)
        kept = tuple(d for d in diffs if d.path not in unrestored)  # a value not restored is not compared
        return ReplayResult(record.decision_id, recorded, again, kept, unrestored)

    def materialise(self, record: DecisionRecord) -> tuple[Policy, ModelProvider]:
        """(Policy, model provider) rebuilt from the record's archived files only."""
        index = dict(record.archive)
        name, version, sha = (str(record.policy.get(k, "")) for k in ("name", "version", "sha256"))
        key = hashlib.sha256(canonical_json(index)).hexdigest()
        with self._lock:
            source = self._sources.get(key)
            if source is None:
                source = self._sources[key] = ArchiveSource(self.store, index, self._root / key[:24])
            policy = self._policies.get(sha)
            if policy is None:
                what = f"decision {record.decision_id} ({name} {version})"
                policy = self._policies[sha] = source.policy_by_sha256(sha, what)
        for ref in record.models:
            try:
                source.model(str(ref["name"]), str(ref["version"]), str(ref["sha256"]))
            except (NotFound, ModelError) as exc:
                raise ArchiveMissing(
                    f"decision {record.decision_id}: archived model {ref['name']} {ref['version']}"
                    f" (sha256 {ref['sha256']}) cannot be rebuilt: {exc}"
                ) from None
        return policy, source.model

    def close(self) -> None:
        self._cleanup()

    def __enter__(self) -> Replayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _without_unrestored(
    record: DecisionRecord, unrestored: Mapping[str, str], policy: Policy
) -> DecisionRecord:
    """`record` re-decidable without the personal values it could not open: an optional input is
    left out, a required text input gets a stand-in (a rule that reads it may then differ: a DIFF)."""
    body = record.to_dict()
    for path in unrestored:
        where, _, name = path.partition(".")
        if where not in ("input", "application"):
            continue
        body[where] = copy.deepcopy(body[where])  # never the record given
        node: Any = body[where]
        parts = [name] if where == "input" else name.split(".")
        for part in parts[:-1]:
            node = node.get(part, {})
        decl = policy.inputs.get(name)
        if decl is not None and decl.required and decl.type.kind == "string":
            node[parts[-1]] = "(not restored)"
        else:
            node.pop(parts[-1], None)
    return DecisionRecord.from_dict(body)


def _plain(value: Any) -> Any:
    return None if value is ABSENT else plain(value, "text")


def _show(value: Any) -> str:
    if value is ABSENT:
        return "(absent)"
    if isinstance(value, str):
        return value
    text = json.dumps(_plain(value), ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= 160 else text[:157] + "..."
