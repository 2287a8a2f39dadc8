"""Personal data in decision records: every `pii: true` value is sealed (AES-GCM) under its subject's
data key before the record is hashed, so the chain covers the ciphertext; revealed with the key.

A sealed value is replaced by `{"$pii": its path}`; the record's `extra.pii` holds one AES-GCM
`ciphertext` of {path: value} for all of them (associated data: the decision_id, so it cannot be
moved to another record), whose data it is (`subject`, a keyed hash: an HMAC under the store's
lookup key) and which paths are `sealed` (engine.audit.pii_fields says which values are personal).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.audit.canonical import dumps_plain
from engine.audit.pii_fields import SEALED, PiiFields, is_sealed, locate, pii_fields, walk, walk_sealed
from engine.audit.pii_keys import LOOKUP_SUBJECT, KeyTable, MasterKey
from engine.audit.record import DecisionRecord
from engine.audit.sqlite import SqliteStore, sqlite_path
from engine.audit.store import AuditStore
from engine.errors import PiiKeyError
from engine.policy import Policy

__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "MASK",
    "PLAINTEXT_ENV",
    "PiiVault",
    "Revealed",
    "default_key_file",
    "open_vault",
    "prepare_writer",
]

log = logging.getLogger(__name__)

MASK = "***"
KEY_FILE_ENV = "CREDO_PII_KEY_FILE"
KEY_ENV = "CREDO_PII_KEY"  # the master key itself, base64
PLAINTEXT_ENV = "CREDO_ALLOW_PLAINTEXT_PII"  # "1": development only, personal data stored in clear
# the record fields personal data can sit in (engine.audit.pii_fields.walk)
_WALKED = ("input", "derived", "model_outputs", "extra", "stages")
_CACHE = 10_000  # unwrapped data keys kept per process
# How long a sealing process trusts a data key read earlier: after `forget`, another process may
# seal that subject's new records under the destroyed key for this long (they are then erased too).
_CACHE_SECONDS = 60.0


@dataclass(frozen=True)
class Revealed:
    """A record with its sealed values opened where possible; `unrestored` maps each path that
    could not be opened to why ("no key" or "erased")."""

    record: DecisionRecord
    unrestored: dict[str, str]


class PiiVault:
    """Seals and opens personal data in records of one store. `master` None: no key (reading only:
    values stay sealed); `plaintext`: development mode, nothing is sealed."""

    def __init__(self, store: AuditStore, master: MasterKey | None, *, plaintext: bool = False):
        self.store = store
        self.master = master
        self.plaintext = plaintext
        self.default_key_file: Path | None = None  # set when the key is the one beside a SQLite store
        self._table: KeyTable | None = None
        self._lookup: bytes | None = None
        self._keys: dict[str, tuple[bytes, float]] = {}  # subject -> (data key, when read)
        # subject -> (data key, its AES-GCM cipher): made once per key read, not once per record
        # (a cipher's setup cost ~14 µs a record on a loaded server, ~20x its encryption)
        self._ciphers: dict[str, tuple[bytes, AESGCM]] = {}
        self._macs: dict[bytes, hmac.HMAC] = {}  # purpose -> the lookup key's MAC fed it (_lookup_mac)
        self._fields: dict[str, PiiFields] = {}

    @property
    def table(self) -> KeyTable:
        if self._table is None:
            self._table = KeyTable(self.store)
        return self._table

    # -- sealing, on the decision path
    def protect(self, record: DecisionRecord, policy: Policy) -> DecisionRecord:
        """`record` with its personal values sealed (before it is hashed); unchanged in plaintext
        mode or when the policy declares no pii input or label."""
        fields = self._fields.get(policy.sha256)
        if fields is None:
            fields = self._fields[policy.sha256] = pii_fields(policy)
        if self.plaintext or not fields.any:
            return record
        if self.master is None:
            raise PiiKeyError("no personal-data key to seal this record with")
        mine = record.__dict__
        body = {name: mine[name] for name in _WALKED}  # what walk() reads and replaces
        named = body["input"].get(fields.subject) if fields.subject else None
        subject = self.subject_hash(str(named)) if named is not None else self._day_subject(record)
        values: dict[str, Any] = {}

        def seal(path: str, value: Any) -> Any:
            values[path] = value
            return {SEALED: path}

        walk(body, fields, seal)
        if not values:
            return record
        # one AES-GCM message per record, bound to its decision_id: {path: value} of every sealed value
        nonce = os.urandom(12)
        text = self._cipher(subject).encrypt(nonce, dumps_plain(values), record.decision_id.encode())
        body["extra"] = {
            **body["extra"],
            "pii": {
                "subject": subject,
                "sealed": sorted(values),
                "ciphertext": base64.b64encode(nonce + text).decode("ascii"),
            },
        }
        return record.changed(body)

    # -- opening, for replay and export
    def reveal(self, record: DecisionRecord) -> Revealed:
        """`record` with every sealed value opened; what cannot be opened stays sealed and is listed."""
        info = record.extra.get("pii")
        if not isinstance(info, Mapping):
            return Revealed(record, {})
        values: dict[str, Any] | None = None
        why = "no key"
        if self.master is not None:
            key = self._data_key(str(info["subject"]), create=False, cached=False)
            why = "erased"
            if key is not None:
                raw = base64.b64decode(str(info["ciphertext"]))
                try:
                    values = json.loads(AESGCM(key).decrypt(raw[:12], raw[12:], record.decision_id.encode()))
                except InvalidTag:
                    why = "altered"
        unrestored: dict[str, str] = {}

        def open_(path: str, value: Any) -> Any:
            if not is_sealed(value):
                return value
            if values is not None and path in values:
                return values[path]
            unrestored[path] = why
            return value

        body = copy.deepcopy(record.to_dict())  # opened values go into copies, never the record given
        walk_sealed(body, open_)
        return Revealed(DecisionRecord.from_dict(body), unrestored)

    def opened(self, record: DecisionRecord) -> DecisionRecord:
        """`record` as a batch re-decision reads it: sealed values opened, those that cannot be left out."""
        opened = self.reveal(record)
        if not opened.unrestored:
            return opened.record
        body = copy.deepcopy(opened.record.to_dict())
        for path in opened.unrestored:
            parent, leaf = locate(body, path)
            if parent is not None:
                parent.pop(leaf, None)
        return DecisionRecord.from_dict(body)

    def masked(self, record: DecisionRecord) -> DecisionRecord:
        """`record` for someone without the key: sealed values opened if this vault can, else MASK."""
        opened = self.reveal(record)
        if not opened.unrestored:
            return opened.record
        body = copy.deepcopy(opened.record.to_dict())
        walk_sealed(body, lambda path, value: MASK if is_sealed(value) else value)
        return DecisionRecord.from_dict(body)

    # -- subjects and keys
    def subject_hash(self, value: str) -> str:
        """The keyed hash a record stores for the subject `value` (HMAC-SHA256, hex)."""
        return self._lookup_mac(b"subject\0", value.encode())

    def keyed(self, digest: str) -> str:
        """A request fingerprint (a sha256 of the request, personal data included) keyed with the
        lookup key, so nobody without it can test guesses of the personal values against it."""
        if self.plaintext:
            return digest
        return self._lookup_mac(b"fingerprint\0", digest.encode())

    def _day_subject(self, record: DecisionRecord) -> str:
        # No subject key declared or given: the records of one day share a data key, so a new key is
        # written once a day rather than once a decision (erasable by day, not by person).
        return self._day_hash(record.received_at[:10])

    def _day_hash(self, day: str) -> str:
        return self._lookup_mac(b"day\0", day.encode())

    def _lookup_mac(self, purpose: bytes, message: bytes) -> str:
        """HMAC-SHA256 under the lookup key of `purpose` + `message`, hex: a copy of the MAC keyed
        and fed `purpose` once (hmac.digest sets up its key and digest again on every call: ~14 µs
        of a logged decision on a loaded server, against ~5 µs for a copy)."""
        started = self._macs.get(purpose)
        if started is None:
            started = self._macs[purpose] = hmac.new(self._lookup_key(), purpose, hashlib.sha256)
        mac = started.copy()
        mac.update(message)
        return mac.hexdigest()

    def _recorded_subject(self, value: str | None, *, day: str | None = None) -> str | None:
        """The keyed hash of subject `value`, or of `day`'s records without a subject, without
        creating the store's lookup key (a reader writes nothing): None when the store has none,
        so holds no such records."""
        if (value is None) == (day is None):
            raise ValueError("name a subject or a day, not both")
        if self._lookup is None and self._data_key(LOOKUP_SUBJECT, create=False, cached=False) is None:
            return None
        return self.subject_hash(value) if value is not None else self._day_hash(str(day))

    def _lookup_key(self) -> bytes:
        if self._lookup is None:
            self._lookup = self._sealing_key(LOOKUP_SUBJECT)
        return self._lookup

    def _cipher(self, subject: str) -> AESGCM:
        """The AES-GCM cipher of `subject`'s sealing key, kept while that key is the one cached
        (a key read again, rotated or forgotten is another bytes object: a new cipher)."""
        key = self._sealing_key(subject)
        hit = self._ciphers.get(subject)
        if hit is None or hit[0] is not key:
            if len(self._ciphers) >= _CACHE:
                self._ciphers.clear()
            hit = self._ciphers[subject] = (key, AESGCM(key))
        return hit[1]

    def _sealing_key(self, subject: str) -> bytes:
        key = self._data_key(subject, create=True)
        assert key is not None  # created if absent
        return key

    def _data_key(self, subject: str, *, create: bool, cached: bool = True) -> bytes | None:
        """`subject`'s data key, unwrapped; created if absent and `create`. Sealing uses keys cached
        for up to _CACHE_SECONDS; opening always reads the store, so an erased key never opens."""
        now = time.monotonic()
        hit = self._keys.get(subject) if cached else None
        if hit is not None and now - hit[1] < _CACHE_SECONDS:
            return hit[0]
        master = self._require_master()
        stored = self.table.get(subject)
        if stored is None:
            if not create:
                return None
            stored = self.table.add(subject, master.key_id, master.wrap(os.urandom(32), subject))
        key_id, wrapped = stored
        if key_id != master.key_id:
            raise PiiKeyError(
                f"the store's personal data is wrapped under master key {key_id}, not {master.key_id}:"
                " use that key file (or `credo audit rotate-key` with it)"
            )
        key = master.unwrap(wrapped, subject)
        if len(self._keys) >= _CACHE:
            self._keys.clear()
        self._keys[subject] = (key, now)
        return key

    def _require_master(self) -> MasterKey:
        if self.master is None:
            raise PiiKeyError("this command needs the personal-data key: --pii-key-file or $CREDO_PII_KEY")
        return self.master

    def forget(self, subject_value: str | None = None, *, day: str | None = None) -> dict[str, Any]:
        """Crypto-shred the data key of a subject, or of one UTC day's records that named no subject
        (`day` = YYYY-MM-DD), and chain the erasure; the erasure record."""
        decisions = len(self.find(subject_value, day=day))
        subject = self._recorded_subject(subject_value, day=day)
        if subject is None or self.table.get(subject) is None:
            what = "that subject" if day is None else f"the records of {day} that name no subject"
            raise PiiKeyError(f"no personal data is kept for {what} (never recorded, or already erased)")
        self._keys.pop(subject, None)
        self._ciphers.pop(subject, None)
        return self.table.erase(subject, decisions)

    def find(self, subject_value: str | None = None, *, day: str | None = None) -> list[DecisionRecord]:
        """The records of one subject, or of one UTC day's records that named no subject: found by
        their keyed hash, so only a key holder can look."""
        subject = self._recorded_subject(subject_value, day=day)
        if subject is None:
            return []
        return [r for r in self.store.iter_records() if (r.extra.get("pii") or {}).get("subject") == subject]

    def rotate(self, new: MasterKey) -> int:
        """Re-wrap every data key under `new` (record hashes are untouched); the number re-wrapped."""
        old = self._require_master()
        rows = []
        for subject, key_id, wrapped in self.table.all():
            if key_id != old.key_id:
                raise PiiKeyError(
                    f"data key of {subject[:12]} is wrapped under {key_id}, not the old key {old.key_id}"
                )
            rows.append((subject, new.key_id, new.wrap(old.unwrap(wrapped, subject), subject)))
        self.table.rewrap(rows)
        self.master, self._keys, self._ciphers = new, {}, {}
        return len(rows)


def open_vault(
    store: AuditStore,
    key_file: str | Path | None = None,
    *,
    writer: bool = False,
    allow_plaintext: bool | None = None,
) -> PiiVault:
    """The vault of `store`: the master key from `key_file`, $CREDO_PII_KEY_FILE or $CREDO_PII_KEY;
    else, for SQLite, the key file beside the database (a writer creates it, 0600, and logs its
    path). A PostgreSQL writer without a key is refused unless plaintext is allowed (development)."""
    if allow_plaintext is None:
        allow_plaintext = os.environ.get(PLAINTEXT_ENV, "") == "1"
    key_file = key_file or os.environ.get(KEY_FILE_ENV) or None
    if key_file:
        return PiiVault(store, MasterKey.read(key_file))
    if os.environ.get(KEY_ENV):
        return PiiVault(store, MasterKey.from_text(os.environ[KEY_ENV], f"${KEY_ENV}"))
    if writer and allow_plaintext:
        log.warning("personal data is stored in plaintext (--allow-plaintext-pii: development only)")
        return PiiVault(store, None, plaintext=True)
    if isinstance(store, SqliteStore):
        beside = default_key_file(store.path)
        if writer and not beside.exists() and KeyTable(store).all():
            raise PiiKeyError(
                f"the personal data in {store.path} is sealed under a key that is not beside it ({beside}):"
                " give its key file with --pii-key-file or $CREDO_PII_KEY_FILE"
            )
        if writer and not beside.exists():
            try:
                MasterKey.create(beside)
                log.warning(
                    "created the personal-data key file %s: keep it safe, replay and export need it", beside
                )
            except FileExistsError:  # another process of this store made it first
                pass
        if not beside.exists():
            return PiiVault(store, None)
        vault = PiiVault(store, MasterKey.read(beside))
        vault.default_key_file = beside
        return vault
    if writer:
        raise PiiKeyError(
            "a PostgreSQL audit store needs the personal-data key: --pii-key-file, $CREDO_PII_KEY_FILE"
            " or $CREDO_PII_KEY (or --allow-plaintext-pii for development)"
        )
    return PiiVault(store, None)


def prepare_writer(url: str, key_file: str | None, allow_plaintext: bool) -> str:
    """Check at start, without opening the store, that a writer of `url` has a personal-data key
    (creating the one beside a SQLite database), export its place to the environment every worker
    inherits, and say where it is. PiiKeyError when a PostgreSQL store has none."""
    if allow_plaintext:
        os.environ[PLAINTEXT_ENV] = "1"
        return "personal data is stored in PLAINTEXT (--allow-plaintext-pii: for development only)"
    if key_file:
        os.environ[KEY_FILE_ENV] = str(Path(key_file).resolve())
    if os.environ.get(KEY_FILE_ENV):
        master = MasterKey.read(os.environ[KEY_FILE_ENV])
        return f"personal data sealed under key {master.key_id} from {os.environ[KEY_FILE_ENV]}"
    if os.environ.get(KEY_ENV):
        master = MasterKey.from_text(os.environ[KEY_ENV], f"${KEY_ENV}")
        return f"personal data sealed under key {master.key_id} from ${KEY_ENV}"
    if not url.startswith("sqlite:"):
        raise PiiKeyError(
            "a PostgreSQL audit store needs the personal-data key: --pii-key-file, $CREDO_PII_KEY_FILE"
            " or $CREDO_PII_KEY (or --allow-plaintext-pii for development)"
        )
    beside = default_key_file(sqlite_path(url)).resolve()
    if not beside.exists():
        beside.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            MasterKey.create(beside)
    master = MasterKey.read(beside)
    return f"personal data sealed under key {master.key_id} from {beside} (beside the store: keep it safe)"


def default_key_file(database: Path) -> Path:
    return database.with_name(database.name + ".pii-key")
