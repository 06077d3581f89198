"""Portal: the App's event-loop thread, where every async verb of a blocking caller runs.

One loop per App and process: started by the first blocking call, or adopted from a worker's
loop, rebuilt in a child after fork. It holds no logic of its own.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, ParamSpec, TypeVar

from errands.errors import BlockingCallInEventLoop
from errands.loops import new_event_loop

P = ParamSpec("P")
T = TypeVar("T")


class Portal:
    """Runs coroutines on one loop for callers in any thread."""

    def __init__(self, loop_kind: str = "auto") -> None:
        self.loop_kind = loop_kind  # see errands.loops
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The portal's loop, started on first use."""
        with self._lock:
            if self._pid != os.getpid():
                self._loop, self._thread, self._pid = None, None, os.getpid()
            if self._loop is None or self._loop.is_closed():
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        ready = threading.Event()
        loop = new_event_loop(self.loop_kind)

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=serve, name="errands-portal", daemon=True)
        self._thread.start()
        ready.wait()
        self._loop = loop

    @property
    def started(self) -> bool:
        """True once the portal has a live loop (its own thread's or an adopted one)."""
        return self._loop is not None and not self._loop.is_closed() and self._pid == os.getpid()

    def adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make `loop` (a worker's, running in this thread) the portal's loop."""
        with self._lock:
            if self._loop is not None and self._loop is not loop and self._thread is not None:
                raise RuntimeError("the portal already runs its own loop; adopt before first use")
            self._loop, self._pid = loop, os.getpid()

    def owns_running_loop(self) -> bool:
        """True when called on the portal's loop."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return False
        return running is self._loop

    def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(*args, **kwargs)` on the portal's loop and wait for it (blocking callers)."""
        refuse_on_loop(fn.__name__.removesuffix("_async"))
        return _Call(_awaited(fn(*args, **kwargs)), self.loop).result()

    async def run(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Await `fn` on the portal's loop, hopping there from any other loop."""
        if self.owns_running_loop():
            return await fn(*args, **kwargs)
        future = asyncio.run_coroutine_threadsafe(_awaited(fn(*args, **kwargs)), self.loop)
        return await asyncio.wrap_future(future)

    def stop(self) -> None:
        """Stop the portal's own thread (an adopted loop belongs to its owner)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()


def refuse_on_loop(verb: str) -> None:
    """Raise BlockingCallInEventLoop for `verb` when called in a thread running an event loop,
    which the blocking call would stall."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise BlockingCallInEventLoop(verb)


class _Call(Generic[T]):
    """One blocking call of a coroutine on the portal's loop: a lock the loop releases when
    the coroutine's task ends. Lighter than run_coroutine_threadsafe, whose concurrent Future
    takes a condition's lock several times a call; enqueues pay it once each."""

    __slots__ = ("_done", "_task")

    def __init__(self, coro: Coroutine[Any, Any, T], loop: asyncio.AbstractEventLoop) -> None:
        self._done = threading.Lock()
        self._done.acquire()
        self._task: asyncio.Task[T] | None = None

        def start() -> None:
            self._task = loop.create_task(coro)
            self._task.add_done_callback(lambda _: self._done.release())

        loop.call_soon_threadsafe(start)

    def result(self) -> T:
        """Wait for the task; its result, or its exception raised here."""
        self._done.acquire()
        assert self._task is not None
        return self._task.result()


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable
