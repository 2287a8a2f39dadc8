"""The batch decider: many applications decided on one policy and one model package with the same
stages as serving, the model scoring each chunk's survivors in one call.

The stage table is split at `score`: the stages before it run per application, the model scores the
survivors of the chunk at once, then the remaining stages run per application on that PD. Scorer:
ONNX Runtime on the whole chunk by default (bit-identical to serving's one-row calls), or
`scorer="native"`: CatBoost's NativeScorer.pd_matrix, checked against ONNX on each process's first
chunk (tolerance 1e-6, else ONNX is used). Rules run on the service's default evaluator, so batch
work follows whatever evaluator serving uses. Adverse-action model reasons (SHAP) and the booking
of offers (ids, validity, due dates) are skipped: no batch figure depends on them. Stress shocks
to the model's output - a `pd_multiplier`, or a macro link's `pd_logit_shift` (see stressed_pd) -
move the PD before points, grade, limit, price and offers are worked out from it.
"""

from __future__ import annotations

import datetime as dt
import gc
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.decision import Decision
from engine.errors import MODEL_MISSING, CredoError
from engine.finance.dates import utc_date
from engine.models.cache import check_pin
from engine.models.scoring import NativeScorer, OnnxScorer
from engine.models.store import ModelPackage, ModelStore, load_package
from engine.pipeline import DecisionContext, Stage, StageResult, build_decision, run_stages, stage_table
from engine.policy import Policy
from engine.rules import Evaluator
from engine.service import default_evaluator

__all__ = ["PD_CEILING", "TOLERANCE", "BatchDecider", "Undecided", "package_for", "stressed_pd"]

TOLERANCE = 1e-6  # NativeScorer vs OnnxScorer, absolute, on P(bad)
PD_CEILING = 0.999999  # a shocked PD stays a probability the score scale can take


@dataclass(frozen=True)
class Undecided:
    """An application the policy could not decide (bad input for this policy, a runtime error)."""

    code: str
    message: str


class BatchDecider:
    """Decides chunks of applications on one policy and one model package (see module docstring)."""

    def __init__(
        self,
        policy: Policy,
        package: ModelPackage | None,
        scorer: str = "onnx",
        evaluator: Evaluator | None = None,
        pd_multiplier: float = 1.0,
        pd_logit_shift: float = 0.0,
    ) -> None:
        self.policy = policy
        self.evaluator = evaluator if evaluator is not None else default_evaluator()
        self.package = package
        self.native = NativeScorer(package) if package else None
        self.onnx = OnnxScorer(package) if package else None
        self.use_native = scorer == "native"
        self.checked = not self.use_native
        self.max_diff = 0.0
        self.pd_multiplier = pd_multiplier
        self.pd_logit_shift = pd_logit_shift
        # offers are not booked (ids, validity, due dates): no batch figure reads them
        self.decided_at = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
        self.today = utc_date(self.decided_at)  # for `default: today` inputs a row leaves out

        def no_model_reasons(ctx: DecisionContext) -> StageResult:
            ctx.package = None  # outcome_stage explains (SHAP) only when a package is set
            return StageResult()

        table = list(stage_table(policy))
        names = [s.name for s in table]
        cut = names.index("score") if "score" in names else len(table)
        self.before = tuple(table[:cut])
        after = table[cut:]
        after.insert(len(after) - 1, Stage("batch", no_model_reasons, closing=True))
        self.after = tuple(after)

    @property
    def scorer_name(self) -> str:
        return "catboost-native" if self.use_native else "onnxruntime"

    def decide(self, applications: Sequence[Mapping[str, Any]]) -> list[Decision | Undecided]:
        """One Decision (no id, no time, no model reasons) or Undecided per application, in order."""
        # A chunk keeps every context alive until the model has scored it: hundreds of thousands of
        # young containers, so the cyclic collector ran full collections over the whole heap several
        # times a chunk (measured: 3 full collections, 1.6 s of 9.8 s on 2,000 rows). Reference
        # counting still frees everything; the collector runs again once the chunk is decided.
        with _collector_paused():
            return self._decide(applications)

    def _decide(self, applications: Sequence[Mapping[str, Any]]) -> list[Decision | Undecided]:
        out: list[Decision | Undecided | None] = [None] * len(applications)
        pending: list[tuple[int, DecisionContext, dict[str, Any] | None]] = []
        for i, application in enumerate(applications):
            ctx = DecisionContext(self.policy, application, self.evaluator, self._refuse, today=self.today)
            try:
                run_stages(ctx, self.before, _zero)
                score = self.policy.score
                features = score.features(ctx.fact) if score is not None and not ctx.declined else None
            except CredoError as exc:
                out[i] = Undecided(exc.code, str(exc))
                continue
            pending.append((i, ctx, features))
        scored = [(i, f) for i, _, f in pending if f is not None]
        pds = self._score([f for _, f in scored]) if scored else []
        by_index = {i: pd for (i, _), pd in zip(scored, pds, strict=True)}
        for i, ctx, _ in pending:
            if i in by_index:
                ctx.models = self._provider(by_index[i])
            try:
                run_stages(ctx, self.after, _zero)
            except CredoError as exc:
                out[i] = Undecided(exc.code, str(exc))
                continue
            out[i] = build_decision(ctx, "", "", self.decided_at, book=False)
        return [d if d is not None else Undecided("INTERNAL", "not decided") for d in out]

    def _provider(self, pd: float) -> Callable[[str, str, str | None], tuple[Any, Any]]:
        fixed = _FixedScore(pd)
        return lambda name, version, sha: (self.package, fixed)

    def _refuse(self, name: str, version: str, sha: str | None) -> tuple[Any, Any]:
        raise CredoError(f"batch: no model package for {name} {version}", code=MODEL_MISSING)

    def _score(self, rows: Sequence[Mapping[str, Any]]) -> list[float]:
        if self.native is None or self.onnx is None:
            raise CredoError("batch: the policy scores but no model package was given", code=MODEL_MISSING)
        matrix = self.native.encoder.encode_rows(rows)
        if not self.checked:  # verify the native scorer against the serving runtime once per process
            self.checked = True
            native, onnx = self.native.pd_matrix(matrix), self.onnx.pd_matrix(matrix)
            self.max_diff = float(abs(native - onnx).max()) if len(matrix) else 0.0
            self.use_native = self.max_diff <= TOLERANCE
            raw = native if self.use_native else onnx
        else:
            raw = (self.native if self.use_native else self.onnx).pd_matrix(matrix)
        if self.pd_multiplier == 1.0 and self.pd_logit_shift == 0.0:
            return [float(p) for p in raw]
        return [stressed_pd(float(p), self.pd_multiplier, self.pd_logit_shift) for p in raw]


