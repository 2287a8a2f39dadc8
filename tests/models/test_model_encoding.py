"""Feature encoding: categorical codes round-trip, and bad inputs are refused naming the feature."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from models_helpers import consumer_row

from engine.errors import ModelError
from engine.models.encoding import FeatureEncoder, fit_features
from engine.models.store import ModelPackage


def test_categorical_codes_round_trip(consumer_pd: ModelPackage) -> None:
    encoder = FeatureEncoder(consumer_pd.card["features"])
    for employment in ("salaried", "civil_servant", "self_employed", "unemployed", "retired"):
        for residence in ("own", "mortgage", "rent", "family"):
            row = consumer_row(employment_type=employment, residence_type=residence)
            decoded = encoder.decode_row(encoder.encode_row(row))
            assert decoded["employment_type"] == employment
            assert decoded["residence_type"] == residence
            assert decoded["dti"] == pytest.approx(0.6, rel=1e-7)


def test_card_records_declared_category_order(consumer_pd: ModelPackage) -> None:
    employment = next(f for f in consumer_pd.card["features"] if f["name"] == "employment_type")
    assert employment["encoding"]["codes"] == {
        "salaried": 0,
        "civil_servant": 1,
        "self_employed": 2,
        "unemployed": 3,
        "retired": 4,
    }
    assert employment["encoding"]["unseen"] == "error"


def test_bad_rate_order_is_frozen_from_training_rows() -> None:
    frame = pd.DataFrame({"k": ["a", "a", "b", "b", "c", "c"] * 5})
    bad = np.array([1, 1, 0, 0, 1, 0] * 5)
    (fitted,) = fit_features([{"name": "k", "type": "categorical", "order": "bad_rate"}], frame, bad)
    assert fitted["encoding"]["codes"] == {"b": 0, "c": 1, "a": 2}
    encoder = FeatureEncoder([fitted])
    assert (
        encoder.encode_frame(frame).ravel().tolist()
        == encoder.encode_rows(frame.to_dict("records")).ravel().tolist()
    )


def test_frame_and_row_encoding_agree(consumer_pd: ModelPackage) -> None:
    encoder = FeatureEncoder(consumer_pd.card["features"])
    rows = [
        consumer_row(age=a, employment_type=e)
        for a, e in [(25, "salaried"), (60, "retired"), (41, "unemployed")]
    ]
    assert np.array_equal(encoder.encode_rows(rows), encoder.encode_frame(pd.DataFrame(rows)))


def test_numbers_accept_int_float_and_decimal(consumer_pd: ModelPackage) -> None:
    encoder = FeatureEncoder(consumer_pd.card["features"])
    as_decimal = encoder.encode_row(consumer_row(dti=Decimal("0.6"), income_monthly=Decimal("5000.00")))
    assert np.array_equal(as_decimal, encoder.encode_row(consumer_row()))
    assert encoder.encode_row(consumer_row()).dtype == np.float32


@pytest.mark.parametrize(
    ("overrides", "feature", "code"),
    [
        ({"dti": "0.6"}, "dti", "FEATURE_TYPE"),
        ({"age": True}, "age", "FEATURE_TYPE"),
        ({"employment_type": 3}, "employment_type", "FEATURE_TYPE"),
        ({"utilisation": math.nan}, "utilisation", "FEATURE_NOT_FINITE"),
        ({"loan_amount": math.inf}, "loan_amount", "FEATURE_NOT_FINITE"),
        ({"bureau_score": 950}, "bureau_score", "FEATURE_OUT_OF_RANGE"),
        ({"age": 17}, "age", "FEATURE_OUT_OF_RANGE"),
        ({"residence_type": "boat"}, "residence_type", "FEATURE_UNSEEN"),
    ],
)
def test_bad_feature_values_are_refused_naming_the_feature(
    consumer_pd: ModelPackage, overrides: dict[str, object], feature: str, code: str
) -> None:
    encoder = FeatureEncoder(consumer_pd.card["features"])
    with pytest.raises(ModelError) as caught:
        encoder.encode_row(consumer_row(**overrides))
    assert caught.value.code == code
    assert repr(feature) in caught.value.message


def test_missing_feature_is_refused(consumer_pd: ModelPackage) -> None:
    row = consumer_row()
    del row["inquiries_6m"]
    with pytest.raises(ModelError, match="'inquiries_6m' is missing") as caught:
        FeatureEncoder(consumer_pd.card["features"]).encode_row(row)
    assert caught.value.code == "FEATURE_MISSING"


def test_german_credit_enforces_training_range(german_credit: ModelPackage) -> None:
    duration = next(f for f in german_credit.card["features"] if f["name"] == "duration_in_month")
    assert duration["range"] == duration["train_range"] == [4, 72]


def test_a_row_encodes_as_its_frame_does_at_the_range_edges(consumer_pd: ModelPackage) -> None:
    """encode_row's fast path (exact int, float, Decimal inside the range) gives the float32 values
    the checked column path gives, at both edges of every range and for long Decimals."""
    encoder = FeatureEncoder(consumer_pd.card["features"])
    numeric = [f for f in consumer_pd.card["features"] if f["type"] == "numeric"]
    rows = []
    for f in numeric:
        lo, hi = f["range"]
        for value in (lo, hi, float(lo), Decimal(str(hi)), Decimal(str(lo)) + Decimal("0.000000123456789")):
            rows.append(consumer_row(**{f["name"]: value}))
    for row in rows:
        assert np.array_equal(encoder.encode_row(row), encoder.encode_rows([row])[0]), row
        assert np.array_equal(encoder.encode_row(row), encoder.encode_frame(pd.DataFrame([row]))[0]), row


def test_an_open_ended_range_still_refuses_infinity() -> None:
    encoder = FeatureEncoder([{"name": "x", "type": "numeric", "range": [0, math.inf]}])
    assert encoder.encode_row({"x": Decimal("12.5")}).tolist() == [12.5]
    with pytest.raises(ModelError) as caught:
        encoder.encode_row({"x": math.inf})
    assert caught.value.code == "FEATURE_NOT_FINITE"


def test_feature_names_with_quotes_and_backslashes_encode_and_are_named_when_refused() -> None:
    """encode_row is generated per card with the feature names as string literals: a name with a
    quote, a backslash or a newline is still just a name."""
    odd = ['it\'s "x"\\', "a\nb"]
    encoder = FeatureEncoder(
        [
            {"name": odd[0], "type": "numeric", "range": [0, 10]},
            {"name": odd[1], "type": "categorical", "encoding": {"codes": {"p": 0, "q": 1}}},
        ]
    )
    assert encoder.encode_row({odd[0]: 2, odd[1]: "q"}).tolist() == [2.0, 1.0]
    with pytest.raises(ModelError, match="unseen category") as caught:
        encoder.encode_row({odd[0]: 2, odd[1]: "r"})
    assert caught.value.code == "FEATURE_UNSEEN"
    with pytest.raises(ModelError, match="is missing"):
        encoder.encode_row({odd[1]: "p"})
    assert FeatureEncoder([]).encode_row({}).shape == (0,)
