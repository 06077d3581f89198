"""Task: a registered function with its default options; enqueue builds JobSpecs from calls.

Options for one call go through `task.options(...)`, never among the function's own kwargs.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    Literal,
    ParamSpec,
    TypedDict,
    TypeVar,
    Unpack,
    overload,
)

from errands.job import JobId, JobSpec, OnFailure
from errands.limits import Limit, LimitKey, Limits, key_reader, queue_key, task_key
from errands.portal import refuse_on_loop
from errands.retry import RetryPolicy
from errands.shapes import Shape

if TYPE_CHECKING:
    from errands.app import App
    from errands.handle import JobHandle

P = ParamSpec("P")
R = TypeVar("R")
PoolName = Literal["async", "thread", "process"]
POOLS: tuple[PoolName, ...] = ("async", "thread", "process")


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """A task's defaults, fixed at registration."""

    queue: str = "default"
    priority: int = 0
    max_attempts: int = 3
    max_crashes: int = 3
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: timedelta | None = None
    pool: PoolName = "thread"
    result_ttl: timedelta = timedelta(days=1)
    #: Rate and concurrency limits the claim holds the task's jobs to (errands/limits.py).
    limits: Limits | None = None
    #: An argument name, or a callable of the call's arguments, whose value keys the limits.
    limit_key: LimitKey | None = None


class OptionFields(TypedDict, total=False):
    """The per-call options of `task.options(...)` besides routing (see CallOptions)."""

    delay: timedelta | None
    eta: datetime | None
    priority: int | None
    queue: str | None
    idempotency_key: str | None
    result_ttl: timedelta | None
    max_attempts: int | None
    headers: Mapping[str, str] | None
    connection: Any
    rate_limit: str | None
    concurrency_limit: int | None
    burst: int | None


