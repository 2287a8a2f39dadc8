"""`credo train`: deterministic metrics and files, parity gate, located spec errors, progress."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from models_helpers import SHIPPED

from engine.cli import main as credo
from engine.errors import ModelError, TrainSpecError
from engine.models import training
from engine.models.spec import load_spec
from engine.models.store import ModelStore


def test_same_spec_and_data_give_identical_metrics_and_files(
    small_spec_path: Path, small_package_dir: Path, tmp_path: Path
) -> None:
    again = training.train(load_spec(small_spec_path), tmp_path)
    first, second = (json.loads((d / "card.json").read_text()) for d in (small_package_dir, again))
    assert first["metrics"] == second["metrics"]
    assert first["sha256"] == second["sha256"] and first["files"] == second["files"]
    assert first["data"]["sha256"] == second["data"]["sha256"]


def test_card_contents(small_package_dir: Path) -> None:
    card = json.loads((small_package_dir / "card.json").read_text())
    assert [f["name"] for f in card["features"]] == [
        "age",
        "employment_type",
        "dti",
        "bureau_score",
        "delinquencies_24m",
    ]
    cv = card["metrics"]["cv"]
    assert cv["folds"] == 3 and set(cv) >= {"auc", "ks", "gini", "brier"}
    assert len(cv["auc"]["folds"]) == 3 and cv["auc"]["sd"] >= 0
    assert cv["gini"]["mean"] == pytest.approx(2 * cv["auc"]["mean"] - 1, abs=1e-5)
    assert card["excluded"] == [{"column": "applicant.gender", "reason": "protected"}]
    assert card["parity"]["passed"] and card["parity"]["max_abs_diff"] <= 1e-6
    assert card["data"]["rows"] == 2000 and card["data"]["train_rows"] + card["data"]["holdout_rows"] == 2000
    age = card["features"][0]
    assert age["range"] == age["train_range"]  # no declared range: the training range is enforced
    assert card["features"][2]["range"] == [0, 10]
    assert card["reasons"]["employment_type"] == {"code": "R_EMP", "text": {"en": "Employment", "zh": "就业"}}


def test_card_records_the_training_baseline_drift_compares_with(small_package_dir: Path) -> None:
    package = ModelStore(small_package_dir.parent.parent).load("small_pd", "0.0.1")
    baseline = package.card["baseline"]
    assert baseline["rows"] == 2000 and set(baseline["features"]) == set(package.feature_names)
    score = baseline["score"]
    assert score["of"] == "pd" and len(score["edges"]) == 9 and score["edges"] == sorted(score["edges"])
    assert score["shares"] == pytest.approx([0.1] * 10, abs=0.002)  # deciles of the development scores
    employment = baseline["features"]["employment_type"]
    codes = package.card["features"][1]["encoding"]["codes"]
    assert employment["categories"] == sorted(codes, key=codes.get)  # the categories in code order
    delinquencies = baseline["features"]["delinquencies_24m"]
    assert len(delinquencies["shares"]) == len(delinquencies["edges"]) + 1 < 10  # equal deciles merged
    for bins in (score, *baseline["features"].values()):
        assert sum(bins["shares"]) == pytest.approx(1.0, abs=1e-5)


def test_every_shipped_card_has_a_baseline_for_every_feature() -> None:
    store = ModelStore(SHIPPED)
    for name, version in store.list():
        package = store.load(name, version)  # model.onnx unchanged: its sha256 still matches the card
        assert set(package.card["baseline"]["features"]) == set(package.feature_names), name


def test_failed_parity_refuses_to_write(
    small_spec_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(training, "PARITY_TOLERANCE", -1.0)
    with pytest.raises(ModelError, match="package not written") as caught:
        training.train(load_spec(small_spec_path), tmp_path)
    assert caught.value.code == "MODEL_PARITY"
    assert list(tmp_path.iterdir()) == []


def test_spec_errors_are_all_located(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "name: bad\n"
        'version: "1"\n'
        "data: {synthetic: consumer_pd, rows: many}\n"
        "target: {column: default_12m}\n"
        "seed: 1\n"
        "params: {iterations: 10, dept: 3, thread_count: 8}\n"
        "features:\n"
        "  - name: age\n"
        "    type: number\n"
        "    reason: {code: R, text: {en: Age}}\n",
        encoding="utf-8",
    )
    with pytest.raises(TrainSpecError) as caught:
        load_spec(spec)
    found = [str(d) for d in caught.value.diagnostics]
    assert f"{spec}:3:38: SPEC_TYPE: data.rows must be an integer, got 'many'" in found
    assert f"{spec}:4:9: SPEC_MISSING_KEY: target: missing required key 'bad'" in found
    assert f"{spec}:6:26: SPEC_UNKNOWN_KEY: params: unknown key 'dept' (did you mean 'depth'?)" in found
    assert f"{spec}:6:49: SPEC_VALUE: params.thread_count must be between 1 and 2" in found
    assert f"{spec}:9:11: SPEC_VALUE: feature 'age': type must be numeric or categorical" in found


def test_unknown_column_is_located_at_its_feature(small_spec_path: Path, tmp_path: Path) -> None:
    spec = tmp_path / "typo.yaml"
    spec.write_text(small_spec_path.read_text().replace("column: bureau.score", "column: bureau.scor"))
    with pytest.raises(TrainSpecError) as caught:
        training.train(load_spec(spec), tmp_path / "out")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "SPEC_UNKNOWN_COLUMN" and "'bureau.scor'" in diagnostic.message
    assert (diagnostic.location.line, diagnostic.location.col) == (25, 5)


def test_cli_trains_and_reports_metrics(
    small_spec_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert credo(["train", str(small_spec_path), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert "3-fold CV: AUC" in out.out and "parity ONNX vs native" in out.out
    assert "cross-validation" in out.err  # the progress display
    assert ModelStore(tmp_path).load("small_pd", "0.0.1").card["metrics"]["cv"]["auc"]["mean"] > 0.6


def test_cli_prints_located_spec_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text("name: x\nversion: [1\n", encoding="utf-8")
    assert credo(["train", str(spec), "--out", str(tmp_path)]) == 1
    assert f"{spec}:3:1: SPEC_SYNTAX" in capsys.readouterr().err


def test_rebuilding_an_identical_model_keeps_the_card_unchanged(
    small_spec_path: Path, tmp_path: Path
) -> None:
    folder = training.train(load_spec(small_spec_path), tmp_path)
    before = (folder / "card.json").read_bytes()
    shutil.copy(folder / "card.json", tmp_path / "saved.json")
    training.train(load_spec(small_spec_path), tmp_path)
    assert (folder / "card.json").read_bytes() == before


def test_trains_from_a_parquet_file(small_spec_path: Path, tmp_path: Path) -> None:
    from engine.models import synthetic

    synthetic.write(2000, 5, tmp_path / "apps.parquet")
    spec = tmp_path / "from_parquet.yaml"
    spec.write_text(
        small_spec_path.read_text().replace(
            "{synthetic: consumer_pd, rows: 2000, seed: 5}", "{path: apps.parquet}"
        )
    )
    folder = training.train(load_spec(spec), tmp_path / "out")
    card = json.loads((folder / "card.json").read_text())
    assert card["data"]["path"] == "apps.parquet" and card["data"]["rows"] == 2000
    assert card["parity"]["passed"]
