"""Drift of the scoring model as a model validator reads it: synthetic applicants decided by the real
service into a real SQLite store, a day drawn from the training population and a day with lower
incomes and bureau scores; PSI of the score, CSI of the features, statuses, and `credo monitor drift`."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from engine.audit import open_store
from engine.audit.log import DecisionLog
from engine.batch.inputs import nest
from engine.cli import main
from engine.models.synthetic import as_applications, generate, shifted
from engine.monitor.drift import DriftReport, Thresholds, drift_report, psi
from engine.policy.loader import check_text
from engine.service import DecisionService

ROOT = Path(__file__).resolve().parents[2]
DAY1 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
DAY2 = DAY1 + dt.timedelta(days=1)
PER_DAY = 400  # applicants a day: sampling noise alone gives a PSI near (bins - 1) / 400 = 0.02


def applicants(n: int, seed: int) -> pd.DataFrame:
    return as_applications(generate(n, seed)).drop(columns=["default_12m"])


def seconds_from(start: dt.datetime) -> Callable[[], dt.datetime]:
    ticks = iter(range(10**9))
    return lambda: start + dt.timedelta(seconds=next(ticks))


def decide_day(policies: Path, models: Path, url: str, day: dt.datetime, frame: pd.DataFrame) -> None:
    service = DecisionService(policies, models, store=DecisionLog(url), clock=seconds_from(day))
    try:
        for i, row in enumerate(frame.to_dict("records")):
            service.decide("consumer_loan", nest(row), f"{day:%Y%m%d}-{i}")
    finally:
        assert service.log is not None
        service.log.close()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A store: day 1 drawn from the training population, day 2 from the shifted one."""
    url = f"sqlite:///{tmp_path_factory.mktemp('drift') / 'audit.db'}"
    decide_day(ROOT / "policies", ROOT / "models", url, DAY1, applicants(PER_DAY, 101))
    decide_day(ROOT / "policies", ROOT / "models", url, DAY2, shifted(applicants(PER_DAY, 202)))
    yield url


def report(url: str, **kwargs: Any) -> DriftReport:
    store = open_store(url, create=False, readonly=True)
    try:
        return drift_report(store, **kwargs)
    finally:
        store.close()


def test_population_like_the_training_data_stays_stable(history: str) -> None:
    result = report(history, since=DAY1, until=DAY2)
    (model,) = result.models
    assert (model.model, model.policies, model.applicants) == ("consumer_pd", ("consumer_loan",), PER_DAY)
    # applicants knocked out before the score are scored here, so the index is of all of them
    assert model.count == PER_DAY and 0 < model.rescored < PER_DAY
    assert model.score is not None and model.score.psi is not None and model.score.psi < 0.10
    assert model.status == "stable" and model.flagged == [] and not result.action
    assert all(f.psi is not None and f.psi < 0.10 for f in model.features)


def test_shifted_population_crosses_action_and_flags_income_and_bureau_score(history: str) -> None:
    (model,) = report(history, since=DAY2).models
    assert model.score is not None and model.score.psi is not None and model.score.psi > 0.25
    assert model.status == "action"
    by_name = {f.name: f for f in model.features}
    for moved in ("income_monthly", "bureau_score", "dti"):  # dti = payments / the halved income
        assert by_name[moved].status == "action", moved
    assert set(model.flagged) == {"income_monthly", "bureau_score", "dti"}
    assert by_name["age"].status == by_name["employment_type"].status == "stable"
    # the bins say where: most of the shifted incomes sit in the baseline's lowest decile
    lowest = by_name["income_monthly"].bins[0]
    assert lowest.expected == pytest.approx(0.1, abs=0.01) and lowest.actual > 0.3


def test_by_day_shows_the_day_the_population_moved(history: str) -> None:
    result = report(history, since=DAY1, by="day")
    (model,) = result.models
    assert [(p.period, p.status) for p in model.periods] == [
        ("2026-03-01", "stable"),
        ("2026-03-02", "action"),
    ]
    assert [p.count for p in model.periods] == [PER_DAY, PER_DAY]
    assert [(m.period, m.count) for m in result.mix] == [("2026-03-01", PER_DAY), ("2026-03-02", PER_DAY)]
    first, second = result.mix
    # poorer applicants: fewer approvals and more income and bureau declines
    assert second.outcomes.get("APPROVE", 0) < first.outcomes.get("APPROVE", 0)
    assert second.reasons.get("BUREAU_SCORE", 0) > first.reasons.get("BUREAU_SCORE", 0)
    assert sum(second.grades.values()) < sum(first.grades.values())  # fewer reach the score


def test_report_json_round_trips_and_names_the_thresholds(history: str) -> None:
    data = json.loads(json.dumps(report(history, since=DAY1).to_json()))
    (model,) = data["models"]
    assert data["action"] is True and model["thresholds"] == {"watch": 0.1, "action": 0.25}
    assert model["score"]["name"] == "score" and len(model["score"]["bins"]) == 10
    assert {f["name"] for f in model["features"]} >= {"income_monthly", "bureau_score"}


