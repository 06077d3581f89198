"""What every runner shares: settings, the two jobs' counters, worker processes, the phases.

A runner (`bench_<system>.py`) runs in that system's own virtual environment and needs nothing
here but redis-py and the standard library. It describes its system as a `Peer` (how to
enqueue, which worker command to start, how to wait for one result) and calls `run(peer)`,
which measures, for each worker variant:

- enqueue/s: N no-op jobs one at a time from one producer (first variant only);
- batch enqueue/s: N jobs through the system's batch API in batches of BENCH_BATCH (first
  variant only, where the system has one);
- drain/s from a full queue of N jobs, one worker process, for the no-op and for the INCR job;
- round trip (enqueue, then wait for the result) p50/p99 over BENCH_RTT sequential samples.

Each figure is one JSON object on stdout; `run.py` collects them. Settings come from the
environment so that a runner also runs alone:

    BENCH_JOBS=2000 .work/venvs/rq/bin/python peers/bench_rq.py
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal, Protocol, TypeVar

import redis

T = TypeVar("T")
Job = Literal["noop", "incr"]
JOB_KINDS: tuple[Job, ...] = ("noop", "incr")

HERE = Path(__file__).resolve().parent
JOBS = int(os.environ.get("BENCH_JOBS", "20000"))
BATCH = int(os.environ.get("BENCH_BATCH", "1000"))
RTT_SAMPLES = int(os.environ.get("BENCH_RTT", "300"))
RTT_MAX_S = float(os.environ.get("BENCH_RTT_MAX_S", "30"))
RTT_WARMUP = 5
DRAIN_TIMEOUT_S = float(os.environ.get("BENCH_DRAIN_TIMEOUT_S", "600"))
#: Seconds a worker gets to exit after SIGTERM before its process group is killed.
STOP_GRACE_S = float(os.environ.get("BENCH_STOP_GRACE_S", "5"))
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
#: The PostgreSQL database of the postgres backend: run.py creates it afresh for each system
#: and drops it at the end (a runner started alone needs it to exist).
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/errands_compare")
#: The RabbitMQ vhost of the rabbitmq backend: run.py creates one per run (errands_compare_<run>)
#: and deletes it at the end (a runner started alone needs a vhost of its own to exist).
AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/errands_compare")
LOG_DIR = Path(os.environ.get("BENCH_LOG_DIR", str(HERE.parent / ".work" / "logs")))
#: run.py's safety net: a file per live worker process group, which it kills if we cannot.
PGID_DIR = os.environ.get("BENCH_PGID_DIR")
RUN_ID = os.environ.get("BENCH_RUN_ID", "adhoc")

#: The realistic job INCRs this key; the harness reads it to count jobs run.
COUNTER = "compare:incr"
#: The no-op job counts in memory; each worker process writes its count into this hash.
NOOP_COUNTS = "compare:noop"
#: Set on every flush: a database holding keys but not this one is not ours to flush.
MARKER = "compare:owner"
#: How often a worker process publishes its no-op count, and how often the harness looks.
FLUSH_EVERY_S = 0.005
POLL_EVERY_S = 0.005


# -- output ------------------------------------------------------------------------------------


def emit(
    system: str, variant: str, metric: str, value: float | None, unit: str, **extra: Any
) -> None:
    """Print one result as a JSON line (run.py reads stdout; everything else goes to stderr)."""
    record = {
        "run": RUN_ID,
        "system": system,
        "variant": variant,
        "metric": metric,
        "value": None if value is None else round(value, 3),
        "unit": unit,
        **extra,
    }
    print(json.dumps(record), flush=True)


def note(text: str) -> None:
    """A progress line for the person watching (stderr, so it never mixes with results)."""
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def versions(*dists: str) -> dict[str, str]:
    """Installed versions of these distributions, for the record."""
    found = {}
    for dist in dists:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = "missing"
    return found


# -- redis side channel ------------------------------------------------------------------------

_clients: dict[object, Any] = {}


def sync_client() -> redis.Redis:
    """This process's synchronous client (one per pid: a client must not cross a fork)."""
    key = ("sync", os.getpid())
    if key not in _clients:
        _clients[key] = redis.Redis.from_url(REDIS_URL)
    return _clients[key]  # type: ignore[no-any-return]


def async_client() -> Any:
    """An asyncio client for the running loop (redis-py binds connections to one loop)."""
    import redis.asyncio

    key = ("async", os.getpid(), id(asyncio.get_running_loop()))
    if key not in _clients:
        # redis-py's asyncio pool refuses a 101st connection; a worker may run 100 jobs at once
        # besides its own traffic, so the cap must not be what fails or throttles a job.
        _clients[key] = redis.asyncio.Redis.from_url(REDIS_URL, max_connections=1000)
    return _clients[key]


