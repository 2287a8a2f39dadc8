"""The per-leaf SHAP tables equal CatBoost's own ShapValues on every training row of both shipped
models, give the same adverse reasons, and explaining a decision never calls CatBoost."""

from __future__ import annotations

from pathlib import Path

import catboost
import numpy as np
import pytest
from models_helpers import SHIPPED, consumer_row

from engine.models.scoring import NativeScorer, explain
from engine.models.shap_table import shap_table
from engine.models.spec import load_spec
from engine.models.store import ModelPackage, ModelStore
from engine.models.training import load_dataset

TOP = 4


def _adverse_order(values: np.ndarray) -> list[list[int]]:
    """Per row: the top-4 features with a positive contribution, largest first, ties in card order."""
    order = np.argsort(-values, axis=1, kind="stable")
    return [
        [int(i) for i in row_order if row[i] > 0][:TOP] for row, row_order in zip(values, order, strict=True)
    ]


@pytest.mark.parametrize("name", ["german_credit", "consumer_pd"])
def test_shap_tables_equal_catboost_shap_values_on_every_training_row(name: str) -> None:
    package = ModelStore(SHIPPED).load(name, "1.0.0")
    scorer = NativeScorer(package)
    spec = load_spec(Path(SHIPPED) / "specs" / f"{name}.yaml")
    matrix = scorer.encoder.encode_frame(load_dataset(spec).frame, check_range=False)
    pool = catboost.Pool(matrix, feature_names=scorer.encoder.names)
    want = scorer.model.get_feature_importance(data=pool, type="ShapValues", thread_count=2)[:, :-1]
    got = scorer.shap_table.matrix(matrix)
    assert got.shape == want.shape
    assert float(np.max(np.abs(got - want))) <= 1e-9
    assert _adverse_order(got) == _adverse_order(want)


def test_explaining_a_decision_never_calls_catboost(
    consumer_pd: ModelPackage, monkeypatch: pytest.MonkeyPatch
) -> None:
    explain(consumer_pd, consumer_row())  # the native model and its tables are loaded once, here

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("CatBoost was called on the request path")

    monkeypatch.setattr(catboost.CatBoostClassifier, "get_feature_importance", refuse)
    monkeypatch.setattr(catboost.CatBoostClassifier, "predict", refuse)
    reasons = explain(consumer_pd, consumer_row(delinquencies_24m=3, bureau_score=500))
    assert reasons and all(r.contribution > 0 for r in reasons)


def test_shap_tables_of_trees_that_split_one_feature_twice() -> None:
    """Depth 3 on two features: every tree repeats a feature, some use one only, so the tables
    hold fewer features per tree than levels and pad the rest; they still equal CatBoost's."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, 2)).astype(np.float32)
    y = ((x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=400)) > 0).astype(int)
    model = catboost.CatBoostClassifier(iterations=30, depth=3, verbose=False, thread_count=1, random_seed=1)
    model.fit(x, y)
    table = shap_table(model, 2)
    assert table.leaves.shape[1] <= 2 < 3  # slots: distinct features of a tree, not its levels
    want = model.get_feature_importance(data=catboost.Pool(x), type="ShapValues", thread_count=1)[:, :-1]
    got = table.matrix(x)
    assert float(np.max(np.abs(got - want))) <= 1e-9
    assert _adverse_order(got) == _adverse_order(want)


@pytest.mark.parametrize("depth", [2, 4, 6, 8, 10])
def test_each_trees_leaf_is_catboosts_own_at_every_depth(depth: int) -> None:
    """A row's leaf per tree, packed from its level bits by one multiply per tree (4-byte words up
    to depth 4, 8-byte up to 8, a matrix product past that), is the leaf CatBoost itself finds,
    NaN included; and the SHAP values read from those leaves equal CatBoost's."""
    rng = np.random.default_rng(depth)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    y = ((x[:, 0] - x[:, 1] * x[:, 2] + rng.normal(scale=0.7, size=300)) > 0).astype(int)
    model = catboost.CatBoostClassifier(
        iterations=12, depth=depth, verbose=False, thread_count=1, random_seed=3
    )
    model.fit(x, y)
    table = shap_table(model, 5)
    probe = np.vstack([x[:60], np.where(rng.random(size=(20, 5)) < 0.3, np.nan, x[:20])]).astype(np.float32)
    want = model.calc_leaf_indexes(catboost.Pool(probe))
    got = np.array([table.rows(row) - table.first_leaf for row in probe], dtype=np.int64)
    assert got.tolist() == want.astype(np.int64).tolist()
    assert len({tuple(r) for r in got.tolist()}) > 10  # the rows reach many different leaves
    shap = model.get_feature_importance(data=catboost.Pool(probe), type="ShapValues", thread_count=1)[:, :-1]
    assert float(np.max(np.abs(table.matrix(probe) - shap))) <= 1e-9
