"""The one loader of policies and models: by name only, cached, and the model pin checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import MODEL_HASH_MISMATCH, InvalidInput, ModelError, NotFound
from engine.sources import DirectorySource, MemorySource

ROOT = Path(__file__).resolve().parents[1]
POLICIES, MODELS = ROOT / "policies", ROOT / "models"


@pytest.fixture(scope="module")
def source() -> DirectorySource:
    return DirectorySource(POLICIES, MODELS)


def test_a_policy_is_loaded_once_by_name(source: DirectorySource) -> None:
    policy = source.policy("consumer_loan")
    assert policy.name == "consumer_loan"
    assert source.policy("consumer_loan") is policy
    assert "consumer_loan" in source.policy_names()


@pytest.mark.parametrize(
    "name",
    [
        "policies/consumer_loan",
        "consumer_loan/policy.yaml",
        "../policies/consumer_loan",
        "/etc/passwd",
        "a\x00b",
        "",
    ],
)
def test_a_path_is_never_a_policy_name(source: DirectorySource, name: str) -> None:
    with pytest.raises(InvalidInput):  # the caller's error, answered before any file is looked at
        source.policy(name)


def test_an_unknown_policy_is_not_found(source: DirectorySource) -> None:
    with pytest.raises(NotFound):
        source.policy("no_such_policy")


def test_a_model_pinned_by_another_sha256_is_refused(source: DirectorySource) -> None:
    score = source.policy("consumer_loan").score
    assert score is not None
    package, _ = source.model(score.model_name, score.model_version, None)
    assert source.model(score.model_name, score.model_version, package.sha256)[0] is package
    with pytest.raises(ModelError) as caught:
        source.model(score.model_name, score.model_version, "0" * 64)
    assert caught.value.code == MODEL_HASH_MISMATCH


def test_an_in_memory_policy_loads_from_its_text() -> None:
    text = (POLICIES / "consumer_loan" / "policy.yaml").read_text(encoding="utf-8")
    memory = MemorySource({"loan": text}, MODELS)
    assert memory.policy_names() == ["loan"]
    assert memory.policy("loan").sha256 == DirectorySource(POLICIES, MODELS).policy("consumer_loan").sha256
    with pytest.raises(NotFound):
        memory.policy("other")