def guard_database() -> None:
    """Refuse to flush a database that holds someone else's keys (it must be empty or ours)."""
    client = sync_client()
    if client.dbsize() and not client.exists(MARKER):
        raise SystemExit(
            f"{REDIS_URL} holds {client.dbsize()} keys that this harness did not write; "
            "pick an unused database with --redis-db"
        )


def flush() -> None:
    """Empty the benchmark database (FLUSHDB on our own database only, never FLUSHALL)."""
    guard_database()
    client = sync_client()
    client.flushdb()
    client.set(MARKER, "errands benchmarks/compare")


def clear_counts() -> None:
    """Zero both job counters without touching the queues."""
    sync_client().delete(COUNTER, NOOP_COUNTS)


def jobs_done(job: Job) -> int:
    """How many jobs of this kind have run since the last clear_counts()."""
    client = sync_client()
    if job == "incr":
        return int(client.get(COUNTER) or 0)
    return sum(int(count) for count in client.hvals(NOOP_COUNTS))


# -- the jobs ----------------------------------------------------------------------------------
# The no-op job does no I/O at all: it adds one to an in-memory count, and a daemon thread of
# the worker process publishes that count (HSET, at most every 5 ms) for the harness to watch.
# The realistic job is one INCR through this process's client: its own completion signal.

_count_lock = threading.Lock()
_ran = 0
_publisher_pid = 0


def noop() -> None:
    """The no-op job's body (sync or async systems alike: it never blocks)."""
    global _ran
    with _count_lock:  # `+=` is not atomic across threads
        _ran += 1
    if _publisher_pid != os.getpid():
        _start_publisher()


def _start_publisher() -> None:
    global _publisher_pid
    with _count_lock:
        if _publisher_pid == os.getpid():
            return
        _publisher_pid = os.getpid()
    threading.Thread(target=_publish_counts, name="bench-noop-count", daemon=True).start()


def _publish_counts() -> None:
    client, pid, sent = redis.Redis.from_url(REDIS_URL), str(os.getpid()), -1
    while True:
        ran = _ran
        if ran != sent:
            client.hset(NOOP_COUNTS, pid, ran)
            sent = ran
        time.sleep(FLUSH_EVERY_S)


def incr_sync() -> None:
    """The realistic job for sync systems: one INCR with redis-py's blocking client."""
    sync_client().incr(COUNTER)


async def incr_async() -> None:
    """The realistic job for async systems: one INCR with redis-py's asyncio client."""
    await async_client().incr(COUNTER)


# -- worker processes --------------------------------------------------------------------------


def python_bin(name: str) -> str:
    """A console script of the running venv (not resolved: the venv's bin/ is the point)."""
    return str(Path(sys.executable).parent / name)


def _pgid_file(pgid: int) -> Path | None:
    return Path(PGID_DIR) / str(pgid) if PGID_DIR else None


