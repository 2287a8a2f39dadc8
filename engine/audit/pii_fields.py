"""Where a policy's personal data sits in its decision records: the `pii: true` inputs, the derived
values and model features computed from one, the same values copied into stage values, and the
caller labels declared `pii: true` (kept in `extra.labels`); and the walks over a record body that
replace them (sealing) or the markers left in their place (opening).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.policy import Policy
from engine.policy.builder import mentioned_names

__all__ = ["SEALED", "PiiFields", "is_sealed", "locate", "pii_fields", "walk", "walk_sealed"]

SEALED = "$pii"  # a sealed value's place in the record: {"$pii": its path}


@dataclass(frozen=True)
class PiiFields:
    """Where one policy's personal data sits: flat input names, the derived names computed from
    them, and the input (if any) whose value names the data subject."""

    inputs: frozenset[str]
    derived: frozenset[str]
    subject: str | None
    features: frozenset[str] = frozenset()  # model features computed from a personal value
    labels: frozenset[str] = frozenset()  # caller label keys holding personal data

    @property
    def any(self) -> bool:
        """Whether a record of the policy can hold personal data at all."""
        return bool(self.inputs or self.labels)

    @property
    def names(self) -> frozenset[str]:
        return self.inputs | self.derived


def pii_fields(policy: Policy) -> PiiFields:
    inputs = {name for name, decl in policy.inputs.items() if decl.pii}
    tainted = set(inputs)
    for name, formula in policy.derived.items():  # in dependency order: one pass sees every chain
        if any(ref in tainted for ref, _, _ in mentioned_names(formula.source)):
            tainted.add(name)
    subject = next((name for name, decl in policy.inputs.items() if decl.subject), None)
    formulas = policy.score.feature_formulas if policy.score is not None else {}
    features = {
        name
        for name, formula in formulas.items()
        if any(ref in tainted for ref, _, _ in mentioned_names(formula.source))
    }
    return PiiFields(
        frozenset(inputs), frozenset(tainted - inputs), subject, frozenset(features), policy.pii_labels
    )


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and SEALED in value


def walk(body: dict[str, Any], fields: PiiFields, fn: Callable[[str, Any], Any]) -> None:
    """Replace every personal value of a record body by `fn(path, value)`; each container changed is
    copied first, so the record the body came from is left as it was."""
    names = fields.names
    for part, wanted in (("input", fields.inputs), ("derived", fields.derived)):
        hits = [key for key in body[part].keys() & wanted if body[part][key] is not None]
        if hits:
            body[part] = values = dict(body[part])
            for key in sorted(hits):
                values[key] = fn(f"{part}.{key}", values[key])
    if isinstance(body.get("application"), dict):  # the request as received, where the record keeps it
        for name in sorted(fields.inputs):
            *parents, leaf = name.split(".")
            node: Any = body["application"]
            trail = [node]
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
                trail.append(node)
            if not isinstance(node, dict) or node.get(leaf) is None:
                continue
            copies = [dict(n) for n in trail]  # the path's containers, copied
            for outer, inner, part in zip(copies, copies[1:], parents, strict=False):
                outer[part] = inner
            copies[-1][leaf] = fn(f"application.{name}", node[leaf])
            body["application"] = copies[0]
    scored = fields.features
    for model, outputs in list(body["model_outputs"].items()):
        features = outputs.get("features") if isinstance(outputs, dict) else None
        if isinstance(features, dict) and not features.keys().isdisjoint(scored):
            copied = dict(features)
            for key in sorted(features.keys() & scored):
                if copied[key] is not None:
                    copied[key] = fn(f"model_outputs.{model}.features.{key}", copied[key])
            body["model_outputs"] = {**body["model_outputs"], model: {**outputs, "features": copied}}
    labels = body["extra"].get("labels")
    if isinstance(labels, dict) and not labels.keys().isdisjoint(fields.labels):
        copied = dict(labels)
        for key in sorted(labels.keys() & fields.labels):
            copied[key] = fn(f"extra.labels.{key}", copied[key])
        body["extra"] = {**body["extra"], "labels": copied}
    stages = body["stages"]
    for i, stage in enumerate(stages):
        recorded = stage.get("values") if isinstance(stage, dict) else None
        if isinstance(recorded, dict) and not recorded.keys().isdisjoint(names):
            changed = dict(recorded)
            for key in sorted(recorded.keys() & names):
                if changed[key] is not None:
                    changed[key] = fn(f"stages[{i}].values.{key}", changed[key])
            if stages is body["stages"]:
                body["stages"] = list(stages)
            body["stages"][i] = {**stage, "values": changed}


def walk_sealed(body: dict[str, Any], fn: Callable[[str, Any], Any]) -> None:
    """Apply `fn(path, value)` to every sealed value of a record body, at the paths `_walk` names."""
    paths = (body.get("extra") or {}).get("pii", {}).get("sealed", [])
    for path in paths:
        parent, leaf = locate(body, path)
        if parent is not None and leaf in parent:
            parent[leaf] = fn(path, parent[leaf])


def locate(body: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, str]:
    """(the dict holding the value at `path`, its key); a path's last segment may hold dots."""
    head, _, rest = path.partition(".")
    node: Any = body
    if "[" in head:  # stages[3]
        name, index = head[:-1].split("[")
        node = body.get(name, [])[int(index)]
    else:
        node = body.get(head)
    if head.startswith("stages["):
        _, _, leaf = rest.partition(".")  # values.<name>
        return (node.get("values") if isinstance(node, dict) else None), leaf
    if head == "model_outputs":
        model, _, leaf = rest.partition(".features.")
        outputs = node.get(model) if isinstance(node, dict) else None
        return (outputs.get("features") if isinstance(outputs, dict) else None), leaf
    if head == "extra":  # extra.labels.<key>
        labels = node.get("labels") if isinstance(node, dict) else None
        return labels, rest.removeprefix("labels.")
    if head == "application":
        *parents, leaf = rest.split(".")
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        return node, leaf
    return node, rest
