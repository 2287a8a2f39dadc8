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
