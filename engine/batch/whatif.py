"""What-if replay over history: every recorded decision in a time window re-decided on a NEW policy
(and optionally another model) in batches, and the impact tallied: swaps, approval, limits, rates, loss.

Batch path: the stage table is split at `score`; the stages before it run per application, the model
scores the survivors of a batch in one call, then the remaining stages run per application. Scorer:
ONNX Runtime on the whole batch by default (bit-identical to serving's one-row calls, so replaying
history on the unchanged policy reproduces it exactly), or `scorer="native"`: CatBoost's
NativeScorer.pd_matrix (5x faster on the batch, a negligible share of the total; checked against
ONNX on each worker's first batch, tolerance 1e-6, else ONNX is used; PD is disclosed to 6 places,
so a few PDs may then differ in the last digit). Rules run on `WhatIfOptions.rule_engine` (the
compiled evaluator by default, as serving; all three are differentially tested to agree).
Adverse-action model reasons (SHAP) are skipped: no figure of the report depends on them.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.audit.pii import open_vault
from engine.audit.record import utc_text
from engine.audit.store import AuditStore
from engine.errors import MODEL_MISSING, CredoError
from engine.models.cache import check_pin
from engine.models.scoring import NativeScorer, OnnxScorer
from engine.models.store import ModelStore, load_package
from engine.pipeline import DecisionContext, Stage, StageResult, run_stages, stage_table
from engine.policy import load_policy, load_policy_text
from engine.rules import DEFAULT_ENGINE, evaluator

__all__ = ["NewDecision", "OldDecision", "Tally", "WhatIf", "WhatIfOptions", "run_whatif"]

OUTCOMES = ("APPROVE", "REFER", "DECLINE", "ERROR")
TOLERANCE = 1e-6  # NativeScorer vs OnnxScorer, absolute, on P(bad)
NO_GRADE = "(none)"
NO_SEGMENT = "(none)"


@dataclass(frozen=True)
class WhatIfOptions:
    policy: Path  # the NEW policy file
    model: str | None = None  # NAME@VERSION under models_dir, or a package folder; default: the policy's pin
    models_dir: Path = Path("models")
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    workers: int = 1
    batch: int = 500
    scorer: str = "onnx"  # or "native" (see module docstring)
    rule_engine: str = DEFAULT_ENGINE  # compiled, durable or reference


@dataclass(frozen=True)
class OldDecision:
    """What the record says was decided (the figures the report needs)."""

    outcome: str
    grade: str | None
    segments: tuple[str, ...]
    limit: Decimal | None
    rate: Decimal | None
    pd: Decimal | None
    points: int | None
    policy_sha: str


@dataclass(frozen=True)
class NewDecision:
    """What the new policy decides for the same application; outcome ERROR when it cannot decide."""

    outcome: str
    grade: str | None = None
    segments: tuple[str, ...] = ()
    limit: Decimal | None = None
    rate: Decimal | None = None
    pd: Decimal | None = None
    points: int | None = None
    error: str = ""


@dataclass
class Tally:
    """Old vs new figures of one group of decisions. Limits and rates are averaged over approvals;
    expected loss = sum of PD x LGD x limit over approvals (each side with its own policy's LGD)."""

    count: int = 0
    approved: list[int] = field(default_factory=lambda: [0, 0])
    limit_sum: list[Decimal] = field(default_factory=lambda: [Decimal(0), Decimal(0)])
    rate_sum: list[Decimal] = field(default_factory=lambda: [Decimal(0), Decimal(0)])
    rated: list[int] = field(default_factory=lambda: [0, 0])
    loss: list[Decimal] = field(default_factory=lambda: [Decimal(0), Decimal(0)])
    swaps: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(
        self, side: int, outcome: str, limit: Decimal | None, rate: Decimal | None, loss: Decimal
    ) -> None:
        if outcome != "APPROVE":
            return
        self.approved[side] += 1
        if limit is not None:
            self.limit_sum[side] += limit
        if rate is not None:
            self.rate_sum[side] += rate
            self.rated[side] += 1
        self.loss[side] += loss

    def to_dict(self) -> dict[str, Any]:
        def avg(total: Decimal, n: int, places: str) -> str | None:
            return str((total / n).quantize(Decimal(places))) if n else None

        out: dict[str, Any] = {"count": self.count}
        for side, label in ((0, "old"), (1, "new")):
            out[f"approved_{label}"] = self.approved[side]
            out[f"approval_rate_{label}"] = round(self.approved[side] / self.count, 6) if self.count else None
            out[f"avg_limit_{label}"] = avg(self.limit_sum[side], self.approved[side], "0.01")
            out[f"avg_rate_{label}"] = avg(self.rate_sum[side], self.rated[side], "0.000001")
            out[f"expected_loss_{label}"] = str(self.loss[side].quantize(Decimal("0.01")))
        out["swaps"] = {f"{a}->{b}": n for (a, b), n in sorted(self.swaps.items()) if a != b}
        return out


@dataclass
class WhatIf:
    """The running result; `summary()` is the JSON summary the report is drawn from."""

    policy: dict[str, Any]
    model: dict[str, Any] | None
    options: WhatIfOptions
    overall: Tally = field(default_factory=Tally)
    by_grade: dict[str, Tally] = field(default_factory=dict)
    by_segment: dict[str, Tally] = field(default_factory=dict)
    points_old: Counter[int] = field(default_factory=Counter)
    points_new: Counter[int] = field(default_factory=Counter)
    grades_new: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    max_scorer_diff: float = 0.0
    scorer: str = ""
    lgd_new: Decimal | None = None
    lgd_old: dict[str, Decimal | None] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, old: OldDecision, new: NewDecision) -> None:
        lgd_old = self.lgd_old.get(old.policy_sha)
        loss_old = _loss(old.pd, lgd_old, old.limit)
        loss_new = _loss(new.pd, self.lgd_new, new.limit)
        groups = [self.overall, _group(self.by_grade, old.grade or NO_GRADE)]
        groups += [_group(self.by_segment, s) for s in old.segments or (NO_SEGMENT,)]
        for tally in groups:
            tally.count += 1
            tally.swaps[(old.outcome, new.outcome)] += 1
            tally.add(0, old.outcome, old.limit, old.rate, loss_old)
            tally.add(1, new.outcome, new.limit, new.rate, loss_new)
        if old.points is not None:
            self.points_old[old.points] += 1
        if new.points is not None:
            self.points_new[new.points] += 1
        self.grades_new[new.grade or NO_GRADE] += 1
        if new.outcome == "ERROR":
            self.errors[new.error.split(":", 1)[0]] += 1

    def summary(self) -> dict[str, Any]:
        n = self.overall.count
        matrix = {a: {b: self.overall.swaps.get((a, b), 0) for b in OUTCOMES} for a in OUTCOMES}
        return {
            "policy": self.policy,
            "model": self.model,
            "window": {
                "since": self.options.since.isoformat() if self.options.since else None,
                "until": self.options.until.isoformat() if self.options.until else None,
            },
            "decisions": n,
            "skipped": dict(self.skipped),
            "errors": dict(self.errors),
            "method": {
                "evaluator": f"{self.options.rule_engine} (engine.rules)",
                "scorer": self.scorer,
                "native_vs_onnx_max_abs_diff": self.max_scorer_diff,
                "model_reasons": "skipped (no report figure depends on them)",
                "groups": "by the recorded grade and segments, so old and new describe the same applicants",
                "lgd_new": None if self.lgd_new is None else str(self.lgd_new),
                "lgd_old": {sha[:12]: None if v is None else str(v) for sha, v in self.lgd_old.items()},
            },
            "swap_matrix": matrix,
            "overall": self.overall.to_dict(),
            "by_grade": {k: t.to_dict() for k, t in sorted(self.by_grade.items())},
            "by_segment": {k: t.to_dict() for k, t in sorted(self.by_segment.items())},
            "new_grades": dict(sorted(self.grades_new.items())),
            "score_points": {
                "old": {str(k): v for k, v in sorted(self.points_old.items())},
                "new": {str(k): v for k, v in sorted(self.points_new.items())},
            },
            "seconds": round(self.seconds, 3),
            "decisions_per_second": round(n / self.seconds, 1) if self.seconds > 0 else None,
        }


