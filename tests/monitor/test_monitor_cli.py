"""`credo monitor ...` end to end on a real SQLite store: ingest reports refused lines by file:line
and stores the rest, then alerts, loan, portfolio (five categories, roll rates) and replay read it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.monitor.synthetic import generate_book

POLICY = str(Path(__file__).resolve().parents[2] / "policies" / "consumer_loan" / "monitoring.yaml")


@pytest.fixture
def stored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, list[str]]:
    book = generate_book(40, seed=4)
    lines = [json.dumps(e) for e in book.events]
    lines.insert(5, '{"type": "payment.received", "loan_id": "NOBODY", "date": "2026-02-01", "amount": "1"}')
    lines.insert(9, "{not json")
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    code = main(["monitor", "ingest", str(path), "--policy", POLICY, "--store", url, "--batch", "200"])
    captured = capsys.readouterr()
    assert code == 1  # some lines were refused; every other one is stored
    assert captured.err.splitlines()[:2] == [
        f"{path}:6: UNKNOWN_LOAN: loan_id: loan 'NOBODY' is unknown (no loan.disbursed yet)",
        f"{path}:10: BAD_EVENT: event: not JSON (Expecting property name enclosed in double quotes:"
        " line 1 column 2 (char 1))",
    ]
    assert captured.out.startswith(f"{len(book.events)} event(s) stored, 2 refused; alerts raised: ")
    return url, sorted(book.defaults)


def test_alerts_filter_by_severity_and_code(
    stored: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, defaults = stored
    assert main(["monitor", "alerts", "--policy", POLICY, "--store", url, "--code", "DPD_90", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["loan_id"] for r in rows) == defaults
    assert {(r["severity"], r["action"], r["reasons"]["zh"]) for r in rows} == {
        ("action", "default_and_recover", "逾期90天及以上，贷款违约")
    }
    assert (
        main(["monitor", "alerts", "--policy", POLICY, "--store", url, "--severity", "watch", "--json"]) == 0
    )
    codes = {json.loads(line)["code"] for line in capsys.readouterr().out.splitlines()}
    assert codes == {"HIGH_UTILISATION", "CREDIT_SEEKING"}


def test_loan_portfolio_and_replay_read_the_store(
    stored: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, defaults = stored
    assert main(["monitor", "loan", defaults[0], "--policy", POLICY, "--store", url]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["dpd"] >= 90 and state["classification"] in ("substandard", "doubtful", "loss")
    assert "DPD_90" in state["open_alerts"]
    assert main(["monitor", "portfolio", "--policy", POLICY, "--store", url]) == 0
    out = capsys.readouterr().out
    for category, zh in (
        ("normal", "正常"),
        ("special_mention", "关注"),
        ("substandard", "次级"),
        ("doubtful", "可疑"),
        ("loss", "损失"),
    ):
        assert f"  {category:<16} {zh}" in out
    assert "roll rates between month ends" in out
    assert main(["monitor", "replay", "--loan", defaults[0], "--policy", POLICY, "--store", url]) == 0
    assert capsys.readouterr().out.startswith(f"MATCH {defaults[0]}: ")
    assert main(["monitor", "loan", "NOBODY", "--policy", POLICY, "--store", url]) == 1


def test_book_scores_precision_and_recall(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", "book", "--loans", "100", "--seed", "3", "--policy", POLICY]) == 0
    out = capsys.readouterr().out
    assert "precision 1.000, recall 1.000" in out
    assert "median lead time of the first alert before default: " in out