def start_worker(
    cmd: Sequence[str], name: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start one worker in a session (and process group) of its own, logging to LOG_DIR."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        **(env or {}),
    }
    with open(LOG_DIR / f"{name}.log", "ab") as log:
        log.write(f"\n=== {time.strftime('%F %T')} {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(cmd),
            cwd=HERE,
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its children (prefork, processes) share its group
        )
    path = _pgid_file(proc.pid)
    if path:
        path.write_text(name)
    return proc


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_gone(proc: subprocess.Popen[bytes], pgid: int, seconds: float) -> bool:
    """Whether the worker and every process of its group ended within `seconds` (a prefork
    child may outlive its parent for a moment)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(pgid):
            return True
        time.sleep(0.02)
    return False


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the worker's whole group, SIGKILL it after STOP_GRACE_S; wait until it is gone."""
    pgid = proc.pid  # start_new_session: the worker leads its own group
    for sig, grace in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        if _wait_gone(proc, pgid, grace):
            break
    path = _pgid_file(pgid)
    if path:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def running_worker(
    cmd: Sequence[str], name: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A worker for the duration of the block, stopped however the block ends."""
    proc = start_worker(cmd, name, env)
    try:
        yield proc
    finally:
        stop_worker(proc)


def stop_on_sigterm() -> None:
    """Turn SIGTERM (run.py giving up on us) into SystemExit so `finally` blocks stop workers;
    under run.py, also SIGTERM ourselves should run.py die without doing so (SIGKILL)."""

    def leave(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)
    if PGID_DIR:
        parent = os.getppid()

        def watch_parent() -> None:
            while os.getppid() == parent:
                time.sleep(1)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch_parent, name="bench-parent-watch", daemon=True).start()


# -- measurements ------------------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> float:
    """Seconds fn() took."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass
class Drain:
    """Progress samples of one drain: (seconds since the worker started, jobs done)."""

    jobs: int
    samples: list[tuple[float, int]] = field(default_factory=list)

    def first_reaching(self, count: float) -> tuple[float, int]:
        """The first sample at or past `count` jobs."""
        return next(sample for sample in self.samples if sample[1] >= count)

    def steady_rate(self) -> float:
        """Jobs/s between 10% and 90% of the jobs: start-up and the tail left out."""
        t_lo, c_lo = self.first_reaching(0.1 * self.jobs)
        t_hi, c_hi = self.first_reaching(0.9 * self.jobs)
        return (c_hi - c_lo) / max(t_hi - t_lo, 1e-9)


def drain(
    system: str,
    variant: str,
    job: Job,
    cmd: Sequence[str],
    jobs: int = JOBS,
    env: dict[str, str] | None = None,
) -> None:
    """The queue holds `jobs` jobs of kind `job`: start one worker and watch the count."""
    clear_counts()
    name = f"{system}-{variant}-{job}"
    record = Drain(jobs)
    start = time.perf_counter()
    with running_worker(cmd, name, env) as proc:
        while True:
            done = jobs_done(job)
            now = time.perf_counter() - start
            record.samples.append((now, done))
            if done >= jobs:
                break
            if proc.poll() is not None:
                raise RuntimeError(
                    f"worker exited ({proc.returncode}) after {done}/{jobs} jobs; "
                    f"see {LOG_DIR / name}.log"
                )
            if now > DRAIN_TIMEOUT_S:
                raise TimeoutError(f"{done}/{jobs} jobs after {DRAIN_TIMEOUT_S:.0f} s")
            time.sleep(POLL_EVERY_S)
        finished = now
    started = record.first_reaching(1)[0]
    ran = jobs_done(job)  # after the stop: more than `jobs` means some job ran twice
    emit(
        system,
        variant,
        f"drain_{job}",
        record.steady_rate(),
        "jobs/s",
        jobs=jobs,
        from_start=round(jobs / finished, 1),
        startup_s=round(started, 3),
        seconds=round(finished, 3),
        ran=ran,
    )
    note(f"{name}: {record.steady_rate():,.0f} jobs/s steady ({finished:.1f} s in all)")


def _percentile(sorted_samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted samples."""
    rank = max(1, min(len(sorted_samples), round(q * len(sorted_samples) + 0.5)))
    return sorted_samples[rank - 1]


def emit_round_trips(system: str, variant: str, samples: Sequence[float]) -> None:
    """p50 and p99 of round-trip samples (seconds), in ms."""
    ordered = sorted(samples)
    n = len(ordered)
    emit(system, variant, "rtt_p50", statistics.median(ordered) * 1000, "ms", n=n)
    emit(system, variant, "rtt_p99", _percentile(ordered, 0.99) * 1000, "ms", n=n)
    note(f"{system}-{variant}: round trip p50 {statistics.median(ordered) * 1000:.2f} ms (n={n})")


def sample_round_trips(one: Callable[[], object], expect: object = 3) -> list[float]:
    """Time sequential round trips (after RTT_WARMUP untimed ones, which also wait for the
    worker to come up), until RTT_SAMPLES or RTT_MAX_S."""
    for _ in range(RTT_WARMUP):
        _check(one(), expect)
    samples: list[float] = []
    deadline = time.perf_counter() + RTT_MAX_S
    while len(samples) < RTT_SAMPLES and time.perf_counter() < deadline:
        start = time.perf_counter()
        value = one()
        samples.append(time.perf_counter() - start)
        _check(value, expect)
    return samples


async def sample_round_trips_async(
    one: Callable[[], Awaitable[object]], expect: object = 3
) -> list[float]:
    """sample_round_trips for async clients, timed inside their own loop (no thread hop)."""
    for _ in range(RTT_WARMUP):
        _check(await one(), expect)
    samples: list[float] = []
    deadline = time.perf_counter() + RTT_MAX_S
    while len(samples) < RTT_SAMPLES and time.perf_counter() < deadline:
        start = time.perf_counter()
        value = await one()
        samples.append(time.perf_counter() - start)
        _check(value, expect)
    return samples


def _check(value: object, expect: object) -> None:
    if expect is not None and value != expect:
        raise AssertionError(f"round trip returned {value!r}, expected {expect!r}")


# -- async producers ---------------------------------------------------------------------------


def new_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when uvloop is installed (errands' producer runs on one), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class LoopThread:
    """An event loop (uvloop when installed, as errands' own producer uses) in a daemon thread,
    so that the sync driver can call an async client: one hop per call, and each timed loop
    (N enqueues, N round trips) runs whole inside one call."""

    def __init__(self) -> None:
        self.loop = new_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-loop", daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the loop and wait for its value."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


# -- the driver --------------------------------------------------------------------------------


class Peer(Protocol):
    """One system, as the driver sees it; every method is blocking. A peer may also define
    `worker_env(variant) -> dict[str, str]`: extra environment for that variant's workers."""

    # Read-only properties, so that a runner's class attributes (a tuple of variants) match.
    @property
    def system(self) -> str:
        """The system's name, as in the table."""
        ...

    @property
    def variants(self) -> Sequence[str]:
        """Worker configurations, the main one first (enqueue figures are taken with it)."""
        ...

    @property
    def has_batch(self) -> bool:
        """Whether the system has an API that enqueues many jobs in one call."""
        ...

    def info(self) -> dict[str, Any]:
        """Versions and a one-line description of the configuration."""
        ...

    def reset(self) -> None:
        """Empty the queues (and zero the counters) before a phase."""
        ...

    def enqueue(self, variant: str, job: Job, n: int) -> None:
        """Enqueue n jobs one at a time."""
        ...

    def enqueue_batch(self, variant: str, job: Job, n: int) -> None:
        """Enqueue n jobs in batches of BATCH (only called when has_batch)."""
        ...

    def worker(self, variant: str, phase: Job | Literal["rtt"]) -> list[str]:
        """The command of one worker process for this variant and phase."""
        ...

    def round_trips(self, variant: str) -> list[float]:
        """Round-trip samples (seconds) against a running worker; see sample_round_trips."""
        ...


def run(peer: Peer) -> None:
    """Every phase for every variant; a phase that fails is recorded and the rest go on."""
    if threading.current_thread() is threading.main_thread():  # else the runner's main did
        stop_on_sigterm()
    system = peer.system
    emit(system, "-", "info", None, "", **peer.info())
    for index, variant in enumerate(peer.variants):
        for job in JOB_KINDS:
            phase = functools.partial(_drain_phase, peer, variant, job, index == 0)
            guarded(system, variant, f"drain_{job}", phase)
        guarded(system, variant, "rtt", functools.partial(_rtt_phase, peer, variant))


def guarded(system: str, variant: str, name: str, body: Callable[[], None]) -> None:
    """Run one phase; a failure is recorded (and printed) instead of ending the run."""
    try:
        body()
    except Exception as exc:  # one failed phase must not cost the others
        note(f"{system}-{variant} {name} FAILED: {exc!r}")
        traceback.print_exc(file=sys.stderr)
        emit(system, variant, "error", None, "", phase=name, error=f"{type(exc).__name__}: {exc}")


def worker_env(peer: Peer, variant: str) -> dict[str, str] | None:
    """Extra environment of the variant's workers, for a peer that defines `worker_env` (a
    setting its worker reads when it imports the runner, such as a pool size)."""
    extra: Callable[[str], dict[str, str]] | None = getattr(peer, "worker_env", None)
    return extra(variant) if extra else None


def _drain_phase(peer: Peer, variant: str, job: Job, first: bool) -> None:
    peer.reset()
    system = peer.system
    if first and job == "noop":
        # The single-enqueue figure: N jobs one at a time, which also fill this drain's queue.
        seconds = timed(lambda: peer.enqueue(variant, job, JOBS))
        emit(system, "-", "enqueue", JOBS / seconds, "jobs/s", jobs=JOBS, seconds=round(seconds, 3))
        note(f"{system}: enqueue {JOBS / seconds:,.0f} jobs/s one at a time")
    elif first and peer.has_batch:
        seconds = timed(lambda: peer.enqueue_batch(variant, job, JOBS))
        emit(
            system,
            "-",
            "batch",
            JOBS / seconds,
            "jobs/s",
            jobs=JOBS,
            batch=BATCH,
            seconds=round(seconds, 3),
        )
        note(f"{system}: batch enqueue {JOBS / seconds:,.0f} jobs/s")
    elif peer.has_batch:
        peer.enqueue_batch(variant, job, JOBS)
    else:
        peer.enqueue(variant, job, JOBS)
    drain(system, variant, job, peer.worker(variant, job), env=worker_env(peer, variant))


def _rtt_phase(peer: Peer, variant: str) -> None:
    peer.reset()
    name = f"{peer.system}-{variant}-rtt"
    with running_worker(peer.worker(variant, "rtt"), name, worker_env(peer, variant)):
        samples = peer.round_trips(variant)
    emit_round_trips(peer.system, variant, samples)
