"""The treasure hunt behind `errands demo`: jobs search many small files for one word.

One file among many holds "treasure". Search jobs over ranges of files go into a broker as one
`errands.group` (one atomic write); an in-process Worker runs them in its process pool; the
first job that returns a path has the rest of the group cancelled. This module holds the task
and the driver; drawing the progress and the report is cli/demo.py's.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from errands import codec
from errands.app import App
from errands.job import TERMINAL_STATES, WAITING_STATES, Job, JobId, JobState
from errands.settings import Settings
from errands.task import Task
from errands.worker.worker import Worker
from errands.workflow.canvas import group

WORD = "treasure"
QUEUE = "demo"
#: Words for the decoy text; none contains WORD, and words are space-separated, so WORD can
#: only appear where it is planted. (One string reads better than a 56-line list literal.)
VOCABULARY = tuple(
    (  # noqa: SIM905
        "amber anchor atlas beacon bramble canyon cedar cobalt compass copper coral dune ember "
        "fable fern flint galleon harbor hollow island jade lantern ledger lichen map marsh "
        "meadow moss nomad oak opal parrot pebble pirate quarry quill raven reef ridge river "
        "rope sable sail sextant shore silver spruce star tide timber trail tundra velvet "
        "voyage willow wreck"
    ).split()
)
#: How often the driver looks at the jobs. A find is acted on within this long; it is short
#: because a 100-file search takes a few milliseconds, so every poll interval lets more jobs
#: run that the find would have cancelled. A poll is one counts() and one small get().
POLL = timedelta(milliseconds=20)
#: The demo's lease keeper ticks this often, so a cancel request reaches a running job fast.
EXTEND_EVERY = timedelta(milliseconds=250)
#: A search job ends within milliseconds, so the worker never needs the usual 30 s to drain.
GRACE = timedelta(seconds=5)

Progress = Callable[[str, int, int], None]
"""on_progress(phase, done, total): phase "files" while writing them, then "jobs"."""


def file_name(index: int) -> str:
    """The name of file number `index`."""
    return f"file-{index:05d}.txt"


def search_files(paths_dir: str, start: int, stop: int) -> str | None:
    """The path of the first file numbered start..stop-1 that holds WORD, else None."""
    for index in range(start, stop):
        path = os.path.join(paths_dir, file_name(index))
        with open(path, encoding="utf-8") as text:
            if WORD in text.read():
                return path
    return None


def register(target: App) -> Task[[str, int, int], str | None]:
    """Register the search task on `target` (the same name on every App that runs it)."""
    return target.task(name="errands.demo.search", queue=QUEUE, pool="process", max_attempts=1)(
        search_files
    )


# Process-pool children import this App for its registry (it never opens its broker); the
# driver enqueues and runs the jobs through its own App with the same task registered.
app = App(os.environ.get("ERRANDS_DEMO_URL", "memory://"))
search = register(app)


@dataclass(frozen=True, slots=True)
class Tally:
    """How the search went, from the enqueue to the last job's end."""

    treasure: str | None  # the path a job returned
    found_by: JobId | None
    jobs: int
    states: Counter[JobState]  # every job's final state
    cancelled_running: int  # of the cancelled jobs, those that had started
    search_took: timedelta  # from the enqueue to the job that found the treasure


@dataclass(frozen=True, slots=True)
class Report:
    """How the hunt went."""

    planted: str  # the path the treasure was written to
    tally: Tally
    files_took: timedelta  # writing the files
    total_took: timedelta


@dataclass(frozen=True, slots=True)
class Hunt:
    """What to search and with what."""

    directory: Path
    broker_url: str
    files: int = 10_000
    chunk: int = 100
    processes: int = 2
    seed: int = 0


def write_files(directory: Path, count: int, seed: int, on_progress: Progress) -> Path:
    """`count` small files of random words in `directory`; returns the one holding WORD."""
    rng = random.Random(seed)
    planted = rng.randrange(count)
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        words = rng.choices(VOCABULARY, k=rng.randint(20, 60))
        if index == planted:
            words.insert(rng.randrange(len(words) + 1), WORD)
        lines = (" ".join(words[i : i + 10]) for i in range(0, len(words), 10))
        _write(directory / file_name(index), ("\n".join(lines) + "\n").encode())
        if index % 500 == 499 or index == count - 1:
            on_progress("files", index + 1, count)
    return directory / file_name(planted)


def _write(path: Path, data: bytes) -> None:
    # os.open/os.write: about twice as fast as Path.write_text for 10,000 tiny files.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


