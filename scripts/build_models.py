"""Rebuild the shipped model packages (`make models`): every spec in models/specs/ is trained into
models/<name>/<version>/, then the shipped cards are checked (AUC floor, parity, file sizes)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.cli import main as credo  # noqa: E402
from engine.models.store import ModelStore  # noqa: E402

MIN_CV_AUC = {"german_credit": 0.78}
MAX_FILE_BYTES = 5 * 1024 * 1024


def main() -> int:
    models = ROOT / "models"
    for spec in sorted((models / "specs").glob("*.yaml")):
        if credo(["train", str(spec), "--out", str(models)]) != 0:
            return 1
    failures = []
    store = ModelStore(models)
    for name, version in store.list():
        package = store.load(name, version)  # verifies every file's sha256 against the card
        card = package.card
        auc = card["metrics"]["cv"]["auc"]["mean"]
        if auc < MIN_CV_AUC.get(name, 0.5):
            failures.append(f"{name}: CV AUC {auc:.4f} below {MIN_CV_AUC.get(name, 0.5)}")
        if not card["parity"]["passed"]:
            failures.append(f"{name}: parity failed")
        for file in ("model.onnx", "model.cbm", "card.json"):
            size = (package.path / file).stat().st_size
            if size > MAX_FILE_BYTES:
                failures.append(f"{name}: {file} is {size} bytes (> {MAX_FILE_BYTES})")
        print(json.dumps({"model": name, "version": version, "sha256": package.sha256, "cv_auc": auc}))
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
