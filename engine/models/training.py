"""Training: spec -> data -> stratified k-fold CV -> final CatBoost fit -> ONNX (no ZipMap) ->
parity check against native CatBoost on the holdout -> a package folder with its card.

The same spec and data give the same metrics (seeded splits, seeded CatBoost, fixed thread count).
A package is written only if ONNX and native probabilities agree within PARITY_TOLERANCE.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import catboost
import numpy as np
import pandas as pd

from engine.errors import MODEL_PARITY, Diagnostic, ModelError, TrainSpecError
from engine.models import synthetic
from engine.models.baseline import training_baseline
from engine.models.encoding import FeatureEncoder, fit_features
from engine.models.metrics import all_metrics, stratified_folds, stratified_holdout
from engine.models.onnx_export import INPUT, OUTPUT, export_onnx
from engine.models.scoring import BAD_CLASS
from engine.models.spec import TrainSpec
from engine.models.store import CARD, NATIVE, ONNX, sha256_file

PARITY_TOLERANCE = 1e-6
CARD_FORMAT = "credo.model-card/1"
DEFAULT_PARAMS: dict[str, Any] = {"iterations": 300, "depth": 4, "learning_rate": 0.05, "thread_count": 2}

# progress(stage, done, total): a hook for the CLI's progress bar.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Dataset:
    frame: pd.DataFrame  # one column per model feature, named by feature
    bad: np.ndarray  # 0/1 per row
    source: dict[str, Any]  # what the card records about the data (path or generator, sha256)


def load_dataset(spec: TrainSpec) -> Dataset:
    """Read the spec's data and build the model's feature columns; located errors for bad columns."""
    if spec.synthetic:
        raw = synthetic.generate(spec.synthetic_rows, spec.synthetic_seed)
        digest = hashlib.sha256(raw.to_csv(index=False).encode("utf-8")).hexdigest()
        source: dict[str, Any] = {
            "synthetic": f"engine.models.synthetic ({spec.synthetic})",
            "rows": spec.synthetic_rows,
            "seed": spec.synthetic_seed,
            "sha256": digest,
            "sha256_of": "the generated frame as CSV (to_csv, no index)",
            "ground_truth": synthetic.ground_truth(),
        }
    else:
        assert spec.data_path is not None
        if not spec.data_path.is_file():
            raise TrainSpecError(
                [Diagnostic("SPEC_DATA_MISSING", f"no data file at {spec.data_path}", spec.locations["data"])]
            )
        raw = (
            pd.read_parquet(spec.data_path) if spec.data_format == "parquet" else pd.read_csv(spec.data_path)
        )
        source = {"path": spec.data_path.name, "sha256": sha256_file(spec.data_path)}
    problems: list[Diagnostic] = []
    columns: dict[str, pd.Series] = {}
    for feature in spec.features:
        needed = [feature.column] if feature.column else list(feature.ratio or ())
        missing = [c for c in needed if c not in raw.columns]
        if missing:
            problems.append(
                Diagnostic(
                    "SPEC_UNKNOWN_COLUMN",
                    f"feature {feature.name!r}: no column {missing[0]!r} in the data",
                    feature.location,
                )
            )
            continue
        if feature.ratio:
            numerator, denominator = (pd.to_numeric(raw[c], errors="coerce") for c in feature.ratio)
            if (denominator == 0).any():
                problems.append(
                    Diagnostic(
                        "SPEC_DATA",
                        f"feature {feature.name!r}: zero denominator {feature.ratio[1]!r}",
                        feature.location,
                    )
                )
                continue
            column = numerator / denominator
        else:
            column = raw[feature.column]
        if feature.type == "numeric" and not np.isfinite(pd.to_numeric(column, errors="coerce")).all():
            problems.append(
                Diagnostic(
                    "SPEC_DATA", f"feature {feature.name!r}: missing or non-numeric values", feature.location
                )
            )
        if feature.type == "categorical":
            column = column.astype(str)
            unknown = sorted(set(column) - set(feature.categories)) if feature.categories else []
            if unknown:
                problems.append(
                    Diagnostic(
                        "SPEC_DATA",
                        f"feature {feature.name!r}: values {unknown[:3]} are not in its declared categories",
                        feature.location,
                    )
                )
        columns[feature.name] = column
    for column_name, _reason in spec.excluded:
        if column_name not in raw.columns:
            problems.append(
                Diagnostic(
                    "SPEC_UNKNOWN_COLUMN",
                    f"excluded column {column_name!r} is not in the data",
                    spec.locations.get("excluded", spec.locations["data"]),
                )
            )
    if spec.target_column not in raw.columns:
        problems.append(
            Diagnostic(
                "SPEC_UNKNOWN_COLUMN",
                f"no target column {spec.target_column!r} in the data",
                spec.locations["target"],
            )
        )
    if problems:
        raise TrainSpecError(problems)
    bad = (raw[spec.target_column].astype(str) == str(spec.bad_label)).to_numpy(dtype=np.int64)
    if bad.sum() == 0 or bad.sum() == len(bad):
        raise TrainSpecError(
            [
                Diagnostic(
                    "SPEC_TARGET",
                    f"target {spec.target_column!r} has no rows labelled "
                    f"{spec.bad_label!r} or only such rows",
                    spec.locations["target"],
                )
            ]
        )
    return Dataset(frame=pd.DataFrame(columns), bad=bad, source=source)


def catboost_params(spec: TrainSpec) -> dict[str, Any]:
    return {
        **DEFAULT_PARAMS,
        **spec.params,
        "loss_function": "Logloss",
        "random_seed": spec.seed,
        "verbose": 0,
        "allow_writing_files": False,
    }


def _fit(
    spec: TrainSpec, frame: pd.DataFrame, bad: np.ndarray
) -> tuple[catboost.CatBoostClassifier, FeatureEncoder]:
    encoder = FeatureEncoder(fit_features([f.encoding_spec() for f in spec.features], frame, bad))
    model = catboost.CatBoostClassifier(**catboost_params(spec))
    model.fit(encoder.encode_frame(frame, check_range=False), bad)
    # CatBoost stamps each model with its finish time and a random guid; drop both so the same spec
    # and data give byte-identical files, hence the same sha256 a policy pins.
    metadata = model.get_metadata()
    if "train_finish_time" in metadata:
        del metadata["train_finish_time"]
    metadata["model_guid"] = f"credo:{spec.name}:{spec.version}"
    return model, encoder


def _predict(model: catboost.CatBoostClassifier, matrix: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(matrix, prediction_type="Probability", thread_count=1))[:, BAD_CLASS]


def _summary(per_fold: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in per_fold[0]:
        values = np.array([m[key] for m in per_fold])
        out[key] = {
            "mean": round(float(values.mean()), 6),
            "sd": round(float(values.std(ddof=1)), 6),
            "folds": [round(float(v), 6) for v in values],
        }
    return out


def train(spec: TrainSpec, out_root: Path, progress: Progress | None = None) -> Path:
    """Train, verify and write `out_root/<name>/<version>/`; returns that folder."""
    report = progress or (lambda stage, done, total: None)
    data = load_dataset(spec)
    holdout = stratified_holdout(data.bad, spec.holdout, spec.seed)
    train_frame, train_bad = data.frame[~holdout].reset_index(drop=True), data.bad[~holdout]
    test_frame, test_bad = data.frame[holdout].reset_index(drop=True), data.bad[holdout]

    folds = stratified_folds(train_bad, spec.folds, spec.seed)
    per_fold: list[dict[str, float]] = []
    for k in range(spec.folds):
        report("cross-validation", k, spec.folds)
        fit_rows = folds != k
        model, encoder = _fit(spec, train_frame[fit_rows].reset_index(drop=True), train_bad[fit_rows])
        val = encoder.encode_frame(train_frame[~fit_rows].reset_index(drop=True), check_range=False)
        per_fold.append(all_metrics(train_bad[~fit_rows], _predict(model, val)))
    report("cross-validation", spec.folds, spec.folds)

    report("final fit", 0, 1)
    model, encoder = _fit(spec, train_frame, train_bad)
    test_matrix = encoder.encode_frame(test_frame, check_range=False)
    native_pd = _predict(model, test_matrix)
    holdout_metrics = {k: round(v, 6) for k, v in all_metrics(test_bad, native_pd).items()}
    report("final fit", 1, 1)

    report("export and parity", 0, 1)
    work = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=_ensure(out_root)))
    try:
        model.save_model(str(work / NATIVE), format="cbm")
        export_onnx(model, work / ONNX, spec.name, spec.version)
        max_diff = _parity(work / ONNX, test_matrix, native_pd)
        if not max_diff <= PARITY_TOLERANCE:
            raise ModelError(
                f"ONNX and native CatBoost disagree on the holdout: max |dp| = {max_diff:.3g} "
                f"> {PARITY_TOLERANCE:g}; package not written",
                code=MODEL_PARITY,
            )
        files = {name: sha256_file(work / name) for name in (ONNX, NATIVE)}
        card = _card(
            spec,
            data,
            encoder,
            model,
            per_fold,
            holdout_metrics,
            max_diff,
            len(test_bad),
            len(train_bad),
            files,
        )
        # the whole development sample (train and holdout rows) as the final model scores it
        scored = _predict(model, encoder.encode_frame(data.frame, check_range=False))
        card["baseline"] = training_baseline(
            encoder.features, data.frame, scored, "development data: every row, scored by the final model"
        )
        target = out_root / spec.name / spec.version
        card["created_at"] = _previous_created_at(target, files[ONNX]) or card["created_at"]
        (work / CARD).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
        target.chmod(0o755)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    report("export and parity", 1, 1)
    return target


def _previous_created_at(target: Path, onnx_sha256: str) -> str | None:
    """Rebuilding an identical model keeps its card's creation time, so `make models` is a no-op diff."""
    try:
        previous = json.loads((target / CARD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return str(previous["created_at"]) if previous.get("sha256") == onnx_sha256 else None


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _parity(onnx_path: Path, matrix: np.ndarray, native_pd: np.ndarray) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])
    (probabilities,) = session.run([OUTPUT], {INPUT: matrix.astype(np.float32)})
    return float(np.max(np.abs(np.asarray(probabilities, dtype=np.float64)[:, BAD_CLASS] - native_pd)))


