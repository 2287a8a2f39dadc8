"""Drift of every scoring model against its training baseline, read from the audit store: the
population stability index (PSI) of the score and the characteristic stability index (CSI) of each
model feature, with a status per model; plus the outcome, reason-code and grade mix per period.

    report = drift_report(store, since=dt.datetime(2026, 12, 1, tzinfo=dt.UTC), by="day")
    report.models[0].score.psi, report.models[0].status, report.models[0].flagged, report.to_json()

PSI = sum over bins of (actual - expected) * ln(actual / expected), on the bins the model card's
`baseline` records (engine.models.baseline): the deciles of the development sample's P(bad) for
the score (PSI of P(bad) is the PSI of points: the scaling is monotone), its deciles or categories
for each feature. CSI is the same sum on one feature's bins; each bin's term is reported, so the
bins that moved are visible. A share of 0 is floored at EMPTY_SHARE (the sum would be infinite).

The baseline is every applicant of the development sample, so the window is every applicant too:
a feature that copies an input or derived value is read from each record's validated input, and an
applicant knocked out before the score is scored here with the same archived model (`rescored`);
otherwise the policy's own knock-outs would read as drift. Values sealed as personal data are
counted as sealed and left out, never guessed. The policy's archived text says which model and
features it scores with, and its thresholds (`score.drift: {watch, action}`).

Status: psi < watch is "stable", psi <= action "watch", above "action" (defaults 0.10 and 0.25); a
model's status is its worst, score or feature. The baseline comes from the card archived with the
records (what was served), else from a models folder; a card without one gives "no baseline".
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from engine.audit.archive import restore_archive
from engine.audit.pii_fields import is_sealed
from engine.audit.record import DecisionRecord
from engine.audit.store import AuditStore
from engine.errors import CredoError, DiagnosticSink
from engine.models.baseline import bin_counts
from engine.models.scoring import onnx_scorer
from engine.models.store import ModelStore, load_package
from engine.policy.schema import DriftSpec
from engine.policy.source import parse_source

__all__ = [
    "EMPTY_SHARE",
    "STATUSES",
    "BinShift",
    "DriftReport",
    "FeatureDrift",
    "MixPeriod",
    "ModelDrift",
    "PeriodDrift",
    "Thresholds",
    "drift_report",
    "psi",
]

EMPTY_SHARE = 1e-4  # the share an empty bin counts as (ln 0 is undefined)
STATUSES = ("stable", "watch", "action")
NO_BASELINE = "no baseline"
TOP_REASONS = 10  # reason codes kept per period in the mix (the rest are summed as "other")


@dataclass(frozen=True)
class Thresholds:
    """PSI below `watch` is stable, up to `action` watch, above `action` action."""

    watch: float = 0.10
    action: float = 0.25

    def status(self, value: float) -> str:
        if value < self.watch:
            return "stable"
        return "watch" if value <= self.action else "action"

    def to_json(self) -> dict[str, float]:
        return {"watch": self.watch, "action": self.action}


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """The population stability index of two share vectors over the same bins."""
    return sum(_term(e, a) for e, a in zip(expected, actual, strict=True))


def _term(expected: float, actual: float) -> float:
    e, a = max(expected, EMPTY_SHARE), max(actual, EMPTY_SHARE)
    return (a - e) * math.log(a / e)


@dataclass(frozen=True)
class BinShift:
    """One bin: its label (a category, or the interval of a numeric bin), the baseline's share, the
    share observed, and its term of the index."""

    label: str
    expected: float
    actual: float
    contribution: float

    def to_json(self) -> dict[str, Any]:
        return {
            "bin": self.label,
            "expected": round(self.expected, 6),
            "actual": round(self.actual, 6),
            "contribution": round(self.contribution, 6),
        }


@dataclass(frozen=True)
class FeatureDrift:
    """The index of the score (name "score") or of one feature over the values observed."""

    name: str
    psi: float | None  # None: no value observed (all sealed, or no record)
    status: str
    observed: int
    bins: tuple[BinShift, ...] = ()
    sealed: int = 0  # values sealed as personal data: not read
    unbinned: int = 0  # categories (or values) the baseline has no bin for

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "psi": None if self.psi is None else round(self.psi, 6),
            "status": self.status,
            "observed": self.observed,
            "sealed": self.sealed,
            "unbinned": self.unbinned,
            "bins": [b.to_json() for b in self.bins],
        }


@dataclass(frozen=True)
class PeriodDrift:
    """One period's (a day's) indices of a model: the score's and each feature's."""

    period: str
    count: int
    score_psi: float | None
    status: str
    features: dict[str, float | None]

    def to_json(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "count": self.count,
            "score_psi": None if self.score_psi is None else round(self.score_psi, 6),
            "status": self.status,
            "features": {k: None if v is None else round(v, 6) for k, v in self.features.items()},
        }


@dataclass(frozen=True)
class ModelDrift:
    """One model package (name, version, sha256 of model.onnx) over the window."""

    model: str
    version: str
    sha256: str
    policies: tuple[str, ...]
    count: int  # scores in the index: recorded, and `rescored` here
    status: str  # stable / watch / action, or "no baseline"
    thresholds: Thresholds
    score: FeatureDrift | None = None
    features: tuple[FeatureDrift, ...] = ()
    periods: tuple[PeriodDrift, ...] = ()
    note: str = ""
    applicants: int = 0  # decisions of the policies scoring with it, scored or not
    rescored: int = 0  # of `count`, applicants declined before the score, scored here (see module doc)

    @property
    def flagged(self) -> list[str]:
        """The features not stable, worst first: where to look for the cause of a moved score."""
        moved = [f for f in self.features if f.status in ("watch", "action") and f.psi is not None]
        return [f.name for f in sorted(moved, key=lambda f: -(f.psi or 0.0))]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "sha256": self.sha256,
            "policies": list(self.policies),
            "count": self.count,
            "applicants": self.applicants,
            "rescored": self.rescored,
            "status": self.status,
            "thresholds": self.thresholds.to_json(),
            "note": self.note,
            "score": None if self.score is None else self.score.to_json(),
            "features": [f.to_json() for f in self.features],
            "flagged": self.flagged,
            "periods": [p.to_json() for p in self.periods],
        }


@dataclass(frozen=True)
class MixPeriod:
    """What one policy decided in one period: outcomes, reason codes (top TOP_REASONS) and grades."""

    period: str
    policy: str
    count: int
    outcomes: dict[str, int]
    reasons: dict[str, int]
    grades: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "policy": self.policy,
            "count": self.count,
            "outcomes": self.outcomes,
            "reasons": self.reasons,
            "grades": self.grades,
        }


@dataclass(frozen=True)
class DriftReport:
    since: dt.datetime
    until: dt.datetime | None
    by: str | None
    records: int
    models: tuple[ModelDrift, ...]
    mix: tuple[MixPeriod, ...]

    @property
    def action(self) -> bool:
        """True when any model is at "action": `credo monitor drift` exits 1."""
        return any(m.status == "action" for m in self.models)

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "by": self.by,
            "records": self.records,
            "action": self.action,
            "models": [m.to_json() for m in self.models],
            "mix": [p.to_json() for p in self.mix],
        }


# -- reading the store


@dataclass(frozen=True)
class _Plan:
    """What a policy version scores with, read from its archived text: the model, each feature's
    source (the input or derived name it copies; None for a formula) and its drift thresholds."""

    model: str
    version: str
    sources: dict[str, str | None]
    thresholds: Thresholds | None


@dataclass
class _Observed:
    """One model's values in the window: the score of each decision it scored, and each feature of
    every applicant (read from the validated input when the feature copies one, so applicants
    declined before the score count too; else from the features the model scored)."""

    model: str
    version: str
    sha256: str = ""
    card_sha256: str | None = None
    policies: set[str] = field(default_factory=set)
    thresholds: set[Thresholds] = field(default_factory=set)
    applicants: int = 0
    pds: list[tuple[str, float]] = field(default_factory=list)  # (period, P(bad))
    features: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)  # name -> (period, value)
    sealed: Counter[str] = field(default_factory=Counter)
    archive: dict[str, str] = field(default_factory=dict)  # the model's archived files {path: sha256}
    unscored: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (period, features)
    unscorable: int = 0  # declined before the score with a feature that is sealed or a formula


@dataclass
class _Mix:
    count: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    grades: Counter[str] = field(default_factory=Counter)

    def add(self, record: DecisionRecord) -> None:
        self.count += 1
        self.outcomes[record.outcome] += 1
        for reason in record.decision.get("reasons") or []:
            if isinstance(reason, dict) and reason.get("code"):
                self.reasons[str(reason["code"])] += 1
        score = record.decision.get("score")
        if isinstance(score, dict) and score.get("grade"):
            self.grades[str(score["grade"])] += 1


def drift_report(
    store: AuditStore,
    *,
    since: dt.datetime,
    until: dt.datetime | None = None,
    by: str | None = None,
    policy: str | None = None,
    models: ModelStore | None = None,
    thresholds: Thresholds | None = None,
) -> DriftReport:
    """Drift of every model that scored a decision received in [since, until) (of `policy` only,
    if named), with a row per period when `by` is "day". `thresholds` overrides the policy's own
    (`score.drift`), which override the defaults. `models` is a folder to read baselines from when
    the archived card has none."""
    if by not in (None, "day"):
        raise ValueError(f"by must be None or 'day', not {by!r}")
    observed: dict[tuple[str, str], _Observed] = {}
    plans: dict[str, _Plan | None] = {}
    mix: dict[tuple[str, str], _Mix] = {}
    count = 0
    for record in store.iter_records(since, until):
        name = str(record.policy.get("name"))
        if policy is not None and name != policy:
            continue
        count += 1
        period = record.received_at[:10] if by == "day" else "all"
        mix.setdefault((period, name), _Mix()).add(record)
        sha = str(record.policy.get("sha256"))
        if sha not in plans:
            plans[sha] = _plan(store, sha)
        _gather(record, period, plans[sha], observed)
    models_out = tuple(
        _model_drift(store, seen, models, thresholds, by) for _, seen in sorted(observed.items())
    )
    mix_out = tuple(_mixed(period, name, m) for (period, name), m in sorted(mix.items()))
    return DriftReport(since, until, by, count, models_out, mix_out)


def _plan(store: AuditStore, policy_sha256: str) -> _Plan | None:
    """The score section of an archived policy text; None if it has none (or is not archived)."""
    blob = store.get_blob(policy_sha256)
    if blob is None:
        return None
    source = parse_source(blob.name, blob.data.decode("utf-8"), DiagnosticSink())
    doc = source.data if source is not None else None
    score = doc.get("score") if isinstance(doc, dict) else None
    if not isinstance(score, dict) or not isinstance(score.get("model"), dict):
        return None
    sources = {
        str(feature): expr if isinstance(expr, str) and _NAME.fullmatch(expr) else None
        for feature, expr in (score.get("features") or {}).items()
    }
    limits = None
    if isinstance(score.get("drift"), dict):
        spec = DriftSpec.model_validate(score["drift"])  # the policy was served, so it validated then
        limits = Thresholds(float(spec.watch), float(spec.action))
    model = score["model"]
    return _Plan(str(model.get("name")), str(model.get("version")), sources, limits)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _gather(
    record: DecisionRecord, period: str, plan: _Plan | None, observed: dict[tuple[str, str], _Observed]
) -> None:
    refs = {str(m.get("name")): m for m in record.models}
    scored = {
        name: outputs
        for name, outputs in record.model_outputs.items()
        if name in refs and isinstance(outputs, dict) and "pd" in outputs
    }
    wanted: dict[str, dict[str, str | None]] = (
        {name: {} for name in scored} if plan is None else {plan.model: plan.sources}
    )
    for name, sources in wanted.items():
        ref = refs.get(name)
        version = str(ref.get("version")) if ref else (plan.version if plan else "")
        seen = observed.setdefault((name, version), _Observed(name, version))
        seen.applicants += 1
        seen.policies.add(str(record.policy.get("name")))
        if plan is not None and plan.thresholds is not None:
            seen.thresholds.add(plan.thresholds)
        outputs = scored.get(name)
        recorded: dict[str, Any] = {}
        if ref is not None and outputs is not None:
            seen.sha256 = str(ref.get("sha256"))
            folder = f"models/{name}/{version}/"
            seen.archive = {k: v for k, v in record.archive.items() if k.startswith(folder)} or seen.archive
            seen.card_sha256 = seen.archive.get(folder + "card.json", seen.card_sha256)
            seen.pds.append((period, float(outputs["pd"])))
            recorded = outputs.get("features") or {}
        row: dict[str, Any] | None = {} if outputs is None else None  # features to score it here
        for feature in {*sources, *recorded}:
            source = sources.get(feature)
            if source is not None and source in record.input:
                value = record.input[source]
            elif source is not None and source in record.derived:
                value = record.derived[source]
            elif feature in recorded:
                value = recorded[feature]
            else:
                continue  # a formula feature of an applicant the model did not score
            if is_sealed(value):
                seen.sealed[feature] += 1
            elif value is not None:
                seen.features.setdefault(feature, []).append((period, value))
                if row is not None:
                    row[feature] = value
        if row is not None:
            if (
                sources
                and all(source is not None for source in sources.values())
                and len(row) == len(sources)
            ):
                seen.unscored.append((period, row))
            else:
                seen.unscorable += 1


def _baseline(store: AuditStore, seen: _Observed, models: ModelStore | None) -> dict[str, Any] | None:
    """The `baseline` of the card served with the records, else of the models folder's package."""
    if seen.card_sha256:
        blob = store.get_blob(seen.card_sha256)
        if blob is not None:
            baseline = json.loads(blob.data).get("baseline")
            if baseline:
                return dict(baseline)
    if models is not None:
        try:
            package = models.by_sha256(seen.sha256)
        except CredoError:  # no such package, or one that fails its hashes: "no baseline", said so
            return None
        found = package.card.get("baseline")
        return dict(found) if found else None
    return None


