"""Task: inline calls, per-call options kept apart from arguments, and what enqueue stores."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import errands
from errands import envelope
from errands.job import JobState


@pytest.fixture
def add(app: errands.App) -> errands.Task[[int, int], int]:
    @app.task(queue="math", priority=3)
    def add(a: int, b: int) -> int:
        return a + b

    return add


def sent(call: errands.Call) -> envelope.Envelope:
    """The envelope a call would store."""
    return envelope.decode(call.spec().payload)


def test_calling_a_task_runs_the_function_inline(add: errands.Task[[int, int], int]) -> None:
    assert add(2, 3) == 5
    assert add(a=1, b=1) == 2


async def test_calling_an_async_task_gives_its_coroutine(app: errands.App) -> None:
    @app.task
    async def double(x: int) -> int:
        return 2 * x

    assert await double(21) == 42


def test_a_task_keeps_the_functions_docstring(app: errands.App) -> None:
    @app.task
    def documented() -> None:
        """Says what it does."""

    assert documented.__doc__ == "Says what it does."


def test_a_coroutine_function_defaults_to_the_async_pool(app: errands.App) -> None:
    @app.task
    async def fetch() -> None: ...

    assert fetch.defaults.pool == "async"


def test_a_plain_function_defaults_to_the_thread_pool(app: errands.App) -> None:
    @app.task
    def block() -> None: ...

    assert block.defaults.pool == "thread"


def test_an_explicit_pool_wins_over_the_default(app: errands.App) -> None:
    @app.task(pool="process")
    def crunch() -> None: ...

    assert crunch.defaults.pool == "process"


def test_a_delay_must_be_a_timedelta_not_a_bare_number(
    add: errands.Task[[int, int], int],
) -> None:
    with pytest.raises(TypeError, match="delay must be a timedelta"):
        add.options(delay=5)  # type: ignore[arg-type]


def test_a_result_ttl_must_be_a_timedelta(add: errands.Task[[int, int], int]) -> None:
    with pytest.raises(TypeError, match="result_ttl must be a timedelta"):
        add.options(result_ttl=3600)  # type: ignore[arg-type]


def test_delay_and_eta_together_are_refused(add: errands.Task[[int, int], int]) -> None:
    with pytest.raises(ValueError, match="delay or eta"):
        add.options(delay=timedelta(minutes=1), eta=datetime(2030, 1, 1, tzinfo=UTC))


def test_a_naive_eta_is_refused(add: errands.Task[[int, int], int]) -> None:
    with pytest.raises(TypeError, match="aware datetime"):
        add.options(eta=datetime(2030, 1, 1, 12, 0))


def test_options_do_not_change_the_task_they_came_from(
    add: errands.Task[[int, int], int],
) -> None:
    urgent = add.options(priority=9, queue="urgent", idempotency_key="k")

    assert sent(add.call(1, 2)).priority == 3
    assert sent(add.call(1, 2)).queue == "math"
    assert sent(add.call(1, 2)).idempotency_key is None
    assert (sent(urgent.call(1, 2)).priority, sent(urgent.call(1, 2)).queue) == (9, "urgent")


def test_options_never_leak_into_the_functions_arguments(
    add: errands.Task[[int, int], int],
) -> None:
    env = sent(add.options(delay=timedelta(seconds=5), priority=1).call(1, b=2))

    assert env.args == [1]
    assert env.kwargs == {"b": 2}


def test_options_chain_and_a_later_call_overrides_an_earlier_one(
    add: errands.Task[[int, int], int],
) -> None:
    chained = add.options(priority=1, queue="a").options(priority=2)

    env = sent(chained.call(1, 2))

    assert (env.priority, env.queue) == (2, "a")


def test_a_zero_priority_option_overrides_the_tasks_default(
    add: errands.Task[[int, int], int],
) -> None:
    assert sent(add.options(priority=0).call(1, 2)).priority == 0


def test_the_envelope_carries_the_tasks_name_defaults_and_tagged_arguments(
    app: errands.App,
) -> None:
    @app.task(name="billing.charge", max_attempts=7, max_crashes=2, timeout=timedelta(seconds=9))
    def charge(when: datetime, amount: int) -> None: ...

    when = datetime(2030, 1, 1, tzinfo=UTC)
    env = sent(charge.call(when, amount=5))

    assert env.task == "billing.charge"
    assert env.args == [{"__errands__": "datetime", "v": "2030-01-01T00:00:00+00:00"}]
    assert env.kwargs == {"amount": 5}
    assert (env.max_attempts, env.max_crashes, env.timeout_ms) == (7, 2, 9000)
    assert env.v == envelope.VERSION


def test_the_spec_repeats_what_the_broker_indexes(add: errands.Task[[int, int], int]) -> None:
    eta = datetime(2031, 6, 1, 8, 30, tzinfo=UTC)
    spec = add.options(eta=eta, idempotency_key="k1", max_attempts=9).call(1, 2).spec()
    env = envelope.decode(spec.payload)

    assert (spec.id, spec.task, spec.queue, spec.priority) == (env.id, env.task, "math", 3)
    assert spec.scheduled_at == env.scheduled_at == eta
    assert spec.idempotency_key == env.idempotency_key == "k1"
    assert spec.max_attempts == env.max_attempts == 9


def test_a_delay_schedules_the_job_that_far_from_now(
    app: errands.App, add: errands.Task[[int, int], int]
) -> None:
    before = app.clock.now()
    spec = add.options(delay=timedelta(minutes=5)).call(1, 2).spec()
    after = app.clock.now()

    assert spec.scheduled_at is not None
    assert before + timedelta(minutes=5) <= spec.scheduled_at <= after + timedelta(minutes=5)


def test_an_argument_json_cannot_carry_is_refused_at_enqueue(
    add: errands.Task[[int, int], int],
) -> None:
    with pytest.raises(TypeError, match="object"):
        add.call(object(), 1).spec()  # type: ignore[arg-type]


def test_a_zero_result_ttl_is_kept_not_replaced_by_the_default(
    add: errands.Task[[int, int], int],
) -> None:
    spec = add.options(result_ttl=timedelta(0)).call(1, 2).spec()

    assert spec.result_ttl == timedelta(0)


def test_enqueue_returns_a_handle_on_an_available_job(
    add: errands.Task[[int, int], int],
) -> None:
    handle = add.enqueue(1, 2)

    assert isinstance(handle, errands.JobHandle)
    assert handle.state is JobState.AVAILABLE
    assert not handle.duplicate


def test_a_delayed_enqueue_returns_a_handle_on_a_scheduled_job(
    add: errands.Task[[int, int], int],
) -> None:
    handle = add.options(delay=timedelta(hours=1)).enqueue(1, 2)

    assert handle.state is JobState.SCHEDULED


def test_an_eta_in_the_future_is_stored_as_the_jobs_scheduled_time(
    add: errands.Task[[int, int], int],
) -> None:
    eta = datetime.now(UTC) + timedelta(days=3)

    job = add.options(eta=eta).enqueue(1, 2).refresh()

    assert (job.state, job.scheduled_at) == (JobState.SCHEDULED, eta)


def test_enqueue_many_takes_tuples_of_positional_arguments(
    add: errands.Task[[int, int], int],
) -> None:
    handles = add.enqueue_many([(1, 2), (3, 4), [5, 6]])

    assert len({h.id for h in handles}) == 3
    assert [h.state for h in handles] == [JobState.AVAILABLE] * 3
    assert [envelope.decode(h.refresh().payload).args for h in handles] == [
        [1, 2],
        [3, 4],
        [5, 6],
    ]


def test_enqueue_many_takes_calls_with_their_own_options(
    add: errands.Task[[int, int], int],
) -> None:
    plain, later = add.enqueue_many(
        [add.call(1, b=2), add.options(delay=timedelta(hours=1)).call(3, 4)]
    )

    assert (plain.state, later.state) == (JobState.AVAILABLE, JobState.SCHEDULED)


def test_enqueue_many_refuses_an_item_that_does_not_fit_the_function(
    add: errands.Task[[int, int], int],
) -> None:
    with pytest.raises(TypeError, match="arguments do not fit task"):
        add.enqueue_many(["12"])


def test_enqueue_refuses_arguments_that_do_not_fit_and_stores_nothing(
    app: errands.App, add: errands.Task[[int, int], int]
) -> None:
    with pytest.raises(TypeError, match=r"task .*add.*missing a required argument"):
        add.enqueue(1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        add.enqueue(1, 2, c=3)
    assert app.run_until_idle() == 0


def test_enqueue_many_takes_tuples_dicts_and_single_arguments(app: errands.App) -> None:
    @app.task
    def echo(x: object, y: int = 0) -> object:
        return [x, y]

    handles = echo.enqueue_many([(1, 2), {"x": "k", "y": 3}, "single"])
    app.run_until_idle()
    assert [h.result(timeout=5) for h in handles] == [[1, 2], ["k", 3], ["single", 0]]


def test_enqueue_many_of_nothing_stores_nothing(add: errands.Task[[int, int], int]) -> None:
    assert add.enqueue_many([]) == []


def test_an_idempotency_key_returns_the_same_job_marked_duplicate(
    add: errands.Task[[int, int], int],
) -> None:
    keyed = add.options(idempotency_key="order-42")

    first = keyed.enqueue(1, 2)
    second = keyed.enqueue(100, 200)

    assert second.id == first.id
    assert (first.duplicate, second.duplicate) == (False, True)
    assert envelope.decode(second.refresh().payload).args == [1, 2]


def test_different_idempotency_keys_make_different_jobs(
    add: errands.Task[[int, int], int],
) -> None:
    one = add.options(idempotency_key="a").enqueue(1, 2)
    two = add.options(idempotency_key="b").enqueue(1, 2)

    assert one.id != two.id
    assert not two.duplicate


async def test_enqueue_async_works_from_the_tests_own_loop(
    add: errands.Task[[int, int], int],
) -> None:
    handle = await add.enqueue_async(1, 2)
    job = await handle.refresh_async()

    assert job.state is JobState.AVAILABLE
    assert job.task == add.name


async def test_enqueue_many_async_stores_every_call(
    add: errands.Task[[int, int], int],
) -> None:
    handles: list[Any] = await add.enqueue_many_async([(1, 2), add.call(3, 4)])

    jobs = [await h.refresh_async() for h in handles]

    assert [j.state for j in jobs] == [JobState.AVAILABLE, JobState.AVAILABLE]


def _sig_ok(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError:
        return False
    return True


def _plain(a: int, b: int = 2, c: int = 3) -> None: ...


def _star(a: int, *rest: int, key: int, **more: int) -> None: ...


@pytest.mark.parametrize("fn", [_plain, _star])
@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {}),
        ((1,), {}),
        ((1, 2, 3), {}),
        ((1, 2, 3, 4), {}),
        ((1,), {"c": 5}),
        ((1,), {"a": 5}),
        ((), {"a": 1, "b": 2}),
        ((1,), {"zzz": 1}),
        ((1,), {"key": 1}),
    ],
)
def test_the_enqueue_argument_check_agrees_with_signature_bind(
    app: errands.App, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    task = app.task(fn)
    if _sig_ok(fn, args, kwargs):
        assert task.call(*args, **kwargs).spec().task == task.name
    else:
        with pytest.raises(TypeError, match="arguments do not fit"):
            task.call(*args, **kwargs).spec()
