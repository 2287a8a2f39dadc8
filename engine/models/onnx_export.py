"""CatBoost -> ONNX with the ZipMap removed, so ONNX Runtime returns a plain float32 [N, 2]
probability tensor (the ZipMap's list of dicts is slow and awkward to read)."""

from __future__ import annotations

from pathlib import Path

import catboost
import onnx
from onnx import TensorProto, helper

INPUT = "features"
OUTPUT = "probability_tensor"


def export_onnx(model: catboost.CatBoostClassifier, path: Path, name: str, version: str) -> None:
    model.save_model(
        str(path),
        format="onnx",
        export_parameters={
            "onnx_domain": "ai.catboost",
            "onnx_model_version": 1,
            "onnx_graph_name": f"{name}-{version}",
        },
    )
    graph_model = onnx.load(str(path))
    strip_zipmap(graph_model)
    onnx.checker.check_model(graph_model)
    onnx.save(graph_model, str(path))


def strip_zipmap(model: onnx.ModelProto) -> None:
    """Drop ZipMap nodes and expose the tree ensemble's probability tensor as the only output."""
    graph = model.graph
    for node in [n for n in graph.node if n.op_type == "ZipMap"]:
        graph.node.remove(node)
    producers = {out for n in graph.node for out in n.output}
    if OUTPUT not in producers:
        raise ValueError(
            f"ONNX graph has no {OUTPUT!r} output to expose (nodes: {[n.op_type for n in graph.node]})"
        )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", 2]))
