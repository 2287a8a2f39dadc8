"""The simulation report opens in a real browser without a console message: headless Chromium from
Debian's `chromium` package (never a downloaded browser). Chromium must be installed (`.ci/run`
installs it); a missing browser fails this test rather than skipping it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.batch.pool import InProcessPool
from engine.batch.sim_report import write_simulation_report
from engine.batch.simulate import SimulationOptions, simulate
from engine.models.synthetic import write

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = re.compile(r":CONSOLE[:(]")


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "headless Chromium is needed: apt-get install -y chromium (.ci/run installs it)", pytrace=False
    )


def open_in_chromium(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The page's DOM after loading, and every console line Chromium logged while loading it."""
    run = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout, [line for line in run.stderr.splitlines() if CONSOLE.search(line)]


def test_the_console_check_catches_a_console_error(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text("<!doctype html><title>t</title><script>console.error('boom')</script>", "utf-8")
    _, console = open_in_chromium(page, tmp_path / "profile")
    assert any("boom" in line for line in console)


def test_the_simulation_report_opens_without_console_messages(tmp_path: Path) -> None:
    data = tmp_path / "apps.parquet"
    write(300, 11, data, applications=True)
    options = SimulationOptions(
        policy=ROOT / "policies" / "consumer_loan" / "policy.yaml",
        data=data,
        challenger=ROOT / "policies" / "consumer_loan" / "policy.yaml",
        scenarios=ROOT / "policies" / "consumer_loan" / "scenarios" / "stress.yaml",
        models_dir=ROOT / "models",
        chunk=100,
    )
    result = simulate(options, InProcessPool())
    html, _ = write_simulation_report(result.summary(), result.timing(), tmp_path / "report")
    dom, console = open_in_chromium(html, tmp_path / "profile")
    assert console == []
    assert "<svg" in dom and "Simulation: consumer_loan" in dom and "recession" in dom