def _group(groups: dict[str, Tally], key: str) -> Tally:
    tally = groups.get(key)
    if tally is None:
        tally = groups[key] = Tally()
    return tally


def _loss(pd: Decimal | None, lgd: Decimal | None, limit: Decimal | None) -> Decimal:
    if pd is None or lgd is None or limit is None:
        return Decimal(0)
    return pd * lgd * limit


def old_decision(record: Any) -> OldDecision:
    body: Mapping[str, Any] = record.decision
    score = body.get("score") or {}

    def dec(value: Any) -> Decimal | None:
        return None if value is None else Decimal(str(value))

    return OldDecision(
        outcome=str(body["outcome"]),
        grade=score.get("grade"),
        segments=tuple(body.get("segments") or ()),
        limit=dec(body.get("limit")),
        rate=dec(body.get("annual_rate")),
        pd=dec(score.get("pd")),
        points=None if score.get("points") is None else int(score["points"]),
        policy_sha=str(record.policy.get("sha256", "")),
    )


# -- the batch decider (one per process)
class BatchDecider:
    """Decides batches of applications on one policy and one model package (see module docstring)."""

    def __init__(
        self,
        policy_path: str,
        package_path: str | None,
        scorer: str = "onnx",
        rule_engine: str = DEFAULT_ENGINE,
    ) -> None:
        self.policy = load_policy(policy_path)
        self.evaluator = evaluator(rule_engine)
        self.package = load_package(Path(package_path)) if package_path else None
        self.native = NativeScorer(self.package) if self.package else None
        self.onnx = OnnxScorer(self.package) if self.package else None
        self.use_native = scorer == "native"
        self.checked = not self.use_native
        self.max_diff = 0.0

        def no_model_reasons(ctx: Any) -> Any:
            ctx.package = None  # outcome_stage explains (SHAP) only when a package is set
            return StageResult()

        table = list(stage_table(self.policy))
        names = [s.name for s in table]
        cut = names.index("score") if "score" in names else len(table)
        self.before = tuple(table[:cut])
        after = table[cut:]
        after.insert(len(after) - 1, Stage("what_if", no_model_reasons, closing=True))
        self.after = tuple(after)

    def _provider(self, pd: float) -> Callable[[str, str, str | None], tuple[Any, Any]]:
        fixed = _FixedScore(pd)
        return lambda name, version, sha: (self.package, fixed)

    def _refuse(self, name: str, version: str, sha: str | None) -> tuple[Any, Any]:
        raise CredoError(f"what-if: no model package for {name} {version}", code=MODEL_MISSING)

    def decide(self, applications: Sequence[Mapping[str, Any]]) -> list[NewDecision]:
        timer = _zero
        out: list[NewDecision | None] = [None] * len(applications)
        pending: list[tuple[int, Any, dict[str, Any] | None]] = []
        for i, application in enumerate(applications):
            ctx = DecisionContext(self.policy, application, self.evaluator, self._refuse)
            try:
                run_stages(ctx, self.before, timer)
                features = (
                    self.policy.score.features(ctx.fact) if self.policy.score and not ctx.declined else None
                )
            except CredoError as exc:
                out[i] = NewDecision("ERROR", error=f"{exc.code}: {exc}")
                continue
            pending.append((i, ctx, features))
        scored = [(i, ctx, f) for i, ctx, f in pending if f is not None]
        pds = self._score([f for _, _, f in scored]) if scored else []
        by_index = {i: pd for (i, _, _), pd in zip(scored, pds, strict=True)}
        for i, ctx, _ in pending:
            if i in by_index:
                ctx.models = self._provider(by_index[i])
            try:
                run_stages(ctx, self.after, timer)
            except CredoError as exc:
                out[i] = NewDecision("ERROR", error=f"{exc.code}: {exc}")
                continue
            out[i] = _new_decision(ctx)
        return [d if d is not None else NewDecision("ERROR", error="INTERNAL: not decided") for d in out]

    def _score(self, rows: Sequence[Mapping[str, Any]]) -> list[float]:
        assert self.native is not None and self.onnx is not None
        matrix = self.native.encoder.encode_rows(rows)
        if not self.checked:  # verify the native scorer against the serving runtime once per worker
            self.checked = True
            native, onnx = self.native.pd_matrix(matrix), self.onnx.pd_matrix(matrix)
            self.max_diff = float(abs(native - onnx).max()) if len(matrix) else 0.0
            self.use_native = self.max_diff <= TOLERANCE
            return [float(p) for p in (native if self.use_native else onnx)]
        scorer = self.native if self.use_native else self.onnx
        return [float(p) for p in scorer.pd_matrix(matrix)]


