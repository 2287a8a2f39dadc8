"""engine.errors.shown: a caller's long text is echoed cut, as repr() of all of it would be cut."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import SHOWN_CHARS, shown

QUOTES = ["'", '"', "\\", "\n", "\x00", "é", "中", "\U0001f600", "a"]


def cut_whole(value: str | bytes, limit: int = SHOWN_CHARS) -> str:
    """What shown() printed when it quoted the whole text before cutting it."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(value)} chars)"


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(QUOTES), max_size=3 * SHOWN_CHARS).map("".join))
def test_a_text_is_quoted_and_cut_as_its_whole_repr_would_be(text: str) -> None:
    assert shown(text) == cut_whole(text)
    assert shown(text.encode()) == cut_whole(text.encode())


def test_the_quote_repr_chooses_for_the_whole_text_is_kept_when_the_head_lacks_the_reason() -> None:
    long = "a" * SHOWN_CHARS
    only_single_late = long + "'"  # repr of the whole uses double quotes
    both_late = "'" + long + '"'  # repr uses single quotes and escapes the first '
    for value in (only_single_late, both_late, "'" + long, '"' + long):
        assert shown(value) == cut_whole(value)
    assert shown(only_single_late).startswith('"aaa')


def test_a_megabyte_text_is_said_by_its_length() -> None:
    assert shown("x" * 4_000_000) == "'" + "x" * (SHOWN_CHARS - 1) + "... (4000000 chars)"