def test_cli_table_and_exit_code_say_whether_a_model_is_at_action(
    history: str, capsys: pytest.CaptureFixture[str]
) -> None:
    until = DAY2.date().isoformat()
    assert main(["monitor", "drift", "--store", history, "--since", "2026-03-01", "--until", until]) == 0
    out = capsys.readouterr().out
    assert "consumer_pd 1.0.0" in out and "STABLE" in out and "score (PSI)" in out
    assert main(["monitor", "drift", "--store", history, "--since", "2026-03-02", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["models"][0]["status"] == "action" and "income_monthly" in data["models"][0]["flagged"]
    # a caller's own thresholds: the shifted day is still action, the unshifted one becomes watch
    tight = ["--watch", "0.001", "--action", "0.9"]
    assert (
        main(["monitor", "drift", "--store", history, "--since", "2026-03-01", "--until", until, *tight]) == 0
    )
    assert "WATCH" in capsys.readouterr().out


def test_cli_refuses_bad_thresholds_and_a_missing_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["monitor", "drift", "--store", store, "--since", "2026-03-01", "--watch", "0.3"]) == 2
    assert "--watch < --action" in capsys.readouterr().err
    assert main(["monitor", "drift", "--store", store, "--since", "2026-03-01"]) == 2
    assert "credo monitor drift:" in capsys.readouterr().err


def test_psi_and_status_boundaries() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0
    assert psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.4 * 0.587787 + 0.4 * 1.609438, rel=1e-5)
    limits = Thresholds()
    assert [limits.status(v) for v in (0.0999, 0.10, 0.25, 0.2501)] == ["stable", "watch", "watch", "action"]


# -- the edges: a card without a baseline, personal data, a policy's own thresholds


def private_copy(tmp_path: Path) -> tuple[Path, Path]:
    policies, models = tmp_path / "policies", tmp_path / "models"
    shutil.copytree(ROOT / "policies" / "consumer_loan", policies / "consumer_loan")
    shutil.copytree(ROOT / "models" / "consumer_pd", models / "consumer_pd")
    return policies, models


def edit_policy(policies: Path, old: str, new: str) -> None:
    path = policies / "consumer_loan" / "policy.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_card_without_a_baseline_says_so_and_does_not_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies, models = private_copy(tmp_path)
    card_path = models / "consumer_pd" / "1.0.0" / "card.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    del card["baseline"]  # a card written before baselines existed (the model files are unchanged)
    card_path.write_text(json.dumps(card), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    decide_day(policies, models, url, DAY1, applicants(20, 5))
    (model,) = report(url, since=DAY1).models
    assert model.status == "no baseline" and model.score is None and "no training baseline" in model.note
    assert main(["monitor", "drift", "--store", url, "--since", "2026-03-01"]) == 0
    assert "no baseline" in capsys.readouterr().out
    # the shipped card of the same model.onnx has one: a models folder fills the gap
    (model,) = report(url, since=DAY1, models=open_models(ROOT / "models")).models
    assert model.status in ("stable", "watch", "action") and model.score is not None


def open_models(path: Path) -> Any:
    from engine.models.store import ModelStore

    return ModelStore(path)


def test_model_features_sealed_as_personal_data_are_counted_not_read(tmp_path: Path) -> None:
    policies, models = private_copy(tmp_path)
    edit_policy(
        policies,
        "applicant.income_monthly: {type: decimal",
        "applicant.income_monthly: {type: decimal, pii: true",
    )
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    decide_day(policies, models, url, DAY1, applicants(30, 6))
    (model,) = report(url, since=DAY1).models
    income = {f.name: f for f in model.features}["income_monthly"]
    assert income.psi is None and income.observed == 0 and income.sealed == 30
    assert model.score is not None and model.score.psi is not None  # the score itself is never personal


def test_a_policy_sets_its_own_drift_thresholds(tmp_path: Path) -> None:
    policies, models = private_copy(tmp_path)
    edit_policy(
        policies,
        "  model: {name: consumer_pd",
        "  drift: {watch: 0.001, action: 0.002}\n  model: {name: consumer_pd",
    )
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    decide_day(policies, models, url, DAY1, applicants(30, 7))
    (model,) = report(url, since=DAY1).models
    assert model.thresholds == Thresholds(0.001, 0.002) and model.status == "action"


def test_drift_thresholds_out_of_order_are_a_located_policy_error() -> None:
    text = (ROOT / "policies" / "consumer_loan" / "policy.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "  model: {name: consumer_pd", "  drift: {watch: 0.3, action: 0.2}\n  model: {name: consumer_pd", 1
    )
    errors = [d for d in check_text(text, "policy.yaml") if d.is_error]
    assert errors and "watch < action" in errors[0].message and errors[0].location.line > 1
