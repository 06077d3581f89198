"""errands beside the Python queues of one backend (Redis, PostgreSQL or RabbitMQ), in one run.

    python benchmarks/compare/run.py                          # Redis: everything, 20,000 jobs
    python benchmarks/compare/run.py --systems errands,huey --jobs 5000
    python benchmarks/compare/run.py --backend postgres       # PgQueuer, Procrastinate, SAQ
    python benchmarks/compare/run.py --backend rabbitmq       # Celery, Dramatiq on RabbitMQ
    python benchmarks/compare/run.py --summarize benchmarks/compare/.work/results-X.jsonl

Installs each system into a virtual environment of its own under benchmarks/compare/.work/venvs
(current releases from PyPI; errands from a snapshot of this checkout, not editable), then runs
peers/bench_<system>.py in that environment. The jobs' counters live in Redis on
127.0.0.1:6379, database 13 (flushed between phases; FLUSHDB only, never FLUSHALL), whatever
the backend; with `--backend postgres` the queues live in a PostgreSQL database this script
creates (errands_compare on 127.0.0.1:5432, made afresh for each system, dropped at the end);
with `--backend rabbitmq` in a vhost this script creates (errands_compare_<run> on
127.0.0.1:5672, with rabbitmqctl, deleted at the end).
Prints a Markdown table of enqueue/s, batch enqueue/s, drain/s (no-op and INCR jobs, one worker
process), round trip p50/p99, and the ratio errands / best peer per metric. Needs only the
standard library itself (Python 3.11+). See README.md beside this file for what each system's
configuration is and why.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PEERS = HERE / "peers"
WORK = HERE / ".work"

#: What each system's environment gets: the install line its docs give. Installed first and
#: alone, so that the system's current release wins; then COMMON without --upgrade, which adds
#: hiredis and keeps whatever redis-py the system chose (the harness and the INCR job use it).
#: One environment per system: arq's current release wants redis<6 and SAQ's redis extra
#: redis<8, so one shared environment could not hold every current release.
REDIS_SYSTEMS: dict[str, list[str]] = {
    "errands": [],  # the checkout's snapshot, with its [redis] extra
    "celery": ["celery[redis]"],
    "rq": ["rq"],
    "dramatiq": ["dramatiq[redis]"],
    "huey": ["huey[redis]"],
    "arq": ["arq", "uvloop"],
    # saq imports typing_extensions without declaring it (0.26.4): other packages bring it.
    "saq": ["saq[redis]", "uvloop", "typing_extensions"],
    "taskiq": ["taskiq", "taskiq-redis", "uvloop"],
    "streaq": ["streaq", "uvloop"],
}
#: The PostgreSQL peers (their environments are their own: `saq_pg` is not the Redis `saq`).
#: psycopg[binary] brings psycopg's C implementation (psycopg alone runs its pure-Python one on
#: the system libpq). `pgq run` dies under typer 0.29 before starting ('str' object has no
#: attribute 'name', from its --log-level option): typer 0.19.2 is a release it runs with.
POSTGRES_SYSTEMS: dict[str, list[str]] = {
    "errands": [],  # the checkout's snapshot, with its [redis,postgres] extras
    "pgqueuer": ["pgqueuer[asyncpg]", "typer==0.19.2", "uvloop"],
    "procrastinate": ["procrastinate", "psycopg[binary]", "uvloop"],
    # saq imports typing_extensions without declaring it (0.26.4), as for the Redis queue.
    "saq_pg": ["saq[postgres]", "psycopg[binary]", "uvloop", "typing_extensions"],
}
#: The RabbitMQ peers, in environments of their own (the Redis ones carry other extras).
#: Celery's default amqp transport is kombu's py-amqp (no librabbitmq); Dramatiq's RabbitMQ
#: extra brings pika.
RABBITMQ_SYSTEMS: dict[str, list[str]] = {
    "errands": [],  # the checkout's snapshot, with its [redis,rabbitmq] extras
    "celery_amqp": ["celery"],
    "dramatiq_amqp": ["dramatiq[rabbitmq]"],
}
BACKENDS: dict[str, dict[str, list[str]]] = {
    "redis": REDIS_SYSTEMS,
    "postgres": POSTGRES_SYSTEMS,
    "rabbitmq": RABBITMQ_SYSTEMS,
}
#: errands' extras per backend (Redis stays: the harness's counters live there).
ERRANDS_EXTRAS = {"redis": "redis", "postgres": "redis,postgres", "rabbitmq": "redis,rabbitmq"}
COMMON = ["redis", "hiredis"]
STAMP = ".compare-installed"

#: Table columns: (metric in the JSON lines, title, higher is better).
COLUMNS: list[tuple[str, str, bool]] = [
    ("enqueue", "enqueue/s", True),
    ("batch", "batch/s", True),
    ("drain_noop", "drain/s (noop)", True),
    ("drain_incr", "drain/s (incr)", True),
    ("rtt_p50", "RTT p50 ms", False),
    ("rtt_p99", "RTT p99 ms", False),
]


@dataclass(frozen=True)
class Target:
    """A goal for one metric: errands' figure over a reference's, or errands' figure itself."""

    goal: float
    sense: str  # ">=" or "<="
    #: "best" (the best peer), a system's name (its best variant), or "" (errands' own figure).
    against: str = "best"
    unit: str = ""

    def describe(self) -> str:
        """E.g. `>= 1.5x pgqueuer`, `<= 5 ms`."""
        if not self.against:
            return f"{self.sense} {self.goal:g} {self.unit}".rstrip()
        peer = "" if self.against == "best" else f" {self.against}"
        return f"{self.sense} {self.goal:g}x{peer}"


