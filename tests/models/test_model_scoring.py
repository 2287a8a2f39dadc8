"""Scoring: ONNX Runtime and native CatBoost agree, outputs are deterministic plain floats, and
reasons are the largest adverse SHAP contributions as catboost itself computes them."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import catboost
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from models_helpers import consumer_row, german_rows
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

from engine.errors import ModelError
from engine.models.scoring import (
    NativeScorer,
    OnnxScorer,
    as_row,
    explain,
    explain_row,
    onnx_scorer,
    reason_texts,
)
from engine.models.store import ModelPackage
from engine.models.synthetic import generate


def synthetic_rows(package: ModelPackage, count: int, seed: int) -> list[dict[str, object]]:
    raw = generate(count, seed)
    rows = []
    for record in raw.to_dict("records"):
        row = {}
        for feature in package.card["features"]:
            if "ratio" in feature:
                numerator, denominator = feature["ratio"]
                row[feature["name"]] = record[numerator] / record[denominator]
            else:
                row[feature["name"]] = record[feature["column"]]
        rows.append(row)
    return rows


def test_onnx_and_native_agree_on_fresh_rows(consumer_pd: ModelPackage) -> None:
    rows = synthetic_rows(consumer_pd, 500, seed=12345)
    onnx_pd = np.array(OnnxScorer(consumer_pd).pd_batch(rows))
    native_pd = np.array(NativeScorer(consumer_pd).pd_batch(rows))
    assert np.max(np.abs(onnx_pd - native_pd)) <= 1e-6
    assert ((onnx_pd > 0) & (onnx_pd < 1)).all()


def test_german_credit_parity_on_its_data(german_credit: ModelPackage) -> None:
    rows = german_rows(german_credit.feature_names)
    onnx_pd = np.array(OnnxScorer(german_credit).pd_batch(rows))
    native_pd = np.array(NativeScorer(german_credit).pd_batch(rows))
    assert np.max(np.abs(onnx_pd - native_pd)) <= 1e-6


def test_onnx_returns_a_plain_float_tensor(consumer_pd: ModelPackage) -> None:
    scorer = OnnxScorer(consumer_pd)
    (output,) = scorer.session.get_outputs()
    assert output.type == "tensor(float)"
    assert scorer.session.get_inputs()[0].type == "tensor(float)"
    assert isinstance(scorer.pd(consumer_row()), float)


def test_single_row_equals_batch_and_is_deterministic(consumer_pd: ModelPackage) -> None:
    rows = [consumer_row(), consumer_row(age=55, employment_type="civil_servant", bureau_score=780)]
    scorer = OnnxScorer(consumer_pd)
    assert scorer.pd_batch(rows) == [scorer.pd(r) for r in rows] == OnnxScorer(consumer_pd).pd_batch(rows)
    assert NativeScorer(consumer_pd).pd_batch(rows) == NativeScorer(consumer_pd).pd_batch(rows)
    assert scorer.pd_batch([]) == []


class _PublicOnly:
    """An InferenceSession seen through its public methods only (an onnxruntime without `_sess`)."""

    def __init__(self, session: object):
        self.session = session

    def __getattr__(self, name: str) -> object:
        if name == "_sess":
            raise AttributeError(name)
        return getattr(self.session, name)


@pytest.mark.parametrize("public_only", [False, True], ids=["native run", "public run"])
def test_one_row_scored_through_the_bound_buffers_equals_the_session_run(
    consumer_pd: ModelPackage, public_only: bool
) -> None:
    """pd_row writes each row into a buffer bound to the session once: every row must still get its
    own PD, bit for bit what session.run gives that row (a stale buffer would repeat the last PD),
    whether it runs the session's native run or, without one, the public run_with_iobinding; and so
    must the score stage's scored(), which packs a row's values into the buffer and reads its output."""
    scorer = OnnxScorer(consumer_pd)
    if public_only:
        scorer.session = _PublicOnly(scorer.session)
    applicants = synthetic_rows(consumer_pd, 300, seed=7)
    rows = scorer.encoder.encode_rows(applicants)
    single = [scorer.pd_row(row) for row in rows]
    (probabilities,) = scorer.session.run(None, {scorer.session.get_inputs()[0].name: rows})
    assert single == [float(p) for p in probabilities[:, 1]]
    assert [scorer.scored(applicant)[0] for applicant in applicants] == single
    assert len(set(single)) > 100


def test_threads_scoring_at_once_each_get_their_own_rows_pd(consumer_pd: ModelPackage) -> None:
    """The bound buffers are per thread: threads scoring different rows at the same time never read
    each other's row or PD."""
    scorer = OnnxScorer(consumer_pd)
    rows = scorer.encoder.encode_rows(synthetic_rows(consumer_pd, 40, seed=8))
    want = scorer.pd_batch(synthetic_rows(consumer_pd, 40, seed=8))
    start = threading.Barrier(4)

    def score(offset: int) -> list[tuple[int, float]]:
        start.wait(timeout=60)
        got = []
        for _ in range(50):
            for i in range(offset, len(rows), 4):
                got.append((i, scorer.pd_row(rows[i])))
        return got

    with ThreadPoolExecutor(4) as pool:
        results = [pair for part in pool.map(score, range(4)) for pair in part]
    assert len(results) == 50 * len(rows)
    assert all(pd == want[i] for i, pd in results)


