"""Personal data in the decision log: sealed at rest (raw SQLite file and PostgreSQL dump scanned),
opened only with the key, masked or reported without it, erasable and re-keyable without breaking
the chain."""

from __future__ import annotations

import shutil
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import execute, raw_bytes

from engine.audit import DecisionLog
from engine.audit.connect import open_store
from engine.audit.pii import KEY_ENV, KEY_FILE_ENV, MASK, PLAINTEXT_ENV, PiiVault, open_vault, prepare_writer
from engine.audit.pii_keys import KeyTable, MasterKey, verify_erasures
from engine.audit.verify import verify_store
from engine.cli import main
from engine.errors import InvalidInput, PiiKeyError
from engine.replay import Replayer
from engine.service import DecisionService, default_evaluator

ROOT = Path(__file__).resolve().parents[2]
# names and ID numbers that appear nowhere in the shipped policies (their tests quote other names)
PEOPLE = {
    "李秀英": "11010519491231002X",
    "Zhang Jianguo": "440305198807154718",
    "陈静怡": "310115199502142321",
}


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    """A copy of the shipped policies (consumer_loan declares its ID number the subject's key)."""
    dest = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", dest)
    assert "pii: true, subject: true" in (dest / "consumer_loan" / "policy.yaml").read_text(encoding="utf-8")
    return dest


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "master.key"
    MasterKey.create(path)
    return path


def service_on(policies: Path, url: str, key: Path) -> DecisionService:
    log = DecisionLog(open_store(url))
    return DecisionService(policies, ROOT / "models", store=log, pii=PiiVault(log.store, MasterKey.read(key)))


def application(policies: Path, name: str | None = None, id_number: str | None = None) -> dict[str, Any]:
    app = dict(DecisionService(policies, ROOT / "models").policy("consumer_loan").tests[0].input)
    person = {"name": name, "id_number": id_number}
    app["applicant"] = {**app["applicant"], **{k: v for k, v in person.items() if v is not None}}
    return app


@pytest.fixture
def recorded(
    policies: Path, store_url: str, key_file: Path
) -> Iterator[tuple[DecisionService, dict[str, str]]]:
    """Decisions for every person in PEOPLE (the first one twice): decision_id -> ID number."""
    service = service_on(policies, store_url, key_file)
    ids: dict[str, str] = {}
    for i, (name, id_number) in enumerate([*PEOPLE.items(), next(iter(PEOPLE.items()))]):
        decision = service.decide("consumer_loan", application(policies, name, id_number), f"req-{i}")
        ids[decision.decision_id] = id_number
    yield service, ids
    assert service.log is not None
    service.log.close()


def test_no_name_or_id_number_in_plaintext_in_the_raw_store(
    recorded: tuple[DecisionService, dict[str, str]], store_url: str
) -> None:
    service, ids = recorded
    assert service.log is not None
    service.log.close()
    raw = raw_bytes(store_url)
    assert next(iter(ids)).encode() in raw  # the scan sees the records: a decision_id is there
    for name, id_number in PEOPLE.items():
        assert name.encode() not in raw
        assert id_number.encode() not in raw


def test_replay_with_the_key_matches_and_without_it_is_partial(
    recorded: tuple[DecisionService, dict[str, str]],
) -> None:
    service, ids = recorded
    assert service.log is not None
    store = service.log.store
    for decision_id in ids:
        assert service.replay(decision_id).result == "MATCH"
        with Replayer(store, default_evaluator(), vault=PiiVault(store, None)) as keyless:
            partial = keyless.replay(decision_id)
        assert partial.result == "PARTIAL" and partial.diffs == ()
        assert {"input.applicant.name", "input.applicant.id_number"} <= set(partial.unrestored)
        assert set(partial.unrestored.values()) == {"no key"}