#: Targets per backend and metric.
TARGETS: dict[str, dict[str, Target]] = {
    "redis": {
        "batch": Target(3.0, ">="),
        "drain_noop": Target(3.0, ">="),
        "drain_incr": Target(3.0, ">="),
        "rtt_p50": Target(1.0, "<="),
    },
    "postgres": {
        "batch": Target(1.0, ">=", "pgqueuer"),
        "drain_noop": Target(1.5, ">=", "pgqueuer"),
        "drain_incr": Target(1.5, ">=", "pgqueuer"),
        "rtt_p50": Target(5.0, "<=", "", "ms"),
    },
    "rabbitmq": {
        "drain_noop": Target(2.0, ">="),
        "drain_incr": Target(2.0, ">="),
    },
}


def log(text: str) -> None:
    """A progress line on stderr (stdout is the table)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# -- Redis, by hand (this script needs nothing outside the standard library) ------------------


@dataclass(frozen=True)
class Redis:
    """The shared server, spoken to in RESP over one short-lived socket per command."""

    host: str
    port: int
    db: int

    @property
    def url(self) -> str:
        """redis:// URL of the benchmark database."""
        return f"redis://{self.host}:{self.port}/{self.db}"

    def command(self, *args: str | int) -> Any:
        """Send one command (after SELECT db) and return the reply of the last."""
        with socket.create_connection((self.host, self.port), timeout=5) as sock:
            stream = sock.makefile("rwb")
            replies = []
            for cmd in (("SELECT", self.db), args):
                parts = [str(arg).encode() for arg in cmd]
                stream.write(b"*%d\r\n" % len(parts))
                for part in parts:
                    stream.write(b"$%d\r\n%s\r\n" % (len(part), part))
                stream.flush()
                replies.append(_read_reply(stream))
            return replies[-1]


