"""The fault tests' TCP proxy (tests/system/proxy.py) behaves like a link that can be cut:
bytes flow both ways, a cut breaks live connections and refuses (or blackholes) new ones, and
a restore lets new connections through on the same port."""

from __future__ import annotations

import os
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.proxy import Proxy

WAIT = 5.0  # seconds a socket waits for what the proxy must do at once


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with self.request as conn:
            try:
                while data := conn.recv(1 << 16):
                    conn.sendall(data)
            except OSError:
                pass  # the proxy reset the connection: the test is about that


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    """An echo server on a free port of 127.0.0.1, shut down at the end."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    # A short poll interval: shutdown() waits for the loop to notice it.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield "127.0.0.1", server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=WAIT)


@pytest.fixture
def proxy(echo: tuple[str, int]) -> Iterator[Proxy]:
    with Proxy(*echo) as running:
        yield running


def connect(proxy: Proxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=WAIT)


def roundtrip(conn: socket.socket, data: bytes) -> bytes:
    """Send `data` and read back as many bytes (the echo server returns them)."""
    conn.sendall(data)
    got = bytearray()
    while len(got) < len(data):
        chunk = conn.recv(1 << 16)
        if not chunk:
            break
        got += chunk
    return bytes(got)


def broken(conn: socket.socket) -> bool:
    """The connection was closed or reset by the other end (waits up to WAIT for it)."""
    try:
        return conn.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_bytes_flow_both_ways_through_the_proxy(proxy: Proxy) -> None:
    payload = os.urandom(1 << 20)
    with connect(proxy) as conn:
        assert roundtrip(conn, b"hello") == b"hello"
        assert roundtrip(conn, payload) == payload
        assert proxy.connections == 1
    with connect(proxy) as first, connect(proxy) as second:
        assert roundtrip(first, b"one") == b"one"
        assert roundtrip(second, b"two") == b"two"


def test_a_cut_breaks_a_live_connection_and_refuses_new_ones(proxy: Proxy) -> None:
    with connect(proxy) as conn:
        assert roundtrip(conn, b"before") == b"before"
        proxy.cut()
        assert broken(conn)
    assert proxy.connections == 0
    with pytest.raises(ConnectionRefusedError):
        connect(proxy)


def test_restore_lets_a_new_connection_through_on_the_same_port(proxy: Proxy) -> None:
    port = proxy.port
    proxy.cut()
    proxy.restore()
    assert proxy.port == port
    with connect(proxy) as conn:
        assert roundtrip(conn, b"after") == b"after"


def test_a_blackhole_cut_accepts_connections_but_passes_nothing_until_restored(
    proxy: Proxy,
) -> None:
    with connect(proxy) as live:
        assert roundtrip(live, b"x") == b"x"
        proxy.cut(blackhole=True)
        assert broken(live)
    with connect(proxy) as held:
        held.sendall(b"lost")
        held.settimeout(0.5)  # asserting that nothing comes back takes a wait: a short one
        with pytest.raises(TimeoutError):
            held.recv(1)
        held.settimeout(WAIT)
        proxy.restore()
        assert broken(held)  # what the blackhole held is dropped, not delivered late
    with connect(proxy) as conn:
        assert roundtrip(conn, b"through") == b"through"


def test_a_closed_proxy_stops_listening(echo: tuple[str, int]) -> None:
    proxy = Proxy(*echo).start()
    with connect(proxy) as conn:
        assert roundtrip(conn, b"x") == b"x"
        proxy.close()
        assert broken(conn)
    with pytest.raises(ConnectionRefusedError):
        connect(proxy)


def test_rewrite_points_a_url_at_the_proxy(proxy: Proxy) -> None:
    at = proxy.address
    assert proxy.rewrite("redis://127.0.0.1:6390/0?prefix=p") == f"redis://{at}/0?prefix=p"
    assert proxy.rewrite("redis://:pw@localhost:6390/2") == f"redis://:pw@{at}/2"


def test_a_redis_client_reconnects_through_a_restored_proxy(tmp_path: Path) -> None:
    """The use the fault tests make of it: redis-py sees a cut as a connection error and gets
    through again after the restore."""
    redis = pytest.importorskip("redis")
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from tests.brokers.redis_servers import running_server

    with running_server(tmp_path / "redis") as server, Proxy("127.0.0.1", server.port) as proxy:
        # No retries of its own, so the cut shows as the error it is.
        client = redis.Redis(
            host="127.0.0.1", port=proxy.port, socket_timeout=WAIT, retry=Retry(NoBackoff(), 0)
        )
        assert client.ping()
        proxy.cut()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        proxy.restore()
        assert client.ping()
        client.close()
