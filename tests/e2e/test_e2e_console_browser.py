"""The web console in a real browser: `credo serve --console-port` on a real store, decisions sent
over gRPC, then headless Chromium from Debian's `chromium` package (driven by Playwright, which
never downloads a browser here) logs in, finds a decision, opens it, presses Replay and sees MATCH,
and opens the monitoring page's charts, at 1280 and 390 px wide, with no console message and no
horizontal scroll. Screenshots go to artifacts/console/ (gitignored). A missing browser fails."""

from __future__ import annotations

import shutil
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Page, sync_playwright

from tests.e2e.e2e_harness import POLICIES, ROOT, request, serve, shipped_cases

TOKEN = "console-e2e-token-5f1c0a"
ARTIFACTS = ROOT / "artifacts" / "console"
WIDTHS = (1280, 390)


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "headless Chromium is needed: apt-get install -y chromium (.ci/run installs it)", pytrace=False
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_listening(url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def fits(page: Page) -> None:
    """No horizontal scroll: the page is no wider than the window."""
    wide, window = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert wide <= window, f"{page.url} is {wide}px wide in a {window}px window"


def test_the_console_in_chromium_finds_replays_and_charts_decisions(tmp_path: Path) -> None:
    browser_path = chromium()
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN + "\n", "utf-8")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    extra = ["--store", store, "--token-file", str(tokens), "--console-port", str(port)]
    auth = (("authorization", f"Bearer {TOKEN}"),)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serve(tmp_path, policies=POLICIES, workers=1, extra=extra) as server:
        decided: dict[str, Any] = {}
        for i, (policy, _, application, expect) in enumerate(shipped_cases()):
            if "error" in expect or "error_code" in expect:
                continue
            try:
                reply = server.stub.Decide(
                    request(f"e2e-{i}", policy, application), timeout=60, metadata=auth
                )
            except Exception:  # a shipped test of a refused input
                continue
            decided.setdefault(policy, (f"e2e-{i}", reply.decision_id))
        wanted_request, wanted_decision = decided["german_credit"]  # no personal fields: replay is MATCH
        wait_until_listening(base + "/login")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
            try:
                for width in WIDTHS:
                    context = browser.new_context(viewport={"width": width, "height": 900})
                    page = context.new_page()
                    messages: list[str] = []
                    page.on("console", lambda m, out=messages: out.append(_said(m)))
                    page.on("pageerror", lambda e, out=messages: out.append(f"page error: {e}"))

                    page.goto(base + "/decisions")
                    assert page.url == base + "/login"
                    fits(page)
                    page.fill("input[name=token]", TOKEN)
                    submit(page, "form[action='/login'] button")
                    assert page.url == base + "/decisions", page.content()[-600:]
                    assert TOKEN not in page.url
                    fits(page)

                    page.select_option("select[name=kind]", "request_id")
                    page.fill("input[name=id]", wanted_request)
                    submit(page, "#find button")
                    assert page.url == f"{base}/decisions/{wanted_decision}"
                    assert wanted_request not in page.url  # searched by POST
                    assert page.text_content("#outcome") in ("APPROVE", "DECLINE", "REFER")
                    fits(page)

                    submit(page, "#replay-form button")
                    assert page.text_content("#replay-result") == "MATCH"
                    fits(page)
                    page.screenshot(path=str(ARTIFACTS / f"decision-{width}.png"), full_page=True)

                    page.goto(base + "/monitoring")
                    page.wait_for_selector("#psi svg", timeout=180_000)  # pending PSI reloads itself
                    for chart in ("#rates svg", "#volumes svg", "#scores svg"):
                        assert page.locator(chart).count() >= 1, chart
                    assert page.locator("#psi svg polyline, #psi svg circle").count() > 0
                    fits(page)
                    page.screenshot(path=str(ARTIFACTS / f"monitoring-{width}.png"), full_page=True)

                    for path in ("/policies", "/reports"):
                        page.goto(base + path)
                        fits(page)
                    assert messages == [], messages
                    context.close()
            finally:
                browser.close()
    with pytest.raises(urllib.error.URLError):  # the console stopped with the server
        urllib.request.urlopen(base + "/login", timeout=5)


def submit(page: Page, button: str) -> None:
    """Press a form's button and wait for the page it answers with (the forms need no script)."""
    with page.expect_navigation(timeout=120_000):
        page.click(button)


def _said(message: ConsoleMessage) -> str:
    return f"{message.type}: {message.text} ({message.location})"
