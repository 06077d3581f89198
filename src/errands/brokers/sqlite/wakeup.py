"""Wake-ups for one SQLite file: waiters in this process are woken directly, waiters in other
processes on the host by a datagram on a Unix socket, so an idle worker sleeps in the kernel
instead of polling the file.

Each waiting broker binds one AF_UNIX datagram socket in a directory named after the database's
real path; a committing writer sends `r` (jobs may be claimable) or `d` (jobs may be done) to
every socket there. Datagrams are hints: waiters re-read the database after each one and at
least every RECHECK seconds, so a lost datagram costs latency, never a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

READY: Final = b"r"  # a job may have become claimable
DONE: Final = b"d"  # a job may have become terminal
RECHECK: Final = 1.0  # seconds: the longest a waiter trusts the datagrams alone
REFRESH: Final = 0.1  # seconds a sender may reuse its listing of the peers' sockets


def wake_directory(database: Path) -> Path:
    """Where the sockets for `database` live: short enough for the 108-byte socket path limit,
    the same for every process that opens the file by any path (symlinks, relative paths)."""
    digest = hashlib.sha1(os.fsencode(os.path.realpath(database))).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"errands-wake-{digest}"


class Wakeup:
    """In-process signals plus the datagram sockets that carry them between processes."""

    def __init__(self, database: Path) -> None:
        self.directory = wake_directory(database)
        self.sent = 0  # datagrams sent, for benchmarks
        self._signals: dict[bytes, asyncio.Event] = {}
        self._signals_loop: asyncio.AbstractEventLoop | None = None
        #: The same for waiters blocking in their own threads (a result() of a blocking caller).
        self._thread_signals: dict[bytes, threading.Event] = {}
        self._thread_signals_lock = threading.Lock()
        self._receiver: socket.socket | None = None
        self._own: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bound_at = float("-inf")
        self._sender: socket.socket | None = None
        self._peers: list[str] = []
        self._listed_at = float("-inf")
        self._pid = os.getpid()
        self._sending = threading.Lock()

    # -- waiting -------------------------------------------------------------------------------

    def signal(self, kind: bytes) -> asyncio.Event:
        """The event the next `kind` notice sets. Take it *before* reading the database, so a
        notice that lands between the read and the wait is not missed."""
        loop = asyncio.get_running_loop()
        if loop is not self._signals_loop:  # an Event belongs to the loop that first awaits it
            self._signals, self._signals_loop = {}, loop
        event = self._signals.get(kind)
        if event is None:
            event = self._signals[kind] = asyncio.Event()
        return event

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        """Wait for `event` up to `timeout` seconds (capped for re-checks); True if it fired.

        Call listen() first, before reading the database, so no notice falls in between.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._capped(timeout)):
                await event.wait()
            return True
        return False

    def thread_signal(self, kind: bytes) -> threading.Event:
        """`signal` for a waiter blocking in its own thread: the threading.Event the next
        `kind` notice sets. The socket must be listened to on some loop of this process."""
        with self._thread_signals_lock:
            event = self._thread_signals.get(kind)
            if event is None:
                event = self._thread_signals[kind] = threading.Event()
            return event

    def wait_in_thread(self, event: threading.Event, timeout: float) -> bool:
        """`wait` for a thread_signal, blocking the calling thread; True if it fired."""
        return event.wait(self._capped(timeout))

    def _capped(self, timeout: float) -> float:
        # Senders list the sockets at most every REFRESH seconds, so right after binding ours
        # a notice may still miss it: re-check soon rather than after a full RECHECK.
        settled = self._bound_at + 2 * REFRESH - time.monotonic()
        cap = RECHECK if settled <= 0 else min(RECHECK, settled)
        return max(0.0, min(timeout, cap))

    @property
    def listening(self) -> bool:
        """True when this process's socket is read by a loop (or cannot be, so waiters rely
        on their re-checks)."""
        return self._pid == os.getpid() and (
            self._receiver is not None or self._bound_at == float("inf")
        )

    def listen(self) -> None:
        """Bind this process's socket and read it on the running loop; idempotent."""
        if self._pid != os.getpid():
            self._forget_parent()
        loop = asyncio.get_running_loop()
        if self._receiver is not None and self._loop is not loop:
            self._move_to(loop)
        if self._receiver is not None or self._bound_at == float("inf"):
            return
        try:
            receiver, own = self._bind()
            try:
                loop.add_reader(receiver.fileno(), self._drain)
            except NotImplementedError:  # e.g. the Proactor loop on Windows
                receiver.close()
                os.unlink(own)
                raise
        except (OSError, AttributeError, NotImplementedError) as error:
            # No wake-ups from other processes: waiters fall back to re-checking every RECHECK.
            log.warning("no cross-process wake-ups in %s: %r", self.directory, error)
            self._bound_at = float("inf")
            return
        self._loop, self._receiver, self._own = loop, receiver, own
        self._bound_at = time.monotonic()

    def _move_to(self, loop: asyncio.AbstractEventLoop) -> None:
        # The broker is now used from another event loop (asyncio.run called again): read the
        # socket there.
        assert self._receiver is not None
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._receiver.fileno())
        loop.add_reader(self._receiver.fileno(), self._drain)
        self._loop = loop

    def _forget_parent(self) -> None:
        # A forked child inherits the parent's socket and events: it must neither read the
        # parent's notices nor remove its socket file, so it starts afresh with its own.
        if self._receiver is not None:
            self._receiver.close()  # our copy of the descriptor only
        if self._sender is not None:
            self._sender.close()
        self._receiver = self._sender = self._own = self._loop = None
        self._signals, self._bound_at, self._pid = {}, float("-inf"), os.getpid()
        self._thread_signals, self._thread_signals_lock = {}, threading.Lock()
        self._listed_at = float("-inf")
        self._sending = threading.Lock()  # the parent's may have been held by another thread

    def _bind(self) -> tuple[socket.socket, str]:
        own = str(self.directory / f"{os.getpid()}-{secrets.token_hex(4)}.sock")
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            receiver.setblocking(False)
            for attempt in range(3):
                self._ensure_directory()
                try:
                    receiver.bind(own)
                    break
                except FileNotFoundError:
                    # The last broker on this file removed the directory as we made it: again.
                    if attempt == 2:
                        raise
        except OSError:
            receiver.close()
            raise
        return receiver, own

    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o700, exist_ok=True)
        owner = self.directory.lstat().st_uid
        if owner != os.getuid():
            # Someone else's directory: they could drop or fake our notices.
            raise PermissionError(f"{self.directory} belongs to uid {owner}, not to us")

    def _drain(self) -> None:
        assert self._receiver is not None
        kinds: set[int] = set()
        while True:
            try:
                kinds.update(self._receiver.recv(64))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as error:
                log.debug("wake-up socket read failed: %s", error)
                break
        self._wake_here(bytes(sorted(kinds)))

    # -- notifying -----------------------------------------------------------------------------

    def notify(self, kinds: bytes) -> None:
        """Tell every waiter, here and in other processes, that `kinds` may have happened."""
        if not kinds:
            return
        if self._pid != os.getpid():
            self._forget_parent()
        self._wake_here(kinds)
        self._send(kinds)

    def notify_threadsafe(self, kinds: bytes) -> None:
        """`notify` from a thread other than the waiters' loop's."""
        if self._pid != os.getpid():
            self._forget_parent()
        loop = self._signals_loop
        if loop is not None and any(bytes((kind,)) in self._signals for kind in kinds):
            with contextlib.suppress(RuntimeError):  # a closed loop has no waiter left
                loop.call_soon_threadsafe(self._wake_here, kinds)
        self._wake_threads(kinds)
        self._send(kinds)

    def _wake_here(self, kinds: bytes) -> None:
        for kind in kinds:
            event = self._signals.pop(bytes((kind,)), None)
            if event is not None:
                event.set()  # its waiters wake; the next signal() makes a fresh event
        self._wake_threads(kinds)

    def _wake_threads(self, kinds: bytes) -> None:
        if not self._thread_signals:
            return
        with self._thread_signals_lock:
            for kind in kinds:
                event = self._thread_signals.pop(bytes((kind,)), None)
                if event is not None:
                    event.set()

    def _send(self, kinds: bytes) -> None:
        with self._sending:  # the loop's thread and blocking producers' threads
            self._send_now(kinds)

    def _send_now(self, kinds: bytes) -> None:
        if self._sender is None:
            try:
                self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            except (OSError, AttributeError):
                return  # no Unix datagrams here: other processes rely on their re-checks
            self._sender.setblocking(False)
        for peer in self._list_peers():
            try:
                self._sender.sendto(kinds, peer)
                self.sent += 1
            except BlockingIOError:
                pass  # its queue is full of notices it has not read yet: it will wake anyway
            except ConnectionRefusedError:
                self._forget(peer, unlink=True)  # a socket file left by a dead process
            except FileNotFoundError:
                self._forget(peer, unlink=False)
            except OSError as error:
                log.debug("wake-up to %s failed: %s", peer, error)

    def _list_peers(self) -> list[str]:
        now = time.monotonic()
        if now - self._listed_at < REFRESH:
            return self._peers
        try:
            names = os.listdir(self.directory)
        except OSError:
            names = []
        prefix = f"{self.directory}{os.sep}"  # plain strings: Path objects cost 5x per entry
        peers = [prefix + name for name in names if name.endswith(".sock")]
        self._peers = [peer for peer in peers if peer != self._own]
        self._listed_at = now
        return self._peers

    def _forget(self, peer: str, *, unlink: bool) -> None:
        if unlink:
            with contextlib.suppress(OSError):
                os.unlink(peer)
        with contextlib.suppress(ValueError):
            self._peers.remove(peer)

    def close(self) -> None:
        """Stop listening and remove this process's socket file; idempotent."""
        if self._pid != os.getpid():
            self._forget_parent()
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(receiver.fileno())
            receiver.close()
        if self._own is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._own)
            with contextlib.suppress(OSError):
                os.rmdir(self.directory)  # only if it is empty: the last one out tidies /tmp
            self._own = None
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        self._bound_at = float("-inf")
        for event in self._signals.values():
            event.set()  # nobody may sleep on a closed broker
        self._signals.clear()
        with self._thread_signals_lock:
            for thread_event in self._thread_signals.values():
                thread_event.set()
            self._thread_signals.clear()
