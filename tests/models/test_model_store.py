"""The model store: packages load by (name, version) or by hash, and tampered files are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import ModelError, NotFound
from engine.models.store import ModelStore, sha256_file


def test_load_by_name_and_by_sha256(package_copy: Path) -> None:
    store = ModelStore(package_copy)
    package = store.load("small_pd", "0.0.1")
    assert package.sha256 == sha256_file(package.onnx_path) == package.card["sha256"]
    assert store.by_sha256(package.sha256) == package
    assert store.list() == [("small_pd", "0.0.1")]


@pytest.mark.parametrize("file", ["model.onnx", "model.cbm"])
def test_tampered_file_is_refused_with_expected_and_actual_hash(package_copy: Path, file: str) -> None:
    path = package_copy / "small_pd" / "0.0.1" / file
    expected = sha256_file(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError) as caught:
        ModelStore(package_copy).load("small_pd", "0.0.1")
    assert caught.value.code == "MODEL_HASH_MISMATCH"
    assert f"expected sha256 {expected}" in caught.value.message
    assert f"actual {sha256_file(path)}" in caught.value.message


def test_card_pointing_at_another_onnx_hash_is_refused(package_copy: Path) -> None:
    card_path = package_copy / "small_pd" / "0.0.1" / "card.json"
    card = json.loads(card_path.read_text())
    card["sha256"] = "0" * 64
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="card sha256"):
        ModelStore(package_copy).load("small_pd", "0.0.1")


def test_unknown_model_or_hash_is_not_found(package_copy: Path) -> None:
    store = ModelStore(package_copy)
    with pytest.raises(NotFound):
        store.load("small_pd", "9.9.9")
    with pytest.raises(NotFound):
        store.by_sha256("f" * 64)


def test_shipped_packages_verify(shipped_store: ModelStore) -> None:
    assert shipped_store.list() == [("consumer_pd", "1.0.0"), ("german_credit", "1.0.0")]
    for name, version in shipped_store.list():
        card = shipped_store.load(name, version).card
        assert card["parity"]["passed"] and card["parity"]["max_abs_diff"] <= 1e-6
    german = shipped_store.load("german_credit", "1.0.0").card
    assert german["metrics"]["cv"]["auc"]["mean"] >= 0.78
    assert {e["column"] for e in german["excluded"]} == {"personal_status_and_sex", "foreign_worker"}
    assert not {"personal_status_and_sex", "foreign_worker"} & {f["name"] for f in german["features"]}


def test_public_names_resolve() -> None:
    import engine.models

    for name in engine.models.__all__:
        assert getattr(engine.models, name) is not None
    with pytest.raises(AttributeError):
        _ = engine.models.no_such_name  # type: ignore[attr-defined]
