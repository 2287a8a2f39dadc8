"""The decision log line written straight to the JSON handler: the very line the logging module
writes for the same call, apart from its time; where it goes when the logging is set up otherwise."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from servicer_helpers import DECISION_LINE_KEYS, consumer_loan_servicer

from engine.server.logs import JsonLines, KeyedLine, setup_logging

TIME = re.compile(r'^\{"ts": "(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00)", ')

_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["x" * 512, "y" * 513, "长" * 600, '\u2028"\\\x00']),
)
_KEYS = st.one_of(
    st.text(max_size=4),
    st.integers(),
    st.sampled_from(["k" * 600, "k" * 599 + "j", "k" * 512]),  # the first two cut alike
)
_VALUES = st.recursive(
    _LEAVES | st.just({f"k{i}": i for i in range(51)}) | st.just(list(range(51))),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(_KEYS, inner, max_size=4)
        | st.builds(lambda v: [[[[[[[[v]]]]]]]], inner)  # deeper than a line keeps
    ),
    max_leaves=20,
)
_NAMES = st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True).filter(
    lambda k: (
        k not in vars(logging.LogRecord("", 0, "", 0, "", None, None))
        and k not in ("message", "asctime", "ts", "level", "logger", "pid", "exc")
    )
)


def _without_time(text: str) -> str:
    assert TIME.match(text), text
    return TIME.sub('{"ts": "-", ', text, count=1)


def _logger(stream: io.StringIO) -> logging.Logger:
    """A logger outside the process's hierarchy whose one handler is the JSON lines handler."""
    logger = logging.Logger("credo.test", logging.INFO)
    logger.addHandler(JsonLines(stream))
    return logger


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_NAMES, _VALUES, min_size=1, max_size=6))
def test_a_keyed_line_is_the_line_logging_writes_apart_from_its_time(fields: dict[str, Any]) -> None:
    stream = io.StringIO()
    logger = _logger(stream)
    line = KeyedLine(logger, "decision", tuple(fields))
    line(*fields.values())
    written = stream.getvalue()
    assert line._direct() is not None and written.endswith("}\n") and written.count("\n") == 1
    stream.seek(0)
    stream.truncate()
    logger.info("decision", extra=fields)
    assert _without_time(written) == _without_time(stream.getvalue())


class _Stream(io.StringIO):
    """A stream that keeps each write and flush, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return super().write(text)

    def flush(self) -> None:
        self.calls.append("<flush>")


@pytest.fixture
def serve() -> Iterator[Callable[[dict[str, str]], Any]]:
    """decide(labels) -> answer on the loan servicer, the process's logging set up by each test as
    a worker sets it up, and put back afterwards."""
    loan_servicer = consumer_loan_servicer()
    top = logging.getLogger()
    kept = (top.level, list(top.handlers))
    try:
        yield lambda labels: loan_servicer.decide("log-1", labels)
    finally:
        for handler in list(top.handlers):
            top.removeHandler(handler)
        top.setLevel(kept[0])
        for handler in kept[1]:
            top.addHandler(handler)


def _handler() -> JsonLines:
    handlers = logging.getLogger().handlers
    assert len(handlers) == 1 and isinstance(handlers[0], JsonLines)
    return handlers[0]


def test_a_worker_writes_each_decision_as_one_whole_line_in_one_write(serve: Any) -> None:
    setup_logging("INFO")
    stream = _Stream()
    _handler().setStream(stream)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    answer = serve({"officer": "Wang Wu", "channel": "branch"})
    after = dt.datetime.now(dt.UTC)
    assert len(stream.calls) == 2 and stream.calls[1] == "<flush>"  # no line split, none held back
    text = stream.calls[0]
    assert text.endswith("}\n") and text.count("\n") == 1
    line = json.loads(text)
    assert list(line) == ["ts", "level", "logger", "pid", "msg", *DECISION_LINE_KEYS]
    assert before <= dt.datetime.fromisoformat(line["ts"]) <= after
    assert (line["level"], line["logger"], line["msg"]) == ("info", "credo.server", "decision")
    assert line["decision_id"] == answer.decision_id and line["labels"] == {
        "officer": "***",
        "channel": "branch",
    }


def test_the_level_switch_silences_the_decision_line(serve: Any) -> None:
    setup_logging("WARNING")
    stream = _Stream()
    _handler().setStream(stream)
    serve({})
    assert stream.calls == []


def test_a_handler_added_to_the_workers_logging_gets_the_decision_line_too(serve: Any) -> None:
    setup_logging("INFO")
    stream = _Stream()
    _handler().setStream(stream)
    seen: list[logging.LogRecord] = []
    extra = logging.Handler()
    extra.emit = seen.append  # type: ignore[method-assign]
    logging.getLogger("credo").addHandler(extra)
    try:
        answer = serve({})
    finally:
        logging.getLogger("credo").removeHandler(extra)
    [record] = [r for r in seen if r.getMessage() == "decision"]
    assert record.decision_id == answer.decision_id  # type: ignore[attr-defined]
    assert json.loads(stream.calls[0])["decision_id"] == answer.decision_id


def test_a_log_stream_that_fails_is_reported_and_the_decision_still_answered(
    serve: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("INFO")

    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("disk full")

    _handler().setStream(Broken())
    answer = serve({})
    assert answer.decision_id
    report = capsys.readouterr().err
    assert "--- Logging error ---" in report and "disk full" in report and "decision" in report


def test_a_keyed_line_reaches_every_json_handler_on_its_way() -> None:
    """Two handlers (on the logger and a parent) each write the line once, as logging does."""
    near, far = io.StringIO(), io.StringIO()
    logger = _logger(near)
    logger.parent = _logger(far)
    KeyedLine(logger, "decision", ("request_id",))("r-1")
    assert [json.loads(s.getvalue())["request_id"] for s in (near, far)] == ["r-1", "r-1"]
