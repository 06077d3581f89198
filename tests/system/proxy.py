"""A TCP proxy for fault tests: a network link between a client and a server that a test can
cut and restore.

    with Proxy("127.0.0.1", server.port) as proxy:
        url = proxy.rewrite(server.url(prefix="p"))  # the same URL, through the proxy
        ...
        proxy.cut()      # every open connection dropped (RST), new ones refused
        proxy.restore()  # new connections reach the server again

`cut(blackhole=True)` accepts new connections instead but forwards nothing on them (a client
waits until its own timeout, as behind a dead route); `restore()` drops those.

The proxy listens on a free port of 127.0.0.1 and runs an asyncio loop in a thread of its own;
`cut` and `restore` return once the loop has done them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

#: Seconds a call into the proxy's loop may take (the loop only closes and opens sockets).
CALL_TIMEOUT = 10.0
CHUNK = 1 << 16

State = Literal["up", "refuse", "blackhole"]


@dataclass(eq=False)
class _Link:
    """One client connection and its connection to the target."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    pumps: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        """Drop both sides at once, with a reset rather than an orderly close."""
        for writer in (self.client, self.upstream):
            _reset(writer)


def _reset(writer: asyncio.StreamWriter) -> None:
    # SO_LINGER 0: close() sends RST, as a broken network path does, not a polite FIN.
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Proxy:
    """Forwards TCP connections from 127.0.0.1:`port` to `target_host`:`target_port`."""

    def __init__(
        self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.target_host, self.target_port = target_host, target_port
        self.host, self.port = host, port
        self.state: State = "up"
        #: Connections accepted since the start (forwarded or held by a blackhole).
        self.accepted = 0
        #: Connections dropped by cut() or restore().
        self.dropped = 0
        self._links: set[_Link] = set()
        self._held: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready: Future[None] = Future()

    def __repr__(self) -> str:
        return f"<Proxy {self.address} -> {self.target_host}:{self.target_port} {self.state}>"

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> Proxy:
        """Start listening (on a free port unless one was given); returns self once it does."""
        if self._thread is not None:
            raise RuntimeError(f"{self} was already started")
        self._thread = threading.Thread(target=self._run, name=f"proxy-{id(self):x}", daemon=True)
        self._thread.start()
        self._ready.result(timeout=CALL_TIMEOUT)  # the listen error, if there was one
        return self

    def close(self) -> None:
        """Drop every connection, stop listening and end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        with contextlib.suppress(RuntimeError):  # the loop already stopped
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=CALL_TIMEOUT)

    def __enter__(self) -> Proxy:
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the fault -----------------------------------------------------------------------------

    def cut(self, *, blackhole: bool = False) -> None:
        """Drop every open connection with a reset; until `restore()`, refuse new connections
        (the port stops listening) or, with `blackhole`, accept them and forward nothing."""
        self._call(self._cut("blackhole" if blackhole else "refuse"))

    def restore(self) -> None:
        """Forward new connections again (those a blackhole held are dropped first)."""
        self._call(self._restore())

    @property
    def connections(self) -> int:
        """Connections being forwarded now."""
        count: int = self._call(self._count())
        return count

    # -- addresses -----------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """`host:port` the proxy listens on."""
        return f"{self.host}:{self.port}"

    def rewrite(self, url: str) -> str:
        """`url` with its host and port replaced by the proxy's (user, password, path and
        query kept): the same server, reached through the proxy."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{self.address}" if userinfo else self.address
        return urlunsplit(parts._replace(netloc=netloc))

    # -- the loop's side -----------------------------------------------------------------------

    def _call(self, coro: Any) -> Any:
        if self._loop is None:
            coro.close()
            raise RuntimeError(f"{self} is not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=CALL_TIMEOUT)

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._listen())
        except BaseException as error:
            self._ready.set_exception(error)
            loop.close()
            return
        self._ready.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._shutdown())
            loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.state == "blackhole":
            self._held.add(writer)  # read nothing, send nothing: held until restore()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            _reset(writer)  # the target refused: so does the proxy
            return
        if self.state != "up":  # cut while connecting
            _reset(writer)
            _reset(up_writer)
            return
        link = _Link(writer, up_writer)
        link.pumps = [
            asyncio.ensure_future(self._pump(reader, up_writer)),
            asyncio.ensure_future(self._pump(up_reader, writer)),
        ]
        self._links.add(link)
        try:
            await asyncio.wait(link.pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._links.discard(link)
            for pump in link.pumps:
                pump.cancel()
            # One side closed: close the other the ordinary way (an abort already did both).
            for side in (writer, up_writer):
                side.close()

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(CHUNK):
                sink.write(data)
                await sink.drain()

    async def _cut(self, state: State) -> None:
        self.state = state
        if state == "refuse" and self._server is not None:
            self._server.close()  # the listening socket closes now: connects are refused
            self._server = None
        for link in list(self._links):
            link.abort()
            self.dropped += 1
        self._links.clear()

    async def _restore(self) -> None:
        for writer in list(self._held):
            _reset(writer)
            self.dropped += 1
        self._held.clear()
        if self._server is None:
            self._server = await asyncio.start_server(
                self._accept, self.host, self.port, reuse_address=True
            )
        self.state = "up"

    async def _count(self) -> int:
        return len(self._links)

    async def _shutdown(self) -> None:
        await self._cut("refuse")
        for writer in self._held:
            _reset(writer)
        self._held.clear()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