def test_a_row_of_another_width_is_refused_by_onnx_runtime(consumer_pd: ModelPackage) -> None:
    scorer = OnnxScorer(consumer_pd)
    with pytest.raises(InvalidArgument, match=r"(?i)dimension"):
        scorer.pd_row(np.zeros(3, dtype=np.float32))


def test_the_score_stages_row_explains_as_the_features_do(consumer_pd: ModelPackage) -> None:
    """A decision encodes its features once, for ONNX, and explains that row: same PD, same reasons."""
    risky = consumer_row(delinquencies_24m=2, bureau_score=560, months_on_file=4)
    scorer = OnnxScorer(consumer_pd)
    pd, row = scorer.scored(risky)
    assert pd == scorer.pd(risky)
    reasons = explain_row(consumer_pd, row)
    assert len(reasons) >= 2
    assert reasons == explain(consumer_pd, risky)
    assert [r.texts for r in reasons] == [r.texts for r in explain(consumer_pd, risky)]


@pytest.mark.parametrize("model", ["consumer_pd", "german_credit"])
def test_a_decisions_reason_texts_are_explain_rows_codes_and_texts(
    model: str, request: pytest.FixtureRequest
) -> None:
    """The outcome stage reads (code, text) pairs kept per card language: the same reasons, order
    and texts as explain_row for every language, a language the card lacks falling back as before."""
    package: ModelPackage = request.getfixturevalue(model)
    rows = (
        synthetic_rows(package, 60, seed=11)
        if model == "consumer_pd"
        else german_rows(package.feature_names)[:60]
    )
    encoder = OnnxScorer(package).encoder
    languages = ["en", "zh", "xx", "en"]  # xx: no card text in it, after zh was cached
    explained = 0
    for row in rows:
        encoded = encoder.encode_row(row)
        for language in languages:
            for top in (4, 2):
                expected = explain_row(package, encoded, top, language)
                card = package.card["reasons"]
                assert reason_texts(package, encoded, top, language) == [
                    (
                        card[r.feature]["code"],
                        card[r.feature]["text"].get(language, card[r.feature]["text"]["en"]),
                    )
                    for r in expected
                ]
                assert [(r.code, r.text) for r in expected] == reason_texts(package, encoded, top, language)
                explained += bool(expected)
    assert explained > len(rows)  # most rows have adverse factors to explain


def test_riskier_bureau_data_scores_higher(consumer_pd: ModelPackage) -> None:
    scorer = OnnxScorer(consumer_pd)
    good = consumer_row(bureau_score=800, delinquencies_24m=0, utilisation=0.1, dti=0.1)
    assert scorer.pd(good) < scorer.pd(consumer_row())


def test_bad_input_is_refused_by_both_scorers(consumer_pd: ModelPackage) -> None:
    for scorer in (OnnxScorer(consumer_pd), NativeScorer(consumer_pd)):
        with pytest.raises(ModelError, match="'utilisation'"):
            scorer.pd(consumer_row(utilisation=float("nan")))
        with pytest.raises(ModelError, match="'bureau_score'"):
            scorer.pd_batch([consumer_row(), consumer_row(bureau_score=-1)])


