"""Structured JSON logs for the server processes, with `pii: true` policy inputs masked.

One JSON object per line on stderr; `extra=` fields of a log call become top-level keys.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

MASK = "***"

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = capped(value)
        entry["msg"] = capped(entry["msg"])
        if record.exc_info:
            entry["exc"] = capped(self.formatException(record.exc_info), MAX_TRACEBACK)
        return _encode(entry)


# json.dumps(entry, default=str, ensure_ascii=False) without building an encoder per line
_encode = json.JSONEncoder(default=str, ensure_ascii=False).encode


# A log line stays readable and bounded whatever a caller sent: each string is cut (saying its
# length), each list or object keeps its first items, and nesting stops at a depth.
MAX_VALUE = 512
MAX_ITEMS = 50
MAX_DEPTH = 8
MAX_TRACEBACK = 8192


def capped(value: Any, limit: int = MAX_VALUE, depth: int = 0) -> Any:
    """`value` with every string cut to `limit` characters (plus its length), long lists and
    mappings cut to their first items (plus how many were left out) and deep nesting elided."""
    if isinstance(value, str):
        return value if len(value) <= limit else f"{value[:limit]}... ({len(value)} chars)"
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if depth >= MAX_DEPTH:
        return "..."
    kind = type(value)
    if (kind is dict or kind is list) and len(value) <= MAX_ITEMS:  # the usual: no ABC check, no cut
        if kind is dict:
            return {capped(str(k), limit): capped(v, limit, depth + 1) for k, v in value.items()}
        return [capped(v, limit, depth + 1) for v in value]
    if isinstance(value, Mapping):
        items = list(itertools.islice(value.items(), MAX_ITEMS))
        out = {capped(str(k), limit): capped(v, limit, depth + 1) for k, v in items}
        if len(value) > MAX_ITEMS:
            out["..."] = f"{len(value) - MAX_ITEMS} more"
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        listed = [capped(v, limit, depth + 1) for v in itertools.islice(value, MAX_ITEMS)]
        if len(value) > MAX_ITEMS:
            listed.append(f"... {len(value) - MAX_ITEMS} more")
        return listed
    return capped(str(value), limit)


def setup_logging(level: str | None = None) -> None:
    """JSON lines on stderr for the whole process (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel((level or os.environ.get("CREDO_LOG_LEVEL", "INFO")).upper())
    # A line names no source file, thread or multiprocessing name: the logging HOWTO's
    # "Optimization" switches, so every record (one per decision) skips finding them.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False


def pii_paths(policies_dir: str | Path) -> dict[str, frozenset[str]]:
    """Dotted input paths declared `pii: true`, and `labels.<key>` for each caller label declared
    `pii: true`, per policy name, read from policies/*/policy.yaml. A file that does not parse
    contributes nothing here: the loader reports it properly."""
    found: dict[str, frozenset[str]] = {}
    for path in sorted(Path(policies_dir).glob("*/policy.yaml")):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(doc, dict):
            continue
        name = str(doc.get("policy") or path.parent.name)
        found[name] = frozenset(
            prefix + str(k)
            for prefix, section in (("", doc.get("inputs")), ("labels.", doc.get("labels")))
            if isinstance(section, dict)
            for k, spec in section.items()
            if isinstance(spec, dict) and spec.get("pii") is True
        )
    return found


def mask_labels(labels: Mapping[str, str], pii: Iterable[str]) -> dict[str, str]:
    """A copy of a request's caller labels with those `pii_paths` names (`labels.<key>`) masked."""
    return mask_application({"labels": dict(labels)}, pii)["labels"]


def mask_application(application: Mapping[str, Any], pii: Iterable[str]) -> dict[str, Any]:
    """A copy of a nested application with the values at the given dotted paths replaced by ***."""
    masked = set(pii)

    def walk(node: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            path = f"{prefix}{key}"
            if path in masked:
                out[key] = MASK
            elif isinstance(value, Mapping):
                out[key] = walk(value, f"{path}.")
            else:
                out[key] = value
        return out

    return walk(application, "")
