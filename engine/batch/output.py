"""Per-row results as Parquet, one file per arm (`rows-<arm>.parquet`), written chunk by chunk so a
run of any size keeps one chunk in memory. Amounts and rates are exact decimals (decimal128)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.batch.portfolio import Row

__all__ = ["RowWriter"]

_MONEY = pa.decimal128(24, 6)
_TYPES: dict[str, pa.DataType] = {
    "row": pa.int64(),
    "outcome": pa.string(),
    "error": pa.string(),
    "grade": pa.string(),
    "pd": _MONEY,
    "points": pa.int64(),
    "segments": pa.string(),
    "limit": _MONEY,
    "rate": _MONEY,
    "offers": pa.int64(),
    "product": pa.string(),
    "amount": _MONEY,
    "term_months": pa.int64(),
    "repayment_method": pa.string(),
    "apr": _MONEY,
    "instalment": _MONEY,
    "expected_loss": _MONEY,
    "expected_profit": _MONEY,
}
_NAMES = [f.name for f in fields(Row)]
assert set(_NAMES) == set(_TYPES), "every Row field has a Parquet type"


class RowWriter:
    """Writes each arm's rows to `directory/rows-<arm>.parquet` (with an `id` column when asked)."""

    def __init__(self, directory: Path, with_ids: bool = False) -> None:
        self.directory = directory
        self.with_ids = with_ids
        self._writers: dict[str, pq.ParquetWriter] = {}
        columns = ([pa.field("id", pa.string())] if with_ids else []) + [
            pa.field(name, _TYPES[name]) for name in _NAMES
        ]
        self.schema = pa.schema(columns)

    def path(self, arm: str) -> Path:
        return self.directory / f"rows-{arm}.parquet"

    def __call__(self, arm: str, rows: Sequence[Row], ids: Sequence[str | None]) -> None:
        writer = self._writers.get(arm)
        if writer is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            writer = self._writers[arm] = pq.ParquetWriter(self.path(arm), self.schema)
        data: dict[str, list[Any]] = {name: [_cell(getattr(r, name)) for r in rows] for name in _NAMES}
        if self.with_ids:
            data = {"id": list(ids) if ids else [None] * len(rows), **data}
        writer.write_table(pa.Table.from_pydict(data, schema=self.schema))

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


def _cell(value: Any) -> Any:
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, Decimal):
        return value.quantize(Decimal("0.000001"))
    return value
