"""The training spec (`credo train SPEC.yaml`): data, target, features, exclusions, CatBoost
parameters and seed; every error is reported at its file:line:col, all at once, like policy errors."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import Diagnostic, DiagnosticSink, Location, TrainSpecError

# CatBoost parameters a spec may set; everything else (loss, class weights, output) is fixed by us.
ALLOWED_PARAMS = {
    "iterations": int,
    "depth": int,
    "learning_rate": float,
    "l2_leaf_reg": float,
    "border_count": int,
    "random_strength": float,
    "bagging_temperature": float,
    "min_data_in_leaf": int,
    "rsm": float,
    "thread_count": int,
}
MAX_THREADS = 2
SYNTHETIC_SOURCES = ("consumer_pd",)
KIND_NAMES = {int: "an integer", float: "a number", str: "a string", object: "a scalar"}


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    type: str  # numeric | categorical
    location: Location
    column: str | None = None
    ratio: tuple[str, str] | None = None  # numerator / denominator columns
    categories: tuple[str, ...] = ()
    order: str = "declared"  # categorical code order: declared (or sorted) | bad_rate
    range: tuple[float, float] | None = None
    reason_code: str = ""
    reason_text: dict[str, str] = field(default_factory=dict)

    def encoding_spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "categories": list(self.categories),
            "order": self.order,
            "range": list(self.range) if self.range else None,
        }


@dataclass(frozen=True)
class TrainSpec:
    path: Path
    name: str
    version: str
    description: str
    data_path: Path | None
    data_format: str
    synthetic: str | None
    synthetic_rows: int
    synthetic_seed: int
    target_column: str
    bad_label: Any
    target_definition: str
    features: tuple[FeatureSpec, ...]
    excluded: tuple[tuple[str, str], ...]
    params: dict[str, Any]
    seed: int
    folds: int
    holdout: float
    locations: dict[str, Location] = field(default_factory=dict)


class _Reader:
    """Walks composed YAML nodes so each value keeps its position for diagnostics."""

    def __init__(self, file: str, sink: DiagnosticSink):
        self.file = file
        self.sink = sink

    def loc(self, node: yaml.Node) -> Location:
        return Location(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def error(self, node: yaml.Node, code: str, message: str) -> None:
        self.sink.error(code, message, self.loc(node))

    def mapping(
        self,
        node: yaml.Node | None,
        what: str,
        allowed: set[str],
        required: frozenset[str] | set[str] = frozenset(),
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if node is None:
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.error(node, "SPEC_TYPE", f"{what} must be a mapping")
            return {}
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in out:
                self.error(key_node, "SPEC_DUPLICATE_KEY", f"{what}: duplicate key {key!r}")
            elif key not in allowed:
                hint = difflib.get_close_matches(key, sorted(allowed), n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.error(key_node, "SPEC_UNKNOWN_KEY", f"{what}: unknown key {key!r}{suggestion}")
            else:
                out[key] = (key_node, value_node)
        for key in sorted(required - out.keys()):
            self.error(node, "SPEC_MISSING_KEY", f"{what}: missing required key {key!r}")
        return out

    def scalar(
        self, entry: tuple[yaml.Node, yaml.Node] | None, what: str, kind: type, default: Any = None
    ) -> Any:
        if entry is None:
            return default
        node = entry[1]
        if not isinstance(node, yaml.ScalarNode):
            self.error(node, "SPEC_TYPE", f"{what} must be {KIND_NAMES[kind]}")
            return default
        value = yaml.constructor.SafeConstructor().construct_object(node)
        if kind is str:
            return str(value)
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is object:
            return value
        self.error(node, "SPEC_TYPE", f"{what} must be {KIND_NAMES[kind]}, got {value!r}")
        return default


def load_spec(path: Path | str) -> TrainSpec:
    """Parse and check a training spec; raises TrainSpecError with every problem found."""
    path = Path(path)
    sink = DiagnosticSink()
    r = _Reader(str(path), sink)
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(str(path), mark.line + 1, mark.column + 1) if mark else Location(str(path), 1, 1)
        raise TrainSpecError([Diagnostic("SPEC_SYNTAX", str(exc.problem or exc), where)]) from None
    except OSError as exc:
        raise TrainSpecError([Diagnostic("SPEC_UNREADABLE", str(exc), Location(str(path), 1, 1))]) from None
    if root is None:
        raise TrainSpecError([Diagnostic("SPEC_EMPTY", "empty training spec", Location(str(path), 1, 1))])
    top = r.mapping(
        root,
        "spec",
        {
            "name",
            "version",
            "description",
            "data",
            "target",
            "features",
            "excluded",
            "params",
            "seed",
            "cv",
            "holdout",
        },
        {"name", "version", "data", "target", "features", "seed"},
    )
    locations = {key: r.loc(entry[1]) for key, entry in top.items()}
    name = r.scalar(top.get("name"), "name", str, "")
    version = r.scalar(top.get("version"), "version", str, "")
    description = r.scalar(top.get("description"), "description", str, "")
    seed = r.scalar(top.get("seed"), "seed", int, 0)

    data = r.mapping(
        top["data"][1] if "data" in top else None, "data", {"path", "format", "synthetic", "rows", "seed"}
    )
    data_path: Path | None = None
    synthetic = r.scalar(data.get("synthetic"), "data.synthetic", str)
    data_format = r.scalar(data.get("format"), "data.format", str, "")
    if "path" in data:
        data_path = (path.parent / r.scalar(data["path"], "data.path", str, "")).resolve()
        data_format = data_format or ("parquet" if data_path.suffix == ".parquet" else "csv")
        if data_format not in ("csv", "parquet"):
            r.error(
                data["format"][1], "SPEC_VALUE", f"data.format must be csv or parquet, got {data_format!r}"
            )
    elif synthetic is not None:
        if synthetic not in SYNTHETIC_SOURCES:
            r.error(data["synthetic"][1], "SPEC_VALUE", f"unknown synthetic source {synthetic!r}")
    elif "data" in top:
        r.error(top["data"][1], "SPEC_MISSING_KEY", "data needs `path` (CSV or Parquet) or `synthetic`")
    rows = r.scalar(data.get("rows"), "data.rows", int, 20000)
    data_seed = r.scalar(data.get("seed"), "data.seed", int, seed)

    target = r.mapping(
        top["target"][1] if "target" in top else None,
        "target",
        {"column", "bad", "definition"},
        {"column", "bad"},
    )
    target_column = r.scalar(target.get("column"), "target.column", str, "")
    bad_label = r.scalar(target.get("bad"), "target.bad", object)
    definition = r.scalar(target.get("definition"), "target.definition", str, "")

    features = _features(r, top.get("features"))
    excluded = _excluded(r, top.get("excluded"))
    feature_columns = {c for f in features for c in ((f.column,) if f.column else (f.ratio or ()))}
    for column, _reason in excluded:
        if column in feature_columns:
            r.error(
                top["excluded"][1], "SPEC_EXCLUDED_USED", f"excluded column {column!r} is used by a feature"
            )

    params: dict[str, Any] = {}
    for key, entry in r.mapping(
        top["params"][1] if "params" in top else None, "params", set(ALLOWED_PARAMS)
    ).items():
        params[key] = r.scalar(entry, f"params.{key}", ALLOWED_PARAMS[key])
        if key == "thread_count" and params[key] is not None and not 1 <= params[key] <= MAX_THREADS:
            r.error(entry[1], "SPEC_VALUE", f"params.thread_count must be between 1 and {MAX_THREADS}")
    cv = r.mapping(top["cv"][1] if "cv" in top else None, "cv", {"folds"})
    folds = r.scalar(cv.get("folds"), "cv.folds", int, 5)
    if not 2 <= folds <= 20:
        r.error(cv["folds"][1] if "folds" in cv else root, "SPEC_VALUE", "cv.folds must be between 2 and 20")
    holdout = r.scalar(top.get("holdout"), "holdout", float, 0.2)
    if not 0.05 <= holdout <= 0.5:
        r.error(top["holdout"][1], "SPEC_VALUE", "holdout must be a fraction between 0.05 and 0.5")
    if sink.has_errors:
        raise TrainSpecError(sink.sorted())
    return TrainSpec(
        path=path,
        name=name,
        version=version,
        description=description,
        data_path=data_path,
        data_format=data_format or "csv",
        synthetic=synthetic,
        synthetic_rows=rows,
        synthetic_seed=data_seed,
        target_column=target_column,
        bad_label=bad_label,
        target_definition=definition,
        features=tuple(features),
        excluded=tuple(excluded),
        params=params,
        seed=seed,
        folds=folds,
        holdout=holdout,
        locations=locations,
    )


def _features(r: _Reader, entry: tuple[yaml.Node, yaml.Node] | None) -> list[FeatureSpec]:
    if entry is None:
        return []
    node = entry[1]
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        r.error(node, "SPEC_TYPE", "features must be a non-empty list")
        return []
    out: list[FeatureSpec] = []
    seen: set[str] = set()
    for item in node.value:
        f = r.mapping(
            item,
            "feature",
            {"name", "column", "ratio", "type", "categories", "order", "range", "reason"},
            {"name", "type", "reason"},
        )
        name = r.scalar(f.get("name"), "feature name", str, "")
        if name in seen:
            r.error(item, "SPEC_DUPLICATE_FEATURE", f"feature {name!r} declared twice")
        seen.add(name)
        kind = r.scalar(f.get("type"), f"feature {name!r} type", str, "numeric")
        if kind not in ("numeric", "categorical"):
            r.error(f["type"][1], "SPEC_VALUE", f"feature {name!r}: type must be numeric or categorical")
        ratio = _string_list(r, f.get("ratio"), f"feature {name!r} ratio")
        if "ratio" in f and "column" in f:
            r.error(f["ratio"][0], "SPEC_VALUE", f"feature {name!r}: give either column or ratio, not both")
        if "ratio" in f and len(ratio) != 2:
            r.error(f["ratio"][1], "SPEC_VALUE", f"feature {name!r}: ratio is [numerator, denominator]")
        column = r.scalar(f.get("column"), f"feature {name!r} column", str, None if ratio else name)
        categories = _string_list(r, f.get("categories"), f"feature {name!r} categories")
        order = r.scalar(f.get("order"), f"feature {name!r} order", str, "declared")
        if order not in ("declared", "bad_rate"):
            r.error(f["order"][1], "SPEC_VALUE", f"feature {name!r}: order must be declared or bad_rate")
        if kind == "numeric" and ("categories" in f or "order" in f):
            r.error(item, "SPEC_VALUE", f"feature {name!r}: categories/order apply to categorical features")
        bounds: tuple[float, float] | None = None
        if "range" in f:
            values = f["range"][1]
            nums = (
                [r.scalar((v, v), f"feature {name!r} range", float) for v in getattr(values, "value", [])]
                if isinstance(values, yaml.SequenceNode)
                else []
            )
            if len(nums) != 2 or None in nums or nums[0] > nums[1]:
                r.error(values, "SPEC_VALUE", f"feature {name!r}: range is [min, max] with min <= max")
            else:
                bounds = (nums[0], nums[1])
        reason = r.mapping(
            f["reason"][1] if "reason" in f else None,
            f"feature {name!r} reason",
            {"code", "text"},
            {"code", "text"},
        )
        code = r.scalar(reason.get("code"), "reason code", str, "")
        texts = {
            k: r.scalar(v, f"reason text {k}", str, "")
            for k, v in r.mapping(
                reason["text"][1] if "text" in reason else None, "reason text", {"en", "zh"}, {"en"}
            ).items()
        }
        out.append(
            FeatureSpec(
                name=name,
                type=kind,
                location=r.loc(item),
                column=None if ratio else column,
                ratio=(ratio[0], ratio[1]) if len(ratio) == 2 else None,
                categories=tuple(categories),
                order=order,
                range=bounds,
                reason_code=code,
                reason_text=texts,
            )
        )
    return out


def _excluded(r: _Reader, entry: tuple[yaml.Node, yaml.Node] | None) -> list[tuple[str, str]]:
    if entry is None:
        return []
    node = entry[1]
    if not isinstance(node, yaml.SequenceNode):
        r.error(node, "SPEC_TYPE", "excluded must be a list of {column, reason}")
        return []
    out = []
    for item in node.value:
        e = r.mapping(item, "excluded entry", {"column", "reason"}, {"column", "reason"})
        out.append(
            (
                r.scalar(e.get("column"), "excluded column", str, ""),
                r.scalar(e.get("reason"), "reason", str, ""),
            )
        )
    return out


def _string_list(r: _Reader, entry: tuple[yaml.Node, yaml.Node] | None, what: str) -> list[str]:
    if entry is None:
        return []
    node = entry[1]
    if not isinstance(node, yaml.SequenceNode) or not all(isinstance(v, yaml.ScalarNode) for v in node.value):
        r.error(node, "SPEC_TYPE", f"{what} must be a list of strings")
        return []
    return [str(v.value) for v in node.value]
