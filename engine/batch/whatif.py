"""What-if replay over history: every recorded decision in a time window re-decided on a NEW policy
(and optionally another model) on the batch engine (engine.batch.decider, chunks on an
engine.batch.pool), and the impact tallied: swaps, approval, limits, rates, loss.

The recorded side comes from the store (`iter_records` over the window); the new side is decided in
chunks with the same stages as serving, ONNX Runtime batches by default (bit-identical to serving,
so replaying history on the unchanged policy reproduces it exactly) or native CatBoost (`scorer`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.audit.pii import open_vault
from engine.audit.store import AuditStore
from engine.batch.decider import BatchDecider, Undecided, package_for
from engine.batch.pool import Pool, open_pool, run_in_order
from engine.batch.portfolio import NONE, OUTCOMES
from engine.decision import Decision
from engine.errors import CredoError
from engine.models.store import load_package
from engine.policy import load_policy, load_policy_text
from engine.rules import DEFAULT_ENGINE
from engine.rules import evaluator as rule_evaluator

__all__ = ["NewDecision", "OldDecision", "Tally", "WhatIf", "WhatIfOptions", "count_window", "run_whatif"]

NO_GRADE = NO_SEGMENT = NONE


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
    rule_engine: str = DEFAULT_ENGINE  # compiled, durable or reference (engine.rules)


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
    evaluator: str = ""
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
                "evaluator": self.evaluator,
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


# -- the worker side (one decider per process, loaded on its first chunk)
_deciders: dict[tuple[str, str | None, str, str], BatchDecider] = {}


def decide_applications(
    policy_path: str,
    package_path: str | None,
    scorer: str,
    rule_engine: str,
    applications: list[dict[str, Any]],
) -> tuple[list[NewDecision], float, bool]:
    """One chunk on the new policy: its decisions, the native-vs-ONNX difference and scorer used."""
    key = (policy_path, package_path, scorer, rule_engine)
    decider = _deciders.get(key)
    if decider is None:
        package = load_package(Path(package_path)) if package_path else None
        decider = _deciders[key] = BatchDecider(
            load_policy(policy_path), package, scorer, evaluator=rule_evaluator(rule_engine)
        )
    decided = decider.decide(applications)
    return [_new_decision(d) for d in decided], decider.max_diff, decider.use_native


def _new_decision(decided: Decision | Undecided) -> NewDecision:
    if isinstance(decided, Undecided):
        return NewDecision("ERROR", error=f"{decided.code}: {decided.message}")  # counted by code
    score = decided.score
    return NewDecision(
        outcome=decided.outcome.value,
        grade=score.grade if score else None,
        segments=tuple(decided.segments),
        limit=decided.limit,
        rate=decided.annual_rate,
        pd=score.pd if score else None,
        points=score.points if score else None,
    )


# -- the driver
def run_whatif(
    store: AuditStore,
    options: WhatIfOptions,
    progress: Callable[[int], None] | None = None,
    records: Iterable[Any] | None = None,
    pool: Pool | None = None,
) -> WhatIf:
    """Re-decide every record of the window on the new policy; `progress(n)` after each chunk. The
    chunks run on `pool`, else on `options.workers` local processes (1: in this process)."""
    started = time.perf_counter()
    policy = load_policy(options.policy)
    package = package_for(policy, options.models_dir, options.model)
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
    result.evaluator = f"{options.rule_engine} (engine.rules)"
    if records is None:  # personal values opened with the store's key; without it, left out
        records = map(open_vault(store).opened, store.iter_records(options.since, options.until))
    source = records
    olds_by_chunk: deque[list[OldDecision]] = deque()

    def chunks() -> Iterator[tuple[Any, ...]]:
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
                olds_by_chunk.append(olds)
                yield (str(options.policy), package_path, options.scorer, options.rule_engine, apps)
                olds, apps = [], []
        if apps:
            olds_by_chunk.append(olds)
            yield (str(options.policy), package_path, options.scorer, options.rule_engine, apps)

    own_pool = pool is None
    running = pool if pool is not None else open_pool(max(1, options.workers))
    natives: list[bool] = []
    try:
        for news, diff, native in run_in_order(running, decide_applications, chunks()):
            olds = olds_by_chunk.popleft()
            result.max_scorer_diff = max(result.max_scorer_diff, diff)
            natives.append(native)
            for old, new in zip(olds, news, strict=True):
                result.add(old, new)
            if progress is not None:
                progress(len(olds))
    finally:
        if own_pool:
            running.close()
    if options.scorer != "native":
        result.scorer = "onnxruntime (OnnxScorer.pd_matrix, batched; bit-identical to serving)"
    elif natives and not all(natives):
        result.scorer = "onnxruntime (native CatBoost differed from ONNX by more than 1e-6)"
    else:
        result.scorer = "catboost-native (NativeScorer.pd_matrix, batched; equal to ONNX within 1e-6)"
    result.seconds = time.perf_counter() - started
    return result


def count_window(store: AuditStore, since: dt.datetime | None, until: dt.datetime | None) -> int:
    """Records in [since, until), for the progress bar."""
    return store.count_between(since, until)


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
