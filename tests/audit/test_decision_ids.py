"""Decision ids: UUIDv7, time-ordered within a process, never repeated across forked workers."""

from __future__ import annotations

import os
import time
import uuid

from engine.audit.record import new_decision_id


def test_decision_ids_are_uuid7_in_time_order() -> None:
    before = int(time.time() * 1000)
    ids = [new_decision_id() for _ in range(5000)]  # many per millisecond: the counter orders them
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {text[19] for text in ids} == set("89ab")  # RFC 4122's variant over random bits
    for text in ids[:: len(ids) // 10]:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
        assert str(parsed) == text
        assert parsed.int >> 80 >= before  # milliseconds first (never behind an id made earlier)


def test_forked_workers_do_not_repeat_decision_ids() -> None:
    """Random bits are read in blocks: a worker forked after its parent made an id must not hand
    out the parent's remaining bits (two workers would then answer with the same random parts)."""
    new_decision_id()  # the parent holds a block of random bits
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.write(write, ",".join(new_decision_id()[19:] for _ in range(8)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        theirs = set(pipe.read().split(","))
    os.waitpid(child, 0)
    ours = {new_decision_id()[19:] for _ in range(8)}
    assert len(theirs) == 8
    assert not ours & theirs