def _card(
    spec: TrainSpec,
    data: Dataset,
    encoder: FeatureEncoder,
    model: catboost.CatBoostClassifier,
    per_fold: list[dict[str, float]],
    holdout_metrics: dict[str, float],
    max_diff: float,
    holdout_rows: int,
    train_rows: int,
    files: dict[str, str],
) -> dict[str, Any]:
    by_name = {f.name: f for f in spec.features}
    features = []
    for fitted in encoder.features:
        feature = by_name[fitted["name"]]
        source = {"column": feature.column} if feature.column else {"ratio": list(feature.ratio or ())}
        features.append({**fitted, **source})
    return {
        "format": CARD_FORMAT,
        "name": spec.name,
        "version": spec.version,
        "description": spec.description,
        "created_at": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "sha256": files[ONNX],
        "files": files,
        "target": {
            "column": spec.target_column,
            "bad": spec.bad_label,
            "definition": spec.target_definition,
            "output": "P(bad) = probability_tensor[:, 1]",
        },
        "onnx": {"input": INPUT, "input_dtype": "float32", "output": OUTPUT, "zipmap": "removed"},
        "features": features,
        "excluded": [{"column": c, "reason": r} for c, r in spec.excluded],
        "reasons": {f.name: {"code": f.reason_code, "text": f.reason_text} for f in spec.features},
        "data": {
            **data.source,
            "rows": len(data.bad),
            "bad": int(data.bad.sum()),
            "bad_rate": round(float(data.bad.mean()), 6),
            "train_rows": train_rows,
            "holdout_rows": holdout_rows,
        },
        "training": {
            "params": catboost_params(spec),
            "seed": spec.seed,
            "catboost": catboost.__version__,
            "trees": int(model.tree_count_),
            "spec": spec.path.name,
            "spec_sha256": sha256_file(spec.path),
        },
        "metrics": {
            "cv": {"folds": spec.folds, "stratified": True, **_summary(per_fold)},
            "holdout": holdout_metrics,
        },
        "parity": {
            "rows": holdout_rows,
            "max_abs_diff": max_diff,
            "tolerance": PARITY_TOLERANCE,
            "passed": max_diff <= PARITY_TOLERANCE,
        },
    }
