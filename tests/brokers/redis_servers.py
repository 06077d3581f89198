"""Redis servers owned by one test: started on a free 127.0.0.1 port in a directory of the test,
killed at the end whatever happened.

Tests that kill, restart or cut off a Redis use these, never the shared server on port 6379.

- `RedisServer`: one `redis-server` with AOF on and `appendfsync always` (and no RDB snapshots),
  so every write it acknowledged is on disk before the reply; `kill()` is a SIGKILL and
  `restart()` starts it again on the same port and directory, reloading the AOF.
- `RedisCluster`: three masters without replicas, joined by `redis-cli --cluster create`.
- Fixtures `redis_server` and `redis_cluster`, which skip when `redis-server` is not on PATH
  (and fail under ERRANDS_REQUIRE_SERVICES=1, as in CI).

A test module outside this one takes a fixture by importing it under its own name
(`from tests.brokers.redis_servers import redis_server as redis_server`), or uses the context
managers `running_server` and `running_cluster` in its own fixture.

Readiness is polled (a PING with a deadline): a subprocess has no event to await. The probe is a
few lines of RESP over a socket rather than redis-py, so these helpers need nothing but the
binaries.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

import pytest

from tests.conftest import require_service

HOST = "127.0.0.1"
#: Seconds a server gets to answer PING after its start (an AOF of a long run takes a while).
UP = 30.0
#: Seconds a cluster gets to agree that every slot is served.
JOINED = 60.0
#: A cluster node's bus listens on its port + 10000 (Redis's fixed offset).
BUS_OFFSET = 10000


class ReplyError(Exception):
    """A Redis error reply (`-ERR ...`, `-LOADING ...`)."""


# -- a minimal RESP client, for readiness probes -----------------------------------------------


def command(port: int, *args: str | bytes | int, timeout: float = 5.0) -> Any:
    """Send one command to the server on 127.0.0.1:`port` over a fresh connection and return
    its reply: str for a status, int, bytes or None for a bulk string, list for an array.

    Raises ReplyError for an error reply and OSError when the server cannot be reached.
    """
    parts = [arg if isinstance(arg, bytes) else str(arg).encode() for arg in args]
    request = b"*%d\r\n" % len(parts) + b"".join(
        b"$%d\r\n%s\r\n" % (len(part), part) for part in parts
    )
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(request)
        with sock.makefile("rb") as reader:
            return _reply(reader)


def _reply(reader: IO[bytes]) -> Any:
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError(f"the connection closed mid-reply: {line!r}")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        raise ReplyError(body.decode())
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None
        data = reader.read(size + 2)
        return data[:-2]
    if kind == b"*":
        count = int(body)
        return None if count < 0 else [_reply(reader) for _ in range(count)]
    raise ConnectionError(f"not a RESP reply: {line!r}")


def cluster_info(port: int) -> dict[str, str]:
    """`CLUSTER INFO` of the node on `port`, as a dict."""
    raw = command(port, "CLUSTER", "INFO")
    pairs = (line.split(":", 1) for line in raw.decode().splitlines() if ":" in line)
    return {key: value for key, value in pairs}


# -- ports and processes -----------------------------------------------------------------------


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(*, with_bus: bool = False) -> int:
    """A port on 127.0.0.1 nobody listens on now (and, `with_bus`, port + 10000 free too, for
    a cluster node's bus). Another process may take it before the server binds; the start
    then fails with PortTaken and is tried again on another port."""
    if not with_bus:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
            return port
    # Searched low, so the bus port (+10000) stays a valid port; bind() says what is free.
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(20000, 29000)
        if _bindable(port) and _bindable(port + BUS_OFFSET):
            return port
    raise RuntimeError("no free port pair (port, port + 10000) found in 20000-29000")


def _die_with_parent() -> list[str]:
    """A prefix for a server's command line that SIGKILLs it when the thread that started it
    ends (PR_SET_PDEATHSIG, through util-linux `setpriv`, which then execs the server), so a
    test process killed by a timeout leaves no server behind; empty where there is none."""
    if sys.platform != "linux" or shutil.which("setpriv") is None:
        return []
    return ["setpriv", "--pdeathsig", "KILL", "--"]


def require_redis_server() -> None:
    """Skip the test when `redis-server`/`redis-cli` are not on PATH; fail instead under
    ERRANDS_REQUIRE_SERVICES=1 (CI)."""
    missing = [name for name in ("redis-server", "redis-cli") if shutil.which(name) is None]
    require_service("redis-server", not missing, f"{' and '.join(missing)} not on PATH")


class RedisServer:
    """One `redis-server` of a test, in `directory`, on a free port of 127.0.0.1.

    AOF is on, with `appendfsync always` unless told otherwise, and RDB snapshots are off: a
    write is on disk before Redis replies to it, so a SIGKILL loses nothing it acknowledged,
    and the restart reloads exactly that. `options` are more `--name value` arguments (a
    cluster node's).

    The process is started from the calling thread and dies with it (PR_SET_PDEATHSIG): start
    servers from the test's main thread.
    """

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        options: Sequence[str] = (),
        appendfsync: str = "always",
    ) -> None:
        self.directory = directory
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self.options = list(options)
        self.appendfsync = appendfsync
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        #: Where the current start's lines begin in the log and stderr files.
        self._marks: dict[Path, int] = {}

    def __repr__(self) -> str:
        state = "running" if self.alive else "down"
        return f"<RedisServer {HOST}:{self.port} {state} in {self.directory}>"

    # -- life cycle ----------------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        """The server's own log file (one across restarts: each start appends)."""
        return self.directory / "redis.log"

    @property
    def stderr_path(self) -> Path:
        """What the server wrote to stderr (errors before its log is open)."""
        return self.directory / "redis.stderr"

    @property
    def alive(self) -> bool:
        """The process runs (it may still be loading its AOF)."""
        return self.proc is not None and self.proc.poll() is None

    def argv(self) -> list[str]:
        """The `redis-server` command line."""
        persistence = ["--appendonly", "yes", "--appendfsync", self.appendfsync]
        return [
            "redis-server",
            "--port", str(self.port),
            "--bind", HOST,
            "--dir", str(self.directory),
            "--logfile", str(self.log_path),
            "--daemonize", "no",
            "--save", "",
            *persistence,
            *self.options,
        ]  # fmt: skip

    def start(self, *, within: float = UP) -> RedisServer:
        """Start the server and wait until it answers PING; returns self.

        A port someone took since it was picked makes the server exit at once: a server
        without a fixed port then tries another; one with a fixed port (a restart) fails.
        """
        if self.alive:
            raise RuntimeError(f"{self} is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            self._marks = {path: _size(path) for path in (self.log_path, self.stderr_path)}
            with open(self.stderr_path, "ab") as stderr:  # the child's copy
                self.proc = subprocess.Popen(
                    [*_die_with_parent(), *self.argv()],
                    cwd=self.directory,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )
            self.starts += 1
            try:
                self.wait_ready(within=within)
                return self
            except PortTaken:
                if self._fixed_port:
                    raise
                self.port = free_port()
        raise RuntimeError(f"no free port for redis-server after 5 tries: {self.log_tail()}")

    def wait_ready(self, *, within: float = UP) -> None:
        """Poll PING until the server answers PONG (an AOF still loading answers LOADING)."""
        deadline = time.monotonic() + within
        while True:
            if not self.alive:
                self._exited()
            try:
                if command(self.port, "PING", timeout=1.0) == "PONG":
                    return
            except (OSError, ReplyError):
                pass  # not listening yet, or still loading: asked again below
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self} did not answer PING within {within}s: {self.log_tail()}"
                )
            time.sleep(0.01)  # another process's start-up: nothing to await

    def _exited(self) -> None:
        assert self.proc is not None
        self.proc.wait()
        # This start's lines only: a restart appends to the files of the earlier starts.
        text = "".join(_since(path, mark) for path, mark in self._marks.items())[-4000:]
        if "Address already in use" in text:
            raise PortTaken(f"{self}: port {self.port} (or its bus port) is taken: {text}")
        raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {text}")

    def kill(self) -> None:
        """SIGKILL the server (no shutdown, no final fsync) and reap it; a no-op when down."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def restart(self, *, within: float = UP) -> None:
        """Kill the server if it runs, then start it on the same port and directory, so it
        reloads its AOF; returns once it answers PING."""
        self.kill()
        self.start(within=within)

    def stop(self) -> None:
        """Shut the server down cleanly (SIGTERM), or kill it if it will not within 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            self.kill()
            return
        self.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.kill()

    def __enter__(self) -> RedisServer:
        return self if self.alive else self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()

    # -- for tests -------------------------------------------------------------------------------

    def url(self, prefix: str = "errands", *, db: int = 0, **query: str) -> str:
        """The broker URL of this server: `redis://127.0.0.1:<port>/<db>?prefix=<prefix>`."""
        return f"redis://{HOST}:{self.port}/{db}?{urlencode({'prefix': prefix, **query})}"

    def log_tail(self, size: int = 4000) -> str:
        """The end of the server's log, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except FileNotFoundError:
            return "(no log)"


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _since(path: Path, offset: int) -> str:
    if not path.exists():
        return ""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


class PortTaken(RuntimeError):
    """The server could not bind its port: another process took it."""


@contextlib.contextmanager
def running_server(directory: Path, **options: Any) -> Iterator[RedisServer]:
    """A started RedisServer in `directory` (see its options), killed on the way out."""
    require_redis_server()
    server = RedisServer(directory, **options)
    try:
        yield server.start()
    finally:
        server.kill()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A RedisServer of this test (AOF, appendfsync always) in tmp_path/redis; SIGKILLed at
    the end."""
    with running_server(tmp_path / "redis") as server:
        yield server


# -- a cluster ---------------------------------------------------------------------------------


class RedisCluster:
    """`masters` Redis Cluster nodes without replicas, each in `directory/node-<i>`, joined by
    `redis-cli --cluster create` and awaited until every node reports `cluster_state:ok`.

    AOF with `appendfsync everysec`: the broker finds the persistence it asks for (and says
    nothing), while nothing here kills a node, so no write waits for a disk flush.
    """

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.directory = directory
        self.nodes: list[RedisServer] = []
        self.masters = masters

    def __repr__(self) -> str:
        return f"<RedisCluster {', '.join(f'{HOST}:{n.port}' for n in self.nodes)}>"

    @property
    def ports(self) -> list[int]:
        """Each node's client port."""
        return [node.port for node in self.nodes]

    def start(self) -> RedisCluster:
        """Start the nodes, join them, and wait until the cluster serves all 16384 slots."""
        for i in range(self.masters):
            self.nodes.append(self._start_node(self.directory / f"node-{i}"))
        created = subprocess.run(
            [
                "redis-cli",
                "--cluster", "create",
                *(f"{HOST}:{port}" for port in self.ports),
                "--cluster-replicas", "0",
                "--cluster-yes",
            ],
            capture_output=True,
            timeout=JOINED,
            check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        output = (created.stdout + created.stderr).decode(errors="replace")
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {output}")
        self.wait_ok()
        return self

    def _start_node(self, directory: Path) -> RedisServer:
        # A node needs its port and port + 10000 (the bus): another process may take either
        # between the check and the bind, and then a fresh pair is tried.
        for _ in range(5):
            node = RedisServer(
                directory,
                port=free_port(with_bus=True),
                appendfsync="everysec",
                options=[
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "5000",
                ],
            )  # fmt: skip
            with contextlib.suppress(PortTaken):
                return node.start()
        raise RuntimeError(f"no free port pair for a cluster node after 5 tries: {directory}")

    def wait_ok(self, *, within: float = JOINED) -> None:
        """Poll CLUSTER INFO on every node until each says `cluster_state:ok` and knows all
        the others."""
        deadline = time.monotonic() + within
        states: dict[int, dict[str, str]] = {}
        while True:
            with contextlib.suppress(OSError, ReplyError):
                states = {port: cluster_info(port) for port in self.ports}
                if all(
                    s.get("cluster_state") == "ok"
                    and s.get("cluster_known_nodes") == str(self.masters)
                    and s.get("cluster_slots_ok") == "16384"
                    for s in states.values()
                ):
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self} not ok within {within}s: {states}")
            time.sleep(0.05)  # the nodes gossip among themselves: nothing to await

    def kill(self) -> None:
        """SIGKILL every node."""
        for node in self.nodes:
            node.kill()

    def url(self, prefix: str = "errands", *, node: int = 0, **query: str) -> str:
        """A broker URL for the cluster through node number `node` (any node will do):
        `redis://127.0.0.1:<port>/0?cluster=1&prefix=<prefix>`."""
        params = urlencode({"cluster": "1", "prefix": prefix, **query})
        return f"redis://{HOST}:{self.ports[node]}/0?{params}"


@contextlib.contextmanager
def running_cluster(directory: Path, masters: int = 3) -> Iterator[RedisCluster]:
    """A started RedisCluster in `directory`, every node killed on the way out."""
    require_redis_server()
    cluster = RedisCluster(directory, masters)
    try:
        yield cluster.start()
    finally:
        cluster.kill()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A three-master RedisCluster for the module; every node SIGKILLed at the end."""
    with running_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster
