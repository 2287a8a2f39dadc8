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
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

MASK = "***"

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# the keys JsonFormatter writes of its own
_OWN = frozenset({"ts", "level", "logger", "pid", "msg", "exc"})


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
# how that encoder writes a str (ensure_ascii=False)
_encode_str = json.encoder.encode_basestring


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


class JsonLines(logging.StreamHandler):
    """The handler `setup_logging` installs: JsonFormatter lines on a stream, and `KeyedLine`'s
    lines, built already, written under the same lock with the same one write and flush."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.setFormatter(JsonFormatter())

    def write_line(self, line: str, record: Any) -> None:
        """Write `line` (newline included) as emit() writes a formatted record; a failing stream is
        reported as emit() reports it, `record()` making the LogRecord its report names."""
        with self.lock:  # type: ignore[union-attr]  # made in Handler.__init__
            try:
                stream = self.stream
                stream.write(line)
                stream.flush()
            except RecursionError:  # as StreamHandler.emit
                raise
            except Exception:
                self.handleError(record())


class KeyedLine:
    """One kind of INFO line of a logger: `line(*values)` logs what
    `logger.info(msg, extra=dict(zip(keys, values)))` logs. When the line's only destination is the
    process's `JsonLines` handler (as `setup_logging` leaves it: no filter, no other handler on the
    way) the line is written straight to it: the bytes JsonFormatter makes of that record, apart
    from the time read, without a LogRecord, a walk over its attributes or the handler chain's
    calls (one per decision on a busy server). Anywhere else (another handler, a filter, pytest's
    caplog) the call goes through `logger.info` as written. The caller checks the level, once."""

    def __init__(self, logger: logging.Logger, msg: str, keys: tuple[str, ...]):
        clash = [k for k in keys if k in _STANDARD or k in _OWN or k.startswith("_")]
        if clash:  # makeRecord refuses a record's attributes; the formatter replaces or drops the rest
            raise ValueError(f"log line keys {clash} are a record's attributes or the formatter's keys")
        self.logger = logger
        self.msg = msg
        self.keys = keys
        # after the pid: the message, then each key's `, "key": ` before its value
        self._msg = f', "msg": {_json(msg)}'
        self._keys = tuple(f", {_encode_str(k)}: " for k in keys)
        self._second: tuple[int, str, str] = (-1, "", "")

    def __call__(self, *values: Any) -> None:
        handler = self._direct()
        if handler is None:
            self.logger.info(self.msg, extra=dict(zip(self.keys, values, strict=True)))
            return
        parts = [self._head(), self._msg]
        for key, value in zip(self._keys, values, strict=True):
            parts.append(key)
            # a short str, the usual value, without a call
            parts.append(
                _encode_str(value) if type(value) is str and len(value) <= MAX_VALUE else _json(value)
            )
        parts.append("}\n")
        handler.write_line("".join(parts), lambda: self._record(values))

    def _direct(self) -> JsonLines | None:
        """The JsonLines handler that alone would receive this logger's INFO record, unfiltered."""
        logger: logging.Logger | None = self.logger
        if self.logger.filters:
            return None
        found = None
        while logger is not None:
            for handler in logger.handlers:
                if (
                    found is not None
                    or type(handler) is not JsonLines
                    or handler.filters
                    or handler.level > logging.INFO
                    or type(handler.formatter) is not JsonFormatter
                ):
                    return None
                found = handler
            if not logger.propagate:
                break
            logger = logger.parent
        return found

    def _head(self) -> str:
        """`{"ts": "…", "level": "info", "logger": "…", "pid": …` for now, as JsonFormatter writes
        it: the time to the millisecond (truncated) in UTC; the part up to the second made once a
        second."""
        second, millis = divmod(time.time_ns() // 1_000_000, 1000)
        cached, before, after = self._second
        if second != cached:
            stamp = dt.datetime.fromtimestamp(second, dt.UTC).isoformat(timespec="seconds")
            level = _encode(logging.getLevelName(logging.INFO).lower())
            before = f'{{"ts": "{stamp[:-6]}.'
            after = f'{stamp[-6:]}", "level": {level}, "logger": {_json(self.logger.name)}, "pid": '
            self._second = (second, before, after)
        return f"{before}{millis:03d}{after}{_pid[0] if logging.logProcesses else 'null'}"

    def _record(self, values: tuple[Any, ...]) -> logging.LogRecord:
        return self.logger.makeRecord(
            self.logger.name,
            logging.INFO,
            "(unknown file)",
            0,
            self.msg,
            (),
            None,
            extra=dict(zip(self.keys, values, strict=True)),
        )


# os.getpid() (a system call) once per process, as a LogRecord's `process` reads it per record
_pid = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))


def _json(value: Any, depth: int = 0) -> str:
    """`value` as the formatter's encoder writes capped(value) in a line, at `depth` in it: strings,
    numbers and lists and dicts of them written here; anything else (a long list, a key that is
    not a str or is cut, a Decimal, NaN) by capped() and the encoder."""
    kind = type(value)
    if kind is str:
        return _encode_str(value if len(value) <= MAX_VALUE else capped(value))
    if kind is float and value - value == 0.0:  # finite: the encoder writes float.__repr__
        return repr(value)
    if kind is int:
        return repr(value)
    if depth < MAX_DEPTH and (kind is list or kind is dict) and len(value) <= MAX_ITEMS:
        inner = depth + 1
        if kind is list:
            return "[" + ", ".join([_json(v, inner) for v in value]) + "]"
        items = []
        for k, v in value.items():
            if type(k) is not str or len(k) > MAX_VALUE:
                break  # capped() makes k a str, or cuts it (two cut alike would become one key)
            items.append(f"{_encode_str(k)}: {_json(v, inner)}")
        else:
            return "{" + ", ".join(items) + "}"
    return _encode(capped(value, MAX_VALUE, depth))


def setup_logging(level: str | None = None) -> None:
    """JSON lines on stderr for the whole process (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = JsonLines(sys.stderr)
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