def _model_drift(
    store: AuditStore,
    seen: _Observed,
    models: ModelStore | None,
    thresholds: Thresholds | None,
    by: str | None,
) -> ModelDrift:
    limits = thresholds or _strictest(seen.thresholds)
    baseline = _baseline(store, seen, models)
    if baseline is not None and seen.unscored:
        _score_the_rest(store, seen, models)
    model = ModelDrift(
        seen.model,
        seen.version,
        seen.sha256,
        tuple(sorted(seen.policies)),
        len(seen.pds),
        NO_BASELINE,
        limits,
        applicants=seen.applicants,
        rescored=len(seen.unscored) if baseline is not None else 0,
    )
    if baseline is None:
        note = (
            f"no baseline: the card of {seen.model} {seen.version} records no training baseline; "
            "retrain it (credo train, make models) to record one"
        )
        return replace(model, note=note)
    score = _index("score", baseline["score"], [pd for _, pd in seen.pds], 0, limits)
    features = tuple(
        _index(name, bins, [v for _, v in seen.features.get(name, [])], seen.sealed[name], limits)
        for name, bins in baseline["features"].items()
    )
    periods: tuple[PeriodDrift, ...] = ()
    if by is not None:
        periods = tuple(_periods(seen, baseline, limits))
    status = _worst([score.status, *(f.status for f in features)])
    return replace(model, status=status, score=score, features=features, periods=periods)


