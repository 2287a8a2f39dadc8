"""pii masking in logs, bearer-token checks and the loopback rule."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from engine.server.logs import JsonFormatter, mask_application, pii_paths
from engine.server.security import is_loopback, read_tokens, token_ok


def test_pii_inputs_are_masked(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "policy.yaml").write_text(
        "policy: p\nversion: '1'\ninputs:\n  applicant.name: {type: string, pii: true}\n"
        "  applicant.age: {type: integer}\n"
    )
    pii = pii_paths(tmp_path)
    assert pii == {"p": frozenset({"applicant.name"})}
    masked = mask_application({"applicant": {"name": "Wang Wu", "age": 40}}, pii["p"])
    assert masked == {"applicant": {"name": "***", "age": 40}}


def test_json_log_lines_carry_extra_fields() -> None:
    record = logging.LogRecord("credo.server", logging.INFO, __file__, 1, "decision", None, None)
    record.request_id = "r1"
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "decision" and line["request_id"] == "r1" and line["level"] == "info"


def test_a_megabyte_field_makes_a_short_log_line_that_says_how_long_it_was() -> None:
    record = logging.LogRecord("credo.server", logging.INFO, __file__, 1, "rejected", None, None)
    record.policy = "p" * 1_000_000
    record.labels = {f"k{i}": "v" * 10_000 for i in range(500)}
    record.application = {"a": [list(range(1000))] * 3}
    text = JsonFormatter().format(record)
    line = json.loads(text)
    assert len(text) < 60_000
    assert line["policy"].endswith("... (1000000 chars)") and line["policy"].startswith("ppp")
    assert line["labels"]["..."] == "450 more"
    assert line["application"]["a"][0][-1] == "... 950 more"


def test_tokens_file_and_constant_time_match(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# ops\nalpha-token\n\nbeta-token\n")
    tokens = read_tokens(path)
    assert tokens == [b"alpha-token", b"beta-token"]
    assert token_ok(b"beta-token", tokens)
    assert not token_ok(b"beta-toke", tokens) and not token_ok(b"", tokens)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


class _Context:
    def time_remaining(self) -> None:
        return None

    def set_trailing_metadata(self, metadata: object) -> None:
        pass


def test_a_decision_logs_one_line_with_its_fields_and_the_callers_labels_masked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The decision line a log reader sees: its keys in order, no labels as {}, a pii label masked;
    and credo_decisions_total counts each call, whether its (policy, outcome) child is new or kept."""
    from credo.v1 import decision_pb2 as pb
    from google.protobuf import struct_pb2

    from engine.bench.grpc import sample_application
    from engine.server import metrics
    from engine.server.servicer import DecisionServicer
    from engine.service import DecisionService

    root = Path(__file__).resolve().parents[2]
    policy, application = sample_application(str(root / "policies"), "consumer_loan")
    servicer = DecisionServicer(
        DecisionService(root / "policies", root / "models"),
        pii={policy: frozenset({"labels.officer"})},
    )
    struct = struct_pb2.Struct()
    struct.update(application)
    counter = metrics.DECISIONS.labels(policy=policy, outcome="APPROVE")
    before = counter._value.get()
    lines = []
    with caplog.at_level(logging.INFO, logger="credo.server"):
        for request_id, labels in (("log-1", {}), ("log-2", {"officer": "Wang Wu", "channel": "branch"})):
            request = pb.DecideRequest(
                request_id=request_id, policy=policy, application=struct, labels=labels
            )
            answer = servicer.Decide(request, _Context())  # type: ignore[arg-type]
            record = next(r for r in reversed(caplog.records) if r.getMessage() == "decision")
            lines.append((answer, json.loads(JsonFormatter().format(record))))
    assert counter._value.get() == before + 2
    for (answer, line), request_id in zip(lines, ("log-1", "log-2"), strict=True):
        assert list(line)[5:] == [
            "request_id",
            "decision_id",
            "policy",
            "outcome",
            "reasons",
            "millis",
            "labels",
        ]
        assert line["request_id"] == request_id and line["decision_id"] == answer.decision_id
        assert line["outcome"] == "APPROVE" and line["reasons"] == [r.code for r in answer.reasons]
        assert line["policy"] == f"{policy}@{answer.policy.version}" and line["millis"] > 0
    assert lines[0][1]["labels"] == {}
    assert lines[1][1]["labels"] == {"officer": "***", "channel": "branch"}