def test_every_shipped_test_input_replays_match_with_the_key(
    policies: Path, sqlite_url: str, key_file: Path
) -> None:
    service = service_on(policies, sqlite_url, key_file)
    decided = []
    for policy_name in ("consumer_loan", "german_credit"):
        for i, case in enumerate(service.policy(policy_name).tests):
            try:
                decided.append(service.decide(policy_name, case.input, f"{policy_name}-{i}").decision_id)
            except InvalidInput:  # a test that expects its input refused: nothing recorded
                continue
    assert len(decided) > 10
    assert [service.replay(d).result for d in decided] == ["MATCH"] * len(decided)


def test_forget_erases_one_subject_and_the_chain_still_verifies(
    recorded: tuple[DecisionService, dict[str, str]], store_url: str, key_file: Path
) -> None:
    service, ids = recorded
    assert service.log is not None
    store = service.log.store
    vault = PiiVault(store, MasterKey.read(key_file))
    gone = next(iter(PEOPLE.values()))
    subject = vault.subject_hash(gone)
    key_row = KeyTable(store).get(subject)
    assert key_row is not None
    erasure = vault.forget(gone)
    assert erasure["decisions"] == 2 and erasure["subject"] == subject

    assert verify_store(store).ok
    assert verify_erasures(store) == (1, None)
    for decision_id, id_number in ids.items():
        result = service.replay(decision_id)
        if id_number == gone:
            assert result.result == "PARTIAL" and result.diffs == ()
            assert result.unrestored["input.applicant.id_number"] == "erased"
        else:
            assert result.result == "MATCH"
    with pytest.raises(PiiKeyError):
        vault.forget(gone)  # nothing left to erase
    service.log.close()
    raw = raw_bytes(store_url)
    assert key_row[1].encode() not in raw  # the wrapped data key is gone from the files, not just unlinked


