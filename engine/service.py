"""DecisionService: the transport-neutral core the gRPC servicer and the CLI both call — load
policies and models, run the pipeline, record the decision, look it up again, replay it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from time import time_ns as _time_ns
from typing import Any, Protocol

from engine.audit.archive import Archive, archive_files, decision_archive
from engine.audit.canonical import sha256_hex
from engine.audit.log import DecisionLog, Ticket
from engine.audit.pii import PiiVault, open_vault
from engine.audit.record import DecisionRecord, decision_id_at, new_decision_id, request_fingerprint
from engine.decision import Decision, ModelRef, replaced, value_object
from engine.errors import (
    CredoError,
    FieldViolation,
    InvalidInput,
    ModelError,
    NotFound,
    PolicyError,
    PolicyRefused,
    VersionNotLoaded,
    shown,
)
from engine.models.cache import ModelCache
from engine.pipeline import DecisionContext, build_decision, run_pipeline
from engine.pipeline.render import decision_from_record
from engine.pipeline.shadow import ShadowCheck
from engine.pipeline.table import decider
from engine.policy import Policy, load_policy
from engine.policy.experiment import CHAMPION
from engine.policy.model import TEST_DATE
from engine.recent import RecentDecisions
from engine.release.bundle import served_release
from engine.release.guards import VersionLedger, archived_version_conflicts, test_failures, version_conflict
from engine.release.shadows import ShadowJob, ShadowRunner
from engine.replay import Replayer, ReplayResult
from engine.rules import DEFAULT_ENGINE, Evaluator
from engine.rules import evaluator as engine_named
from engine.sources import POLICY_FILE, DirectorySource

__all__ = ["DecisionCore", "DecisionService", "PendingDecision", "decide_for_tests", "default_evaluator"]

log = logging.getLogger("credo.service")

Clock = Callable[[], dt.datetime]
Ids = Callable[[dt.datetime], str]


def default_evaluator() -> Evaluator:
    """The process's default rule evaluator: the compiled one (`--rule-engine` picks another)."""
    return engine_named(DEFAULT_ENGINE)


MAX_REQUEST_ID = 128


def request_id_violations(request_id: str) -> list[FieldViolation]:
    """What is wrong with a caller's idempotency key: required, at most 128 printable characters
    (a NUL byte is refused here, not by one store and not another)."""
    if not request_id:
        return [FieldViolation("request_id", "is required (the caller's idempotency key)")]
    if len(request_id) > MAX_REQUEST_ID:
        return [
            FieldViolation(
                "request_id", f"must be at most {MAX_REQUEST_ID} characters, got {len(request_id)}"
            )
        ]
    if not request_id.isprintable():
        return [
            FieldViolation(
                "request_id",
                f"must be printable characters (no NUL or control characters), got {shown(request_id)}",
            )
        ]
    return []


def _checked_decision_id(decision_id: str) -> str:
    """A caller's decision id, refused before any store sees it unless short and printable."""
    if len(decision_id) > MAX_REQUEST_ID or not decision_id.isprintable():
        raise InvalidInput(
            [
                FieldViolation(
                    "decision_id",
                    f"must be at most {MAX_REQUEST_ID} printable characters, got {shown(decision_id)}",
                )
            ]
        )
    return decision_id


def _pinned(policy: Policy, version: str | None) -> Policy:
    if version and policy.version != version:
        raise VersionNotLoaded(
            f"policy {policy.name} version {version} is not loaded (serving {policy.version})"
        )
    return policy


def policy_language(policy: Policy, language: str | None) -> str:
    """The language reasons are written in: one the policy declares, its first when none is asked;
    anything else is InvalidInput (no silent fallback to another language)."""
    if not language:
        return str(policy.languages[0])
    if language not in policy.languages:
        raise InvalidInput(
            [
                FieldViolation(
                    "language", f"{shown(language)} is not a language of this policy {list(policy.languages)}"
                )
            ]
        )
    return language


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _uuid7(now: dt.datetime) -> str:
    return new_decision_id(now.timestamp())


