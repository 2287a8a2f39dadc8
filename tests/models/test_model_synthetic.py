"""The synthetic consumer-loan generator: seeded, chunk-stable, with the policy's input columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from engine.models import synthetic

POLICY_INPUTS = {
    "applicant.age",
    "applicant.income_monthly",
    "applicant.employment_type",
    "applicant.employment_months",
    "applicant.residence_type",
    "debt.monthly_payments",
    "bureau.score",
    "bureau.delinquencies_24m",
    "bureau.inquiries_6m",
    "bureau.utilisation",
    "bureau.months_on_file",
    "bureau.bankruptcy",
    "loan.amount",
    "loan.term_months",
    "loan.purpose",
    "flags.blacklisted",
    "applicant.name",
    "applicant.id_number",
    "applicant.gender",
    "applicant.marital_status",
}


def test_columns_are_the_policy_inputs_plus_target() -> None:
    frame = synthetic.generate(500, seed=1)
    assert set(frame.columns) == POLICY_INPUTS | {synthetic.TARGET}
    assert set(frame["applicant.employment_type"]) <= set(synthetic.EMPLOYMENT)
    assert set(frame["applicant.residence_type"]) <= set(synthetic.RESIDENCE)
    assert frame["bureau.score"].between(300, 900).all() and frame["bureau.utilisation"].between(0, 2).all()
    assert frame["applicant.age"].between(18, 100).all() and (frame["applicant.income_monthly"] > 0).all()


def test_same_seed_same_rows_and_chunks_concatenate(monkeypatch: object) -> None:
    pd.testing.assert_frame_equal(synthetic.generate(300, seed=4), synthetic.generate(300, seed=4))
    assert not synthetic.generate(300, seed=4).equals(synthetic.generate(300, seed=5))
    import pytest

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(synthetic, "CHUNK", 128)
        chunked = synthetic.generate(300, seed=4)
        assert len(chunked) == 300 and chunked["applicant.id_number"].is_unique


def test_defaults_follow_the_stated_ground_truth() -> None:
    frame = synthetic.generate(20000, seed=2)
    p = 1 / (1 + np.exp(-synthetic.ground_truth_logit(frame)))
    assert abs(frame[synthetic.TARGET].mean() - p.mean()) < 0.01
    high, low = p > np.quantile(p, 0.9), p < np.quantile(p, 0.1)
    assert frame[synthetic.TARGET][high].mean() > 5 * frame[synthetic.TARGET][low].mean()


def test_writes_csv_and_parquet(tmp_path: Path) -> None:
    synthetic.main(["--rows", "250", "--seed", "3", "--out", str(tmp_path / "apps.parquet")])
    synthetic.write(250, 3, tmp_path / "apps.csv")
    from_parquet = pd.read_parquet(tmp_path / "apps.parquet")
    from_csv = pd.read_csv(tmp_path / "apps.csv")
    assert len(from_parquet) == len(from_csv) == 250
    assert from_parquet["bureau.score"].tolist() == from_csv["bureau.score"].tolist()