def test_deleting_the_last_erasure_record_fails_verify(
    recorded: tuple[DecisionService, dict[str, str]],
    store_url: str,
    key_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Regression: the erasure chain kept no head, so deleting its last record (hiding that a
    subject was erased) left a shorter chain that still verified."""
    service, _ = recorded
    assert service.log is not None
    vault = PiiVault(service.log.store, MasterKey.read(key_file))
    for id_number in list(PEOPLE.values())[:2]:
        vault.forget(id_number)
    service.log.close()
    assert main(["audit", "verify", "--store", store_url]) == 0
    assert "2 erasure record(s)" in capsys.readouterr().out

    execute(store_url, "DELETE FROM pii_erasures WHERE seq = 2")
    assert main(["audit", "verify", "--store", store_url]) == 1
    assert "FAIL erasure chain: missing erasure records 2..2" in capsys.readouterr().out

    execute(
        store_url, "DELETE FROM pii_erasure_head"
    )  # the head deleted too: still not a chain that verifies
    assert main(["audit", "verify", "--store", store_url]) == 1
    assert "FAIL erasure chain: erasure chain head missing" in capsys.readouterr().out


def test_rotate_key_rewraps_without_touching_record_hashes(
    recorded: tuple[DecisionService, dict[str, str]], tmp_path: Path, key_file: Path
) -> None:
    service, ids = recorded
    assert service.log is not None
    store = service.log.store
    before = {d: store.get(d).hash for d in ids}  # type: ignore[union-attr]
    new = MasterKey.create(tmp_path / "new.key")
    assert PiiVault(store, MasterKey.read(key_file)).rotate(new) == len(PEOPLE) + 1  # + the lookup key
    assert {d: store.get(d).hash for d in ids} == before  # type: ignore[union-attr]
    assert verify_store(store).ok
    with pytest.raises(PiiKeyError, match="wrapped under master key"):
        PiiVault(store, MasterKey.read(key_file)).reveal(store.get(next(iter(ids))))  # type: ignore[arg-type]
    with Replayer(store, default_evaluator(), vault=PiiVault(store, new)) as replayer:
        assert {replayer.replay(d).result for d in ids} == {"MATCH"}


def test_only_a_key_holder_can_find_a_subjects_decisions(
    recorded: tuple[DecisionService, dict[str, str]], key_file: Path
) -> None:
    service, ids = recorded
    assert service.log is not None
    store = service.log.store
    first = next(iter(PEOPLE.values()))
    found = PiiVault(store, MasterKey.read(key_file)).find(first)
    assert sorted(r.decision_id for r in found) == sorted(d for d, n in ids.items() if n == first)
    assert first.encode() not in found[0].canonical()  # the stored subject is a keyed hash
    with pytest.raises(PiiKeyError):
        PiiVault(store, None).find(first)


def test_cli_export_masks_without_the_key_and_replay_says_partial(
    policies: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    url = f"sqlite:///{tmp_path / 'cli' / 'audit.db'}"
    service = DecisionService(policies, ROOT / "models", store=url)  # the key is made beside the store
    decision = service.decide("consumer_loan", application(policies, "李秀英", "11010519491231002X"), "r-1")
    assert service.log is not None
    service.log.close()
    beside = tmp_path / "cli" / "audit.db.pii-key"
    assert stat.S_IMODE(beside.stat().st_mode) == 0o600

    assert main(["audit", "export", "--store", url]) == 0
    assert "李秀英".encode() in capsysbinary.readouterr().out  # every command finds the key beside it
    assert main(["replay", decision.decision_id, "--store", url]) == 0
    capsysbinary.readouterr()
    assert main(["audit", "find", "--store", url, "--subject", "11010519491231002X"]) == 0
    assert capsysbinary.readouterr().out.startswith(decision.decision_id.encode())

    beside.rename(tmp_path / "elsewhere.key")
    assert main(["audit", "export", "--store", url]) == 0
    out = capsysbinary.readouterr().out
    assert "李秀英".encode() not in out and f'"{MASK}"'.encode() in out
    assert main(["replay", decision.decision_id, "--store", url]) == 3
    assert b"PARTIAL" in capsysbinary.readouterr().out
    assert main(["audit", "verify", "--store", url]) == 0  # verify needs no key

    key = str(tmp_path / "elsewhere.key")
    assert (
        main(["audit", "forget", "--store", url, "--pii-key-file", key, "--subject", "11010519491231002X"])
        == 0
    )
    capsysbinary.readouterr()
    assert main(["audit", "verify", "--store", url]) == 0
    assert b"1 erasure record(s)" in capsysbinary.readouterr().out
    assert main(["replay", decision.decision_id, "--store", url, "--pii-key-file", key]) == 3


def test_a_postgresql_writer_needs_a_key_and_sqlite_gets_one_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # prepare_writer exports what the workers inherit: registered here so the test leaves no trace
    for name in (KEY_FILE_ENV, KEY_ENV, PLAINTEXT_ENV):
        monkeypatch.setenv(name, "")
    with pytest.raises(PiiKeyError, match="PostgreSQL audit store needs the personal-data key"):
        prepare_writer("postgresql://credo@127.0.0.1:1/x", None, False)
    assert "PLAINTEXT" in prepare_writer("postgresql://credo@127.0.0.1:1/x", None, True)
    monkeypatch.setenv(PLAINTEXT_ENV, "")
    said = prepare_writer(f"sqlite:///{tmp_path / 'a.db'}", None, False)
    assert str(tmp_path / "a.db.pii-key") in said
    store = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        assert open_vault(store).master == MasterKey.read(tmp_path / "a.db.pii-key")
    finally:
        store.close()


def test_a_refused_personal_value_is_not_repeated_in_the_error(policies: Path) -> None:
    service = DecisionService(policies, ROOT / "models")
    app = application(policies, name="李秀英")
    app["applicant"]["id_number"] = 440305198807154718  # a number where text is declared
    with pytest.raises(InvalidInput) as refused:
        service.decide("consumer_loan", app, "r-1")
    assert [v.field for v in refused.value.violations] == ["applicant.id_number"]
    assert "440305198807154718" not in str(refused.value)


def test_sealing_leaves_the_record_it_was_given_unchanged(
    recorded: tuple[DecisionService, dict[str, str]], policies: Path, key_file: Path
) -> None:
    service, ids = recorded
    assert service.log is not None
    store = service.log.store
    vault = PiiVault(store, MasterKey.read(key_file))
    opened = vault.reveal(store.get(next(iter(ids)))).record  # type: ignore[arg-type]
    before = opened.canonical()
    vault.protect(opened, service.policy("consumer_loan"))
    assert opened.canonical() == before


def test_a_ciphertext_moved_to_another_record_does_not_open(
    recorded: tuple[DecisionService, dict[str, str]], key_file: Path
) -> None:
    service, ids = recorded
    assert service.log is not None
    store = service.log.store
    first, second = (store.get(d) for d in list(ids)[:2])
    assert first is not None and second is not None
    vault = PiiVault(store, MasterKey.read(key_file))
    moved = replace(
        second, extra={**second.extra, "pii": {**first.extra["pii"], "sealed": second.extra["pii"]["sealed"]}}
    )
    assert set(vault.reveal(moved).unrestored.values()) == {"altered"}


def test_records_without_a_subject_key_share_one_data_key_a_day(sqlite_url: str, key_file: Path) -> None:
    service = service_on(ROOT / "policies", sqlite_url, key_file)  # names given, ID numbers not
    for i, name in enumerate(PEOPLE):
        service.decide("consumer_loan", application(ROOT / "policies", name), f"r-{i}")
    assert service.log is not None
    assert (
        len(KeyTable(service.log.store).all()) == 2
    )  # the lookup key and today's key: no write per decision


def test_cli_rotate_key_replaces_the_key_beside_a_sqlite_store(policies: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rot' / 'audit.db'}"
    service = DecisionService(policies, ROOT / "models", store=url)
    decision = service.decide("consumer_loan", application(policies, "陈静怡", "310115199502142321"), "r-1")
    assert service.log is not None
    service.log.close()
    beside = tmp_path / "rot" / "audit.db.pii-key"
    old = MasterKey.read(beside)
    assert main(["audit", "rotate-key", "--store", url, "--new-key-file", str(tmp_path / "new.key")]) == 0
    assert MasterKey.read(beside) == MasterKey.read(tmp_path / "new.key") != old
    assert stat.S_IMODE(beside.stat().st_mode) == 0o600
    assert main(["replay", decision.decision_id, "--store", url]) == 0
    assert main(["audit", "verify", "--store", url]) == 0


def test_values_computed_from_a_personal_input_are_sealed_wherever_the_record_copies_them(
    policies: Path, sqlite_url: str, key_file: Path
) -> None:
    path = policies / "consumer_loan" / "policy.yaml"
    declared = "applicant.income_monthly: {type: decimal, min: 0,"
    text = path.read_text(encoding="utf-8")
    assert declared in text
    path.write_text(
        text.replace(declared, "applicant.income_monthly: {type: decimal, min: 0, pii: true,"), "utf-8"
    )
    service = service_on(policies, sqlite_url, key_file)
    decision = service.decide("consumer_loan", application(policies, "李秀英", "11010519491231002X"), "r-1")
    assert service.log is not None
    record = service.log.store.get(decision.decision_id)
    assert record is not None
    sealed = set(record.extra["pii"]["sealed"])
    assert {
        "input.applicant.income_monthly",
        "derived.dti",  # debt / income
        "model_outputs.consumer_pd.features.income_monthly",
        "model_outputs.consumer_pd.features.dti",
    } <= sealed
    assert any(p.startswith("stages[") and p.endswith(".values.dti") for p in sealed)
    assert record.derived["dti"] == {"$pii": "derived.dti"}
    assert service.replay(decision.decision_id).result == "MATCH"
    with Replayer(service.log.store, default_evaluator(), vault=PiiVault(service.log.store, None)) as keyless:
        blind = keyless.replay(decision.decision_id)
    # a required input that cannot be restored cannot be decided again: said, not hidden
    assert blind.result == "DIFF" and "input.applicant.income_monthly" in blind.unrestored


def test_a_personal_value_the_model_refuses_is_not_repeated_in_the_error(policies: Path) -> None:
    app = application(policies)
    app["bureau"] = {**app["bureau"], "inquiries_6m": 987654}  # far outside what the model was trained on
    with pytest.raises(InvalidInput) as plain:
        DecisionService(policies, ROOT / "models").decide("consumer_loan", app, "r-1")
    assert "987654" in str(plain.value)  # an ordinary input is quoted back to the caller
    path = policies / "consumer_loan" / "policy.yaml"
    declared = "bureau.inquiries_6m: {type: integer, min: 0}"
    text = path.read_text(encoding="utf-8")
    assert declared in text
    path.write_text(
        text.replace(declared, "bureau.inquiries_6m: {type: integer, min: 0, pii: true}"), "utf-8"
    )
    with pytest.raises(InvalidInput) as personal:
        DecisionService(policies, ROOT / "models").decide("consumer_loan", app, "r-1")
    assert [v.field for v in personal.value.violations] == ["bureau.inquiries_6m"]
    assert "987654" not in str(personal.value)


def test_a_writer_never_makes_a_second_key_for_a_store_sealed_under_another(
    policies: Path, sqlite_url: str, key_file: Path
) -> None:
    service = service_on(policies, sqlite_url, key_file)  # sealed under a key kept elsewhere
    service.decide("consumer_loan", application(policies, "李秀英", "11010519491231002X"), "r-1")
    assert service.log is not None
    with pytest.raises(PiiKeyError, match="give its key file"):
        open_vault(service.log.store, writer=True)
    assert not (Path(sqlite_url[len("sqlite:///") :]).with_suffix(".db.pii-key")).exists()


def test_forget_by_day_erases_the_records_that_named_no_subject_and_keeps_the_others(
    policies: Path, store_url: str, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An applicant who gave a name but no ID number has no subject key: those records share one
    data key per UTC day, and `credo audit forget --day` is the only way to erase them."""
    service = service_on(policies, store_url, key_file)
    (name, id_number), (anonymous, _) = list(PEOPLE.items())[:2]
    named = service.decide("consumer_loan", application(policies, name, id_number), "with-id").decision_id
    unnamed = service.decide("consumer_loan", application(policies, anonymous), "without-id").decision_id
    assert service.log is not None
    day = service.log.store.get(unnamed).received_at[:10]  # type: ignore[union-attr]
    service.log.close()
    key = str(key_file)

    assert main(["audit", "find", "--store", store_url, "--pii-key-file", key, "--day", day]) == 0
    found = capsys.readouterr()
    assert unnamed in found.out and named not in found.out and "1 decision(s)" in found.err
    assert main(["audit", "forget", "--store", store_url, "--pii-key-file", key, "--day", day]) == 0
    assert "1 decision(s) keep their hashes" in capsys.readouterr().out

    store = open_store(store_url, create=False)
    try:
        assert verify_store(store).ok and verify_erasures(store) == (1, None)
        with Replayer(
            store, default_evaluator(), vault=PiiVault(store, MasterKey.read(key_file))
        ) as replayer:
            erased = replayer.replay(unnamed)
            assert erased.result == "PARTIAL" and erased.unrestored["input.applicant.name"] == "erased"
            assert replayer.replay(named).result == "MATCH"
    finally:
        store.close()
    # nothing left for that day: a clear refusal; a malformed day never reaches the store
    assert main(["audit", "forget", "--store", store_url, "--pii-key-file", key, "--day", day]) == 1
    assert "the records of " + day + " that name no subject" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["audit", "forget", "--store", store_url, "--pii-key-file", key, "--day", "2026-13-01"])
    assert "not a date (YYYY-MM-DD)" in capsys.readouterr().err