def _asked(ctx: DecisionContext) -> Mapping[str, Any]:
    """What a request asked: its validated input, without a decision date the caller left out
    (that input is today's: a retry tomorrow is still the same request)."""
    return {k: v for k, v in ctx.input.items() if k not in ctx.dated} if ctx.dated else ctx.input


def _with_record_hash(decision: Decision, record_hash: str) -> Decision:
    """The decision as answered once logged: carrying its audit record's hash (gRPC `record_hash`)."""
    return replaced(decision, record_hash=record_hash)


@value_object
class PendingDecision:
    """A decision whose audit record may still be on its way to the store: `result()` returns the
    decision as answered once its record is committed (acknowledged means durable). Waiting may
    make this thread the log's group-commit leader (engine.audit.log)."""

    decision: Decision
    committed: Ticket | None = None
    then: Callable[[], None] | None = None  # run once this decision is stored (not for a retry)

    def result(self) -> Decision:
        if self.committed is None:
            return self.decision
        stored = self.committed.result()
        if stored.decision_id != self.decision.decision_id:  # a retry: the stored decision answers
            return decision_of_record(stored)
        if self.then is not None:
            self.then()
        return _with_record_hash(self.decision, stored.hash)


def decision_of_record(record: DecisionRecord) -> Decision:
    """The full Decision of a stored (lean) record: schedules recomputed, trace from its stages."""
    return _with_record_hash(decision_from_record(record.decision, record.stages), record.hash)


class _UtcText:
    """A UTC time as ISO 8601 text with microseconds (decided_at), its text up to the second kept
    for the second it names: one comparison and a format instead of isoformat() per decision."""

    def __init__(self) -> None:
        self._second = (dt.datetime.min.replace(tzinfo=dt.UTC), "")  # one tuple: swapped whole
        self._unix = (-1, "", _EPOCH.date())  # `at`'s: (Unix second, its text, its date)

    def __call__(self, when: dt.datetime) -> str:
        if when.tzinfo is not dt.UTC:
            when = when.astimezone(dt.UTC)
        start, text = self._second
        if not start <= when < start + _SECOND:
            start = when.replace(microsecond=0)
            text = start.isoformat()[:-6]  # without "+00:00"
            self._second = (start, text)
        return f"{text}.{when.microsecond:06d}+00:00"

    def at(self, micros: int) -> tuple[str, dt.date]:
        """(the text, the UTC date) of Unix time `micros` in whole µs: what __call__ and date() give
        for that instant, without a datetime made per decision."""
        second, micro = divmod(micros, 1_000_000)
        start, text, day = self._unix
        if second != start:
            when = _EPOCH + dt.timedelta(seconds=second)
            text, day = when.isoformat()[:-6], when.date()
            self._unix = (second, text, day)
        # the µs as two table lookups: a third the time of formatting them with :06d
        return f"{text}.{_DIGITS[micro // 1000]}{_DIGITS[micro % 1000]}+00:00", day


_SECOND = dt.timedelta(seconds=1)
_DIGITS = [f"{n:03d}" for n in range(1000)]
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_utc_text = _UtcText()


