"""MonitorService on a real gRPC server (ephemeral port) over a real SQLite store: hostile or wrong
values get a clear status or a rejection naming the field, never INTERNAL, and the stream goes on."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from credo.v1 import monitor_pb2 as mpb
from credo.v1 import monitor_pb2_grpc as mpb_grpc

from engine.audit import open_store
from engine.monitor import load_monitoring
from engine.monitor.service import MonitorService
from engine.server.monitor_servicer import build_monitor, register_monitor

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[Any]:
    service = MonitorService(
        load_monitoring(POLICIES / "consumer_loan" / "monitoring.yaml"),
        open_store(f"sqlite:///{tmp_path / 'audit.db'}"),
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = register_monitor(server, service)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield mpb_grpc.MonitorServiceStub(channel)
    finally:
        channel.close()
        server.stop(None).wait()
        servicer.close()


def event(kind: str, loan_id: str = "L1", date: str = "2026-01-05", **fields: str) -> mpb.LoanEvent:
    return mpb.LoanEvent(type=kind, loan_id=loan_id, date=date, fields=fields)


def test_a_stream_acks_each_event_in_order_and_rejections_name_the_field(stub: Any) -> None:
    acks = list(
        stub.IngestEvents(
            iter(
                [
                    event("loan.disbursed", amount="12000", term="12", bureau_score="700"),
                    event(
                        "bureau.refresh",
                        date="2026-02-01",
                        score="seven hundred",
                        utilisation="0.1",
                        inquiries="0",
                    ),
                    mpb.LoanEvent(
                        type="bureau.refresh",
                        loan_id="L1",
                        date="2026-02-01",
                        fields={"type": "x", "score": "600"},
                    ),
                    event("payment.received", loan_id="L1\x00", amount="1"),
                    event("payment.received", amount="1" * 100),
                    event("salary.paid"),
                    event("payment.received", loan_id="L2", amount="1"),
                    event("payment.received", date="2025-12-31", amount="1"),
                    event("bureau.refresh", date="2026-02-01", score="630", utilisation="0.1", inquiries="0"),
                ]
            ),
            timeout=30,
        )
    )
    assert [a.index for a in acks] == list(range(9))
    assert [(a.accepted, a.rejection.code, a.rejection.field) for a in acks] == [
        (True, "", ""),
        (False, "BAD_EVENT", "score"),
        (False, "BAD_EVENT", "type"),
        (False, "BAD_EVENT", "loan_id"),
        (False, "BAD_EVENT", "amount"),
        (False, "UNKNOWN_EVENT", "type"),
        (False, "UNKNOWN_LOAN", "loan_id"),
        (False, "OUT_OF_ORDER", "date"),
        (True, "", ""),
    ]
    assert [(a.code, a.severity, a.reasons["zh"]) for a in acks[-1].alerts] == [
        ("SCORE_DROP", "warning", "征信评分较放款时下降60分及以上")
    ]
    assert acks[-1].seq == 2  # refused events left no record on the chain
    loan = stub.GetLoan(mpb.GetLoanRequest(loan_id="L1"), timeout=10)
    assert (loan.classification, loan.classification_zh, list(loan.open_alerts)) == (
        "normal",
        "正常",
        ["SCORE_DROP"],
    )
    assert (loan.measures["bureau_score"], loan.measures["origin_score"], loan.events) == ("630", "700", 2)


@pytest.mark.parametrize(
    ("call", "request_", "status"),
    [
        ("GetLoan", mpb.GetLoanRequest(loan_id=""), grpc.StatusCode.INVALID_ARGUMENT),
        ("GetLoan", mpb.GetLoanRequest(loan_id="x" * 200), grpc.StatusCode.INVALID_ARGUMENT),
        ("GetLoan", mpb.GetLoanRequest(loan_id="nobody"), grpc.StatusCode.NOT_FOUND),
        ("ListAlerts", mpb.ListAlertsRequest(since="yesterday"), grpc.StatusCode.INVALID_ARGUMENT),
        ("ListAlerts", mpb.ListAlertsRequest(severity="urgent"), grpc.StatusCode.INVALID_ARGUMENT),
        ("ListAlerts", mpb.ListAlertsRequest(limit=10_001), grpc.StatusCode.INVALID_ARGUMENT),
        ("ListAlerts", mpb.ListAlertsRequest(limit=-1), grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_bad_requests_get_a_clear_status_never_internal(
    stub: Any, call: str, request_: Any, status: grpc.StatusCode
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        getattr(stub, call)(request_, timeout=10)
    assert caught.value.code() is status
    assert "internal" not in (caught.value.details() or "").lower()


def test_list_alerts_filters(stub: Any) -> None:
    list(
        stub.IngestEvents(
            iter(
                [
                    event("loan.disbursed", amount="900", term="6", bureau_score="700"),
                    event("instalment.due", date="2026-02-05", number="1", amount="150"),
                    event("clock.tick", date="2026-05-10"),
                    event("bureau.refresh", date="2026-05-11", score="600", utilisation="0.1", inquiries="0"),
                ]
            ),
            timeout=30,
        )
    )
    every = stub.ListAlerts(mpb.ListAlertsRequest(), timeout=10).alerts
    assert [a.code for a in every] == ["DPD_30", "DPD_60", "DPD_90", "SCORE_DROP"]
    assert [a.seq for a in every] == sorted(a.seq for a in every)
    actions = stub.ListAlerts(mpb.ListAlertsRequest(severity="action"), timeout=10).alerts
    assert [a.code for a in actions] == ["DPD_60", "DPD_90"]
    later = stub.ListAlerts(mpb.ListAlertsRequest(since="2026-05-11", code="SCORE_DROP"), timeout=10).alerts
    assert [(a.code, a.date, a.classification) for a in later] == [
        ("SCORE_DROP", "2026-05-11", "substandard")
    ]


def test_no_monitoring_policy_or_no_store_means_no_monitor_service(tmp_path: Path) -> None:
    assert build_monitor(str(tmp_path), f"sqlite:///{tmp_path / 'a.db'}") is None
    assert build_monitor(str(POLICIES), None) is None