@dataclass(frozen=True, slots=True)
class CallOptions:
    """Per-call options from `task.options(...)`; None keeps the task's default."""

    delay: timedelta | None = None
    eta: datetime | None = None
    priority: int | None = None
    queue: str | None = None
    idempotency_key: str | None = None
    result_ttl: timedelta | None = None
    max_attempts: int | None = None
    #: Strings carried in the envelope for the task to read (errands.current_job().headers).
    headers: Mapping[str, str] | None = None
    #: Send through this exchange (routing.py): one job per matching destination queue.
    exchange: str | None = None
    routing_key: str | None = None
    #: A psycopg Connection or AsyncConnection: enqueue inside the caller's transaction.
    connection: Any = None
    #: Limits for this call instead of the task's (`rate_limit=`, `concurrency_limit=`).
    limits: Limits | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """One call of a task with its options, ready to become a JobSpec (`app.enqueue_many`), or
    a step of a workflow (`errands.chain`, `group`, `chord`)."""

    task: Task[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    options: CallOptions
    #: In a workflow, whether the previous step's result comes first among the arguments.
    takes_input: bool = True

    def spec(self) -> JobSpec:
        """The JobSpec this call asks to insert, its envelope encoded once, here."""
        return self.task.build_spec(self.args, self.kwargs, self.options)

    def immutable(self) -> Call:
        """This call as a workflow step that does not receive the previous step's result: it
        runs with its own arguments only, after the steps before it."""
        return replace(self, takes_input=False)


class Task(Generic[P, R]):
    """A function registered on an App; calling it runs the function inline."""

    def __init__(
        self,
        app: App,
        fn: Callable[P, R] | Callable[P, Awaitable[R]],
        name: str,
        options: TaskOptions,
        call_options: CallOptions | None = None,
    ) -> None:
        self.app, self.fn, self.name, self.defaults = app, fn, name, options
        self.call_options = call_options or CallOptions()
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = inspect.signature(fn)
        self._fits = _fit_checker(self.signature)
        self._limit_key = key_reader(self.signature, options.limit_key, name)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Run the function here and now, as if it were not a task."""
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.defaults.queue} pool={self.defaults.pool}>"

    @overload
    def options(
        self, *, exchange: str, routing_key: str = "", **fields: Unpack[OptionFields]
    ) -> RoutedTask[P, R]: ...

    @overload
    def options(
        self, *, exchange: None = None, routing_key: None = None, **fields: Unpack[OptionFields]
    ) -> Task[P, R]: ...

    def options(
        self, *, exchange: str | None = None, routing_key: str | None = None, **fields: Any
    ) -> Task[P, R] | RoutedTask[P, R]:
        """This task with options for the next enqueue; the task itself is unchanged.

        Options: `delay` or `eta`, `priority`, `queue`, `idempotency_key`, `result_ttl`,
        `max_attempts`, `rate_limit`, `concurrency_limit` and `burst` (limits for these
        calls instead of the task's, under the same keys), `headers` (strings the task reads
        with `errands.current_job().headers`) and `connection` (a psycopg `Connection`, or an
        `AsyncConnection` for `enqueue_async`: the job is written inside that transaction, on
        a PostgreSQL broker, and exists if and only if it commits).

        With `exchange` (and `routing_key`), a RoutedTask: each enqueue stores one job in
        every queue the exchange's bindings route the key to, in one atomic write.
        """
        unknown = set(fields) - set(OptionFields.__annotations__)
        if unknown:
            known = ", ".join(["exchange", "routing_key", *OptionFields.__annotations__])
            raise TypeError(f"unknown option {sorted(unknown)[0]!r} (options: {known})")
        _check_duration("delay", fields.get("delay"))
        _check_duration("result_ttl", fields.get("result_ttl"))
        eta = fields.get("eta")
        if eta is not None and (not isinstance(eta, datetime) or eta.tzinfo is None):
            raise TypeError(f"eta must be an aware datetime (with tzinfo), got {eta!r}")
        if fields.get("delay") is not None and eta is not None:
            raise ValueError("give delay or eta, not both")
        if routing_key is not None and exchange is None and self.call_options.exchange is None:
            raise ValueError("routing_key goes with exchange=")
        limits = Limits.declare(
            fields.pop("rate_limit", None),
            fields.pop("concurrency_limit", None),
            fields.pop("burst", None),
        )
        if limits is not None and self.call_options.limits is not None:
            limits = self.call_options.limits.merged(limits)
        chosen = {**fields, "exchange": exchange, "routing_key": routing_key, "limits": limits}
        merged = replace(self.call_options, **{k: v for k, v in chosen.items() if v is not None})
        task = Task(self.app, self.fn, self.name, self.defaults, merged)
        return RoutedTask(task) if merged.exchange is not None else task

    def misfit(self, args: Sequence[Any], kwargs: dict[str, Any]) -> str | None:
        """Why `args` and `kwargs` do not bind to the function (None when they do), decided as
        `inspect.Signature.bind` would, without its cost on the common signature."""
        return self._fits(args, kwargs)

    def call(self, *args: P.args, **kwargs: P.kwargs) -> Call:
        """A call of this task with its options, for `app.enqueue_many` across tasks."""
        return Call(self, args, dict(kwargs), self.call_options)

    def build_spec(
        self,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        options: CallOptions,
        *,
        after: Sequence[JobId] = (),
        workflow: dict[str, str] | None = None,
        on_failure: OnFailure = "cancel",
    ) -> JobSpec:
        """Encode one call as a JobSpec; raises TypeError for arguments that do not fit the
        function or that JSON cannot carry, so a bad call fails here, not in a worker.

        A workflow step (workflow/plan.py) also gives the jobs it waits for (`after`), its
        place in the workflow and the failure policy; a step that takes the previous result
        is checked with a stand-in for it as its first argument."""
        shape = Shape.of(self, options)
        return shape.spec(args, kwargs, after=after, workflow=workflow, on_failure=on_failure)

    def keyed_limits(self, call: Limits | None) -> bool:
        """Whether the limits of a call (with the call's own `call` limits) depend on its
        arguments, through the task's `limit_key`."""
        declared = call is not None or self.defaults.limits is not None
        return declared and self._limit_key is not None

    def limits_for(
        self, args: Sequence[Any], kwargs: dict[str, Any], call: Limits | None, queue: str
    ) -> tuple[Limit, ...]:
        """The task's (or this call's) limits under the call's key, then the queue's."""
        declared = call if self.defaults.limits is None else self.defaults.limits.merged(call)
        queued = self.app.queue_limits.get(queue)
        if declared is None and queued is None:
            return ()
        out: list[Limit] = []
        if declared is not None:
            value = None if self._limit_key is None else self._limit_key(args, kwargs)
            out.append(declared.keyed(task_key(self.name, value)))
        if queued is not None:
            out.append(queued.keyed(queue_key(queue)))
        return tuple(out)

    async def enqueue_async(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Store one job for this call and return its handle."""
        [handle] = await self.app.enqueue_many_async([self.call(*args, **kwargs)])
        return handle

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Blocking twin of `enqueue_async`."""
        refuse_on_loop("enqueue")
        [handle] = self.app.enqueue_many([self.call(*args, **kwargs)])
        return handle

    async def enqueue_many_async(self, calls: Iterable[Any]) -> list[JobHandle[R]]:
        """Store one job per item in one atomic write. An item is a tuple (or list) of
        positional arguments, a dict of keyword arguments, a `task.call(...)`, or else the
        task's single argument."""
        return await self.app.enqueue_many_async([self._as_call(item) for item in calls])

    def enqueue_many(self, calls: Iterable[Any]) -> list[JobHandle[R]]:
        """Blocking twin of `enqueue_many_async`."""
        return self.app.enqueue_many([self._as_call(item) for item in calls])

    def _as_call(self, item: Any) -> Call:
        if isinstance(item, Call):
            if item.task.name != self.name:
                raise TypeError(f"a call of {item.task.name} given to {self.name}.enqueue_many")
            return item
        if isinstance(item, tuple | list):
            return Call(self, tuple(item), {}, self.call_options)
        if isinstance(item, dict):
            return Call(self, (), dict(item), self.call_options)
        return Call(self, (item,), {}, self.call_options)


class RoutedTask(Generic[P, R]):
    """A task sent through an exchange (`task.options(exchange=..., routing_key=...)`): each
    enqueue stores one job in every queue the exchange's bindings route the key to, in one
    atomic write, and returns their handles; errands.Unroutable when none matches (unless the
    exchange drops such messages: then no job and no handle)."""

    def __init__(self, task: Task[P, R]) -> None:
        self.task = task

    def __repr__(self) -> str:
        options = self.task.call_options
        return f"<RoutedTask {self.task.name} via {options.exchange}:{options.routing_key or ''}>"

    def options(self, **fields: Any) -> RoutedTask[P, R]:
        """These routed calls with more options (see Task.options)."""
        routed = self.task.options(**fields)
        assert isinstance(routed, RoutedTask)
        return routed

    def call(self, *args: P.args, **kwargs: P.kwargs) -> Call:
        """A routed call, for `app.enqueue_many` across tasks (it adds one handle per
        destination, in order)."""
        return self.task.call(*args, **kwargs)

    async def enqueue_async(self, *args: P.args, **kwargs: P.kwargs) -> list[JobHandle[R]]:
        """Store one job per matching queue; their handles, by queue name."""
        return await self.task.app.enqueue_many_async([self.call(*args, **kwargs)])

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> list[JobHandle[R]]:
        """Blocking twin of `enqueue_async`."""
        return self.task.app.enqueue_many([self.call(*args, **kwargs)])


def _fit_checker(
    signature: inspect.Signature,
) -> Callable[[Sequence[Any], dict[str, Any]], str | None]:
    """A check of arguments against `signature`: None if they bind, else why not.

    Signature.bind costs about 6 µs a call; for the common signature (plain parameters, no
    *args, **kwargs or positional-only ones) a few comparisons decide the same thing, which
    keeps batch enqueues fast.
    """
    params = list(signature.parameters.values())
    if any(p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params):
        return lambda args, kwargs: _bind_problem(signature, args, kwargs)
    names = [p.name for p in params]
    position = {name: i for i, name in enumerate(names)}
    required = [p.default is inspect.Parameter.empty for p in params]

    def check(args: Sequence[Any], kwargs: dict[str, Any]) -> str | None:
        given = len(args)
        if given > len(names):
            return f"takes {len(names)} positional arguments but {given} were given"
        for key in kwargs:
            if key not in position:
                return f"got an unexpected keyword argument {key!r}"
            if position[key] < given:
                return f"got multiple values for argument {key!r}"
        for i in range(given, len(names)):
            if required[i] and names[i] not in kwargs:
                return f"missing a required argument: {names[i]!r}"
        return None

    return check


def _bind_problem(
    signature: inspect.Signature, args: Sequence[Any], kwargs: dict[str, Any]
) -> str | None:
    try:
        signature.bind(*args, **kwargs)
    except TypeError as error:
        return str(error)
    return None


def _check_duration(name: str, value: object) -> None:
    if value is not None and not isinstance(value, timedelta):
        raise TypeError(
            f"{name} must be a timedelta (e.g. timedelta(seconds=5)), got {value!r}: "
            "a bare number would leave its unit to guesswork"
        )


def default_pool(fn: Callable[..., Any]) -> PoolName:
    """`async def` runs in the async pool, a plain function in the thread pool."""
    return "async" if asyncio.iscoroutinefunction(fn) else "thread"