class _FixedScore:
    """A scorer answering the PD computed for this application in the batch."""

    def __init__(self, pd: float) -> None:
        self._pd = pd

    def pd(self, features: Mapping[str, Any]) -> float:
        return self._pd


def _zero() -> float:
    return 0.0


def _new_decision(ctx: Any) -> NewDecision:
    outcome = ctx.outcome.value if ctx.outcome is not None else "DECLINE"
    declined = outcome == "DECLINE"
    score = ctx.score
    return NewDecision(
        outcome=outcome,
        grade=score.grade if score else None,
        segments=tuple(ctx.segments),
        limit=None if declined else ctx.limit,
        rate=None if declined else ctx.annual_rate,
        pd=score.pd if score else None,
        points=score.points if score else None,
    )


_worker: BatchDecider | None = None


def _init_worker(policy_path: str, package_path: str | None, scorer: str, rule_engine: str) -> None:
    global _worker
    _worker = BatchDecider(policy_path, package_path, scorer, rule_engine)


def _decide_in_worker(applications: list[dict[str, Any]]) -> tuple[list[NewDecision], float, bool]:
    assert _worker is not None
    return _worker.decide(applications), _worker.max_diff, _worker.use_native


# -- the driver
def resolve_package(options: WhatIfOptions, policy: Any) -> Any:
    """The model package the new policy scores with: --model NAME@VERSION (under models_dir) or a
    package folder; by default the package the policy pins (its sha256 checked when pinned)."""
    if options.model:
        if "@" in options.model and not Path(options.model).exists():
            name, version = options.model.split("@", 1)
            return ModelStore(options.models_dir).load(name, version)
        return load_package(Path(options.model))
    if policy.score is None:
        return None
    spec = policy.score
    package = ModelStore(options.models_dir).load(spec.model_name, spec.model_version)
    check_pin(package, spec.model_sha256, str(options.models_dir))
    return package


