"""Scoring runtime: ONNX Runtime for single rows (one session, one thread, float32 in, plain
tensor out), native CatBoost for batches, and SHAP-based adverse-action reasons from the card."""

from __future__ import annotations

import functools
import struct
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import catboost
import numpy as np
import onnxruntime as ort

from engine.errors import MODEL_CARD_INVALID, ModelError
from engine.models.encoding import FeatureEncoder
from engine.models.shap_table import ShapTable, shap_table
from engine.models.store import ModelPackage

BAD_CLASS = 1  # column of P(bad) in both runtimes' [N, 2] probability output
# an encoded row: the float32 array, or the values it is made of (FeatureEncoder.encode_values)
Row = np.ndarray | tuple[float | int, ...]


def as_row(row: Row) -> np.ndarray:
    """The float32 array of an encoded row (the array itself when it is one)."""
    return np.array(row, np.float32) if isinstance(row, tuple) else row


@dataclass(frozen=True)
class ModelReason:
    """One adverse-action reason: the card's code and text for a feature that raised the risk."""

    code: str
    text: str
    feature: str
    contribution: float  # SHAP value in log-odds of default (> 0: pushed risk up)
    texts: dict[str, str] = field(default_factory=dict, compare=False)


class _Scorer(ABC):
    """Encoding shared by both scorers: features -> encoded float32 rows -> `pd_matrix`."""

    encoder: FeatureEncoder

    def pd(self, features: Mapping[str, Any]) -> float:
        return self.pd_row(self.encoder.encode_row(features))

    def pd_row(self, row: np.ndarray) -> float:
        """P(bad) of one row `encoder.encode_row` made."""
        return float(self.pd_matrix(row[None, :])[0])

    def scored(self, features: Mapping[str, Any]) -> tuple[float, Row]:
        """P(bad) of one row and the encoded row it came from (a REFER explains that row)."""
        row = self.encoder.encode_row(features)
        return self.pd_row(row), row

    def pd_batch(self, rows: Sequence[Mapping[str, Any]]) -> list[float]:
        if not rows:
            return []
        return [float(p) for p in self.pd_matrix(self.encoder.encode_rows(rows))]

    @abstractmethod
    def pd_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Already-encoded float32 rows -> P(bad) per row."""


class OnnxScorer(_Scorer):
    """One ONNX Runtime session for a package (intra- and inter-op threads 1, sequential)."""

    def __init__(self, package: ModelPackage):
        self.package = package
        self.encoder = FeatureEncoder(package.card["features"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(package.onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        onnx_card = package.card.get("onnx", {})
        self._input = str(onnx_card.get("input", self.session.get_inputs()[0].name))
        self._outputs = [str(onnx_card.get("output", self.session.get_outputs()[0].name))]
        self._bound = threading.local()  # per thread: an IOBinding and the buffers it reads and fills

    def scored(self, features: Mapping[str, Any]) -> tuple[float, Row]:
        """P(bad) of one row and the row's encoded values (a REFER explains them: `as_row`). The
        values are packed as float32 straight into the buffer bound to the session (the C cast
        numpy's float32 array makes of them, so the same PD), not through an array of their own:
        that array and its copy into the buffer cost ~1 µs of a decision's score stage."""
        values = self.encoder.encode_values(features)
        try:
            run, pack, got = self._bound.packed
        except AttributeError:
            run, pack, got = self._bound.packed = self._packing()
        try:
            pack(*values)
        except OverflowError:  # past float32's range: numpy's array takes it as inf, so the row does
            return self.pd_row(as_row(values)), values
        run()
        return got[BAD_CLASS], values

    def _packing(self) -> tuple[Callable[[], None], Callable[..., None], memoryview[float]]:
        """(run the session on this thread's binding, pack values as float32 into its input
        buffer, its output buffer read as flat floats: an item of it is the float32 as a Python
        float, what float() of numpy's scalar gives, without the scalar)."""
        try:
            run, given, got = self._bound.io
        except AttributeError:
            run, given, got = self._bound.io = self._binding()
        packer = struct.Struct(f"={given.shape[1]}f")  # 4-byte floats in native byte order, unpadded
        pack = functools.partial(packer.pack_into, memoryview(given).cast("B"), 0)
        return run, pack, memoryview(got).cast("B").cast("f")

    def pd_row(self, row: np.ndarray) -> float:
        """One encoded row's P(bad): the float32 from the tensor, as float (what pd_matrix gives for it).
        The row is copied into a buffer bound to the session once per thread, and the session writes
        its [1, 2] output into another: no input or output tensors made per call (~5 µs of the ~10
        session.run costs on one row; the same model on the same float32s, so the same PD)."""
        try:
            run, given, got = self._bound.io
        except AttributeError:
            run, given, got = self._bound.io = self._binding()
        if row.shape != given.shape[1:]:  # not this model's row: session.run names what is wrong
            (probabilities,) = self.session.run(self._outputs, {self._input: row[None, :]})
            return float(probabilities[0][BAD_CLASS])
        given[0] = row
        run()
        return float(got[0, BAD_CLASS])

    def _binding(self) -> tuple[Callable[[], None], np.ndarray, np.ndarray]:
        """(run the session on the binding, its input buffer, its output buffer) for this thread."""
        given = np.zeros((1, len(self.encoder.names)), dtype=np.float32)
        got = np.zeros((1, 2), dtype=np.float32)  # [P(good), P(bad)] of the one row
        binding = self.session.io_binding()
        binding.bind_cpu_input(self._input, given)
        binding.bind_output(self._outputs[0], "cpu", 0, np.float32, list(got.shape), got.ctypes.data)
        # The session's native run on the native binding: what InferenceSession.run_with_iobinding
        # calls after its WebGPU graph-capture bookkeeping, which a CPU session never needs (~0.5 µs
        # of Python and a native call per decision). The public method where the native one is gone.
        # Default run options made once and kept with the binding: given none, the native run makes
        # a default RunOptions per call (~0.5 µs hot, ~1 µs in a decision); same options, same run.
        options = ort.RunOptions()
        native = getattr(self.session, "_sess", None)
        if native is None or not hasattr(binding, "_iobinding"):
            return functools.partial(self.session.run_with_iobinding, binding, options), given, got
        return functools.partial(native.run_with_iobinding, binding._iobinding, options), given, got

    def pd_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Already-encoded float32 rows -> P(bad) per row (float32 from the tensor, as float64)."""
        (probabilities,) = self.session.run(
            self._outputs, {self._input: matrix.astype(np.float32, copy=False)}
        )
        return np.asarray(probabilities, dtype=np.float64)[:, BAD_CLASS]


class NativeScorer(_Scorer):
    """The native CatBoost model of a package: fast on batches, and the trees the SHAP tables come from."""

    def __init__(self, package: ModelPackage, thread_count: int = 1):
        self.package = package
        self.encoder = FeatureEncoder(package.card["features"])
        self.model = catboost.CatBoostClassifier()
        self.model.load_model(str(package.native_path), format="cbm")
        self.thread_count = thread_count

    def pd_matrix(self, matrix: np.ndarray) -> np.ndarray:
        probabilities = self.model.predict(
            matrix.astype(np.float32, copy=False),
            prediction_type="Probability",
            thread_count=self.thread_count,
        )
        return np.asarray(probabilities, dtype=np.float64)[:, BAD_CLASS]

    @cached_property
    def shap_table(self) -> ShapTable:
        """Per-leaf SHAP tables of this model: exact values of one row without calling CatBoost."""
        return shap_table(self.model, len(self.encoder.names))

    @cached_property
    def card_reasons(self) -> dict[str, tuple[str, dict[str, str]]]:
        """The card's reason code and texts per feature, read once instead of per explained decision."""
        reasons: Mapping[str, Any] = self.package.card.get("reasons", {})
        return {
            str(name): (str(entry["code"]), {str(k): str(v) for k, v in entry["text"].items()})
            for name, entry in reasons.items()
            if isinstance(entry, Mapping) and "code" in entry and isinstance(entry.get("text"), Mapping)
        }  # a malformed entry is the "no reason code" ModelError when its feature is explained

    def reason_labels(self, language: str) -> tuple[tuple[str, str, dict[str, str]] | None, ...]:
        """Per feature (encoder order): its reason code, its text in `language` (else English, else
        the first) and all its texts, or None without a card entry. Made once per language the card
        writes in; any other language reads as the card's fallback, so the cache stays that small."""
        key = language if language in self._card_languages else None
        labels = self._labels.get(key)
        if labels is None:
            labels = tuple(
                None if entry is None else (entry[0], _text_in(entry[1], language), entry[1])
                for entry in map(self.card_reasons.get, self.encoder.names)
            )
            self._labels[key] = labels  # a dict store is atomic: racing threads build equal tuples
        return labels

    @cached_property
    def _card_languages(self) -> frozenset[str]:
        return frozenset(lang for _, texts in self.card_reasons.values() for lang in texts)

    @cached_property
    def _labels(self) -> dict[str | None, tuple[tuple[str, str, dict[str, str]] | None, ...]]:
        return {}


def _text_in(texts: Mapping[str, str], language: str) -> str:
    return texts.get(language) or texts.get("en") or next(iter(texts.values()), "")


_native_cache: dict[tuple[str, str], NativeScorer] = {}
_onnx_cache: dict[tuple[str, str], OnnxScorer] = {}
_cache_lock = threading.Lock()


def native_scorer(package: ModelPackage) -> NativeScorer:
    """The process's NativeScorer for a package, its SHAP tables built (once, under the lock), so a
    decision that needs reasons never waits on CatBoost. Keyed by content (the verified hashes of
    both model files), so a package restored into another folder (replay) reuses them."""
    key = package.content
    scorer = _native_cache.get(key)  # stored whole, under the lock, once built: a plain read suffices
    if scorer is not None:
        return scorer
    with _cache_lock:
        scorer = _native_cache.get(key)
        if scorer is None:
            scorer = NativeScorer(package)
            _ = scorer.shap_table, scorer.card_reasons, scorer._card_languages, scorer._labels
            _native_cache[key] = scorer
        return scorer


def onnx_scorer(package: ModelPackage) -> OnnxScorer:
    """The process's one ONNX Runtime session for a package (sessions are safe to share across threads)."""
    key = (str(package.path), package.sha256)
    with _cache_lock:
        scorer = _onnx_cache.get(key)
        if scorer is None:
            scorer = _onnx_cache[key] = OnnxScorer(package)
        return scorer


def explain(
    package: ModelPackage, features: Mapping[str, Any], top: int = 4, language: str = "en"
) -> list[ModelReason]:
    """The features that pushed this applicant's risk up most (largest positive SHAP values, ties
    in card order), mapped to the card's reason codes and texts; at most `top` (and at most 4)."""
    return explain_row(package, native_scorer(package).encoder.encode_row(features), top, language)


def explain_row(package: ModelPackage, row: Row, top: int = 4, language: str = "en") -> list[ModelReason]:
    """`explain` of a row the package's encoder already made (the score stage's, so a decision
    encodes its features once)."""
    scorer = native_scorer(package)
    names = scorer.encoder.names
    return [
        ModelReason(code, text, names[i], contribution, dict(texts))
        for i, contribution, (code, text, texts) in _adverse(scorer, row, top, language)
    ]


def reason_texts(
    package: ModelPackage, row: Row, top: int = 4, language: str = "en"
) -> list[tuple[str, str]]:
    """(code, text) of each of `explain_row`'s reasons, in its order: what a decision's outcome
    reads, without building a ModelReason and copying its texts per reason."""
    return [(label[0], label[1]) for _, _, label in _adverse(native_scorer(package), row, top, language)]


def _adverse(
    scorer: NativeScorer, row: Row, top: int, language: str
) -> list[tuple[int, float, tuple[str, str, dict[str, str]]]]:
    """(feature index, SHAP value, its reason label) of the `top` (at most 4) largest positive
    contributions, ties in card order."""
    contributions: list[float] = scorer.shap_table.values(as_row(row)).tolist()
    labels = scorer.reason_labels(language)
    # sorting the few positive Python floats costs less than numpy's argsort; a stable sort (reverse
    # keeps it stable) leaves ties in card order
    adverse = [i for i, contribution in enumerate(contributions) if contribution > 0.0]
    adverse.sort(key=contributions.__getitem__, reverse=True)
    picked: list[tuple[int, float, tuple[str, str, dict[str, str]]]] = []
    for i in adverse[: max(0, min(top, 4))]:
        label = labels[i]
        if label is None:
            name = scorer.encoder.names[i]
            raise ModelError(f"model card has no reason code for feature {name!r}", code=MODEL_CARD_INVALID)
        picked.append((i, contributions[i], label))
    return picked