def _read_reply(stream: Any) -> Any:
    line = stream.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(f"redis: {rest.decode()}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = stream.read(size + 2)[:-2]
        return data.decode(errors="replace")
    if kind == b"*":
        return [_read_reply(stream) for _ in range(int(rest))]
    raise RuntimeError(f"redis: unexpected reply {line!r}")


def check_redis(server: Redis) -> str:
    """The server's version; exits when it is unreachable or the database is someone else's."""
    try:
        info = server.command("INFO", "server")
    except OSError as exc:
        sys.exit(f"no Redis at {server.host}:{server.port}: {exc}")
    version = next(
        (line.split(":", 1)[1] for line in info.splitlines() if line.startswith("redis_version")),
        "?",
    )
    keys = server.command("DBSIZE")
    if keys and not server.command("EXISTS", "compare:owner"):
        sys.exit(
            f"database {server.db} holds {keys} keys this harness did not write: "
            "pick an unused one with --redis-db"
        )
    return version


# -- PostgreSQL, by hand (the same: no driver outside the standard library) --------------------

#: The comment on every database this script creates: a database of that name without it is
#: someone else's, and is neither used nor dropped.
PG_MARKER = "errands benchmarks/compare: created and dropped by run.py"


@dataclass(frozen=True)
class Postgres:
    """The shared server, spoken to in the simple-query protocol over one short-lived
    connection per statement. Trust (or peer-less local) authentication only: no password."""

    host: str
    port: int
    user: str
    #: The database connected to for CREATE/DROP DATABASE (never written to).
    admin_db: str

    @classmethod
    def from_url(cls, url: str) -> Postgres:
        """From `postgresql://user@host:port/database`."""
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres") or parts.password:
            sys.exit(f"--pg-url {url!r}: want postgresql://user@host:port/database (trust auth)")
        return cls(
            parts.hostname or "127.0.0.1",
            parts.port or 5432,
            unquote(parts.username or "postgres"),
            parts.path.lstrip("/") or "postgres",
        )

    def url(self, database: str) -> str:
        """postgresql:// URL of one database of this server."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def query(self, sql: str) -> list[list[str | None]]:
        """Run one statement (its own implicit transaction) and return its rows as text."""
        with socket.create_connection((self.host, self.port), timeout=30) as sock:
            stream = sock.makefile("rwb")
            params = f"user\0{self.user}\0database\0{self.admin_db}\0\0".encode()
            stream.write(struct.pack("!ii", 8 + len(params), 196608) + params)  # protocol 3.0
            stream.flush()
            _pg_until_ready(stream)
            body = sql.encode() + b"\0"
            stream.write(b"Q" + struct.pack("!i", 4 + len(body)) + body)
            stream.flush()
            rows = _pg_until_ready(stream)
            stream.write(b"X" + struct.pack("!i", 4))
            stream.flush()
            return rows


def _pg_until_ready(stream: Any) -> list[list[str | None]]:
    """Read messages up to ReadyForQuery; return the DataRows, raise the first error."""
    rows: list[list[str | None]] = []
    error = ""
    while True:
        header = stream.read(5)
        if len(header) < 5:
            raise RuntimeError(f"postgres: connection closed{': ' + error if error else ''}")
        kind, size = header[:1], struct.unpack("!i", header[1:])[0]
        body = stream.read(size - 4)
        if kind == b"R" and struct.unpack("!i", body[:4])[0] != 0:
            raise RuntimeError("postgres: the server asks for a password; use trust auth")
        if kind == b"E" and not error:
            fields = {f[:1]: f[1:].decode(errors="replace") for f in body.split(b"\0") if f}
            error = f"{fields.get(b'C', '?')} {fields.get(b'M', '')}"
        elif kind == b"D":
            count, offset, row = struct.unpack("!h", body[:2])[0], 2, []
            for _ in range(count):
                length = struct.unpack("!i", body[offset : offset + 4])[0]
                offset += 4
                row.append(None if length < 0 else body[offset : offset + length].decode())
                offset += max(length, 0)
            rows.append(row)
        elif kind == b"Z":
            if error:
                raise RuntimeError(f"postgres: {error}")
            return rows


def check_postgres(server: Postgres) -> str:
    """The server's version; exits when it is unreachable."""
    try:
        return str(server.query("SHOW server_version")[0][0])
    except (OSError, RuntimeError) as exc:
        sys.exit(f"no usable PostgreSQL at {server.url(server.admin_db)}: {exc}")


def _database_comment(server: Postgres, name: str) -> tuple[bool, str | None]:
    rows = server.query(
        f"SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '{name}'"
    )
    return bool(rows), rows[0][0] if rows else None


def fresh_database(server: Postgres, name: str) -> None:
    """Drop (if it is ours) and create the benchmark database, marked as ours. WITH (FORCE)
    ends connections to that database only: leftovers of our own workers."""
    exists, comment = _database_comment(server, name)
    if exists and comment != PG_MARKER:
        sys.exit(
            f"database {name!r} exists and this harness did not create it: "
            "pick another with --pg-database"
        )
    if exists:
        server.query(f'DROP DATABASE "{name}" WITH (FORCE)')
    server.query(f'CREATE DATABASE "{name}"')
    server.query(f"COMMENT ON DATABASE \"{name}\" IS '{PG_MARKER}'")


def drop_database(server: Postgres, name: str) -> None:
    """Drop the benchmark database when it is ours (the end of a run)."""
    exists, comment = _database_comment(server, name)
    if exists and comment == PG_MARKER:
        server.query(f'DROP DATABASE "{name}" WITH (FORCE)')


# -- RabbitMQ: a vhost of our own per run, through rabbitmqctl -----------------------------------


@dataclass(frozen=True)
class RabbitMQ:
    """The shared server: a TCP check of its AMQP port, and rabbitmqctl (run locally) for the
    run's own vhost. Nothing else on the server is touched."""

    url: str  # amqp://user:password@host:port/ (the vhost is the run's own)
    ctl: str  # the rabbitmqctl command

    @property
    def parts(self) -> Any:
        """The URL, split."""
        return urlsplit(self.url)

    def vhost_url(self, vhost: str) -> str:
        """amqp:// URL of one vhost of this server (its name needs no encoding)."""
        parts = self.parts
        return f"{parts.scheme}://{parts.netloc}/{vhost}"

    def ctl_run(self, *args: str) -> str:
        """Run one rabbitmqctl command; its stdout, or RuntimeError with its stderr."""
        result = subprocess.run([self.ctl, "-q", *args], capture_output=True, text=True, timeout=60)
        if result.returncode:
            error = (result.stderr or result.stdout).strip()
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {error}")
        return result.stdout


def check_rabbitmq(server: RabbitMQ) -> str:
    """The server's version; exits when its AMQP port or rabbitmqctl is unusable."""
    parts = server.parts
    if parts.scheme != "amqp" or not re.fullmatch(r"/?", parts.path or ""):
        sys.exit(f"--amqp-url {server.url!r}: want amqp://user:password@host:port/ (no vhost)")
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 5).close()
    except OSError as exc:
        sys.exit(f"no RabbitMQ at {parts.hostname}:{parts.port or 5672}: {exc}")
    if not shutil.which(server.ctl):
        sys.exit(f"{server.ctl!r} not found: the run makes a vhost of its own with rabbitmqctl")
    try:
        return server.ctl_run("version").strip() or "?"
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        sys.exit(f"rabbitmqctl does not answer: {exc}")


