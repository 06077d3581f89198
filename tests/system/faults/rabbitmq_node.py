"""A RabbitMQ node owned by one test: started as a subprocess on free 127.0.0.1 ports with its
own node name, Erlang cookie, database, logs and configuration in a directory of the test, and
killed at the end whatever happened.

Tests that kill or restart RabbitMQ use this, never the machine's node (5672), which other
tests share.

- `RabbitNode`: one `rabbitmq-server` (the server script itself, not the Debian wrapper that
  switches to the `rabbitmq` user), named `errands-test-<random>@localhost`, with
  RABBITMQ_NODE_PORT and RABBITMQ_DIST_PORT on free ports, RABBITMQ_MNESIA_BASE,
  RABBITMQ_LOG_BASE, RABBITMQ_CONFIG_FILE, RABBITMQ_CONF_ENV_FILE and
  RABBITMQ_ENABLED_PLUGINS_FILE in its directory (so nothing of /etc/rabbitmq applies: no
  plugins, no other listener), and HOME there too, holding a fresh random `.erlang.cookie`.
  `kill()` is a SIGKILL of the Erlang VM (quorum queues recover from their WAL on the next
  start), `stop()` a SIGTERM, which RabbitMQ takes as a clean shutdown, and `start()` boots it
  again on the same ports and directory; each returns once the process is reaped, or once an
  AMQP connection and a channel open.
- The fixture `rabbit_node`, which skips when the server script or aio-pika (the readiness
  probe's client) is missing, and fails instead under ERRANDS_REQUIRE_SERVICES=1, as in CI.

The node registers its name with the machine's `epmd` (port 4369), and starts one bound to
127.0.0.1 if none runs (epmd is a daemon and outlives the test, as it does for any Erlang node).

`rabbitmq-server` execs `erl`, which execs the VM: the process started here is the VM, and it
carries PR_SET_PDEATHSIG (`setpriv --pdeathsig KILL`), so a test process killed by a timeout
takes its node with it. Start nodes from the test's main thread: the signal comes when the
starting thread ends.

Readiness is polled (an AMQP connection with a deadline): a subprocess has no event to await,
and RabbitMQ opens its AMQP listener only at the end of its boot.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from tests.conftest import require_service

HOST = "127.0.0.1"
#: Seconds a start gets to accept AMQP connections (a boot takes about 5 s here, more under load).
UP = 90.0
#: Seconds a clean shutdown gets before the VM is SIGKILLed.
DOWN = 30.0
#: The node's configuration (rabbitmq.conf). Default user guest/guest, allowed from loopback.
CONFIG = """\
# A test-owned node: tests/system/faults/rabbitmq_node.py
log.console = false
log.file.level = info
disk_free_limit.absolute = 10MB
"""


def find_server() -> Path | None:
    """The `rabbitmq-server` script: in ERRANDS_TEST_RABBITMQ_BINDIR, Debian's
    /usr/lib/rabbitmq/bin, a generic install's sbin, or on PATH unless it is Debian's wrapper
    (`rabbitmq-script-wrapper`, which would run the server as the `rabbitmq` user with the
    machine's files)."""
    generic = "/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server"
    candidates = []
    if os.environ.get("ERRANDS_TEST_RABBITMQ_BINDIR"):
        candidates.append(Path(os.environ["ERRANDS_TEST_RABBITMQ_BINDIR"]) / "rabbitmq-server")
    candidates.append(Path("/usr/lib/rabbitmq/bin/rabbitmq-server"))
    candidates += [Path(p) for p in sorted(glob.glob(generic), reverse=True)]
    on_path = shutil.which("rabbitmq-server")
    if on_path is not None:
        candidates.append(Path(on_path))
    for path in candidates:
        if os.access(path, os.X_OK) and "wrapper" not in path.resolve().name:
            return path
    return None


def why_unavailable() -> str | None:
    """None when a test node can run here, else why not."""
    try:
        import aio_pika  # noqa: F401  (the readiness probe's client)
    except ImportError:
        return "aio-pika is not installed (pip install -e '.[test]')"
    if find_server() is None:
        return (
            "no rabbitmq-server script in ERRANDS_TEST_RABBITMQ_BINDIR, /usr/lib/rabbitmq/bin, "
            "/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin or PATH"
        )
    if shutil.which("erl") is None:
        return "no Erlang (erl) on PATH"
    return None


def require_rabbitmq_node() -> None:
    """Skip the test when a node cannot run here; fail instead under
    ERRANDS_REQUIRE_SERVICES=1 (CI)."""
    why = why_unavailable()
    require_service("rabbitmq (test-owned node)", why is None, why or "")


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on now. Another process may take it before the node
    binds; the start then fails with PortTaken and is tried again on other ports."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> list[str]:
    """`setpriv --pdeathsig KILL --` where there is one (see the module's doc), else nothing."""
    if sys.platform != "linux" or shutil.which("setpriv") is None:
        return []
    return ["setpriv", "--pdeathsig", "KILL", "--"]


class PortTaken(RuntimeError):
    """The node could not bind its AMQP or distribution port: another process took it."""


class RabbitNode:
    """One RabbitMQ node of a test, in `directory` (see the module's doc)."""

    def __init__(self, directory: Path) -> None:
        server = find_server()
        if server is None:
            raise RuntimeError(why_unavailable() or "no rabbitmq-server")
        self.server = server
        self.directory = directory
        self.name = f"errands-test-{secrets.token_hex(4)}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._fixed_ports = False  # set by the first successful start: a restart keeps them
        self._mark = 0  # where the current start's lines begin in the output file
        self.home = directory / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(20).upper())
            cookie.chmod(0o400)  # Erlang refuses a cookie others can read
        (directory / "rabbitmq.conf").write_text(CONFIG)
        (directory / "rabbitmq-env.conf").write_text("# empty: nothing of /etc/rabbitmq\n")
        (directory / "enabled_plugins").write_text("[].\n")

    def __repr__(self) -> str:
        state = "running" if self.alive else "down"
        return f"<RabbitNode {self.name} {HOST}:{self.port} {state} in {self.directory}>"

    # -- life cycle ----------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """The VM runs (it may still be booting)."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def output_path(self) -> Path:
        """What the server wrote to stdout and stderr (every start appends)."""
        return self.directory / "rabbitmq.out"

    @property
    def log_path(self) -> Path:
        """The node's own log file."""
        return self.directory / "log" / f"{self.name}.log"

    def env(self) -> dict[str, str]:
        """The server's environment: this process's, without any RABBITMQ_* or ERL_* setting,
        and the node's own."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        return {
            **inherited,
            "HOME": str(self.home),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.directory / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.directory / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(self.directory / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.directory / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.directory / "rabbitmq.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": HOST,
            # The script then execs the VM instead of running it in the background behind a
            # shell that forwards signals: the process started here is the VM, so a SIGKILL
            # reaches it and it keeps the parent-death signal. The VM then runs an Erlang shell
            # on its stdin, a pipe this process holds open (at EOF the VM halts).
            "RABBITMQ_ALLOW_INPUT": "1",
        }

    def start(self, *, within: float = UP) -> RabbitNode:
        """Boot the node and wait until it accepts an AMQP connection; returns self.

        Ports someone took since they were picked make the boot fail at once: the first start
        then tries other ports; a restart (fixed ports) fails."""
        if self.alive:
            raise RuntimeError(f"{self} is already running")
        for _ in range(5):
            self._mark = self.output_path.stat().st_size if self.output_path.exists() else 0
            with open(self.output_path, "ab") as out:  # the child's copy of the descriptor
                self.proc = subprocess.Popen(
                    [*_die_with_parent(), str(self.server)],
                    env=self.env(),
                    cwd=self.directory,
                    stdin=subprocess.PIPE,  # never written; see env()
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            self.starts += 1
            try:
                self.wait_ready(within=within)
            except PortTaken:
                if self._fixed_ports:
                    raise
                self.port, self.dist_port = free_port(), free_port()
                continue
            self._fixed_ports = True
            return self
        raise RuntimeError(f"no free ports for {self} after 5 tries: {self.output_tail()}")

    def wait_ready(self, *, within: float = UP) -> None:
        """Poll an AMQP connection (and a channel) until one opens."""
        deadline = time.monotonic() + within
        while True:
            if not self.alive:
                self._exited()
            if self.answers():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self} did not accept AMQP connections within {within}s: {self.output_tail()}"
                )
            time.sleep(0.02)  # another process's boot: nothing to await

    def answers(self, timeout: float = 2.0) -> bool:
        """An AMQP connection as guest, and a channel on it, open now. Call it where no event
        loop runs (the test's thread)."""
        if not self._listening():
            return False

        async def probe() -> None:
            import aio_pika

            connection = await aio_pika.connect(self.amqp_url(), timeout=timeout)
            try:
                await connection.channel()
            finally:
                await connection.close()

        try:
            asyncio.run(probe())
        except Exception:  # refused, reset, closed mid-handshake, timed out: not yet
            return False
        return True

    def _listening(self) -> bool:
        """Something accepts TCP on the AMQP port (cheaper than a handshake while it boots)."""
        try:
            socket.create_connection((HOST, self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def _exited(self) -> None:
        assert self.proc is not None
        self.kill()  # reaps it and closes its stdin
        text = self._since_mark()[-6000:]
        if "eaddrinuse" in text:
            raise PortTaken(f"{self}: port {self.port} or {self.dist_port} is taken: {text}")
        raise RuntimeError(f"rabbitmq-server exited with {self.proc.returncode}: {text}")

    def kill(self) -> None:
        """SIGKILL the VM (no shutdown: what was not fsynced is gone) and reap it; a no-op when
        down. Its port helpers (erl_child_setup, inet_gethost) exit when it is gone."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        if self.proc.stdin is not None:
            self.proc.stdin.close()

    def stop(self) -> None:
        """SIGTERM: RabbitMQ stops cleanly (closes connections with 320 CONNECTION_FORCED,
        stops its queues) and exits; returns once reaped, SIGKILLing it past DOWN seconds."""
        if self.proc is None or self.proc.poll() is not None:
            self.kill()
            return
        self.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=DOWN)
        self.kill()

    def restart(self, *, within: float = UP) -> None:
        """Kill the node if it runs, then boot it on the same ports and directory."""
        self.kill()
        self.start(within=within)

    # -- for tests -------------------------------------------------------------------------------

    def amqp_url(self, vhost: str = "/") -> str:
        """`amqp://guest:guest@127.0.0.1:<port>/<vhost>` (no errands options)."""
        return f"amqp://guest:guest@{HOST}:{self.port}/{quote(vhost, safe='')}"

    def url(self, store: str, *, prefix: str = "errands", **query: str) -> str:
        """An errands broker URL on this node's default vhost with the companion `store`."""
        params = urlencode({"store": store, "prefix": prefix, **query})
        return f"{self.amqp_url()}?{params}"

    def _since_mark(self) -> str:
        if not self.output_path.exists():
            return ""
        with open(self.output_path, "rb") as f:
            f.seek(self._mark)
            return f.read().decode(errors="replace")

    def output_tail(self, size: int = 4000) -> str:
        """The end of this start's output and of the node's log, for failure messages."""
        try:
            log = self.log_path.read_text(errors="replace")[-size:]
        except FileNotFoundError:
            log = "(no log)"
        return f"{self._since_mark()[-size:]}\n--- {self.log_path.name}:\n{log}"


@contextlib.contextmanager
def running_node(directory: Path) -> Iterator[RabbitNode]:
    """A started RabbitNode in `directory`, SIGKILLed on the way out."""
    require_rabbitmq_node()
    node = RabbitNode(directory)
    try:
        yield node.start()
    finally:
        node.kill()


@pytest.fixture
def rabbit_node(tmp_path: Path) -> Iterator[RabbitNode]:
    """A RabbitNode of this test in tmp_path/rabbitmq; SIGKILLed at the end."""
    with running_node(tmp_path / "rabbitmq") as node:
        yield node