def _score_the_rest(store: AuditStore, seen: _Observed, models: ModelStore | None) -> None:
    """Score the applicants declined before the score with the same model (restored from the
    archive, else the models folder), so the score's PSI is of every applicant through the door, as
    the baseline is: knock-outs before the score would otherwise read as drift."""
    with tempfile.TemporaryDirectory(prefix="credo-drift-") as work:
        package = None
        if seen.archive:
            try:
                root = restore_archive(store, seen.archive, work)
                package = load_package(root / "models" / seen.model / seen.version)
            except CredoError:
                package = None
        if package is None and models is not None and seen.sha256:
            try:
                package = models.by_sha256(seen.sha256)
            except CredoError:
                package = None
        if package is None:
            seen.unscorable += len(seen.unscored)
            seen.unscored.clear()
            return
        scorer = onnx_scorer(package)
        numeric = {str(f["name"]) for f in package.card["features"] if f["type"] != "categorical"}
        kept = []
        for period, row in seen.unscored:
            try:
                features = {k: float(v) if k in numeric else v for k, v in row.items()}
                seen.pds.append((period, scorer.pd(features)))
                kept.append((period, row))
            except (CredoError, TypeError, ValueError):  # a value the model refuses: it was never scored
                seen.unscorable += 1
        seen.unscored[:] = kept