@pytest.mark.parametrize("model", ["consumer_pd", "german_credit"])
def test_reasons_are_the_largest_adverse_shap_contributions(
    model: str, request: pytest.FixtureRequest
) -> None:
    package: ModelPackage = request.getfixturevalue(model)
    rows = (
        synthetic_rows(package, 20, seed=7)
        if model == "consumer_pd"
        else german_rows(package.feature_names)[:20]
    )
    booster = catboost.CatBoostClassifier()
    booster.load_model(str(package.native_path))
    onnx_scorer = OnnxScorer(package)
    for row in rows:
        matrix = onnx_scorer.encoder.encode_row(row)[None, :]
        shap = booster.get_feature_importance(catboost.Pool(matrix), type="ShapValues")[0][:-1]
        names = package.feature_names
        expected = [names[i] for i in np.argsort(-shap, kind="stable") if shap[i] > 0][:4]
        reasons = explain(package, row)
        assert [r.feature for r in reasons] == expected
        assert [r.code for r in reasons] == [package.card["reasons"][f]["code"] for f in expected]
        assert [r.contribution for r in reasons] == pytest.approx(
            [float(shap[names.index(f)]) for f in expected]
        )
        # SHAP values add up to the model's log-odds, so the reasons explain the score actually given.
        logit = np.log(onnx_scorer.pd(row) / (1 - onnx_scorer.pd(row)))
        full = booster.get_feature_importance(catboost.Pool(matrix), type="ShapValues")[0]
        assert full.sum() == pytest.approx(logit, abs=1e-4)


def test_reason_texts_in_each_language(consumer_pd: ModelPackage) -> None:
    (first, *_) = explain(consumer_pd, consumer_row(), language="zh")
    assert first.text == first.texts["zh"] != first.texts["en"]
    assert len(explain(consumer_pd, consumer_row(), top=2)) == 2
    assert len(explain(consumer_pd, consumer_row(), top=10)) <= 4
    assert explain(consumer_pd, consumer_row(), top=0) == explain(consumer_pd, consumer_row(), top=-1) == []


def _card_row(package: ModelPackage, data: st.DataObject) -> dict[str, object]:
    """A row of the card's features: any known category, any int, float or Decimal in range."""
    row: dict[str, object] = {}
    for feature in package.card["features"]:
        name = feature["name"]
        if feature["type"] == "categorical":
            row[name] = data.draw(st.sampled_from(sorted(feature["encoding"]["codes"])), label=name)
            continue
        lo, hi = (float(x) for x in feature["range"])
        number = st.floats(lo, hi, allow_nan=False)
        row[name] = data.draw(
            st.one_of(
                number,
                st.integers(int(lo), int(hi)),
                st.decimals(lo, hi, allow_nan=False, allow_infinity=False, places=6),
                number.map(lambda x: Decimal(repr(x))),
            ),
            label=name,
        )
    return row


@pytest.mark.parametrize("model", ["consumer_pd", "german_credit"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_packed_score_is_the_arrays_score(
    model: str, request: pytest.FixtureRequest, data: st.DataObject
) -> None:
    """The score stage's PD (its features' values packed as float32 into the session's bound buffer,
    no array of their own) is the PD of the row encode_row makes, bit for bit, and its values are
    that row: any category, any int, float or Decimal in range, each rounded to float32 alike."""
    package = request.getfixturevalue(model)
    scorer = onnx_scorer(package)
    features = _card_row(package, data)
    pd, values = scorer.scored(features)
    row = scorer.encoder.encode_row(features)
    assert as_row(values).tobytes() == row.tobytes()
    assert repr(pd) == repr(scorer.pd_row(row)) == repr(scorer.pd(features))


def test_a_value_past_float32_is_scored_as_the_array_takes_it(consumer_pd: ModelPackage) -> None:
    """Packing refuses a value past float32's range; numpy's array makes it inf: the score falls
    back to the array, so the PD is the one the array gives."""
    scorer = OnnxScorer(consumer_pd)
    huge = tuple(1e39 if i == 1 else 1.0 for i in range(len(scorer.encoder.names)))
    scorer.encoder.encode_values = lambda _: huge  # type: ignore[method-assign, assignment, return-value]
    with np.errstate(over="ignore"):
        pd, values = scorer.scored({})
        assert values == huge
        assert repr(pd) == repr(scorer.pd_row(np.array(huge, np.float32)))
