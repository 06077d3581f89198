"""App: the registry of tasks, the broker, the settings and the clock; never a global.

Producers, workers and the CLI all start from an App. Its broker lives on the App's portal
loop, so every async verb runs there, whichever thread or loop calls it.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import inspect
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, Unpack, overload

from errands.brokers import check_url, from_url
from errands.brokers.contract import Binding, Broker, Enqueued, Exchange
from errands.clock import Clock, SystemClock
from errands.enqueue_hooks import EnqueueHook, tell_enqueued
from errands.errors import TaskNotRegistered
from errands.exchanges import Exchanges
from errands.handle import JobHandle
from errands.job import JobId, JobSpec
from errands.limits import LimitKey, Limits
from errands.portal import Portal, refuse_on_loop
from errands.push.options import TargetOptions
from errands.retry import RetryPolicy
from errands.routing import EVENTS
from errands.scheduling.schedule import Misfire, Schedule
from errands.scheduling.schedules import Schedules
from errands.settings import Settings
from errands.shapes import specs_of
from errands.task import Call, PoolName, Task, TaskOptions, default_pool
from errands.worker.middleware import JobLog, Middleware

if TYPE_CHECKING:
    from errands.worker.worker import Worker

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class TaskDecorator(Protocol):
    """What `@app.task(...)` returns: a coroutine function's task yields the awaited value."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


