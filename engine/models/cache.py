"""ModelCache: verified model packages and their ONNX sessions, loaded once per (name, version), and
the one place a policy's sha256 pin on a model package is checked."""

from __future__ import annotations

import threading
from pathlib import Path

from engine.errors import MODEL_HASH_MISMATCH, ModelError
from engine.models.scoring import OnnxScorer, native_scorer
from engine.models.store import ModelPackage, ModelStore

__all__ = ["ModelCache"]


class ModelCache:
    """Verified model packages and their ONNX sessions, loaded once per (name, version). Called as
    the pipeline's model provider: `cache(name, version, sha256) -> (package, scorer)`."""

    def __init__(self, models_dir: Path | str):
        self.store = ModelStore(models_dir)
        self._scorers: dict[tuple[str, str], tuple[ModelPackage, OnnxScorer]] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str, version: str, sha256: str | None) -> tuple[ModelPackage, OnnxScorer]:
        found = self._scorers.get((name, version))  # loaded: no lock (entries are only ever added)
        if found is not None:
            if sha256 and found[0].sha256 != sha256:  # a pin it does not hold (check_pin words it)
                check_pin(found[0], sha256)
            return found
        with self._lock:
            if (name, version) not in self._scorers:
                package = self.store.load(name, version)
                scorer = OnnxScorer(package)
                native_scorer(package)  # its SHAP tables, built at load: reasons never call CatBoost
                self._scorers[(name, version)] = (package, scorer)  # last: a reader sees it complete
            package, scorer = self._scorers[(name, version)]
        check_pin(package, sha256)
        return package, scorer


def check_pin(package: ModelPackage, sha256: str | None, where: str = "the store") -> None:
    """MODEL_HASH_MISMATCH when a policy pins `package` by a sha256 other than the one it holds."""
    if sha256 is not None and sha256 and package.sha256 != sha256:
        raise ModelError(
            f"policy pins {package.name} {package.version} with sha256 {sha256},"
            f" {where} holds {package.sha256}",
            code=MODEL_HASH_MISMATCH,
        )
