"""The worker's signal handlers take no lock. A handler runs on the main thread between two bytecodes,
possibly while that thread holds a lock inside threading.Event.wait(); a handler that then calls
Event.set() waits on its own thread forever. Regression: a worker's start hung so (SIGUSR1 setting the
`listen` Event the main thread was waiting on), "credo serve did not start" after 90 s, 1 in ~30 starts."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from engine.server.servicer import Flag
from engine.server.worker import Asked


class _Servicer:  # the two flags a worker's handlers set on its servicer
    def __init__(self) -> None:
        self.draining = Flag()
        self.superseded = Flag()


def _locks_taken(call: Callable[[], None]) -> list[str]:
    """The lock acquisitions (C-level acquire/__enter__ of a lock) made while `call` runs."""
    taken: list[str] = []
    lock_types = (type(threading.Lock()), type(threading.RLock()))

    def profile(_frame: Any, event: str, arg: Any) -> None:
        named = getattr(arg, "__name__", "") in ("acquire", "__enter__")
        if event == "c_call" and named and isinstance(getattr(arg, "__self__", None), lock_types):
            taken.append(repr(arg))

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return taken


def test_the_probe_sees_the_lock_an_event_takes() -> None:
    # the detector itself: threading.Event.set() is exactly the call that deadlocked
    assert _locks_taken(threading.Event().set)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2])
@pytest.mark.parametrize("serving", [False, True], ids=["building", "serving"])
def test_a_workers_signal_handlers_take_no_lock(signum: int, serving: bool) -> None:
    asked = Asked()
    if serving:
        asked.servicer = _Servicer()  # type: ignore[assignment]
    handlers: dict[int, Callable[[int, Any], None]] = {
        signal.SIGTERM: asked.on_stop,
        signal.SIGINT: asked.on_stop,
        signal.SIGUSR1: asked.on_listen,
        signal.SIGUSR2: asked.on_superseded,
    }
    handler = handlers[signum]
    assert _locks_taken(lambda: handler(signum, None)) == []
    if signum in (signal.SIGTERM, signal.SIGINT):
        assert asked.stop and asked.quick == (signum == signal.SIGINT)
        if serving:
            assert asked.servicer is not None
            assert asked.servicer.draining.is_set() and asked.servicer.superseded.is_set()
    elif signum == signal.SIGUSR1:
        assert asked.listen and not asked.stop


def test_the_servicer_flags_are_lock_free() -> None:
    servicer = _Servicer()

    def set_both() -> None:
        servicer.draining.set()
        servicer.superseded.set()

    assert _locks_taken(set_both) == []
    assert servicer.draining.is_set() and servicer.superseded.is_set()