def create_vhost(server: RabbitMQ, vhost: str) -> None:
    """A new vhost (refused if one of that name exists: it would not be ours), with every
    permission for the URL's user."""
    if vhost in server.ctl_run("list_vhosts", "name").split():
        sys.exit(f"vhost {vhost!r} already exists: not ours to use or delete")
    server.ctl_run("add_vhost", vhost)
    user = unquote(server.parts.username or "guest")
    server.ctl_run("set_permissions", "-p", vhost, user, ".*", ".*", ".*")


def delete_vhost(server: RabbitMQ, vhost: str) -> None:
    """Delete the run's vhost, and with it every queue and exchange of the run."""
    server.ctl_run("delete_vhost", vhost)


# -- environments ------------------------------------------------------------------------------


def venv_dir(system: str) -> Path:
    """The virtual environment of one system."""
    return WORK / "venvs" / system


def venv_python(system: str) -> Path:
    """Its interpreter."""
    return venv_dir(system) / "bin" / "python"


def pip(system: str, *args: str) -> None:
    """Run pip in a system's environment; its output goes to a log, shown only on failure."""
    logfile = WORK / "logs" / f"install-{system}.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(venv_python(system)), "-m", "pip", "--disable-pip-version-check", *args]
    with open(logfile, "a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT)
    if code:
        tail = logfile.read_text().splitlines()[-25:]
        raise RuntimeError(f"pip {' '.join(args)} failed ({code}):\n" + "\n".join(tail))


def ensure_venv(system: str, packages: list[str], python: str, upgrade: bool) -> None:
    """Create the environment if missing; install its packages when they changed or asked to
    upgrade (a stamp records what was installed)."""
    target = venv_dir(system)
    if not venv_python(system).exists():
        log(f"{system}: creating {target.relative_to(REPO)}")
        subprocess.check_call([python, "-m", "venv", str(target)])
    wanted = [*packages, "+", *COMMON]
    stamp = target / STAMP
    if not upgrade and stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return
    if packages:
        log(f"{system}: pip install --upgrade {' '.join(packages)}")
        pip(system, "install", "--upgrade", *packages)
    pip(system, "install", *COMMON)  # no --upgrade: never moves the redis-py the system chose
    stamp.write_text(json.dumps(wanted))


def snapshot_errands(source: Path) -> Path:
    """Copy what builds errands (pyproject, README, LICENSE, src/) to a fresh directory, so the
    install sees neither caches nor edits made while the run goes on."""
    dest = WORK / "errands-src"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (source / name).exists():
            shutil.copy2(source / name, dest / name)
    shutil.copytree(
        source / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    return dest


def tree_digest(root: Path) -> str:
    """A short SHA-256 of every file under root (paths and contents), naming the code measured."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def install_errands(source: Path, extras: str) -> str:
    """errands, built from the snapshot and installed non-editable, then its dependencies
    (with the backend's extras; pip only warns about an extra the snapshot lacks); returns the
    snapshot's digest."""
    snapshot = snapshot_errands(source)
    log(f"errands: installing a snapshot of {source} (non-editable)")
    pip("errands", "install", "--no-deps", "--force-reinstall", str(snapshot))
    pip("errands", "install", f"{snapshot}[{extras}]")
    return tree_digest(snapshot)


def _probe_errands(module: str, url: str) -> str:
    """Why the installed errands cannot open `url` with its broker `module` ("" when it can)."""
    probe = f"import errands, {module}; errands.App({url!r}).close()"
    result = subprocess.run(
        [str(venv_python("errands")), "-c", probe], capture_output=True, text=True
    )
    if result.returncode == 0:
        return ""
    return (result.stderr.strip().splitlines() or ["?"])[-1]


def errands_url(server: Redis, requested: str | None) -> tuple[str, str]:
    """The broker URL errands runs on, and a note when it is not Redis.

    The Redis broker is used when the installed errands has it; otherwise SQLite (a file under
    .work), said loudly, so that the rest of the table still comes out."""
    if requested:
        return requested, ""
    url = f"{server.url}?prefix=errands-compare"
    reason = _probe_errands("errands.brokers.redis.broker", url)
    if not reason:
        return url, ""
    fallback = f"sqlite:///{WORK / 'errands-compare.db'}"
    return fallback, f"errands ran on SQLite ({fallback}): its Redis broker is not usable: {reason}"


def errands_amqp_url(
    amqp_vhost_url: str,
    store_dir: Path,
    prefix: str,
    requested: str | None,
    store_kind: str = "redis",
    redis_url: str = "redis://127.0.0.1:6379/13",
) -> tuple[str, str]:
    """errands' RabbitMQ broker URL (the run's vhost, a companion store of a prefix of the
    run's own: on Redis, which a fleet of machines can share, or a SQLite file under
    `store_dir`), and why errands cannot run when that broker is missing (errands is then left
    out, as for PostgreSQL)."""
    if requested:
        return requested, ""
    if store_kind == "sqlite":
        store = quote(f"sqlite:///{store_dir / 'store.db'}", safe="")
    else:
        store = quote(f"{redis_url}?prefix={prefix}-store", safe="")
    url = f"{amqp_vhost_url}?store={store}&prefix={prefix}"
    reason = _probe_errands("errands.brokers.rabbitmq.broker", url)
    for leftover in store_dir.glob("store.db*"):  # the probe's store: start the runner afresh
        leftover.unlink()
    return url, reason and f"errands left out: its RabbitMQ broker is not usable: {reason}"


def errands_pg_url(pg_url: str, requested: str | None) -> tuple[str, str]:
    """The PostgreSQL broker URL errands runs on (schema `errands` in the benchmark database),
    and why errands cannot run when its PostgreSQL broker is missing: a PostgreSQL table with
    errands on another broker would compare nothing."""
    if requested:
        return requested, ""
    url = f"{pg_url}?schema=errands"
    reason = _probe_errands("errands.brokers.postgres.broker", url)
    return url, reason and f"errands left out: its PostgreSQL broker is not usable: {reason}"


# -- running one system ------------------------------------------------------------------------


def kill_groups(pgid_dir: Path) -> None:
    """SIGKILL every worker group a runner left registered (it stops its own when it can)."""
    for entry in pgid_dir.iterdir():
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            os.killpg(int(entry.name), signal.SIGKILL)
            log(f"killed leftover worker group {entry.name} ({entry.read_text()})")
        entry.unlink(missing_ok=True)


def run_system(system: str, env: dict[str, str], out: Any, timeout: float) -> list[dict[str, Any]]:
    """Run one runner in its own session; collect (and append to `out`) its JSON lines."""
    records: list[dict[str, Any]] = []
    pgid_dir = Path(env["BENCH_PGID_DIR"])
    cmd = [str(venv_python(system)), str(PEERS / f"bench_{system}.py")]
    proc = subprocess.Popen(
        cmd, cwd=PEERS, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("{"):
                record = json.loads(line)
                records.append(record)
                out.write(line)
                out.flush()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=timeout)
        if code:
            records.append(_error(system, f"runner exited with {code}", env))
    except subprocess.TimeoutExpired:
        records.append(_error(system, f"runner still going after {timeout:.0f} s: stopped", env))
        stop_runner(proc)
    except BaseException:  # Ctrl-C and the like: leave nothing running behind us
        stop_runner(proc)
        raise
    finally:
        reader.join(timeout=10)
        kill_groups(pgid_dir)
    return records


def record(run_id: str, system: str, metric: str, **extra: Any) -> dict[str, Any]:
    """A record written by this script rather than by a runner (an error, the run's header)."""
    return {"run": run_id, "system": system, "variant": "-", "metric": metric, "value": None,
            "unit": "", **extra}  # fmt: skip


def _error(system: str, text: str, env: dict[str, str]) -> dict[str, Any]:
    log(f"{system}: {text}")
    return record(env["BENCH_RUN_ID"], system, "error", phase="runner", error=text)


def stop_runner(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the runner (it stops its workers), SIGKILL its group after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# -- the table ---------------------------------------------------------------------------------


def _fmt(metric: str, value: float) -> str:
    return f"{value:,.2f}" if metric.startswith("rtt") else f"{value:,.0f}"


def _target_cell(
    target: Target, ours: float, ratio: float, best_of: dict[str, tuple[float, str]]
) -> str:
    """Whether errands' figure meets the target, with the figure it was held against."""
    if not target.against:  # errands' own figure
        value, shown = ours, ""
    elif target.against == "best":
        value, shown = ratio, ""
    elif target.against in best_of:
        reference = best_of[target.against][0]
        value = ours / reference if reference else float("inf")
        shown = f" ({value:.2f}x)"
    else:
        return f"{target.describe()}: no {target.against} figure"
    met = value >= target.goal if target.sense == ">=" else value <= target.goal
    return f"{target.describe()}{shown}: {'met' if met else 'NOT met'}"


def summarize(records: Sequence[dict[str, Any]], backend: str = "redis") -> str:
    """The Markdown table, the ratios errands / best peer, and the notes."""
    values: dict[tuple[str, str, str], dict[str, Any]] = {}
    rows: list[tuple[str, str]] = []
    errors: list[str] = []
    infos: dict[str, dict[str, Any]] = {}
    for rec in records:
        system, variant, metric = rec["system"], rec["variant"], rec["metric"]
        if metric == "info":
            infos[system] = rec
        elif metric == "error":
            errors.append(f"{system} {variant} {rec.get('phase', '')}: {rec.get('error')}")
        elif rec.get("value") is not None:
            values[(system, variant, metric)] = rec
            if variant != "-" and (system, variant) not in rows:
                rows.append((system, variant))
    for rec in records:  # a system that failed before any drain still gets a row
        if rec["metric"] in ("info", "error") and not any(r[0] == rec["system"] for r in rows):
            rows.append((rec["system"], "-"))

    lines = ["| system | variant | " + " | ".join(title for _, title, _ in COLUMNS) + " |"]
    lines.append("|---|---|" + "---:|" * len(COLUMNS))
    seen: set[str] = set()
    for system, variant in rows:
        cells = []
        for metric, _, _ in COLUMNS:
            per_system = metric in ("enqueue", "batch")
            key = (system, "-" if per_system else variant, metric)
            if per_system and system in seen:
                cells.append("")
            elif key in values:
                rec = values[key]
                flag = " †" if rec.get("ran", rec.get("jobs")) != rec.get("jobs") else ""
                cells.append(_fmt(metric, rec["value"]) + flag)
            else:
                cells.append("—")
        seen.add(system)
        lines.append(f"| {system} | {variant} | " + " | ".join(cells) + " |")

    lines += ["", "**errands / best peer**", ""]
    lines.append("| metric | errands | best peer | errands / best peer | target |")
    lines.append("|---|---:|---:|---:|---|")
    for metric, title, higher in COLUMNS:
        pick = max if higher else min
        ours: list[tuple[float, str]] = []
        per_peer: dict[str, list[tuple[float, str]]] = {}
        for (system, variant, name), rec in values.items():
            if name != metric:
                continue
            if system == "errands":
                ours.append((rec["value"], variant))
            else:
                label = system if variant == "-" else f"{system} {variant}"
                per_peer.setdefault(system, []).append((rec["value"], label))
        # Each peer's best variant: the best peer overall, or a target's named peer.
        best_of = {system: pick(entries) for system, entries in per_peer.items()}
        if not ours or not best_of:
            lines.append(f"| {title} | — | — | — | |")
            continue
        our_value, our_variant = pick(ours)
        best_value, best_name = pick(best_of.values())
        ratio = our_value / best_value if best_value else float("inf")
        target = ""
        if metric in TARGETS.get(backend, {}):
            target = _target_cell(TARGETS[backend][metric], our_value, ratio, best_of)
        ours_text = _fmt(metric, our_value) + ("" if our_variant == "-" else f" ({our_variant})")
        lines.append(
            f"| {title} | {ours_text} | {_fmt(metric, best_value)} ({best_name}) | "
            f"{ratio:.2f}x | {target} |"
        )

    notes = []
    for system, info in infos.items():
        versions = ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items())
        broker = f"; broker {info['broker']}" if "broker" in info else ""
        notes.append(f"- {system}: {versions}{broker}; {info.get('config', '')}")
    extra = [rec for rec in records if rec["metric"] == "enqueue_async" and rec.get("value")]
    for rec in extra:
        notes.append(
            f"- errands enqueue_async (one at a time, on its own loop): {rec['value']:,.0f} jobs/s"
        )
    if any("†" in line for line in lines):
        notes.append("- † more jobs ran than were enqueued (some ran twice)")
    for error in errors:
        notes.append(f"- FAILED {error}")
    return "\n".join([*lines, "", *notes])


def load(path: Path) -> list[dict[str, Any]]:
    """Records of a results file (JSON lines)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (each also documented in README.md)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backend", choices=sorted(BACKENDS), default="redis", help="whose queues to compare"
    )
    parser.add_argument("--systems", help="comma-separated subset (default: the backend's all)")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("BENCH_JOBS", 20_000)))
    parser.add_argument("--batch", type=int, default=1000, help="jobs per batch enqueue call")
    parser.add_argument("--rtt", type=int, default=300, help="round-trip samples per variant")
    parser.add_argument("--rtt-max-seconds", type=float, default=30.0)
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="seconds per drain")
    parser.add_argument("--system-timeout", type=float, default=3600.0, help="seconds per system")
    parser.add_argument("--out", type=Path, help="JSON lines (default .work/results-TIME.jsonl)")
    parser.add_argument("--redis-host", default="127.0.0.1")
    parser.add_argument("--redis-port", type=int, default=6379)
    parser.add_argument("--redis-db", type=int, default=13, help="a database of our own")
    parser.add_argument(
        "--pg-url",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="the PostgreSQL server (trust auth) and the database to connect to for CREATE/DROP",
    )
    parser.add_argument(
        "--pg-database", default="errands_compare", help="the database created for the run"
    )
    parser.add_argument(
        "--amqp-url",
        default="amqp://guest:guest@127.0.0.1:5672/",
        help="the RabbitMQ server (--backend rabbitmq); the run makes a vhost of its own",
    )
    parser.add_argument(
        "--amqp-store",
        choices=["redis", "sqlite"],
        default="redis",
        help="errands' companion store on RabbitMQ: Redis (shared by many machines, the "
        "default) or a SQLite file (one machine)",
    )
    parser.add_argument(
        "--rabbitmqctl", default="rabbitmqctl", help="the command that adds and deletes the vhost"
    )
    parser.add_argument("--errands-url", help="errands' broker URL (default: from the backend)")
    parser.add_argument("--errands-source", type=Path, default=REPO, help="checkout to install")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the venvs")
    parser.add_argument("--upgrade", action="store_true", help="re-resolve every peer to latest")
    parser.add_argument("--summarize", type=Path, help="print the table of a results file; no run")
    return parser.parse_args(argv)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def print_summary(path: Path) -> None:
    """The header(s) and table of an earlier results file."""
    records = load(path)
    backend = "redis"
    for meta in (rec for rec in records if rec["metric"] == "run"):
        backend = meta.get("backend", "redis")  # files from before --backend: Redis
        print(meta["header"] + "\n")
        if meta.get("note"):
            print(f"**Note:** {meta['note']}\n")
    print(summarize(records, backend))


def main(argv: Sequence[str] | None = None) -> int:
    """Install, run every system in turn, print the table."""
    args = parse_args(argv)
    # A SIGTERM unwinds like Ctrl-C, through the code that stops runners and flushes Redis.
    signal.signal(signal.SIGTERM, _terminate)
    if args.summarize:
        print_summary(args.summarize)
        return 0
    catalog = BACKENDS[args.backend]
    systems = [name.strip() for name in (args.systems or ",".join(catalog)).split(",")]
    systems = [name for name in systems if name]
    unknown = [name for name in systems if name not in catalog]
    if unknown:
        sys.exit(f"unknown {args.backend} systems {unknown}; known: {', '.join(catalog)}")
    if args.redis_db == 0:
        sys.exit("--redis-db 0 is everybody's default database: pick one of our own")
    server = Redis(args.redis_host, args.redis_port, args.redis_db)
    redis_version = check_redis(server)
    pg: Postgres | None = None
    if args.backend == "postgres":
        pg = Postgres.from_url(args.pg_url)
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", args.pg_database) or (
            args.pg_database == pg.admin_db
        ):
            sys.exit(f"--pg-database {args.pg_database!r}: want a new lower-case name of our own")
        pg_version = check_postgres(pg)
    started = time.monotonic()
    run_id = time.strftime("%Y%m%dT%H%M%S")
    mq: RabbitMQ | None = None
    vhost = ""
    if args.backend == "rabbitmq":
        mq = RabbitMQ(args.amqp_url, args.rabbitmqctl)
        mq_version = check_rabbitmq(mq)
        vhost = f"errands_compare_{run_id}"
    out_path = args.out or WORK / f"results-{run_id}.jsonl"
    out_path.parent.mkdir(parents=True, exist_ok=True)

    ready: list[str] = []
    failures: list[dict[str, Any]] = []
    errands_digest = ""
    for system in systems:
        try:
            ensure_venv(system, catalog[system], args.python, args.upgrade)
            if system == "errands":
                source = args.errands_source.resolve()
                errands_digest = install_errands(source, ERRANDS_EXTRAS[args.backend])
            ready.append(system)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            log(f"{system}: install FAILED: {exc}")
            failures.append(record(run_id, system, "error", phase="install", error=str(exc)[:500]))
    url, url_note = ("", "")
    vhost_made = False
    try:
        if pg:
            fresh_database(pg, args.pg_database)  # the probe below may open it
        if mq:
            create_vhost(mq, vhost)
            vhost_made = True
            log(f"RabbitMQ vhost {vhost} created (deleted at the end)")
        if "errands" in ready and mq:
            store_dir = WORK / f"rabbitmq-store-{run_id}"
            store_dir.mkdir(parents=True, exist_ok=True)
            url, url_note = errands_amqp_url(
                mq.vhost_url(vhost),
                store_dir,
                f"errands-compare-{run_id}",
                args.errands_url,
                args.amqp_store,
                f"redis://{args.redis_host}:{args.redis_port}/{args.redis_db}",
            )
            if url_note:
                ready.remove("errands")
                failures.append(record(run_id, "errands", "error", phase="broker", error=url_note))
        elif "errands" in ready and pg:
            url, url_note = errands_pg_url(pg.url(args.pg_database), args.errands_url)
            if url_note:  # no PostgreSQL broker: errands has no row in this comparison
                ready.remove("errands")
                failures.append(record(run_id, "errands", "error", phase="broker", error=url_note))
        elif "errands" in ready:
            url, url_note = errands_url(server, args.errands_url)
        if url_note:
            log(f"NOTE: {url_note}")
        installed = time.monotonic()

        load1 = os.getloadavg()[0]
        where = f"Redis {redis_version} at {server.url}"
        if pg:
            where = (
                f"PostgreSQL {pg_version} at {pg.url(args.pg_database)} (created afresh for "
                f"each system), the jobs' counters in {where}"
            )
        if mq:
            where = (
                f"RabbitMQ {mq_version} at {mq.vhost_url(vhost).split('@')[-1]} (a vhost of the "
                f"run's own), the jobs' counters in {where}"
            )
        header = (
            f"run {run_id} ({args.backend}): {args.jobs:,} jobs, {args.rtt} round trips, "
            f"{where}, {os.cpu_count()} cores, load {load1:.2f} before the run"
        )
        if errands_digest:
            header += f"; errands from {args.errands_source.resolve()} (snapshot {errands_digest})"
        log(header)
        if load1 > 0.5:
            log("the machine is not idle (load > 0.5): figures will be lower and noisier")
        amqp_url = mq.vhost_url(vhost) if mq else ""
        records = run_all(
            args, run_id, ready, failures, header, url, url_note, out_path, pg, amqp_url
        )
    finally:
        shutil.rmtree(WORK / f"rabbitmq-store-{run_id}", ignore_errors=True)
        if mq and vhost_made:
            try:
                delete_vhost(mq, vhost)  # ours, made above, and only at the end
                log(f"RabbitMQ vhost {vhost} deleted")
            except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
                log(f"could not delete vhost {vhost}: {exc}")
        if pg:
            with contextlib.suppress(OSError, RuntimeError):
                drop_database(pg, args.pg_database)  # ours (marked), and only at the end
    elapsed = time.monotonic() - started
    load_after = os.getloadavg()[0]
    print(f"{header}\n")
    if url_note:
        print(f"**Note:** {url_note}\n")
    print(summarize(records, args.backend))
    print(
        f"\nTook {elapsed / 60:.1f} min ({(installed - started) / 60:.1f} installing), "
        f"load {load_after:.2f} at the end. "
        f"Results: {out_path}; worker logs: {WORK / 'logs' / run_id}"
    )
    return 0


def run_all(
    args: argparse.Namespace,
    run_id: str,
    ready: list[str],
    failures: list[dict[str, Any]],
    header: str,
    url: str,
    url_note: str,
    out_path: Path,
    pg: Postgres | None,
    amqp_url: str = "",
) -> list[dict[str, Any]]:
    """Run each installed system in turn (a fresh PostgreSQL database for each); the records."""
    server = Redis(args.redis_host, args.redis_port, args.redis_db)
    records: list[dict[str, Any]] = list(failures)
    with open(out_path, "a") as out, tempfile.TemporaryDirectory(prefix="compare-pgids-") as pgids:
        meta = record(
            run_id, "-", "run", header=header, errands_url=url, note=url_note, backend=args.backend
        )
        out.write(json.dumps(meta) + "\n")
        for rec in failures:
            out.write(json.dumps(rec) + "\n")
        env = {
            **os.environ,
            "PYTHONPATH": "",  # nothing of the caller's environment leaks into a runner
            "PYTHONPYCACHEPREFIX": str(WORK / "pycache"),
            "BENCH_RUN_ID": run_id,
            "BENCH_JOBS": str(args.jobs),
            "BENCH_BATCH": str(args.batch),
            "BENCH_RTT": str(args.rtt),
            "BENCH_RTT_MAX_S": str(args.rtt_max_seconds),
            "BENCH_DRAIN_TIMEOUT_S": str(args.drain_timeout),
            "BENCH_REDIS_URL": server.url,
            "BENCH_ERRANDS_URL": url,
            "BENCH_LOG_DIR": str(WORK / "logs" / run_id),
            "BENCH_PGID_DIR": pgids,
        }
        if pg:
            env["BENCH_PG_URL"] = pg.url(args.pg_database)
        if amqp_url:
            env["BENCH_AMQP_URL"] = amqp_url
        try:
            for index, system in enumerate(ready):
                log(f"== {system}")
                if pg and index:
                    # Each system starts on an empty database: no table, bloat or autovacuum
                    # debt of the one before (the first got it just before errands' probe).
                    fresh_database(pg, args.pg_database)
                records += run_system(system, env, out, args.system_timeout)
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                server.command("FLUSHDB")  # leave our database empty
    return records


if __name__ == "__main__":
    sys.exit(main())
