"""The console's pages on a real SQLite store of real decisions (the shipped policies' test inputs),
in-process through Starlette's test client: what a risk manager or auditor sees, and that every
value a visitor controls gets a clear 4xx, never a 500 or a page built on it."""

from __future__ import annotations

import copy
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from engine.audit.pii import default_key_file
from engine.console.app import ConsoleConfig, build_app
from engine.console.security import CSP, REPORT_CSP
from engine.service import DecisionService

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "console-test-token-0123456789"
NAME = "Zhang <b>Wei</b>"  # personal, and markup: masked without the key, escaped with it


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store of every shipped test input decided once, plus one application with a name."""
    folder = tmp_path_factory.mktemp("console")
    url = f"sqlite:///{folder / 'audit.db'}"
    service = DecisionService(ROOT / "policies", ROOT / "models", store=url)
    outcomes: dict[str, int] = {}
    for name, rounds in (("consumer_loan", 2), ("german_credit", 1)):  # more than one page of 50
        for i, case in enumerate(service.policy(name).tests * rounds):
            try:
                decision = service.decide(name, case.input, f"req-{name}-{i}")
            except Exception:  # a test of a refused input
                continue
            outcomes[decision.outcome.value] = outcomes.get(decision.outcome.value, 0) + 1
    first = copy.deepcopy(service.policy("consumer_loan").tests[0].input)
    first["applicant"].update(name=NAME, id_number="110101199003070000")
    named = service.decide("consumer_loan", first, "req-named")
    outcomes[named.outcome.value] += 1
    tokens = folder / "tokens"
    tokens.write_text(f"# console\n{TOKEN}\n", "utf-8")
    return {
        "url": url,
        "db": folder / "audit.db",
        "tokens": tokens,
        "named": named.decision_id,
        "outcomes": outcomes,
        "folder": folder,
    }


def client(store: dict[str, Any], **config: Any) -> TestClient:
    settings = {"store": store["url"], "policies": ROOT / "policies", "models": ROOT / "models", **config}
    return TestClient(build_app(ConsoleConfig(**settings)), follow_redirects=False)


@pytest.fixture(scope="module")
def open_console(store: dict[str, Any]) -> Iterator[TestClient]:
    with client(store) as c:
        yield c


def ids(page: str) -> list[str]:
    return re.findall(r'href="/decisions/([0-9a-f-]{36})"', page)


def test_without_a_session_every_page_sends_the_visitor_to_log_in(store: dict[str, Any]) -> None:
    from engine.server.security import read_tokens

    with client(store, tokens=read_tokens(store["tokens"])) as c:
        for path in ("/decisions", "/monitoring", "/policies", "/reports", f"/decisions/{store['named']}"):
            response = c.get(path)
            assert response.status_code == 303 and response.headers["location"] == "/login", path
        assert c.post(f"/decisions/{store['named']}/replay").headers["location"] == "/login"
        refused = c.post("/login", data={"token": "wrong"})
        assert refused.status_code == 401 and "not valid" in refused.text
        assert "set-cookie" not in refused.headers
        logged = c.post("/login", data={"token": TOKEN})
        assert logged.status_code == 303 and logged.headers["location"] == "/decisions"
        cookie = logged.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
        assert c.get("/decisions").status_code == 200
        c.post("/logout")
        assert c.get("/decisions").status_code == 303


def test_every_page_sends_a_strict_content_security_policy(
    open_console: TestClient, store: dict[str, Any]
) -> None:
    for path in ("/decisions", "/monitoring", "/policies", "/reports", f"/decisions/{store['named']}",
                 "/decisions?outcome=nonsense", "/login"):  # fmt: skip
        response = open_console.get(path)
        assert response.headers["content-security-policy"] == CSP, path
        assert "script" not in response.text.lower(), path
        assert response.headers["cache-control"] == "no-store"


def test_a_form_posted_from_another_site_is_refused(open_console: TestClient, store: dict[str, Any]) -> None:
    response = open_console.post(
        f"/decisions/{store['named']}/replay", headers={"origin": "http://evil.example", "host": "testserver"}
    )
    assert response.status_code == 403


def test_decisions_are_listed_newest_first_and_filtered_by_outcome_and_policy(
    open_console: TestClient, store: dict[str, Any]
) -> None:
    page = open_console.get("/decisions").text
    total = sum(store["outcomes"].values())
    assert len(ids(page)) == min(total, 50)
    assert ids(page)[0] == store["named"]  # decided last
    declined = open_console.get("/decisions?outcome=DECLINE").text
    assert len(ids(declined)) == store["outcomes"]["DECLINE"]
    assert "APPROVE</td>" not in declined and "REFER</td>" not in declined
    german = open_console.get("/decisions?policy=german_credit").text
    assert ids(german) and "consumer_loan 2" not in german


def test_the_next_page_continues_where_the_first_ended(store: dict[str, Any], tmp_path: Path) -> None:
    total = sum(store["outcomes"].values())
    assert total > 50, "the fixture must fill more than one page"
    with client(store) as c:
        first = c.get("/decisions").text
        cursor = re.search(r'name="before" value="([^"]+)"', first)
        assert cursor is not None
        second = c.get("/decisions", params={"before": cursor.group(1).replace("&#43;", "+")}).text
    assert len(ids(second)) == total - 50
    assert not set(ids(first)) & set(ids(second))


def test_find_by_request_id_is_a_post_that_opens_the_decision(
    open_console: TestClient, store: dict[str, Any]
) -> None:
    found = open_console.post("/decisions/find", data={"kind": "request_id", "id": "req-named"})
    assert found.status_code == 303 and found.headers["location"] == f"/decisions/{store['named']}"
    missing = open_console.post("/decisions/find", data={"kind": "request_id", "id": "no-such-request"})
    assert missing.status_code == 404 and "No decision has that request_id" in missing.text
    assert "no-such-request" not in missing.text


def test_personal_data_is_masked_without_the_key_and_escaped_with_it(store: dict[str, Any]) -> None:
    path = f"/decisions/{store['named']}"
    with client(store) as c:
        masked = c.get(path).text
    assert "Wei" not in masked and "***" in masked and "Personal data is masked" in masked
    with client(store, pii_key_file=default_key_file(store["db"])) as c:
        shown = c.get(path).text
    assert "Zhang &lt;b&gt;Wei&lt;/b&gt;" in shown and "<b>Wei</b>" not in shown


def test_a_decision_page_tells_its_whole_story(open_console: TestClient, store: dict[str, Any]) -> None:
    page = open_console.get(f"/decisions/{store['named']}").text
    for part in ("APPROVE", "eligibility", "Stages", "grade", "Offers", "prev_hash", "in its chain"):
        assert part in page, part
    # offers' schedules are recomputed from the record's terms (the record keeps their sha256 only)
    assert re.search(r"<th>period</th>", page)


def test_replay_shows_match_for_an_untouched_record(open_console: TestClient) -> None:
    opened = open_console.post("/decisions/find", data={"kind": "request_id", "id": "req-german_credit-0"})
    page = open_console.post(opened.headers["location"] + "/replay").text
    assert re.search(r'id="replay-result">MATCH<', page)


def test_replay_of_personal_data_is_partial_without_the_key_and_a_match_with_it(
    store: dict[str, Any],
) -> None:
    path = f"/decisions/{store['named']}/replay"
    with client(store) as c:
        partial = c.post(path).text
    assert re.search(r'id="replay-result">PARTIAL<', partial) and "applicant.name" in partial
    with client(store, pii_key_file=default_key_file(store["db"])) as c:
        assert re.search(r'id="replay-result">MATCH<', c.post(path).text)


def test_replay_shows_the_field_that_differs_in_an_altered_record(
    store: dict[str, Any], tmp_path: Path
) -> None:
    copied = tmp_path / "altered.db"
    with sqlite3.connect(store["db"]) as src, sqlite3.connect(copied) as dst:
        src.backup(dst)
    with sqlite3.connect(copied) as db:
        (body,) = db.execute(
            "SELECT body FROM audit_records WHERE request_id = 'req-german_credit-0'"
        ).fetchone()
        altered = re.sub(r'"points":(\d+)', lambda m: f'"points":{int(m.group(1)) + 7}', body, count=1)
        assert altered != body
        db.execute("UPDATE audit_records SET body = ? WHERE request_id = 'req-german_credit-0'", (altered,))
    with client({**store, "url": f"sqlite:///{copied}"}) as c:
        opened = c.post("/decisions/find", data={"kind": "request_id", "id": "req-german_credit-0"})
        page = c.post(opened.headers["location"] + "/replay").text
    assert re.search(r'id="replay-result">DIFF<', page)
    assert "<code>score.points</code>" in page


def test_monitoring_counts_every_decision_by_outcome(open_console: TestClient, store: dict[str, Any]) -> None:
    page = open_console.get("/monitoring").text
    total = sum(store["outcomes"].values())
    assert f"{total:,} decisions" in page
    for outcome, n in store["outcomes"].items():
        assert f"{outcome} {n:,}" in page
    assert page.count("<svg") >= 3 and "Top reasons" in page


def test_policies_show_their_tests_and_a_diff_against_the_archived_text(open_console: TestClient) -> None:
    page = open_console.get("/policies").text
    assert "consumer_loan" in page and "german_credit" in page
    assert re.search(r"[1-9]\d* passed, 0 failed", page)
    archived = re.findall(r'<td class="hash">([0-9a-f]{64})</td><td>', page)
    served = re.findall(r'<option value="([0-9a-f]{64})" >consumer_loan', page)
    assert archived and served
    same = open_console.get("/policies/diff", params={"a": served[0], "b": served[0]}).text
    assert "The two texts are identical" in same
    other = re.findall(r'<option value="([0-9a-f]{64})" >german_credit', page)
    diff = open_console.get("/policies/diff", params={"a": served[0], "b": other[0]}).text
    assert 'class="add"' in diff and "plain unified diff" in diff
    semantic = re.search(r'<pre class="diff" id="semantic">(.*?)</pre>', diff, re.S)
    assert semantic and semantic[1].startswith("german_credit: 2.0.0")  # what `credo diff` prints
    assert "~ policy: consumer_loan -&gt; german_credit" in semantic[1]


def test_reports_are_listed_and_open_under_their_own_policy(store: dict[str, Any], tmp_path: Path) -> None:
    report_dir = tmp_path / "whatif-1"  # as `credo replay --policy ... --report` lays one out
    report_dir.mkdir()
    (report_dir / "summary.json").write_text('{"policy": {"name": "consumer_loan", "version": "2.0.0"}}')
    (report_dir / "report.html").write_text("<!doctype html><title>What-if</title><style>p{}</style><p>ok")
    with client(store, reports=tmp_path) as c:
        listing = c.get("/reports").text
        assert 'href="/reports/whatif-1/"' in listing
        report = c.get("/reports/whatif-1/")
        assert report.status_code == 200 and report.headers["content-security-policy"] == REPORT_CSP
        assert c.get("/reports/..%2F..%2Fetc/").status_code == 404
        assert c.get("/reports/nothere/").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/decisions?outcome=<script>",
        "/decisions?since=yesterday",
        "/decisions?until=2026-13-40",
        "/decisions?before=junk",
        "/decisions?policy=../../etc/passwd",
        "/monitoring?since=2026-02-01&until=2026-01-01",
        "/policies/diff?a=1&b=2",
        "/policies/diff?a=" + "0" * 64 + "&b=" + "1" * 64,
        "/decisions/not-a-decision",
        "/decisions/01a2340b-39db-7000-b891-000000000000",
        "/decisions/..%2F..%2Fetc%2Fpasswd",
    ],
)
def test_a_bad_value_in_a_url_is_a_clear_client_error(open_console: TestClient, path: str) -> None:
    response = open_console.get(path)
    assert 400 <= response.status_code < 500
    assert "Cannot show that" in response.text or response.status_code == 404
    assert "<script>" not in response.text


def test_a_bad_find_form_is_a_clear_client_error(open_console: TestClient) -> None:
    assert open_console.post("/decisions/find", data={"kind": "name", "id": "x"}).status_code == 400
    assert open_console.post("/decisions/find", data={"kind": "request_id", "id": ""}).status_code == 400
    assert (
        open_console.post("/decisions/find", data={"kind": "request_id", "id": "x" * 500}).status_code == 400
    )


def test_a_missing_store_is_a_clear_unavailable_page(tmp_path: Path) -> None:
    with client({"url": f"sqlite:///{tmp_path / 'none.db'}"}) as c:
        response = c.get("/decisions")
    assert response.status_code == 503 and "audit store cannot be read" in response.text
    assert not (tmp_path / "none.db").exists()  # a read-only console creates nothing


def test_monitoring_lists_the_newest_post_loan_alerts(store: dict[str, Any], tmp_path: Path) -> None:
    from engine.audit.connect import open_store
    from engine.monitor import load_monitoring
    from engine.monitor.service import MonitorService
    from engine.monitor.synthetic import generate_book

    url = f"sqlite:///{tmp_path / 'loans.db'}"
    writer = open_store(url)
    service = MonitorService(load_monitoring(ROOT / "policies" / "consumer_loan" / "monitoring.yaml"), writer)
    alerts = [a for o in service.ingest(generate_book(25, seed=5).events) for a in getattr(o, "alerts", ())]
    service.close()
    writer.close()
    assert alerts, "the synthetic book must raise alerts"
    with client({"url": url}) as c:
        page = c.get("/monitoring").text
    newest = alerts[-1]
    assert f"<td>{newest.loan_id}</td><td><code>{newest.code}</code></td>" in page
    assert f"(newest {min(len(alerts), 50)})" in page


def test_a_key_that_is_not_the_stores_is_said_plainly(store: dict[str, Any], tmp_path: Path) -> None:
    from engine.audit.pii_keys import MasterKey

    MasterKey.create(tmp_path / "other.key")
    with client(store, pii_key_file=tmp_path / "other.key") as c:
        response = c.get(f"/decisions/{store['named']}")
    assert response.status_code == 500 and "the console cannot show this" in response.text
    assert "Wei" not in response.text


def test_credo_console_refuses_a_bad_key_file_and_a_remote_host_without_login(tmp_path: Path) -> None:
    from engine.cli import main

    (tmp_path / "bad.key").write_text("not a key")
    store = f"sqlite:///{tmp_path / 'a.db'}"
    common = [
        "console",
        "--store",
        store,
        "--policies",
        str(ROOT / "policies"),
        "--models",
        str(ROOT / "models"),
    ]
    assert main([*common, "--pii-key-file", str(tmp_path / "bad.key")]) == 2
    assert main([*common, "--host", "0.0.0.0"]) == 2


def test_policies_list_releases_with_the_approvals_that_hold(store: dict[str, Any], tmp_path: Path) -> None:
    """A release folder shows each bundle, who approved it and whether it serves: one approval of two
    is refused with the reason, a second distinct trusted one makes it serve, an untrusted key counts
    for nothing."""
    from engine.policy import load_policy
    from engine.release.bundle import approve, build_release
    from engine.release.signing import generate_key, load_private_key, load_public_key

    trust = tmp_path / "trust"
    trust.mkdir()
    keys = {}
    for who in ("author", "alice", "bob", "mallory"):
        private, public = generate_key(tmp_path / who)
        if who != "mallory":
            public = public.rename(trust / public.name)
        keys[who] = (private, public)
    releases = tmp_path / "releases"
    policy = load_policy(ROOT / "policies" / "consumer_loan" / "policy.yaml")
    release = build_release(
        policy,
        releases,
        models_dir=ROOT / "models",
        tests={"passed": len(policy.tests), "failed": 0},
        author=load_public_key(keys["author"][1]),
    )
    for who in ("alice", "mallory"):
        approve(release, load_private_key(keys[who][0]))

    def row() -> str:
        with client(store, releases=releases, trust=trust, approvals=2) as c:
            page = c.get("/policies").text
        table = re.search(r'<table id="releases">(.*?)</table>', page, re.S)
        assert table, "no releases table"
        return table[1]

    once = row()
    assert release.release_id[:12] in once and "refused" in once
    assert "1 of 2 required approvals" in once
    approve(release, load_private_key(keys["bob"][0]))
    twice = row()
    assert "serving" in twice and "refused" not in twice