def stressed_pd(pd: float, multiplier: float = 1.0, logit_shift: float = 0.0) -> float:
    """The PD under a model-output shock: multiplied, then moved along the logit scale,
    logistic(logit(PD) + logit_shift); kept within [0, PD_CEILING]."""
    pd = min(pd * multiplier, PD_CEILING)
    if logit_shift and pd > 0.0:
        z = math.log(pd / (1.0 - pd)) + logit_shift
        # the logistic written for each sign of z, so exp never overflows
        pd = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    return min(pd, PD_CEILING)


_pause_lock = threading.Lock()
_pause_holders = 0
_pause_restore = False


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while any thread of this process decides a chunk; back to
    how it was when the last one finishes (a Dask worker may decide chunks on several threads)."""
    global _pause_holders, _pause_restore
    with _pause_lock:
        if _pause_holders == 0:
            _pause_restore = gc.isenabled()
            gc.disable()
        _pause_holders += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pause_holders -= 1
            if _pause_holders == 0 and _pause_restore:
                gc.enable()


class _FixedScore:
    """A scorer answering the PD computed for this application in the chunk."""

    def __init__(self, pd: float) -> None:
        self._pd = pd

    def scored(self, features: Mapping[str, Any]) -> tuple[float, None]:
        return self._pd, None  # no row: a batch decision is not explained


def _zero() -> float:
    return 0.0


def package_for(policy: Policy, models_dir: Path, model: str | None = None) -> ModelPackage | None:
    """The model package a policy scores with: `model` as NAME@VERSION (under models_dir) or a
    package folder; by default the package the policy pins (its sha256 checked when pinned)."""
    if model:
        if "@" in model and not Path(model).exists():
            name, version = model.split("@", 1)
            return ModelStore(models_dir).load(name, version)
        return load_package(Path(model))
    if policy.score is None:
        return None
    spec = policy.score
    package = ModelStore(models_dir).load(spec.model_name, spec.model_version)
    check_pin(package, spec.model_sha256, str(models_dir))
    return package
