"""A store failure reaches the caller as UNAVAILABLE with a fixed text: the store's own message names its
file path, host or user, and goes to the server log only."""

from __future__ import annotations

import logging

import grpc
import pytest

from engine.errors import StoreUnavailable
from engine.server.errors import map_error


@pytest.mark.parametrize(
    "detail",
    [
        "audit store /var/lib/credo/audit.db: database or disk is full",
        "audit store postgresql://credo_writer@db-7.bank.internal:5433/audit: connection refused",
    ],
)
def test_store_unavailable_tells_the_caller_nothing_about_the_store(
    detail: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="credo.server"):
        mapped = map_error(StoreUnavailable(detail))
    assert mapped.code == grpc.StatusCode.UNAVAILABLE
    assert mapped.credo_code == "AUDIT_STORE_UNAVAILABLE"
    assert mapped.message == mapped.status.message
    for secret in ("/var/lib", "audit.db", "credo_writer", "db-7", "5433", "postgresql", "full", "refused"):
        assert secret not in mapped.message
    assert "retry" in mapped.message
    assert any(detail in getattr(r, "error", "") for r in caplog.records)  # the details: server log