def _strictest(found: set[Thresholds]) -> Thresholds:
    """The strictest thresholds among the policy versions that used the model, else the defaults."""
    if not found:
        return Thresholds()
    return Thresholds(min(t.watch for t in found), min(t.action for t in found))


def _periods(seen: _Observed, baseline: Mapping[str, Any], limits: Thresholds) -> Iterable[PeriodDrift]:
    for period in sorted({p for p, _ in seen.pds}):
        pds = [pd for p, pd in seen.pds if p == period]
        score = _index("score", baseline["score"], pds, 0, limits)
        features = {}
        for name, bins in baseline["features"].items():
            values = [v for p, v in seen.features.get(name, []) if p == period]
            features[name] = _index(name, bins, values, 0, limits).psi
        statuses = [score.status, *(limits.status(v) for v in features.values() if v is not None)]
        yield PeriodDrift(period, len(pds), score.psi, _worst(statuses), features)


def _worst(statuses: Sequence[str]) -> str:
    ranked = [s for s in statuses if s in STATUSES]
    return max(ranked, key=STATUSES.index) if ranked else "stable"


def _index(
    name: str, bins: Mapping[str, Any], values: Sequence[Any], sealed: int, limits: Thresholds
) -> FeatureDrift:
    labels = _labels(bins)
    usable = list(values) if "categories" in bins else [float(v) for v in values if _number(v)]
    counts = bin_counts(bins, usable)
    binned = sum(counts)
    unbinned = len(values) - binned
    if binned == 0:
        return FeatureDrift(name, None, "stable", 0, sealed=sealed, unbinned=unbinned)
    shifts = []
    for label, expected, n in zip(labels, bins["shares"], counts, strict=True):
        actual = n / binned
        shifts.append(BinShift(label, float(expected), actual, _term(float(expected), actual)))
    value = sum(s.contribution for s in shifts)
    return FeatureDrift(name, value, limits.status(value), binned, tuple(shifts), sealed, unbinned)


def _number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _labels(bins: Mapping[str, Any]) -> list[str]:
    if "categories" in bins:
        return [str(c) for c in bins["categories"]]
    edges = [f"{e:g}" for e in bins["edges"]]
    if not edges:
        return ["all"]
    inner = [f"({low}, {high}]" for low, high in itertools.pairwise(edges)]
    return [f"<= {edges[0]}", *inner, f"> {edges[-1]}"]


def _mixed(period: str, policy: str, mix: _Mix) -> MixPeriod:
    top = dict(mix.reasons.most_common(TOP_REASONS))
    rest = sum(mix.reasons.values()) - sum(top.values())
    if rest:
        top["other"] = rest
    outcomes, grades = dict(sorted(mix.outcomes.items())), dict(sorted(mix.grades.items()))
    return MixPeriod(period, policy, mix.count, outcomes, top, grades)
