"""Exact SHAP values of a CatBoost model without calling CatBoost: its oblivious trees turned, once
at load, into per-leaf contribution tables, so one row costs a leaf lookup per tree and one sum.

Why a table is exact: in an oblivious tree every level splits on one (feature, border), so a row's
path, and with it every quantity TreeSHAP computes for that row, is fixed by its leaf index. The
table holds, for each tree and each leaf, the path-dependent Shapley values (Lundberg et al.,
TreeSHAP: a feature outside the coalition follows both children, weighted by the training weight
under each) over the tree's distinct features, i.e. what `get_feature_importance(type="ShapValues")`
returns. Levels: leaf bit j is split j of CatBoost's list, so the last split is the root.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import catboost
import numpy as np

__all__ = ["ShapTable", "shap_table"]


# a tree's level bits compared as one byte each (numpy bools) into a little-endian word of `width`
# bytes; multiplied by the word's magic, bit j's byte (bit 8j) lands on bit top+j and every other
# product below bit top (no carries: distinct positions) or past the word, so >> top is the leaf.
_WORDS: dict[int, tuple[np.dtype[Any], int, int]] = {
    4: (np.dtype("<u4"), sum(1 << (24 - 7 * j) for j in range(4)), 24),
    8: (np.dtype("<u8"), sum(1 << (56 - 7 * j) for j in range(8)), 56),
}


@dataclass(frozen=True)
class ShapTable:
    """Per-leaf contribution tables of a whole model (trees padded to the deepest one), each leaf
    holding only its tree's own features: a tree of depth d moves at most d features, so a row
    reads (trees, d) numbers instead of (trees, all features), which is what a decision pays for
    when the tables are cold in the cache (a third of the bytes on consumer_pd)."""

    features: np.ndarray  # (trees * width,) int: float feature index of each split (bit j = split j)
    borders: np.ndarray  # (trees * width,) float32: bit 1 when value > border; +inf where padded
    width: int  # levels per tree in `features` (depth padded to 4 or 8 bytes; deeper: the depth)
    weights: np.ndarray  # (width,) int: 1 << j (a tree deeper than 8 levels packs its bits with it)
    magic: np.unsignedinteger[Any] | None  # the word's multiplier, of its dtype (None past 8 levels)
    top: np.unsignedinteger[Any] | None  # the word's shift, of its dtype
    first_leaf: np.ndarray  # (trees,) uint word of `width` (int past 8): row of each tree's leaf 0
    leaves: np.ndarray  # (trees * 2**depth, slots) float64: SHAP value of each leaf per slot
    slot_features: np.ndarray  # (trees * slots,) int: the feature of each tree's slot (0 where unused)
    n_features: int

    def rows(self, row: np.ndarray) -> np.ndarray:
        """The row of `leaves` each tree's leaf is, for one encoded row: its level bits packed by one
        multiply and shift of a word per tree (a bool matrix product cost 3x), in place."""
        bits = np.greater(row.take(self.features), self.borders)
        if self.magic is None:
            return bits.reshape(-1, self.width) @ self.weights + self.first_leaf
        index = bits.view(self.magic.dtype)
        index *= self.magic
        index >>= self.top
        index += self.first_leaf
        return index

    def values(self, row: np.ndarray) -> np.ndarray:
        """SHAP values of one encoded row (log-odds of default per feature, expected value left out):
        each feature's sum over the trees in tree order, as the full (trees, features) sum gives it."""
        picked = self.leaves.take(self.rows(row), axis=0)
        result: np.ndarray = np.bincount(
            self.slot_features, weights=picked.ravel(), minlength=self.n_features
        )
        return result

    def matrix(self, rows: np.ndarray) -> np.ndarray:
        """SHAP values of many rows, (rows, n_features)."""
        return np.stack([self.values(row) for row in rows]) if len(rows) else np.zeros((0, self.n_features))