class DecisionCore(Protocol):
    """The decision core every transport depends on (the gRPC servicer, the CLI; later the console
    and the batch engine). DecisionService implements it; tests/e2e/fake_service.py stands in for it."""

    log: DecisionLog | None  # where decisions are recorded (None: not recorded); the server's health

    def decide(
        self,
        policy: str,
        application: Mapping[str, Any],
        request_id: str,
        language: str | None = None,
        version: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Decision: ...

    def submit(
        self,
        policy: str,
        application: Mapping[str, Any],
        request_id: str,
        language: str | None = None,
        version: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> PendingDecision: ...

    def get_decision(self, decision_id: str | None = None, request_id: str | None = None) -> Decision: ...

    def replay(self, decision_id: str) -> ReplayResult: ...

    def list_policies(self) -> list[dict[str, Any]]: ...

    def warm_up(self) -> None: ...


class DecisionService:
    """Decide, look up and replay decisions. `store` is an engine.audit DecisionLog, or an audit
    store URL to open one on, or None (no audit record); `clock` and `ids` are injectable so tests
    can freeze time and ids. `rule_engine` names the evaluator (compiled by default; each record
    names it); `shadow` re-checks a sample of decisions on a second engine after they are answered.
    `ledger` is the file of versions this server served before (the release guard's memory);
    `on_shadow_drop` is told of each shadow policy decision dropped because its queue was full."""

    def __init__(
        self,
        policies_dir: Path | str,
        models_dir: Path | str,
        store: DecisionLog | str | None = None,
        clock: Clock = _utc_now,
        ids: Ids = _uuid7,
        evaluator: Evaluator | None = None,
        timer: Callable[[], float] = time.perf_counter,
        rule_engine: str = DEFAULT_ENGINE,
        shadow: ShadowCheck | None = None,
        recent: RecentDecisions | None = None,
        pii: PiiVault | None = None,
        ledger: Path | str | None = None,
        on_shadow_drop: Callable[[], None] | None = None,
    ):
        self.policies_dir = Path(policies_dir)
        self.models_dir = Path(models_dir)
        self.source = DirectorySource(policies_dir, models_dir)  # policies by name, verified models
        self.models = self.source.models
        if isinstance(store, str):  # an audit store URL (sqlite:///..., postgresql://...)
            store = DecisionLog(store)
        self.log = store
        # without a store, idempotency is this process's memory of recent answers (bounded in bytes)
        self.recent = (recent if recent is not None else RecentDecisions()) if store is None else None
        self._pii = pii  # opened on the first record: engine.audit.pii.open_vault finds or makes the key
        self.clock = clock
        self.ids = ids
        self.evaluator = evaluator if evaluator is not None else engine_named(rule_engine)
        self.shadow = shadow
        self.timer = timer
        self._files: dict[str, Policy] = {}  # load_policy_file: resolved path -> policy
        self._archives: dict[tuple[object, ...], Archive] = {}  # per loaded policy
        self._refusals: dict[tuple[str, str], list[str]] = {}  # (path, sha256) -> why it may not serve
        self.ledger = VersionLedger(ledger) if ledger is not None else None
        self._replayer: Replayer | None = None
        self._shadows: ShadowRunner | None = None  # the shadow policies' process, once needed
        self._on_shadow_drop = on_shadow_drop
        self._lock = threading.Lock()

    # -- policies
    def policy(self, name: str, version: str | None = None) -> Policy:
        """A served policy by name (policies_dir/<name>/policy.yaml), never a path: a network caller
        names policies; `load_policy_file` is the CLI's door to its own local files. InvalidInput for
        anything but a name (nothing on disk is touched), NotFound for an unknown policy,
        PolicyRefused for one whose own tests fail or whose version names another text,
        VersionNotLoaded for a version other than the one loaded."""
        return _pinned(self._guarded(self.source.policy(name)), version)

    def _guarded(self, policy: Policy) -> Policy:
        """`policy`, or PolicyRefused with every reason it may not serve (checked once per text)."""
        key = (str(policy.path), policy.sha256)
        with self._lock:
            reasons = self._refusals.get(key)
            if reasons is None:
                reasons = self._refusals[key] = self._guard(policy)
        if reasons:
            raise PolicyRefused(policy.name, reasons)
        return policy

    def _guard(self, policy: Policy) -> list[str]:
        """Why `policy` may not serve (engine.release.guards): failed tests of its own, its version
        seen with another text by this server's earlier generations or in the store's archive."""
        reasons = test_failures(policy, self._test_decide)
        conflicts = []
        if self.ledger is not None:
            conflicts.append(
                version_conflict(policy, self.ledger.seen(policy.name, policy.version), "this server")
            )
        if self.log is not None:
            conflicts.append(archived_version_conflicts(policy, self.log.store.policy_texts()))
        reasons += [c for c in conflicts if c]
        if reasons:
            log.error(
                "policy refused", extra={"event": "policy_refused", "policy": policy.name, "errors": reasons}
            )
        return reasons

    def _test_decide(self, policy: Policy, application: Mapping[str, Any]) -> dict[str, Any]:
        return _frozen_decision(policy, application, self.evaluator, self.models)

    def load_policy_file(self, path: Path | str) -> Policy:
        """A policy from a local file or folder (the CLI's --policy PATH), loaded once per process."""
        candidate = Path(path)
        if (candidate / POLICY_FILE).is_file():
            candidate = candidate / POLICY_FILE
        if not candidate.is_file():
            raise NotFound(f"no policy file at {str(path)!r}")
        key = str(candidate.resolve())
        with self._lock:
            policy = self._files.get(key)
            if policy is None:
                policy = self._files[key] = load_policy(candidate)
        return policy

    def list_policies(self) -> list[dict[str, Any]]:
        """Every policy under policies_dir: name, version, sha256, pinned models, status; a policy
        that does not load (or whose folder is not a policy name) is listed with status INVALID and
        its errors (the others keep serving)."""
        out: list[dict[str, Any]] = []
        for name in self.source.policy_names():
            if "@" in name:  # a challenger or shadow version (NAME@VERSION/): listed with its champion
                continue
            try:
                policy = self.policy(name)
                experiment = self._experiment_info(policy)
            except PolicyRefused as exc:
                refused = self.source.policy(name)
                out.append(
                    {
                        "name": refused.name,
                        "version": refused.version,
                        "sha256": refused.sha256,
                        "status": "REFUSED",
                        "errors": exc.reasons,
                    }
                )
                continue
            except PolicyError as exc:
                errors = [str(d) for d in exc.diagnostics if d.is_error]
                out.append({"name": name, "version": "", "sha256": "", "status": "INVALID", "errors": errors})
                continue
            except InvalidInput as exc:
                errors = [f"{self.policies_dir / name}: {v.description}" for v in exc.violations]
                out.append({"name": name, "version": "", "sha256": "", "status": "INVALID", "errors": errors})
                continue
            models = []
            if policy.score is not None:
                package, _ = self.models(
                    policy.score.model_name, policy.score.model_version, policy.score.model_sha256
                )
                models.append({"name": package.name, "version": package.version, "sha256": package.sha256})
            out.append(
                {
                    "name": policy.name,
                    "version": policy.version,
                    "sha256": policy.sha256,
                    "loaded_at": policy.loaded_at,
                    "models": models,
                    "status": "SERVING",
                    "errors": [],
                    "release": served_release(self.policies_dir / name),
                    "experiment": experiment,
                }
            )
        return out

    def _experiment_info(self, policy: Policy) -> dict[str, Any] | None:
        """The policy's experiment, every challenger and shadow loaded (and guarded) now: a missing
        or refused one refuses the champion, so an experiment never starts half-built."""
        if policy.experiment is None:
            return None
        refs = [(a.name, a.version) for a in policy.experiment.arms] + list(policy.experiment.shadows)
        problems = []
        for name, version in refs:
            try:
                self.candidate(name, version)
            except CredoError as exc:
                problems.append(f"experiment version {name}@{version}: {exc.message}")
        if problems:
            with self._lock:
                self._refusals[(str(policy.path), policy.sha256)] = problems  # Decide refuses it too
            raise PolicyRefused(policy.name, problems)
        return {
            "key": policy.experiment.key,
            "arms": [{"policy": a.ref, "share": str(a.share)} for a in policy.experiment.arms],
            "shadows": [f"{n}@{v}" for n, v in policy.experiment.shadows],
        }

    def warm_up(self) -> None:
        """Run each policy's first test inputs once through the pipeline (nothing is recorded), so
        durable rulesets are registered and ONNX sessions created before the first call. Best effort:
        a failure is logged; the policy's own tests are CI's job."""
        for info in self.list_policies():
            if info["status"] != "SERVING":
                continue
            started = time.perf_counter()
            try:
                policy = self.policy(info["name"])
                for case in policy.tests[:3]:
                    with contextlib.suppress(CredoError):  # a test that expects an error
                        run_pipeline(
                            policy, case.input, self.evaluator, self.models, today=FROZEN_TIME.date()
                        )
            except Exception:
                log.warning("warm-up failed", exc_info=True, extra={"policy": info["name"]})
                continue
            millis = round((time.perf_counter() - started) * 1e3, 1)
            log.info("warmed up", extra={"policy": info["name"], "millis": millis})

    # -- decisions
    def decide(
        self,
        policy: str | Policy,
        application: Mapping[str, Any],
        request_id: str,
        language: str | None = None,
        version: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Decision:
        """Decide one application. With a decision log, a retried request_id returns the stored
        decision (never decides twice) and a new decision is durable before it is returned."""
        if self.log is None:  # nothing to commit, so nothing to wait for: answered in one call
            _, loaded, arm, language = self._routed(policy, application, request_id, language, version)
            return self._decide_unstored(loaded, application, request_id, language, arm)
        return self.submit(policy, application, request_id, language, version, labels).result()

    def submit(
        self,
        policy: str | Policy,
        application: Mapping[str, Any],
        request_id: str,
        language: str | None = None,
        version: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> PendingDecision:
        """Decide one application and hand its record to the log without waiting for the commit:
        the caller waits with `.result()`. A server holds its decision lock only for this part, so
        concurrent requests' records share one group commit instead of one fsync each."""
        champion, loaded, arm, language = self._routed(policy, application, request_id, language, version)
        if self.log is None:
            return PendingDecision(self._decide_unstored(loaded, application, request_id, language, arm))
        pending = self._decide(loaded, application, request_id, language, labels, arm)
        if arm and champion.experiment is not None and champion.experiment.shadows and self.log is not None:
            job = ShadowJob(
                champion.experiment.shadows,
                dict(application),
                request_id,
                language,
                pending.decision.decision_id,
            )
            pending = dataclasses.replace(pending, then=functools.partial(self._shadow_runner().offer, job))
        return pending

    def _routed(
        self,
        policy: str | Policy,
        application: Mapping[str, Any],
        request_id: str,
        language: str | None,
        version: str | None,
    ) -> tuple[Policy, Policy, str, str]:
        """(the served policy, the one that decides: its experiment's arm or itself, the arm, the
        language with defaults applied) of a request, after its request_id is checked."""
        if not request_id or len(request_id) > MAX_REQUEST_ID or not request_id.isprintable():
            raise InvalidInput(request_id_violations(request_id))
        if isinstance(policy, str):
            loaded = self.policy(policy, version)
        else:
            loaded = _pinned(policy, version) if version else policy
        champion, arm = loaded, ""
        if loaded.experiment is not None and not version:  # a pinned version is no experiment
            chosen = loaded.experiment.assign(application)
            arm = chosen.ref if chosen else CHAMPION
            if chosen is not None:
                loaded = self.candidate(chosen.name, chosen.version)
        # defaults before the fingerprint; the policy's first language inline (no call)
        language = policy_language(loaded, language) if language else str(loaded.languages[0])
        return champion, loaded, arm, language

    def _decided(
        self, loaded: Policy, application: Mapping[str, Any], request_id: str, language: str, arm: str
    ) -> tuple[DecisionContext, Decision, dt.datetime, Mapping[str, Any]]:
        """Run the pipeline at the clock's time: (context, decision, received, what the request asked:
        the validated input without the decision date the caller left out). The decision date is
        recorded in the input, so replay reads no clock."""
        received = self.clock()
        if received.tzinfo is not dt.UTC:  # the default clock's is already
            received = received.astimezone(dt.UTC)
        ctx, decision = decider(loaded)(
            loaded, application, self.evaluator, self.models, language, self.timer,
            received.date(), self.ids, received, request_id, _utc_text(received), arm,
        )  # fmt: skip
        return ctx, decision, received, _asked(ctx)

    def _decide_unstored(
        self, loaded: Policy, application: Mapping[str, Any], request_id: str, language: str, arm: str
    ) -> Decision:
        """A decision without a store: this process's recent answers keep it for a retry (the
        request's fingerprint is worked out only if its request_id comes again)."""
        if self.clock is not _utc_now or self.ids is not _uuid7:
            ctx, decision, _, asked = self._decided(loaded, application, request_id, language, arm)
        else:
            # No record needs a received datetime: the time is read once, in whole µs, for the
            # decision date, decided_at and the id's milliseconds (as datetime.now would read it).
            micros = _time_ns() // 1000
            decided_at, today = _utc_text.at(micros)
            ctx, decision = decider(loaded)(
                loaded, application, self.evaluator, self.models, language, self.timer,
                today, decision_id_at, micros // 1000, request_id, decided_at, arm,
            )  # fmt: skip
            asked = ctx.input if not ctx.dated else _asked(ctx)
        if self.shadow is not None:  # a sample is re-checked on the shadow's own thread
            self.shadow.offer(loaded, ctx.input, language, decision.decision_id, ctx.trace, self.models)
        assert self.recent is not None
        due = None
        if decision.offers:  # a booked offer's due dates follow its conventions
            spec = loaded.offers
            due = None if spec is None else (spec.due_day, spec.due_min_days)
        # ctx.rounding inline: one property call less
        rounding = loaded.rounding or "half_even"
        return self.recent.remember(
            request_id, loaded.name, language, asked, decision, rounding, due, loaded.text_inputs,
            loaded.input_names,
        )  # fmt: skip

    def _decide(
        self,
        loaded: Policy,
        application: Mapping[str, Any],
        request_id: str,
        language: str,
        labels: Mapping[str, str] | None,
        arm: str = "",
        extra: Mapping[str, Any] | None = None,
    ) -> PendingDecision:
        """Run the pipeline and hand the record (`arm` in the decision, `extra` in the record) to the log."""
        ctx, decision, received, asked = self._decided(loaded, application, request_id, language, arm)
        # One idempotency layer: the fingerprint is of what decides (the validated input and the
        # options, defaults applied), computed once; the store's unique request_id index (or, with
        # no store, this process's recent answers) turns a second sight into the first answer.
        fingerprint = request_fingerprint(loaded.name, language, asked)
        assert self.log is not None  # without one: _decide_unstored
        archive = self._archive(loaded, ctx.model_refs)
        fingerprint = self.pii.keyed(fingerprint)  # a plain hash of personal data could be guessed
        record = DecisionRecord.build(
            decision,
            request_fingerprint=fingerprint,
            received_at=received,
            input=ctx.input,
            derived=ctx.derived,
            model_outputs=ctx.model_outputs,
            rounding=ctx.rounding,
            archive=archive.index,
            # the caller's labels (channel, branch) are kept, outside the idempotency fingerprint
            extra={
                "language": language,
                "rule_engine": self.evaluator.name,
                **({"labels": dict(labels)} if labels else {}),
                **(extra or {}),
            },
        )
        record = self.pii.protect(record, loaded)  # personal values sealed before the log hashes them
        committed = self.log.submit(record, archive.blobs)
        if self.shadow is not None:  # a sample is re-checked on the shadow's own thread, after the commit
            self.shadow.offer(
                loaded, ctx.input, language, decision.decision_id, ctx.trace, self.models, committed
            )
        return PendingDecision(decision, committed)

    # -- experiments: challengers decide their share; shadows decide after the answer
    def candidate(self, name: str, version: str) -> Policy:
        """A challenger or shadow version: the served policy if it has that version, else the one in
        policies_dir/NAME@VERSION/ (passing the same guards as any served policy)."""
        served = self.policy(name)
        if served.version == version:
            return served
        folder = self.policies_dir / f"{name}@{version}"
        if not (folder / POLICY_FILE).is_file():
            raise NotFound(f"experiment version {name}@{version} not found: put it in {folder}/{POLICY_FILE}")
        candidate = self._guarded(self.load_policy_file(folder))
        if (candidate.name, candidate.version) != (name, version):
            raise VersionNotLoaded(f"{folder}/{POLICY_FILE} holds {candidate.name} {candidate.version}")
        return candidate

    def _shadow_runner(self) -> ShadowRunner:
        with self._lock:
            if self._shadows is None:
                assert self.log is not None
                # the shadow process's own service: the same folders, store and rule engine
                make = functools.partial(
                    DecisionService,
                    self.policies_dir,
                    self.models_dir,
                    self.log.store.url,
                    rule_engine=self.evaluator.name,
                )
                self._shadows = ShadowRunner(make, on_drop=self._on_shadow_drop)
            return self._shadows

    def decide_shadows(self, job: ShadowJob) -> list[PendingDecision]:
        """Each shadow version of `job` decides its request, recorded as a shadow of the answered
        decision (request_id ID#shadow:NAME@VERSION, arm shadow:NAME@VERSION, extra.shadow_of) and
        sealed like any record; never answered. Runs in the shadow process (engine.release.shadows)."""
        pending = []
        for name, version in job.shadows:
            ref = f"{name}@{version}"
            policy = self.candidate(name, version)
            pending.append(
                self._decide(
                    policy,
                    job.application,
                    f"{job.request_id}#shadow:{ref}",
                    policy_language(policy, job.language),
                    None,
                    f"shadow:{ref}",
                    {"shadow_of": job.answered},
                )
            )
        return pending

    def close(self, timeout: float = 30.0) -> None:
        """Let the shadow process record every shadow decision queued (at most `timeout` seconds),
        then close the decision log."""
        with self._lock:
            shadows, self._shadows = self._shadows, None
        if shadows is not None:
            shadows.close(timeout)
        if self.log is not None:
            self.log.close()

    @property
    def pii(self) -> PiiVault:
        """The personal-data vault of the decision log's store (the log must exist)."""
        if self._pii is None:
            assert self.log is not None
            self._pii = open_vault(self.log.store, writer=True)
        return self._pii

    def get_decision(self, decision_id: str | None = None, request_id: str | None = None) -> Decision:
        """A decision answered before, in full (schedules and trace), by decision_id or request_id."""
        if self.log is None:
            assert self.recent is not None
            found = self.recent.get(decision_id=decision_id or "", request_id=request_id or "")
            if found is None:
                raise NotFound(f"no decision {decision_id or request_id!r} (this service keeps no store)")
            return found
        record = None
        if decision_id:
            record = self.log.get(_checked_decision_id(decision_id))
        elif request_id:
            bad_id = request_id_violations(request_id)
            if bad_id:
                raise InvalidInput(bad_id)
            record = self.log.store.get_by_request(request_id)
        if record is None:
            raise NotFound(f"no decision {shown(decision_id or request_id)}")
        return decision_of_record(record)

    def replay(self, decision_id: str) -> ReplayResult:
        """Re-run a recorded decision on its *archived* policy text and model files (never today's)
        and compare: an engine.replay.ReplayResult (match, recorded, replayed, field-level
        diffs; timings ignored). ArchiveMissing if an archived file is absent or altered."""
        if self.log is None:
            raise NotFound("this service keeps no decision log")
        _checked_decision_id(decision_id)
        with self._lock:
            if self._replayer is None:  # each record replays on the rule engine that decided it
                self._replayer = Replayer(self.log.store, vault=self.pii)
            replayer = self._replayer
        return replayer.replay(decision_id)

    def _archive(self, policy: Policy, model_refs: Sequence[ModelRef]) -> Archive:
        """The files a replay needs (engine.audit.decision_archive: the policy's folder with the text
        this policy was loaded from, and every file of each model package), built once per loaded
        policy; the log stores each blob once."""
        refs = tuple((r.name, r.version, r.sha256) for r in model_refs)
        key = (str(policy.path), policy.sha256, refs)
        with self._lock:
            cached = self._archives.get(key)
        if cached is not None:
            return cached
        text = policy.text.encode("utf-8")
        if sha256_hex(text) != policy.sha256:
            raise CredoError(f"policy {policy.name}: loaded text does not hash to {policy.sha256}")
        models = [(name, version, self.models(name, version, sha)[0].path) for name, version, sha in refs]
        source = Path(policy.path)
        if source.name == POLICY_FILE and source.is_file() and "@" not in source.parent.name:
            built = decision_archive(source.parent, models)  # the folder: policy.yaml and its siblings
            text_name = f"policies/{source.parent.name}/{POLICY_FILE}"
        else:  # from text, another file name, or NAME@VERSION/ (an experiment's): the text alone, by name
            with tempfile.TemporaryDirectory() as empty:
                built = decision_archive(empty, models)
            text_name = f"policies/{policy.name}/{POLICY_FILE}"
        files: dict[str, Path | bytes] = {b.name: b.data for b in built.blobs}
        files[text_name] = text  # the text the policy was loaded from: the file may have changed since
        archive = archive_files(files)
        for name, version, sha in refs:
            if archive.index.get(f"models/{name}/{version}/model.onnx") != sha:
                raise ModelError(f"model {name} {version} changed on disk since it was loaded (sha256 {sha})")
        with self._lock:
            self._archives[key] = archive
        return archive


# -- `credo test`: decide a policy's own test inputs with frozen time and ids, no audit record
_test_models: dict[str, ModelCache] = {}
_test_lock = threading.Lock()
FROZEN_TIME = dt.datetime.combine(TEST_DATE, dt.time(), dt.UTC)
FROZEN_ID = "00000000-0000-7000-8000-000000000000"


def models_dir_for(policy: Policy) -> Path:
    """The models folder for a policy's tests: $CREDO_MODELS, else the nearest `models/` above the
    policy file that holds model packages (`<name>/<version>/card.json`), else ./models."""
    override = os.environ.get("CREDO_MODELS")
    if override:
        return Path(override)
    for parent in Path(policy.path).resolve().parents:
        if any((parent / "models").glob("*/*/card.json")):
            return parent / "models"
    return Path("models")


def decide_for_tests(
    policy: Policy,
    application: Mapping[str, Any],
    language: str = "en",
    rule_engine: str = DEFAULT_ENGINE,
    models_dir: Path | None = None,
) -> dict[str, Any]:
    """Decide `application` on an already-loaded policy and return Decision.to_dict() (frozen id and
    time) on the rule engine named, scored with the models under `models_dir` (default:
    models_dir_for). Errors (InvalidInput, PolicyRuntimeError, ModelError) propagate to the test
    runner."""
    root = str(models_dir or models_dir_for(policy))
    with _test_lock:
        models = _test_models.get(root)
        if models is None:
            models = _test_models[root] = ModelCache(root)
    return _frozen_decision(policy, application, engine_named(rule_engine), models, language)


def _frozen_decision(
    policy: Policy,
    application: Mapping[str, Any],
    evaluator: Evaluator,
    models: ModelCache,
    language: str = "en",
) -> dict[str, Any]:
    ctx = run_pipeline(policy, application, evaluator, models, language, today=FROZEN_TIME.date())
    return build_decision(ctx, FROZEN_ID, "test", _utc_text(FROZEN_TIME)).to_dict()
