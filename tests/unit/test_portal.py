"""Portal: one loop thread per App runs every async verb for blocking and async callers."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Iterator

import pytest

from errands.errors import BlockingCallInEventLoop
from errands.portal import Portal


@pytest.fixture
def portal() -> Iterator[Portal]:
    made = Portal()
    yield made
    made.stop()


async def where() -> str:
    return threading.current_thread().name


async def loop_of() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_call_runs_the_coroutine_on_the_portal_thread(portal: Portal) -> None:
    assert portal.call(where) == "errands-portal"


def test_call_passes_arguments_and_returns_the_value(portal: Portal) -> None:
    async def add(a: int, *, b: int) -> int:
        return a + b

    assert portal.call(add, 1, b=2) == 3


def test_call_raises_what_the_coroutine_raised(portal: Portal) -> None:
    async def boom() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        portal.call(boom)


def test_every_call_uses_the_same_loop_and_thread(portal: Portal) -> None:
    first = portal.call(loop_of)

    assert portal.call(loop_of) is first
    assert first is portal.loop


def test_calls_from_many_threads_share_the_one_loop(portal: Portal) -> None:
    seen: list[asyncio.AbstractEventLoop] = []
    threads = [threading.Thread(target=lambda: seen.append(portal.call(loop_of))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(seen) == 8
    assert len(set(map(id, seen))) == 1


async def test_call_inside_a_running_loop_refuses_and_never_starts_the_coroutine(
    portal: Portal,
) -> None:
    started: list[bool] = []

    async def enqueue_async() -> None:
        started.append(True)

    with pytest.raises(BlockingCallInEventLoop, match=r"await enqueue_async\(") as caught:
        portal.call(enqueue_async)

    assert caught.value.verb == "enqueue"
    assert started == []


async def test_run_hops_from_another_loop_to_the_portal(portal: Portal) -> None:
    assert await portal.run(where) == "errands-portal"
    assert await portal.run(loop_of) is portal.loop
    assert not portal.owns_running_loop()


def test_run_on_the_portals_own_loop_awaits_in_place(portal: Portal) -> None:
    async def nested() -> tuple[bool, str]:
        return portal.owns_running_loop(), await portal.run(where)

    assert portal.call(nested) == (True, "errands-portal")


def test_a_stopped_portal_starts_a_fresh_loop_on_next_use(portal: Portal) -> None:
    first = portal.call(loop_of)
    portal.stop()

    second = portal.call(loop_of)

    assert second is not first
    assert first.is_closed()
    assert portal.call(where) == "errands-portal"


def test_adopting_another_loop_after_first_use_is_refused(portal: Portal) -> None:
    portal.call(where)
    other = asyncio.new_event_loop()
    try:
        with pytest.raises(RuntimeError, match="adopt before first use"):
            portal.adopt(other)
    finally:
        other.close()


def test_an_adopted_loop_is_the_portals_and_is_left_running_on_stop() -> None:
    portal = Portal()

    async def adopt_and_check() -> tuple[bool, str, bool]:
        portal.adopt(asyncio.get_running_loop())
        owned, name = portal.owns_running_loop(), await portal.run(where)
        portal.stop()  # nothing of its own to stop: the adopted loop belongs to its owner
        return owned, name, asyncio.get_running_loop().is_running()

    owned, name, still_running = asyncio.run(adopt_and_check())

    assert owned
    assert name == threading.current_thread().name
    assert still_running


def test_a_forked_child_gets_its_own_portal_loop(portal: Portal) -> None:
    parent_loop = portal.call(loop_of)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer through the pipe, never return into pytest
        try:
            signal.alarm(10)
            fresh = portal.call(loop_of) is not parent_loop
            answer = portal.call(where)
            os.write(write, f"{fresh} {answer}".encode())
        finally:
            os._exit(0)
    os.close(write)
    try:
        with os.fdopen(read, "rb") as pipe:
            reply = pipe.read().decode()
    finally:
        os.waitpid(pid, 0)

    assert reply == "True errands-portal"