def shap_table(model: catboost.CatBoostClassifier, n_features: int) -> ShapTable:
    """Build the table of a loaded model with float features only (Credo encodes categoricals itself)."""
    doc = _as_json(model)
    if doc.get("features_info", {}).get("categorical_features"):
        raise ValueError("SHAP tables support float features only")
    scale = float(doc.get("scale_and_bias", [1.0, [0.0]])[0])
    trees = doc["oblivious_trees"]
    depth = max((len(tree["splits"]) for tree in trees), default=0)
    width = 4 if depth <= 4 else 8 if depth <= 8 else depth
    slots = max((len({s.get("float_feature_index") for s in tree["splits"]}) for tree in trees), default=0)
    features = np.zeros((len(trees), width), dtype=np.intp)
    borders = np.full((len(trees), width), np.inf, dtype=np.float32)  # a padded level never goes right
    leaves = np.zeros((len(trees), 1 << depth, slots), dtype=np.float64)
    slot_features = np.zeros((len(trees), slots), dtype=np.intp)  # an unused slot adds 0.0 to feature 0
    for t, tree in enumerate(trees):
        splits = tree["splits"]
        for j, split in enumerate(splits):
            if split.get("split_type") != "FloatFeature":
                raise ValueError(f"SHAP tables support float splits only, not {split.get('split_type')}")
            features[t, j] = int(split["float_feature_index"])
            borders[t, j] = np.float32(split["border"])
        own = _tree_table(
            [int(s["float_feature_index"]) for s in splits],
            np.asarray(tree["leaf_values"], dtype=np.float64) * scale,
            np.asarray(tree["leaf_weights"], dtype=np.float64),
            n_features,
        )
        used = sorted({int(s["float_feature_index"]) for s in splits})
        slot_features[t, : len(used)] = used
        # a padded (absent) bit is always 0, so leaf L of a shallow tree is row L of the padded table
        leaves[t, : len(own), : len(used)] = own[:, used]
    word = _WORDS.get(width)
    weights = (1 << np.arange(width)).astype(np.intp)
    first_leaf = (np.arange(len(trees)) << depth).astype(word[0] if word else np.intp)
    return ShapTable(
        features.ravel(),
        borders.ravel(),
        width,
        weights,
        word[0].type(word[1]) if word else None,
        word[0].type(word[2]) if word else None,
        first_leaf,
        leaves.reshape(len(trees) << depth, slots),
        slot_features.ravel(),
        n_features,
    )


def _as_json(model: catboost.CatBoostClassifier) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.json"
        model.save_model(str(path), format="json")
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return doc


def _tree_table(split_features: list[int], values: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """(2**depth, n) SHAP values of each leaf of one oblivious tree, by the Shapley formula over the
    tree's distinct features; E[f | coalition S] follows the path-dependent TreeSHAP rule."""
    depth = len(split_features)
    size = 1 << depth
    leaves = np.arange(size)
    bits = (leaves[:, None] >> np.arange(depth)[None, :]) & 1  # (leaf, level)
    # cover of the node above level j on each leaf's path: leaves sharing the bits above j
    cover = np.zeros((size, depth + 1))
    for j in range(depth + 1):
        prefix = leaves >> j
        cover[:, j] = np.bincount(prefix, weights=weights, minlength=size >> j)[prefix]
    # branch[L, j]: share of the node above level j (bits > j fixed) that goes to L's child
    with np.errstate(divide="ignore", invalid="ignore"):
        branch = np.where(cover[:, 1:] > 0, cover[:, :-1] / cover[:, 1:], 0.0)
    players = sorted(set(split_features))
    k = len(players)
    level_player = np.array([players.index(f) for f in split_features], dtype=np.intp)
    expect: dict[int, np.ndarray] = {}
    for coalition in range(1 << k):
        fixed = ((coalition >> level_player) & 1).astype(bool)  # levels whose feature is in S
        # P(L | row leaf R, S): branch shares on free levels, bits equal to R on fixed ones
        free_weight = np.prod(np.where(fixed[None, :], 1.0, branch), axis=1)  # (L,)
        agree = np.all((bits[:, None, fixed] == bits[None, :, fixed]), axis=2)  # (R, L)
        expect[coalition] = agree @ (free_weight * values)
    table = np.zeros((size, n))
    for i, player in enumerate(players):
        others = [p for p in range(k) if p != i]
        for s in range(k):
            coef = math.factorial(s) * math.factorial(k - s - 1) / math.factorial(k)
            for subset in combinations(others, s):
                coalition = sum(1 << p for p in subset)
                table[:, player] += coef * (expect[coalition | (1 << i)] - expect[coalition])
    return table