def count_window(store: AuditStore, since: dt.datetime | None, until: dt.datetime | None) -> int | None:
    """Records in [since, until) for the progress bar; None if the store cannot say cheaply."""
    query = getattr(store, "_query", None)  # both SQL stores; the protocol has no windowed count
    if query is None:
        return None
    low = utc_text(since) if since else ""
    high = utc_text(until) if until else "9999"
    rows = query("SELECT COUNT(*) FROM audit_records WHERE received_at >= ? AND received_at < ?", (low, high))
    return int(rows[0][0])


def run_whatif(
    store: AuditStore,
    options: WhatIfOptions,
    progress: Callable[[int], None] | None = None,
    records: Iterable[Any] | None = None,
) -> WhatIf:
    """Re-decide every record of the window on the new policy; `progress(n)` after each batch."""
    started = time.perf_counter()
    policy = load_policy(options.policy)
    package = resolve_package(options, policy)
    package_path = str(package.path) if package is not None else None
    result = WhatIf(
        policy={
            "name": policy.name,
            "version": policy.version,
            "sha256": policy.sha256,
            "path": str(options.policy),
        },
        model=None
        if package is None
        else {"name": package.name, "version": package.version, "sha256": package.sha256},
        options=options,
        lgd_new=policy.offers.lgd if policy.offers is not None else None,
    )
    if records is None:  # personal values opened with the store's key; without it, left out
        records = map(open_vault(store).opened, store.iter_records(options.since, options.until))
    source = records
    executor: ProcessPoolExecutor | None = None
    local: BatchDecider | None = None
    if options.workers > 1:
        import multiprocessing

        executor = ProcessPoolExecutor(
            options.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(str(options.policy), package_path, options.scorer, options.rule_engine),
        )
    else:
        local = BatchDecider(str(options.policy), package_path, options.scorer, options.rule_engine)
    in_flight: deque[tuple[list[OldDecision], Future[Any]]] = deque()
    natives: list[bool] = []

    def collect(olds: list[OldDecision], news: list[NewDecision], diff: float, native: bool) -> None:
        result.max_scorer_diff = max(result.max_scorer_diff, diff)
        natives.append(native)
        for old, new in zip(olds, news, strict=True):
            result.add(old, new)
        if progress is not None:
            progress(len(olds))

    def flush(olds: list[OldDecision], apps: list[dict[str, Any]]) -> None:
        if local is not None:
            collect(olds, local.decide(apps), local.max_diff, local.use_native)
            return
        assert executor is not None
        in_flight.append((olds, executor.submit(_decide_in_worker, apps)))
        while len(in_flight) > 2 * options.workers:
            done_olds, future = in_flight.popleft()
            collect(done_olds, *future.result())

    try:
        olds: list[OldDecision] = []
        apps: list[dict[str, Any]] = []
        for record in source:
            if record.policy.get("name") != policy.name:
                result.skipped[f"policy {record.policy.get('name')}"] += 1
                continue
            old = old_decision(record)
            if old.policy_sha not in result.lgd_old:
                result.lgd_old[old.policy_sha] = _archived_lgd(store, old.policy_sha)
            olds.append(old)
            # the validated input, absent optional fields left out: the new policy declares its own
            apps.append({k: v for k, v in record.input.items() if v is not None})
            if len(apps) >= options.batch:
                flush(olds, apps)
                olds, apps = [], []
        if apps:
            flush(olds, apps)
        while in_flight:
            done_olds, future = in_flight.popleft()
            collect(done_olds, *future.result())
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)
    if options.scorer != "native":
        result.scorer = "onnxruntime (OnnxScorer.pd_matrix, batched; bit-identical to serving)"
    elif natives and not all(natives):
        result.scorer = "onnxruntime (native CatBoost differed from ONNX by more than 1e-6)"
    else:
        result.scorer = "catboost-native (NativeScorer.pd_matrix, batched; equal to ONNX within 1e-6)"
    result.seconds = time.perf_counter() - started
    return result


def _archived_lgd(store: AuditStore, policy_sha: str) -> Decimal | None:
    """The LGD of the policy a record was decided on, from its archived text (None if not archived)."""
    blob = store.get_blob(policy_sha)
    if blob is None:
        return None
    try:
        policy = load_policy_text(blob.data.decode("utf-8"), name=blob.name)
    except (CredoError, UnicodeDecodeError):
        return None
    return policy.offers.lgd if policy.offers is not None else None
