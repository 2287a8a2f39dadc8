"""The decision core names policies, it does not open paths: `policy(name)` resolves a name inside
the served folder (and touches no file for anything else); `load_policy_file(path)` is the CLI's
own door to a local file. Reason texts come in a language the policy declares, or not at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pipeline_helpers import FIXTURES, MINI, application

from engine.errors import InvalidInput, NotFound
from engine.sources import DirectorySource


@pytest.mark.parametrize(
    "name",
    [
        "/etc/passwd",
        "../../../../etc/passwd",
        str(MINI),
        str(MINI.parent),
        "consumer_mini/",
        "A",
        "x" * 65,
        "",
    ],
)
def test_anything_but_a_policy_name_is_invalid_input_and_decides_nothing(
    make_service: Any, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_file(self: DirectorySource, name: str) -> None:
        pytest.fail(f"{name!r} was looked up on disk")

    monkeypatch.setattr(DirectorySource, "_load", no_file)
    service = make_service()
    with pytest.raises(InvalidInput) as caught:
        service.decide(name, application(), "r-path")
    [violation] = caught.value.violations
    assert violation.field == "policy" and len(violation.description) < 200


def test_an_unknown_name_is_not_found(make_service: Any) -> None:
    with pytest.raises(NotFound):
        make_service().policy("no_such_policy")


def test_a_name_resolves_inside_the_served_folder_and_a_file_only_through_load_policy_file(
    make_service: Any, tmp_path: Path
) -> None:
    service = make_service()
    outside = tmp_path / "copy" / "policy.yaml"
    outside.parent.mkdir()
    outside.write_bytes(MINI.read_bytes())
    assert service.policy("consumer_mini").path == str(FIXTURES / "consumer_mini" / "policy.yaml")
    assert service.load_policy_file(outside).sha256 == service.policy("consumer_mini").sha256
    assert service.load_policy_file(outside.parent).path == str(outside)


@pytest.mark.parametrize("language", ["xx", "EN", "zh-CN", "e" * 100_000])
def test_a_language_the_policy_does_not_declare_is_invalid_input(make_service: Any, language: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        make_service().decide(
            "consumer_mini", application(**{"applicant.age": 19}), "r-lang", language=language
        )
    [violation] = caught.value.violations
    assert violation.field == "language" and len(violation.description) < 200


def test_no_language_means_the_policys_first(make_service: Any) -> None:
    service = make_service()
    young = application(**{"applicant.age": 19})
    default = service.decide("consumer_mini", young, "r-default")
    assert [r.text for r in default.reasons] == [
        r.text for r in service.decide("consumer_mini", young, "r-en", language="en").reasons
    ]
    assert [r.text for r in default.reasons] != [
        r.text for r in service.decide("consumer_mini", young, "r-zh", language="zh").reasons
    ]