class App:
    """Tasks and the broker they share. `App()` reads ERRANDS_BROKER_URL, else ./errands.db."""

    def __init__(
        self,
        broker_url: str | None = None,
        *,
        broker: Broker | None = None,
        clock: Clock | None = None,
        settings: Settings | None = None,
        middleware: Sequence[Middleware] | None = None,
    ) -> None:
        base = settings or Settings.from_env()
        if broker_url is not None:
            base = Settings(**{**_asdict(base), "broker_url": broker_url})
        if broker is None:
            check_url(base.broker_url)  # a mistyped URL fails here, not at the first enqueue
        self.settings = base
        self.clock: Clock = clock or SystemClock()
        self.registry: dict[str, Task[..., Any]] = {}
        self.portal = Portal(self.settings.loop)
        self._broker = broker
        self._opened: asyncio.Future[None] | None = None
        self._opened_pid = os.getpid()
        #: Where the App can be imported from, for process-pool children ("module:attr").
        self.import_ref: str | None = None
        #: Hooks every worker of this App runs around jobs (worker/middleware.py); by default
        #: the per-job log line. Append your own, or pass `middleware=[...]` to replace it.
        self.middleware: list[Middleware] = (
            [JobLog(info=self.settings.log_jobs)] if middleware is None else list(middleware)
        )
        #: Observers of what this App's producers enqueue (enqueue_hooks.py): errands.metrics
        #: counts the jobs, errands.tracing adds a traceparent to each envelope.
        self.enqueue_hooks: list[EnqueueHook] = []
        #: The schedules declared in code and stored in the broker (scheduling/schedules.py).
        self.schedules = Schedules(self)
        #: The exchanges and bindings declared in code and stored in the broker (exchanges.py).
        self.exchanges = Exchanges(self)
        #: Limits of whole queues (`queue_limit`), added to every job enqueued to them.
        self.queue_limits: dict[str, Limits] = {}
        self._module = _caller_module()
        atexit.register(self.close)

    def __repr__(self) -> str:
        return f"<App {self.settings.broker_url} tasks={len(self.registry)}>"

    # -- tasks ---------------------------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int | None = None,
        max_crashes: int | None = None,
        retry: RetryPolicy | None = None,
        dont_retry: tuple[type[BaseException], ...] = (),
        timeout: timedelta | None = None,
        pool: PoolName | None = None,
        result_ttl: timedelta | None = None,
        rate_limit: str | None = None,
        concurrency_limit: int | None = None,
        burst: int | None = None,
        limit_key: LimitKey | None = None,
    ) -> TaskDecorator: ...

    def task(  # type: ignore[misc]
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int | None = None,
        max_crashes: int | None = None,
        retry: RetryPolicy | None = None,
        dont_retry: tuple[type[BaseException], ...] = (),
        timeout: timedelta | None = None,
        pool: PoolName | None = None,
        result_ttl: timedelta | None = None,
        rate_limit: str | None = None,
        concurrency_limit: int | None = None,
        burst: int | None = None,
        limit_key: LimitKey | None = None,
    ) -> Any:
        """Register a function as a task: `@app.task` or `@app.task(queue="mail", ...)`.

        `rate_limit` ("100/s", "5/m", "1/100ms"; `burst` jobs may start back to back) and
        `concurrency_limit` (running jobs at most) are enforced by the broker's claim, across
        every worker (docs/limits.md); with `limit_key` (an argument's name, or a callable
        given the call's arguments by name) they hold per value of that key."""
        limits = Limits.declare(rate_limit, concurrency_limit, burst)
        if limit_key is not None and limits is None:
            raise ValueError("limit_key= goes with rate_limit= or concurrency_limit=")
        if timeout is not None and not isinstance(timeout, timedelta):
            raise TypeError(f"timeout must be a timedelta, got {timeout!r}")
        if pool is not None and pool not in ("async", "thread", "process"):
            raise ValueError(f"pool must be 'async', 'thread' or 'process', got {pool!r}")
        policy = retry or RetryPolicy()
        if dont_retry:
            policy = RetryPolicy(policy.base, policy.cap, policy.jitter, dont_retry, policy.rng)

        def register(func: Callable[..., Any]) -> Task[..., Any]:
            options = TaskOptions(
                queue=queue,
                priority=priority,
                max_attempts=max_attempts or self.settings.max_attempts,
                max_crashes=max_crashes or self.settings.max_crashes,
                retry=policy,
                timeout=timeout,
                pool=pool or default_pool(func),
                result_ttl=self.settings.result_ttl if result_ttl is None else result_ttl,
                limits=limits,
                limit_key=limit_key,
            )
            task_name = name or _default_name(func)
            if task_name in self.registry and self.registry[task_name].fn is not func:
                raise ValueError(f"a different function is already registered as {task_name!r}")
            task: Task[..., Any] = Task(self, func, task_name, options)
            self.registry[task_name] = task
            return task

        return register(fn) if fn is not None else register

    def http_target(self, name: str, /, **options: Unpack[TargetOptions]) -> Task[..., Any]:
        """Register an HTTP push target: a task named `name` whose every attempt sends its one
        argument (the payload) to `url`, signed with `secret` (else $ERRANDS_PUSH_SECRET), and
        is retried by status: 2xx completes, 408, 429 and 5xx retry (after the target's
        Retry-After), other statuses fail at once. Needs httpx (errands[web]). See
        errands.push.target.declare for the options and docs/http.md, "Push targets"."""
        from errands.push.target import declare  # imports httpx: only when a target is declared

        return declare(self, name, **options)

    def queue_limit(
        self,
        queue: str,
        *,
        rate_limit: str | None = None,
        concurrency_limit: int | None = None,
        burst: int | None = None,
    ) -> None:
        """Limit a whole queue: no more than `rate_limit` job starts ("10/s") and
        `concurrency_limit` running jobs in `queue`, across every worker, on top of each
        task's own limits. Every job this App enqueues to the queue carries the limit
        (declare it where producers and workers share it); neither option removes it."""
        limits = Limits.declare(rate_limit, concurrency_limit, burst)
        if limits is None:
            self.queue_limits.pop(queue, None)
        else:
            self.queue_limits[queue] = limits

    def get_task(self, name: str) -> Task[..., Any]:
        """The task registered as `name`, or TaskNotRegistered naming it."""
        try:
            return self.registry[name]
        except KeyError:
            raise TaskNotRegistered(name, self.registry) from None

    def by_name(self, name: str) -> Task[..., Any]:
        """The task called `name`, for producers that cannot import its function.

        A registered task is returned as is (its defaults and argument check apply). Any other
        name gives a task that only sends: the App's defaults (queue "default", the settings'
        budgets and result TTL), no argument check, and calling it inline raises
        TaskNotRegistered. Per-call options go through `.options(...)` as on any task.
        """
        if not isinstance(name, str):
            raise TypeError(
                f"a task name (str) is needed, got {name!r}; a task object has its own enqueue"
            )
        task = self.registry.get(name)
        if task is not None:
            return task
        defaults = TaskOptions(
            max_attempts=self.settings.max_attempts,
            max_crashes=self.settings.max_crashes,
            result_ttl=self.settings.result_ttl,
        )
        # Deliberately not registered: a worker of this App must not claim to run it.
        return Task(self, _send_only(name, self.registry), name, defaults)

    @property
    def queues(self) -> list[str]:
        """Every queue a registered task uses, sorted (at least "default")."""
        return sorted({t.defaults.queue for t in self.registry.values()} | {"default"})

    # -- schedules -----------------------------------------------------------------------------

    def periodic(
        self,
        task: Task[..., Any] | str | None = None,
        /,
        *,
        cron: str | None = None,
        every: timedelta | None = None,
        tz: str = "UTC",
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        misfire: Misfire = "once",
        misfire_grace: timedelta | None = None,
        start: datetime | None = None,
    ) -> Any:
        """Declare a periodic job: `cron` (five fields or an @alias, in zone `tz`) or `every`
        (a timedelta, slots aligned to the Unix epoch or `start`), exactly one.

        `app.periodic(task, cron=...)` returns the Schedule; `@app.periodic(cron=...)` stacked
        on `@app.task` (or on a plain function, which it registers) returns the task. The
        schedule is named after the task unless `name` says otherwise. `misfire` decides the
        slots missed while no scheduler ran ("skip", "once", "all"; see scheduling/misfire.py)
        and `misfire_grace` how late a slot may still run. A bad value raises here.
        """
        options: dict[str, Any] = {
            "cron": cron,
            "every": every,
            "tz": tz,
            "args": args,
            "kwargs": kwargs,
            "name": name,
            "queue": queue,
            "priority": priority,
            "misfire": misfire,
            "misfire_grace": misfire_grace,
            "start": start,
        }
        if task is not None:
            return self.schedules.declare(self.schedules.build(task, "code", **options))
        # Checked now, so a bad decorator fails at the line that has it, whatever it decorates.
        Schedule(**{**options, "name": name or "check", "task": "check", "kwargs": kwargs or {}})

        def declare(fn: Any) -> Any:
            registered = fn if isinstance(fn, Task) else self.task(fn)
            self.schedules.declare(self.schedules.build(registered, "code", **options))
            return registered

        return declare

    # -- routing and events --------------------------------------------------------------------

    def exchange(self, name: str, kind: str = "direct", *, unroutable: str = "raise") -> Exchange:
        """Declare an exchange: "direct", "topic" (AMQP patterns: `*` one word, `#` zero or
        more) or "fanout". A message that matches no binding raises errands.Unroutable, or is
        dropped with `unroutable="drop"`. Stored in the broker before this App first routes."""
        return self.exchanges.declare(Exchange(name, kind, unroutable))

    def bind(self, exchange: Exchange | str, queue: str, key: str = "") -> Binding:
        """Declare a binding: messages of `exchange` whose routing key matches `key` get a job
        in `queue` (one per queue, however many of its bindings match)."""
        name = exchange.name if isinstance(exchange, Exchange) else exchange
        return self.exchanges.declare_binding(Binding(name, queue, key))

    def subscribe(self, pattern: str) -> Callable[[Any], Any]:
        """Stacked on `@app.task` (or on a plain function, which it registers): the task gets
        its own job for every event published to a topic matching `pattern` (topic rules)."""
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"a topic pattern such as 'order.*' is needed, got {pattern!r}")

        def subscribe(fn: Any) -> Any:
            registered = fn if isinstance(fn, Task) else self.task(fn)
            self.exchanges.declare(Exchange(EVENTS, "topic", "drop"))
            self.exchanges.declare_binding(Binding(EVENTS, registered.name, pattern))
            return registered

        return subscribe

    async def publish_async(
        self, topic: str, /, *args: Any, event_id: str | None = None, **kwargs: Any
    ) -> list[JobHandle[Any]]:
        """Publish an event: one durable job per task subscribed to a pattern `topic` matches,
        in one atomic write; their handles (none when no task subscribes: logged). Publishing
        again with the same `event_id` makes no new job while the first ones are kept."""
        specs = await self.exchanges.event_specs_async(topic, args, kwargs, event_id)
        if not specs:
            return []
        stored = await self.call_broker(lambda b: b.enqueue_many(specs))
        tell_enqueued(self.enqueue_hooks, specs, stored)
        return [JobHandle(self, e.job_id, duplicate=e.duplicate) for e in stored]

    def publish(
        self, topic: str, /, *args: Any, event_id: str | None = None, **kwargs: Any
    ) -> list[JobHandle[Any]]:
        """Blocking twin of `publish_async`."""
        return self.portal.call(self.publish_async, topic, *args, event_id=event_id, **kwargs)

    # -- the broker ----------------------------------------------------------------------------

    @property
    def broker(self) -> Broker:
        """The App's broker (made from the URL on first use; opened by `call_broker`)."""
        if self._broker is None:
            # Brokers keep their own (server) time so a skewed process cannot steal a lease or
            # start a job early; only a test clock that says so drives the broker too.
            drives = getattr(self.clock, "drives_brokers", False)
            self._broker = from_url(self.settings.broker_url, clock=self.clock if drives else None)
        return self._broker

    async def open_async(self) -> Broker:
        """Open the broker once, on the portal's loop."""
        if self._opened_pid != os.getpid():
            self._opened, self._opened_pid, self._broker = None, os.getpid(), None
        if self._opened is None:
            self._opened = asyncio.get_running_loop().create_future()
            try:
                await self.broker.open()
            except BaseException as error:
                self._opened.set_exception(error)
                self._opened.exception()  # raised to every waiter; never "never retrieved"
                self._opened = None
                raise
            self._opened.set_result(None)
        await asyncio.shield(self._opened)
        return self.broker

    async def call_broker(self, verb: Callable[[Broker], Awaitable[T]]) -> T:
        """Run `verb(broker)` on the portal's loop, opening the broker first."""

        async def run() -> T:
            return await verb(await self.open_async())

        return await self.portal.run(run)

    # -- producing -----------------------------------------------------------------------------

    async def enqueue_many_async(self, calls: Iterable[Call]) -> list[JobHandle[Any]]:
        """Store the calls (of any tasks) as jobs in one atomic write, in order.

        Calls made with `options(connection=aconn)` are written on that psycopg
        `AsyncConnection`, inside its transaction, on the caller's own loop."""
        calls = list(calls)
        specs = await self.exchanges.specs_async(calls)
        if not specs:
            return []
        connection = self._connection_of(calls)
        if connection is not None:
            broker = self._transactional()
            stored = await broker.enqueue_in_async(connection, specs)
        else:
            stored = await self.call_broker(lambda b: b.enqueue_many(specs))
        return self._handles(specs, stored)

    def enqueue_many(self, calls: Iterable[Call]) -> list[JobHandle[Any]]:
        """Blocking twin of `enqueue_many_async`; calls made with `options(connection=conn)`
        are written on that psycopg `Connection`, inside its transaction, in this thread."""
        refuse_on_loop("enqueue_many")
        calls = list(calls)
        connection = self._connection_of(calls)
        if connection is None:
            store = self._blocking_store(calls)
            if store is None:
                return self.portal.call(self.enqueue_many_async, calls)
            specs = specs_of(calls)
            return self._handles(specs, store(specs) if specs else [])
        specs = self.portal.call(self.exchanges.specs_async, calls)
        return self._handles(specs, self._transactional().enqueue_in(connection, specs))

    def _handles(self, specs: list[JobSpec], stored: list[Enqueued]) -> list[JobHandle[Any]]:
        """Tell the enqueue hooks what was stored; the handles of `stored`, in order."""
        tell_enqueued(self.enqueue_hooks, specs, stored)
        return [JobHandle(self, e.job_id, duplicate=e.duplicate) for e in stored]

    def _blocking_store(
        self, calls: Sequence[Call]
    ) -> Callable[[Sequence[JobSpec]], list[Enqueued]] | None:
        """The broker's own blocking enqueue (SQLite's runs in the caller's thread, with no hop
        to the portal), once the broker is open; None when the portal must do it: routed calls
        need the topology, and other brokers' clients live on the portal's loop."""
        if any(call.options.exchange for call in calls):
            return None
        return self._blocking_verb("enqueue_many_blocking")

    def _blocking_verb(self, name: str) -> Callable[..., Any] | None:
        """The broker's blocking twin `name` of a verb (SQLite's run in the caller's thread),
        once the broker is open; None if it has none, so the portal runs the async verb."""
        verb = getattr(self.broker, name, None)
        if verb is None:
            return None
        if not self._is_open():
            self.portal.call(self.open_async)
        return verb  # type: ignore[no-any-return]

    def _is_open(self) -> bool:
        opened = self._opened
        return (
            opened is not None
            and self._opened_pid == os.getpid()
            and opened.done()
            and not opened.exception()
        )

    @staticmethod
    def _connection_of(calls: Sequence[Call]) -> Any:
        """The one connection the calls were given, or None; a batch is one write, so mixing
        connections (or some calls with one and some without) is refused."""
        connections = {id(call.options.connection): call.options.connection for call in calls}
        if len(connections) > 1:
            raise ValueError("every call of one enqueue must use the same connection= or none")
        return next(iter(connections.values()), None)

    def _transactional(self) -> Any:
        broker = self.broker
        if not broker.capabilities.transactional_enqueue:
            raise TypeError(
                f"options(connection=...) needs a broker that can write in your transaction "
                f"(postgresql://); this App's is {broker.capabilities.name}"
            )
        return broker

    async def enqueue_async(self, name: str, /, *args: Any, **kwargs: Any) -> JobHandle[Any]:
        """Store one job for the task called `name` (see `by_name`) and return its handle."""
        return await self.by_name(name).enqueue_async(*args, **kwargs)

    def enqueue(self, name: str, /, *args: Any, **kwargs: Any) -> JobHandle[Any]:
        """Blocking twin of `enqueue_async`."""
        return self.by_name(name).enqueue(*args, **kwargs)

    def job(self, job_id: JobId) -> JobHandle[Any]:
        """A handle on an existing job by id (no round trip)."""
        return JobHandle(self, job_id)

    # -- running -------------------------------------------------------------------------------

    def worker(self, **options: Any) -> Worker:
        """A Worker for this App (see errands.worker.Worker for the options)."""
        from errands.worker.worker import Worker

        return Worker(self, **options)

    async def run_until_idle_async(
        self, *, queues: Sequence[str] | None = None, **options: Any
    ) -> int:
        """Run an in-process worker until no job is claimable or running; returns jobs run."""

        async def run() -> int:
            worker = self.worker(queues=queues, **options)
            return await worker.run(until_idle=True)

        return await self.portal.run(run)

    def run_until_idle(self, *, queues: Sequence[str] | None = None, **options: Any) -> int:
        """Blocking twin of `run_until_idle_async`."""
        return self.portal.call(self.run_until_idle_async, queues=queues, **options)

    # -- closing -------------------------------------------------------------------------------

    async def close_async(self) -> None:
        """Close the broker (it reopens on next use)."""
        if self._opened is not None and self._opened_pid == os.getpid():
            self._opened = None
            await self.broker.close()

    def close(self) -> None:
        """Close the broker and stop the portal thread."""
        # An adopted loop that has ended (a test's) has nothing left to close on.
        if self._opened is not None and self._opened_pid == os.getpid() and self.portal.started:
            loop = self.portal.loop
            if loop.is_running() and not self.portal.owns_running_loop():
                # Closing at exit must not raise.
                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(self.close_async(), loop).result(timeout=10)
        self.portal.stop()

    def locate(self) -> str:
        """ "module:attr" where this App can be imported, for process-pool children."""
        if self.import_ref:
            return self.import_ref
        attr = self._attribute()
        if attr is None:
            raise RuntimeError(
                f"cannot find this App in module {self._module!r}: define it at module level "
                "or set app.import_ref = 'module:attr' for the process pool"
            )
        return f"{self._module}:{attr}"

    def cli_target(self) -> str:
        """ "module:attr" naming this App as the TARGET of `errands worker`, for hints in
        messages (a script run as `python shop.py` is "shop:app"); "module:app" if not found."""
        if self.import_ref:
            return self.import_ref
        attr = self._attribute()
        return f"{_module_name(self._module)}:{attr}" if attr else "module:app"

    def _attribute(self) -> str | None:
        module = sys.modules.get(self._module)
        for attr, value in vars(module).items() if module else ():
            if value is self:
                return attr
        return None


def _send_only(name: str, registry: Mapping[str, Task[..., Any]]) -> Callable[..., Any]:
    """The stand-in function of a task known by name only."""

    def send_only(*args: Any, **kwargs: Any) -> Any:
        """Enqueue this task; its function runs in a worker that registers it."""
        raise TaskNotRegistered(name, registry)

    return send_only


def _default_name(func: Callable[..., Any]) -> str:
    return f"{_module_name(func.__module__)}.{func.__qualname__}"


def _module_name(name: str) -> str:
    """The importable name of a module. `python shop.py` runs shop as __main__ (and process-pool
    children load it as __mp_main__) while `errands worker shop:app` imports it as shop: the
    task names must agree, so a script is named after its file."""
    if name not in ("__main__", "__mp_main__"):
        return name
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None)
    if spec is not None and spec.name not in ("__main__", "__mp_main__"):
        return str(spec.name)  # python -m package.module
    path = getattr(module, "__file__", None)
    return Path(path).stem if path else "__main__"


def _caller_module() -> str:
    frame = inspect.currentframe()
    caller = frame.f_back.f_back if frame and frame.f_back else None
    return str(caller.f_globals.get("__name__", "__main__")) if caller else "__main__"


def _asdict(settings: Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__slots__}
