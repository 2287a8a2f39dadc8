"""pii masking in logs, bearer-token checks and the loopback rule."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from servicer_helpers import DECISION_LINE_KEYS, consumer_loan_servicer

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


def test_a_decision_logs_one_line_with_its_fields_and_the_callers_labels_masked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The decision line a log reader sees: its keys in order, no labels as {}, a pii label masked;
    and credo_decisions_total counts each call, whether its (policy, outcome) child is new or kept."""
    from engine.server import metrics

    loan_servicer = consumer_loan_servicer()
    policy = loan_servicer.policy
    counter = metrics.DECISIONS.labels(policy=policy, outcome="APPROVE")
    before = counter._value.get()
    lines = []
    with caplog.at_level(logging.INFO, logger="credo.server"):
        for request_id, labels in (("log-1", {}), ("log-2", {"officer": "Wang Wu", "channel": "branch"})):
            answer = loan_servicer.decide(request_id, labels)
            record = next(r for r in reversed(caplog.records) if r.getMessage() == "decision")
            lines.append((answer, json.loads(JsonFormatter().format(record))))
    assert counter._value.get() == before + 2
    for (answer, line), request_id in zip(lines, ("log-1", "log-2"), strict=True):
        assert list(line)[5:] == DECISION_LINE_KEYS
        assert line["request_id"] == request_id and line["decision_id"] == answer.decision_id
        assert line["outcome"] == "APPROVE" and line["reasons"] == [r.code for r in answer.reasons]
        assert line["policy"] == f"{policy}@{answer.policy.version}" and line["millis"] > 0
    assert lines[0][1]["labels"] == {}
    assert lines[1][1]["labels"] == {"officer": "***", "channel": "branch"}


def _reference_capped(value: Any, limit: int = 512, depth: int = 0) -> Any:
    """capped() as first written: the generic checks only."""
    if isinstance(value, str):
        return value if len(value) <= limit else f"{value[:limit]}... ({len(value)} chars)"
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if depth >= 8:
        return "..."
    if isinstance(value, Mapping):
        out = {
            _reference_capped(str(k), limit): _reference_capped(v, limit, depth + 1)
            for k, v in list(value.items())[:50]
        }
        if len(value) > 50:
            out["..."] = f"{len(value) - 50} more"
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        listed = [_reference_capped(v, limit, depth + 1) for v in list(value)[:50]]
        if len(value) > 50:
            listed.append(f"... {len(value) - 50} more")
        return listed
    return _reference_capped(str(value), limit)


_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["x" * 512, "y" * 513, "长" * 600]),
)
_VALUES = st.recursive(
    _LEAVES | st.just({f"k{i}": i for i in range(51)}),
    lambda inner: (
        st.tuples(st.lists(inner, max_size=3), st.sampled_from([1, 17])).map(lambda pair: pair[0] * pair[1])
        | st.tuples(inner, inner)
        | st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True), _VALUES, max_size=6))
def test_a_log_line_reads_as_the_generic_formatting_wrote_it(extra: dict[str, Any]) -> None:
    """The formatter's fast paths (exact dicts and lists, one encoder) give the very bytes of the
    generic walk and json.dumps, for any fields a caller can put in a line."""
    record = logging.LogRecord("credo.server", logging.INFO, __file__, 1, "decision %s", ("x",), None)
    for key, value in extra.items():
        if key not in vars(record) and key not in ("message", "asctime"):
            setattr(record, key, value)
    entry: dict[str, Any] = {
        "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
        "level": "info",
        "logger": "credo.server",
        "pid": record.process,
        "msg": "decision x",
    }
    for key, value in vars(record).items():
        if key in extra and key not in ("msg", "args", "name"):
            entry[key] = _reference_capped(value)
    expected = json.dumps(entry, default=str, ensure_ascii=False)
    assert JsonFormatter().format(record) == expected
