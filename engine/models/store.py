"""Content-verified model packages `models/<name>/<version>/{model.onnx, model.cbm, card.json}`, loaded
by (name, version) or by the sha256 of model.onnx; a file whose hash differs from its card is refused."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from engine.decision import ModelRef
from engine.errors import MODEL_CARD_INVALID, MODEL_FILE_MISSING, MODEL_HASH_MISMATCH, ModelError, NotFound

CARD = "card.json"
ONNX = "model.onnx"
NATIVE = "model.cbm"
PACKAGE_FILES = (ONNX, NATIVE)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelPackage:
    """A verified package. `sha256` is the hash of model.onnx (what a policy pins)."""

    name: str
    version: str
    sha256: str
    card: dict[str, Any] = field(repr=False, compare=False)
    path: Path

    @cached_property
    def ref(self) -> ModelRef:
        """What a Decision records of this package (immutable: one per package)."""
        return ModelRef(self.name, self.version, self.sha256)

    @cached_property
    def content(self) -> tuple[str, str]:
        """The package by content: the sha256 of model.onnx and of model.cbm as the verified card
        records them (the folder if it records none), read once: the key of the process's native
        scorer, which a REFER's explanation looks up."""
        return (self.sha256, str(self.card.get("files", {}).get(NATIVE, self.path)))

    @property
    def onnx_path(self) -> Path:
        return self.path / ONNX

    @property
    def native_path(self) -> Path:
        return self.path / NATIVE

    @property
    def feature_names(self) -> list[str]:
        return [str(f["name"]) for f in self.card["features"]]


def load_package(path: Path) -> ModelPackage:
    """Read a package folder and check every file against the sha256 its card records."""
    path = Path(path)
    card_path = path / CARD
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"no model card at {card_path}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"unreadable model card {card_path}: {exc}", code=MODEL_CARD_INVALID) from None
    files = card.get("files") or {}
    for name in PACKAGE_FILES:
        expected = files.get(name)
        if not expected:
            raise ModelError(f"{card_path}: card records no sha256 for {name}", code=MODEL_CARD_INVALID)
        file_path = path / name
        if not file_path.is_file():
            raise ModelError(f"{file_path} is missing", code=MODEL_FILE_MISSING)
        actual = sha256_file(file_path)
        if actual != expected:
            raise ModelError(
                f"{file_path} does not match its card: expected sha256 {expected}, actual {actual}",
                code=MODEL_HASH_MISMATCH,
            )
    if card.get("sha256") != files[ONNX]:
        raise ModelError(f"{card_path}: card sha256 is not the sha256 of {ONNX}", code=MODEL_CARD_INVALID)
    return ModelPackage(
        name=str(card["name"]), version=str(card["version"]), sha256=files[ONNX], card=card, path=path
    )


class ModelStore:
    """A directory of packages (`root/<name>/<version>/`). Loads are verified once and cached."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self._cache: dict[tuple[str, str], ModelPackage] = {}

    def load(self, name: str, version: str) -> ModelPackage:
        key = (name, version)
        if key not in self._cache:
            folder = self.root / name / version
            if not (folder / CARD).is_file():
                raise NotFound(f"model {name} {version} not found under {self.root}")
            package = load_package(folder)
            if (package.name, package.version) != key:
                raise ModelError(
                    f"{folder}: card says {package.name} {package.version}", code=MODEL_CARD_INVALID
                )
            self._cache[key] = package
        return self._cache[key]

    def by_sha256(self, sha256: str) -> ModelPackage:
        """The package whose model.onnx has this hash (cards are read; the match is verified)."""
        for card_path in sorted(self.root.glob(f"*/*/{CARD}")):
            try:
                recorded = json.loads(card_path.read_text(encoding="utf-8")).get("sha256")
            except (OSError, json.JSONDecodeError):
                continue
            if recorded == sha256:
                name, version = card_path.parent.parent.name, card_path.parent.name
                return self.load(name, version)
        raise NotFound(f"no model with sha256 {sha256} under {self.root}")

    def list(self) -> list[tuple[str, str]]:
        return sorted((p.parent.parent.name, p.parent.name) for p in self.root.glob(f"*/*/{CARD}"))
