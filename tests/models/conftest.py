"""Fixtures for the model tests: the shipped packages, and a small package trained in a temp dir."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from models_helpers import SHIPPED

from engine.models.spec import load_spec
from engine.models.store import ModelPackage, ModelStore
from engine.models.training import train

SMALL_SPEC = """\
name: small_pd
version: "0.0.1"
data: {synthetic: consumer_pd, rows: 2000, seed: 5}
target: {column: default_12m, bad: 1}
seed: 3
cv: {folds: 3}
params: {iterations: 40, depth: 3, learning_rate: 0.2, thread_count: 1}
excluded:
  - {column: applicant.gender, reason: protected}
features:
  - name: age
    column: applicant.age
    type: numeric
    reason: {code: R_AGE, text: {en: Age}}
  - name: employment_type
    column: applicant.employment_type
    type: categorical
    order: bad_rate
    reason: {code: R_EMP, text: {en: Employment, zh: 就业}}
  - name: dti
    ratio: [debt.monthly_payments, applicant.income_monthly]
    type: numeric
    range: [0, 10]
    reason: {code: R_DTI, text: {en: Debt to income}}
  - name: bureau_score
    column: bureau.score
    type: numeric
    range: [300, 900]
    reason: {code: R_SCORE, text: {en: Bureau score}}
  - name: delinquencies_24m
    column: bureau.delinquencies_24m
    type: numeric
    reason: {code: R_DELQ, text: {en: Delinquencies}}
"""


@pytest.fixture(scope="session")
def shipped_store() -> ModelStore:
    return ModelStore(SHIPPED)


@pytest.fixture(scope="session")
def consumer_pd(shipped_store: ModelStore) -> ModelPackage:
    return shipped_store.load("consumer_pd", "1.0.0")


@pytest.fixture(scope="session")
def german_credit(shipped_store: ModelStore) -> ModelPackage:
    return shipped_store.load("german_credit", "1.0.0")


@pytest.fixture(scope="session")
def small_spec_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "small_pd.yaml"
    path.write_text(SMALL_SPEC, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def small_package_dir(small_spec_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(load_spec(small_spec_path), tmp_path_factory.mktemp("models"))


@pytest.fixture
def package_copy(small_package_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the small package's models root, safe to tamper with."""
    root = tmp_path / "models"
    shutil.copytree(small_package_dir, root / "small_pd" / "0.0.1")
    return root
