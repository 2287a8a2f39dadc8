"""Streams of applications for batch work: Parquet (read one record batch at a time, so memory stays
bounded however large the file), CSV, JSON lines, or the audit store, as chunks of the nested JSON a
caller would send. Flat files name fields by their dotted input path (`applicant.age`)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import UsageError

__all__ = ["FORMATS", "count_rows", "iter_chunks", "nest", "plain_value"]

FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def data_format(path: Path) -> str:
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UsageError(f"{path}: unknown data format (use {', '.join(sorted(FORMATS))})")
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    return kind


def count_rows(path: Path) -> int | None:
    """Rows in the file for the progress bar: Parquet from its footer, text files by their lines."""
    kind = data_format(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as fh:
        lines = sum(1 for line in fh if line.strip())
    return lines - 1 if kind == "csv" else lines


def iter_chunks(path: Path, chunk: int) -> Iterator[list[dict[str, Any]]]:
    """The file's rows as nested applications, `chunk` at a time (the last chunk may be shorter)."""
    kind = data_format(path)
    if kind == "parquet":
        yield from _rechunk(_parquet_rows(path, chunk), chunk)
    elif kind == "csv":
        yield from _rechunk(_csv_rows(path, chunk), chunk)
    else:
        yield from _rechunk(_jsonl_rows(path), chunk)


def _rechunk(rows: Iterable[dict[str, Any]], chunk: int) -> Iterator[list[dict[str, Any]]]:
    out: list[dict[str, Any]] = []
    for row in rows:
        out.append(row)
        if len(out) >= chunk:
            yield out
            out = []
    if out:
        yield out


def _parquet_rows(path: Path, chunk: int) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    reader = pq.ParquetFile(path)
    for batch in reader.iter_batches(batch_size=chunk):  # one record batch in memory at a time
        for record in batch.to_pylist():
            yield nest(record)


def _csv_rows(path: Path, chunk: int) -> Iterator[dict[str, Any]]:
    import pandas as pd

    for frame in pd.read_csv(path, chunksize=chunk, keep_default_na=True):
        for record in frame.to_dict("records"):
            yield nest(record)


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{path}:{number}: not a JSON object: {exc.msg}") from None
            if not isinstance(record, dict):
                raise UsageError(f"{path}:{number}: not a JSON object")
            yield nest(record)


def nest(record: Mapping[str, Any]) -> dict[str, Any]:
    """A flat record with dotted names as the nested application; empty cells are left out (so the
    policy's defaults and `required` apply), numbers become exact decimal text."""
    out: dict[str, Any] = {}
    for name, raw in record.items():
        value = plain_value(raw)
        if value is None:
            continue
        if isinstance(value, dict):
            value = nest(value) if any("." in k for k in value) else value
        group, dot, field = str(name).partition(".")
        if not dot:
            if isinstance(value, dict) and isinstance(out.get(group), dict):
                out[group].update(value)
            else:
                out[group] = value
            continue
        node = out.setdefault(group, {})
        if isinstance(node, dict):
            for part in field.split(".")[:-1]:
                node = node.setdefault(part, {})
            node[field.split(".")[-1]] = value
    return out


def plain_value(value: Any) -> Any:
    """numpy and pandas scalars as Python values; NaN as missing; a float as its shortest exact
    decimal text (Decimal(0.1) would carry binary noise), whole floats as integers."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 2**53 else repr(value)
    return value
