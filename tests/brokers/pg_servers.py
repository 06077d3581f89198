"""PostgreSQL clusters owned by one test: `initdb` into a directory of their own, started on a
free 127.0.0.1 port, and killed and removed at the end whatever happened.

Tests that crash, restart or cut off a PostgreSQL use these, never the machine's shared server
(127.0.0.1:5432), which no test may stop, restart or reconfigure.

- `PostgresCluster`: one `postgres` server (a "cluster" in PostgreSQL's words) with trust
  authentication for the superuser `postgres`, `fsync=on` and `synchronous_commit=on`, so a
  commit it acknowledged is in the WAL on disk before the reply. `crash()` is
  `pg_ctl stop -m immediate` (no checkpoint: the next start replays the WAL, as after a crash),
  `restart_immediate()` is that and a start again on the same port and directory (what
  `pg_ctl restart -m immediate` does), `kill()` SIGKILLs the postmaster and every backend, and
  `stop()` is a fast shutdown.
- The fixture `pg_cluster`, which skips when the server binaries (or psycopg, the probe's
  client) are missing, and fails instead under ERRANDS_REQUIRE_SERVICES=1, as in CI.

A test module outside this one takes the fixture by importing it under its own name
(`from tests.brokers.pg_servers import pg_cluster as pg_cluster`), or uses the context manager
`running_cluster` in its own fixture.

The binaries are looked for in ERRANDS_TEST_PG_BINDIR, then `pg_config --bindir`, then the
newest `/usr/lib/postgresql/*/bin` (Debian's layout), then the directory of `initdb` on PATH.
`initdb`, `pg_ctl` and `postgres` refuse to run as root: run as root, they are started as the OS
user `postgres` through util-linux `setpriv`, and the cluster's directory, made under the
system temporary directory (a test's tmp_path is private to root), is given to that user. The
server's log goes to a file of the test (tmp_path/postgres.log for the fixture).

The postmaster is started by this process, not by `pg_ctl start`, so that it carries
PR_SET_PDEATHSIG (`setpriv --pdeathsig KILL`): a test process killed by a timeout takes its
server with it, and the backends exit when they see their postmaster gone. Start clusters from
the test's main thread: the signal comes when the starting thread ends.

Readiness is polled (a connection and a `SELECT 1` with a deadline): a subprocess has no event
to await, and during WAL replay the server refuses connections ("the database system is
starting up") until it is consistent.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import psutil
import pytest

from tests.conftest import require_service

if TYPE_CHECKING:
    import psycopg

HOST = "127.0.0.1"
#: The cluster's superuser (initdb -U) and, when tests run as root, the OS user of its processes.
USER = "postgres"
#: Seconds a start gets to accept connections (a long run's WAL takes a moment to replay).
UP = 60.0
#: Seconds a shutdown gets before the processes are SIGKILLed.
DOWN = 30.0
#: What the cluster needs from the binary directory.
BINARIES = ("initdb", "pg_ctl", "postgres")
#: Settings of every cluster (`postgres -c name=value`).
SETTINGS: dict[str, str] = {
    "listen_addresses": HOST,
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "max_connections": "200",
    "logging_collector": "off",
    "log_line_prefix": "%m [%p] %q%a ",
}


# -- binaries and the OS user ------------------------------------------------------------------


def _version_key(directory: str) -> tuple[int, ...]:
    """Sort key of /usr/lib/postgresql/<version>/bin by version (15 before 9.6 when reversed)."""
    found = re.search(r"/postgresql/([\d.]+)/bin", directory)
    return tuple(int(part) for part in found.group(1).split(".")) if found else ()


def _candidates() -> list[Path]:
    found: list[Path] = []
    if os.environ.get("ERRANDS_TEST_PG_BINDIR"):
        found.append(Path(os.environ["ERRANDS_TEST_PG_BINDIR"]))
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            found.append(Path(out.stdout.strip()))
    debian = sorted(
        (str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), key=_version_key, reverse=True
    )
    found += [Path(p) for p in debian]
    initdb = shutil.which("initdb")
    if initdb is not None:
        found.append(Path(initdb).resolve().parent)
    return found


def find_bindir() -> Path | None:
    """The first directory holding `initdb`, `pg_ctl` and `postgres` (see the module's doc),
    or None."""
    for directory in _candidates():
        if all(os.access(directory / name, os.X_OK) for name in BINARIES):
            return directory
    return None


def _os_user_exists() -> bool:
    try:
        import pwd

        pwd.getpwnam(USER)
    except (ImportError, KeyError):
        return False
    return True


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _prefix(*, die_with_parent: bool) -> list[str]:
    """What runs a command as the cluster's OS user (`postgres` when this process is root,
    else this process's own user), and, `die_with_parent`, SIGKILLs it when the thread that
    started it ends (PR_SET_PDEATHSIG, set by `setpriv` after it changed the user, so it
    holds; empty where there is no `setpriv`)."""
    setpriv = sys.platform == "linux" and shutil.which("setpriv") is not None
    if not setpriv:
        return ["runuser", "-u", USER, "--"] if _as_root() else []
    argv = ["setpriv"]
    if _as_root():
        argv += ["--reuid", USER, "--regid", USER, "--init-groups"]
    if die_with_parent:
        argv += ["--pdeathsig", "KILL"]
    return [*argv, "--"] if len(argv) > 1 else []


def why_unavailable() -> str | None:
    """None when a test cluster can run here, else why not."""
    try:
        import psycopg  # noqa: F401  (the readiness probe's client)
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    if find_bindir() is None:
        return (
            "no PostgreSQL server binaries (initdb, pg_ctl, postgres) in "
            "ERRANDS_TEST_PG_BINDIR, `pg_config --bindir`, /usr/lib/postgresql/*/bin or PATH"
        )
    if _as_root():
        if not _os_user_exists():
            return f"running as root and there is no OS user {USER!r} to run the server as"
        if shutil.which("setpriv") is None and shutil.which("runuser") is None:
            return "running as root and neither setpriv nor runuser is on PATH"
    return None


def require_postgres() -> None:
    """Skip the test when a cluster cannot run here; fail instead under
    ERRANDS_REQUIRE_SERVICES=1 (CI)."""
    why = why_unavailable()
    require_service("postgres (test-owned cluster)", why is None, why or "")


# -- ports ---------------------------------------------------------------------------------------


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on now. Another process may take it before the
    server binds; the start then fails with PortTaken and is tried again on another port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def refuses(port: int) -> bool:
    """Nothing accepts connections on 127.0.0.1:`port`."""
    try:
        socket.create_connection((HOST, port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def bindable(port: int) -> bool:
    """A server could bind 127.0.0.1:`port` now: no process holds it. With SO_REUSEADDR, as
    servers (PostgreSQL among them) bind, so closed connections in TIME_WAIT do not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


class PortTaken(RuntimeError):
    """The server could not bind its port: another process took it."""


# -- the cluster ---------------------------------------------------------------------------------


class PostgresCluster:
    """One PostgreSQL server of a test, in a fresh directory under the system temporary
    directory, on a free port of 127.0.0.1 (see the module's doc).

    `log_dir` receives `postgres.log` (every start appends to it); `options` are more
    `name=value` settings.
    """

    def __init__(
        self,
        log_dir: Path | None = None,
        *,
        port: int | None = None,
        options: Sequence[str] = (),
    ) -> None:
        bindir = find_bindir()
        if bindir is None:
            raise RuntimeError(why_unavailable() or "no PostgreSQL server binaries")
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="errands-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log_path = (log_dir or self.root) / "postgres.log"
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self.options = list(options)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._mark = 0  # where the current start's lines begin in the log
        self.sockets.mkdir()
        if _as_root():
            for path in (self.root, self.sockets):
                shutil.chown(path, USER, USER)

    def __repr__(self) -> str:
        state = "running" if self.alive else "down"
        return f"<PostgresCluster {HOST}:{self.port} {state} in {self.root}>"

    # -- life cycle ----------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """The postmaster runs (it may still be replaying its WAL)."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        return self.proc.pid if self.proc is not None and self.alive else None

    def _binary(self, name: str) -> str:
        return str(self.bindir / name)

    def init(self) -> PostgresCluster:
        """`initdb` the data directory (superuser `postgres`, trust authentication, UTF8, C
        locale); returns self. `--no-sync` only spares initdb's own flush of the new files: the
        server runs with fsync on."""
        done = subprocess.run(
            [
                *_prefix(die_with_parent=True),
                self._binary("initdb"),
                "--pgdata", str(self.data),
                "--username", USER,
                "--auth", "trust",
                "--encoding", "UTF8",
                "--locale", "C",
                "--no-sync",
            ],
            cwd=self.root,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")
            raise RuntimeError(f"initdb failed with {done.returncode}: {output[-4000:]}")
        return self

    def argv(self) -> list[str]:
        """The postmaster's command line (without the user and parent-death prefix)."""
        settings = {**SETTINGS, "port": str(self.port)}
        flags = [f"{name}={value}" for name, value in settings.items()]
        flags += self.options
        return [
            self._binary("postgres"),
            "-D", str(self.data),
            "-k", str(self.sockets),
            *(part for flag in flags for part in ("-c", flag)),
        ]  # fmt: skip

    def start(self, *, within: float = UP) -> PostgresCluster:
        """Start the postmaster (after `initdb` on the first start) and wait until it accepts
        connections; returns self.

        A port someone took since it was picked makes the server exit at once: a cluster
        without a fixed port then tries another; one with a fixed port (a restart) fails.
        """
        if self.alive:
            raise RuntimeError(f"{self} is already running")
        if not (self.data / "PG_VERSION").exists():
            self.init()
        for _ in range(5):
            self._mark = self.log_path.stat().st_size if self.log_path.exists() else 0
            with open(self.log_path, "ab") as log:  # the child's copy of the descriptor
                self.proc = subprocess.Popen(
                    [*_prefix(die_with_parent=True), *self.argv()],
                    cwd=self.root,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            self.starts += 1
            try:
                self.wait_ready(within=within)
                return self
            except PortTaken:
                if self._fixed_port:
                    raise
                self.port = free_port()
        raise RuntimeError(f"no free port for postgres after 5 tries: {self.log_tail()}")

    def wait_ready(self, *, within: float = UP) -> None:
        """Poll a connection and `SELECT 1` until they succeed (a server replaying its WAL
        refuses connections until it is consistent)."""
        import psycopg

        deadline = time.monotonic() + within
        while True:
            if not self.alive:
                self._exited()
            try:
                with psycopg.connect(self.conninfo(), connect_timeout=2, autocommit=True) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.Error:
                pass  # not listening yet, or still starting up: asked again below
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self} did not accept connections within {within}s: {self.log_tail()}"
                )
            time.sleep(0.01)  # another process's start-up: nothing to await

    def _exited(self) -> None:
        assert self.proc is not None
        self.proc.wait()
        text = self._since_mark()[-4000:]
        if "Address already in use" in text:
            raise PortTaken(f"{self}: port {self.port} is taken: {text}")
        raise RuntimeError(f"postgres exited with {self.proc.returncode}: {text}")

    def _pg_ctl_stop(self, mode: str) -> None:
        """`pg_ctl stop -m <mode>`, waiting for the postmaster to go; then reap it."""
        assert self.proc is not None
        done = subprocess.run(
            [
                *_prefix(die_with_parent=True),
                self._binary("pg_ctl"),
                "stop",
                "--pgdata", str(self.data),
                "--mode", mode,
                "--wait",
                "--timeout", str(int(DOWN)),
                "--silent",
            ],
            cwd=self.root,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=DOWN + 10,
            check=False,
        )  # fmt: skip
        try:
            self.proc.wait(timeout=DOWN)
        except subprocess.TimeoutExpired:
            output = (done.stdout + done.stderr).decode(errors="replace")
            self.kill()
            raise RuntimeError(
                f"pg_ctl stop -m {mode} left the postmaster running (killed it): {output}"
            ) from None

    def crash(self) -> None:
        """`pg_ctl stop -m immediate`: the postmaster SIGQUITs every backend and exits without
        a checkpoint, so the next start recovers from the WAL as after a crash. Returns once the
        postmaster is gone (and reaped); a no-op when the server is down."""
        if not self.alive:
            self.kill()
            return
        self._pg_ctl_stop("immediate")

    def restart_immediate(self, *, within: float = UP) -> None:
        """`pg_ctl restart -m immediate`: `crash()`, then a start on the same port and data
        directory (WAL recovery); returns once the server accepts connections again. The new
        postmaster is started by this process, so it keeps the parent-death signal."""
        self.crash()
        self.start(within=within)

    def kill(self) -> None:
        """SIGKILL the postmaster and every process under it (backends, checkpointer, WAL
        writer), and wait until they are gone; a no-op when down."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                children = psutil.Process(self.proc.pid).children(recursive=True)
            except psutil.Error:
                children = []
            self.proc.send_signal(signal.SIGKILL)
            for child in children:
                with contextlib.suppress(psutil.Error):
                    child.kill()
            _wait_gone(children)
        self.proc.wait(timeout=DOWN)

    def stop(self) -> None:
        """A fast shutdown (SIGINT: sessions are ended, a checkpoint is written), or a kill if it
        does not end within DOWN seconds; returns once every process is gone."""
        if self.proc is None or self.proc.poll() is not None:
            self.kill()
            return
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            children = []
        self.proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=DOWN)
        self.kill()
        _wait_gone(children)

    def remove(self) -> None:
        """Kill the server if it runs and delete its directory (the log in `log_dir` stays)."""
        try:
            self.kill()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self if self.alive else self.start()

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # -- for tests -------------------------------------------------------------------------------

    def url(self, schema: str = "errands", *, database: str = "postgres", **query: str) -> str:
        """The broker URL of this cluster:
        `postgresql://postgres@127.0.0.1:<port>/<database>?schema=<schema>`."""
        params = urlencode({"schema": schema, **query})
        return f"postgresql://{USER}@{HOST}:{self.port}/{database}?{params}"

    def conninfo(self, database: str = "postgres", **params: str) -> str:
        """A libpq connection string for this cluster (`application_name=...` and the like in
        `params`)."""
        fields = {"host": HOST, "port": str(self.port), "user": USER, "dbname": database}
        return " ".join(f"{key}={value}" for key, value in {**fields, **params}.items())

    def connect(self, database: str = "postgres", **params: Any) -> psycopg.Connection[Any]:
        """A psycopg connection in autocommit mode, as a user's psql would be."""
        import psycopg

        return psycopg.connect(self.conninfo(database), autocommit=True, **params)

    def processes(self) -> list[psutil.Process]:
        """The postmaster and every process under it, while it runs."""
        if not self.alive or self.proc is None:
            return []
        try:
            top = psutil.Process(self.proc.pid)
            return [top, *top.children(recursive=True)]
        except psutil.Error:
            return []

    def log_since_start(self) -> str:
        """What the server logged since its latest start."""
        return self._since_mark()

    def log_tail(self, size: int = 4000) -> str:
        """The end of the server's log, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except FileNotFoundError:
            return "(no log)"

    def _since_mark(self) -> str:
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(self._mark)
            return f.read().decode(errors="replace")


def _gone(proc: psutil.Process) -> bool:
    """Ended: no such process, or a zombie nobody reaps (an orphaned backend's parent is init)."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def _wait_gone(procs: Sequence[psutil.Process], within: float = DOWN) -> None:
    deadline = time.monotonic() + within
    while not all(_gone(p) for p in procs):
        if time.monotonic() > deadline:
            left = [p.pid for p in procs if not _gone(p)]
            raise TimeoutError(f"postgres processes {left} still run {within}s after SIGKILL")
        time.sleep(0.01)  # other processes' exits, not our children: nothing to await


@contextlib.contextmanager
def running_cluster(log_dir: Path | None = None, **options: Any) -> Iterator[PostgresCluster]:
    """A started PostgresCluster (see its options), killed and removed on the way out."""
    require_postgres()
    cluster = PostgresCluster(log_dir, **options)
    try:
        yield cluster.start()
    finally:
        cluster.remove()


@pytest.fixture
def pg_cluster(tmp_path: Path) -> Iterator[PostgresCluster]:
    """A PostgresCluster of this test (fsync on, trust auth, log in tmp_path/postgres.log);
    killed and its directory removed at the end."""
    with running_cluster(tmp_path) as cluster:
        yield cluster
