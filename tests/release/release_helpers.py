"""Release test helpers: a private copy of the shipped policies to edit, and the edits a policy
author makes (a threshold moved so one of the policy's own tests fails, a version bumped)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
MODELS = ROOT / "models"
AGE_RULE = "when: applicant.age < 22"


def copy_policies(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target)
    return target


def bump_version(text: str) -> str:
    match = re.search(r'^version:\s*"(\d+)\.(\d+)\.(\d+)"\s*$', text, re.M)
    assert match, "no semver version line"
    new = f'version: "{match.group(1)}.{match.group(2)}.{int(match.group(3)) + 1}"'
    return text[: match.start()] + new + text[match.end() :]


def break_a_test(text: str) -> str:
    """Lower the minimum age to 18: the policy's own test "applicant under 22 is declined" fails."""
    assert AGE_RULE in text
    return text.replace(AGE_RULE, "when: applicant.age < 18", 1)