async def hunt(plan: Hunt, on_progress: Progress) -> Report:
    """Write the files, search them with a process-pool worker, stop at the first find."""
    started = time.monotonic()
    hunter = App(plan.broker_url, settings=replace(Settings.from_env(), extend_every=EXTEND_EVERY))
    task = register(hunter)
    hunter.import_ref = f"{__name__}:app"
    # Producer, watcher and worker share this loop: the App's portal adopts it before first use.
    hunter.portal.adopt(asyncio.get_running_loop())
    worker = hunter.worker(
        queues=[QUEUE],
        pool="process",
        processes=plan.processes,
        concurrency=plan.processes,
        grace=GRACE,
    )
    # Started first, so its children start while the files are written.
    runner = asyncio.create_task(worker.run(), name="errands-demo-worker")
    try:
        planted = await asyncio.to_thread(
            write_files, plan.directory, plan.files, plan.seed, on_progress
        )
        files_took = timedelta(seconds=time.monotonic() - started)
        tally = await _search(hunter, task, plan, runner, on_progress)
    finally:
        await _stop(worker, runner)
        await hunter.close_async()
    return Report(str(planted), tally, files_took, timedelta(seconds=time.monotonic() - started))


async def _search(
    hunter: App,
    task: Task[[str, int, int], str | None],
    plan: Hunt,
    runner: asyncio.Task[int],
    on_progress: Progress,
) -> Tally:
    where = str(plan.directory)
    ranges = [(where, a, min(a + plan.chunk, plan.files)) for a in range(0, plan.files, plan.chunk)]
    enqueued_at = time.monotonic()
    searches = await group(*[task.call(*one) for one in ranges]).enqueue_async()
    ids = [handle.id for handle in searches.jobs]
    found = await _watch(hunter, ids, runner, on_progress)
    search_took = timedelta(seconds=time.monotonic() - enqueued_at)
    found_by, treasure = found if found else (None, None)
    # The finder has completed, so a cancel leaves it be: waiting searches end at once, running
    # ones get a request.
    asked = await searches.cancel_async()
    running = {job.id for job in asked if job.state is JobState.RUNNING}
    # Running jobs learn of the cancel at the lease keeper's next tick; wait for them to end.
    final = await hunter.call_broker(lambda b: b.wait_done(ids, timedelta(seconds=10)))
    states = Counter(job.state for job in final)
    on_progress("jobs", states[JobState.COMPLETED], len(ids))
    return Tally(
        treasure=treasure,
        found_by=found_by,
        jobs=len(ids),
        states=states,
        cancelled_running=sum(
            job.id in running and job.state is JobState.CANCELLED for job in final
        ),
        search_took=search_took,
    )


async def _watch(
    hunter: App, ids: Sequence[JobId], runner: asyncio.Task[int], on_progress: Progress
) -> tuple[JobId, str] | None:
    """Poll until a job returns a path (its id and the path) or every job has ended (None).

    Each poll counts the jobs per state, which moves the progress bar, and reads only the jobs
    that may have ended since the last poll: a worker claims in id order, so those are among
    the first `started` ids. Reading every unfinished job instead would cost the worker's loop
    (in this same process) more than the search itself when jobs are many and short.
    """
    looked_at: set[JobId] = set()  # ended jobs already read
    while True:
        if runner.done():
            runner.result()  # raises the worker's error, if it had one
            raise RuntimeError("the demo's worker stopped before the search ended")
        states = await _states(hunter)
        ended = sum(states[state] for state in TERMINAL_STATES)
        on_progress("jobs", ended, len(ids))
        last = ended >= len(ids)
        started = ids if last else ids[: len(ids) - sum(states[s] for s in WAITING_STATES)]
        fresh = [job_id for job_id in started if job_id not in looked_at]
        for job in await _get(hunter, fresh) if fresh else []:
            path = _returned(job)
            if path is not None:
                return job.id, path
            if job.state.terminal:
                looked_at.add(job.id)
        if last:
            return None
        await asyncio.sleep(POLL.total_seconds())


async def _states(hunter: App) -> Counter[JobState]:
    counts = await hunter.call_broker(lambda b: b.counts([QUEUE]))
    return Counter(counts.by_queue.get(QUEUE, {}))


async def _get(hunter: App, ids: list[JobId]) -> list[Job]:
    return await hunter.call_broker(lambda b: b.get(ids))


def _returned(job: Job) -> str | None:
    if job.state is not JobState.COMPLETED or job.result is None:
        return None
    value = codec.loads(job.result)
    return value if isinstance(value, str) else None


async def _stop(worker: Worker, runner: asyncio.Task[int]) -> None:
    if not runner.done():
        worker.request_stop()
    await asyncio.gather(runner, return_exceptions=True)
