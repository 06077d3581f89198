"""App: the task registry, its default names, the broker URL, enqueue across tasks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

import errands
from errands.brokers import OPENERS
from errands.brokers.memory import MemoryBroker
from errands.job import JobState
from errands.settings import DEFAULT_BROKER_URL

WITHIN = timedelta(seconds=10)


def test_the_bare_decorator_registers_under_module_and_qualified_name(app: errands.App) -> None:
    @app.task
    def send_receipt(order_id: int) -> None: ...

    expected = f"{__name__}.{send_receipt.fn.__qualname__}"
    assert send_receipt.name == expected
    assert app.registry[expected] is send_receipt
    assert isinstance(send_receipt, errands.Task)


def test_the_decorator_with_options_registers_under_the_same_default_name(
    app: errands.App,
) -> None:
    @app.task(queue="mail", max_attempts=5)
    def send_receipt(order_id: int) -> None: ...

    assert send_receipt.name == f"{__name__}.{send_receipt.fn.__qualname__}"
    assert app.get_task(send_receipt.name) is send_receipt
    assert (send_receipt.defaults.queue, send_receipt.defaults.max_attempts) == ("mail", 5)


def test_an_explicit_name_replaces_the_default(app: errands.App) -> None:
    @app.task(name="mail.receipt")
    def send_receipt(order_id: int) -> None: ...

    assert app.get_task("mail.receipt") is send_receipt


def test_unset_budgets_and_ttl_come_from_the_apps_settings(app: errands.App) -> None:
    @app.task
    def plain() -> None: ...

    assert plain.defaults.max_attempts == app.settings.max_attempts
    assert plain.defaults.max_crashes == app.settings.max_crashes
    assert plain.defaults.result_ttl == app.settings.result_ttl


def test_an_unknown_task_name_raises_task_not_registered_naming_it(app: errands.App) -> None:
    @app.task(name="known")
    def known() -> None: ...

    with pytest.raises(errands.TaskNotRegistered, match=r"'nope'.*known") as caught:
        app.get_task("nope")

    assert caught.value.name == "nope"
    assert caught.value.known == ["known"]
    assert isinstance(caught.value, LookupError)


def test_a_different_function_under_a_taken_name_is_refused(app: errands.App) -> None:
    @app.task(name="shared")
    def first() -> None: ...

    def second() -> None: ...

    with pytest.raises(ValueError, match="'shared'"):
        app.task(name="shared")(second)
    assert app.get_task("shared") is first


def test_registering_the_same_function_again_is_allowed(app: errands.App) -> None:
    def job() -> None: ...

    app.task(name="again")(job)
    app.task(name="again")(job)

    assert app.get_task("again").fn is job


def test_a_timeout_must_be_a_timedelta(app: errands.App) -> None:
    with pytest.raises(TypeError, match="timeout must be a timedelta"):

        @app.task(timeout=30)  # type: ignore[call-overload]
        def slow() -> None: ...


def test_an_unknown_pool_is_refused(app: errands.App) -> None:
    with pytest.raises(ValueError, match="'gpu'"):

        @app.task(pool="gpu")  # type: ignore[call-overload]
        def fast() -> None: ...


def test_dont_retry_is_added_to_the_retry_policy(app: errands.App) -> None:
    @app.task(dont_retry=(KeyError,), retry=errands.RetryPolicy(base=timedelta(seconds=7)))
    def strict() -> None: ...

    policy = strict.defaults.retry
    assert not policy.retries(KeyError("k"))
    assert policy.base == timedelta(seconds=7)


def test_queues_lists_every_tasks_queue_and_default(app: errands.App) -> None:
    @app.task(queue="mail")
    def a() -> None: ...

    @app.task(queue="reports")
    def b() -> None: ...

    assert app.queues == ["default", "mail", "reports"]


def test_app_without_a_url_reads_errands_broker_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERRANDS_BROKER_URL", "memory://from-env")
    made = errands.App()
    try:
        assert made.settings.broker_url == "memory://from-env"
    finally:
        made.close()


def test_app_without_a_url_or_variable_defaults_to_errands_db(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ERRANDS_BROKER_URL", raising=False)
    made = errands.App()
    try:
        assert made.settings.broker_url == DEFAULT_BROKER_URL == "sqlite:///errands.db"
    finally:
        made.close()


def test_an_explicit_url_wins_over_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERRANDS_BROKER_URL", "sqlite:///elsewhere.db")
    monkeypatch.setenv("ERRANDS_MAX_ATTEMPTS", "9")
    made = errands.App("memory://")
    try:
        assert made.settings.broker_url == "memory://"
        assert made.settings.max_attempts == 9  # the rest of the environment still applies
    finally:
        made.close()


def test_an_unknown_broker_scheme_fails_at_construction_naming_the_known_schemes() -> None:
    with pytest.raises(errands.UnknownBrokerScheme) as caught:
        errands.App("carrier-pigeon://coop")

    assert "'carrier-pigeon://coop'" in str(caught.value)
    assert caught.value.known == sorted(OPENERS)
    assert all(scheme in str(caught.value) for scheme in OPENERS)
    assert isinstance(caught.value, ValueError)


def test_an_unknown_scheme_from_the_environment_fails_at_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ERRANDS_BROKER_URL", "carrier-pigeon://coop")

    with pytest.raises(errands.UnknownBrokerScheme, match="carrier-pigeon"):
        errands.App()


def test_a_scheme_added_to_the_openers_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(OPENERS, "pigeon", lambda url, clock: MemoryBroker(clock=clock))
    made = errands.App("pigeon://coop")
    try:
        assert isinstance(made.broker, MemoryBroker)
    finally:
        made.close()


# -- sending by name -------------------------------------------------------------------------


def test_enqueue_by_a_registered_name_uses_that_tasks_defaults(app: errands.App) -> None:
    @app.task(name="mail.send", queue="mail", priority=3, max_attempts=7)
    def send(to: str, subject: str = "hello") -> str:
        return f"{subject} {to}"

    handle = app.enqueue("mail.send", "ada")
    job = handle.refresh()

    assert (job.task, job.queue, job.priority, job.max_attempts) == ("mail.send", "mail", 3, 7)
    assert app.run_until_idle(queues=["mail"]) == 1
    assert handle.result(timeout=WITHIN) == "hello ada"


def test_enqueue_by_a_registered_name_checks_the_arguments(app: errands.App) -> None:
    @app.task(name="mail.send")
    def send(to: str) -> None: ...

    with pytest.raises(TypeError, match=r"mail\.send"):
        app.enqueue("mail.send", "ada", "extra")


def test_enqueue_by_an_unregistered_name_uses_the_apps_defaults_unchecked() -> None:
    made = errands.App("memory://", settings=errands.Settings(max_attempts=4))
    try:
        handle = made.enqueue("billing.charge", 1, 2, order="any number of arguments")
        job = handle.refresh()
    finally:
        made.close()

    assert "billing.charge" not in made.registry
    assert (job.task, job.queue, job.priority) == ("billing.charge", "default", 0)
    assert (job.max_attempts, job.max_crashes) == (4, made.settings.max_crashes)
    assert job.state is JobState.AVAILABLE


def test_by_name_takes_per_call_options_like_any_task(app: errands.App) -> None:
    sender = app.by_name("billing.charge").options(
        queue="billing", priority=9, delay=timedelta(hours=1), idempotency_key="order-1"
    )

    first = sender.enqueue(1)
    again = sender.enqueue(1)
    job = first.refresh()

    assert (job.queue, job.priority, job.state) == ("billing", 9, JobState.SCHEDULED)
    assert again.duplicate
    assert again.id == first.id


def test_by_name_of_a_registered_task_is_that_task(app: errands.App) -> None:
    @app.task(name="known")
    def known() -> None: ...

    assert app.by_name("known") is known


def test_a_task_known_by_name_only_cannot_run_inline(app: errands.App) -> None:
    with pytest.raises(errands.TaskNotRegistered, match=r"'billing\.charge'"):
        app.by_name("billing.charge")(1)


def test_enqueue_wants_a_name_not_a_task_object(app: errands.App) -> None:
    @app.task
    def noop() -> None: ...

    with pytest.raises(TypeError, match="task name"):
        app.enqueue(noop)  # type: ignore[arg-type]


async def test_enqueue_async_sends_by_name(app: errands.App) -> None:
    handle = await app.enqueue_async("reports.build", year=2026)

    job = await handle.refresh_async()
    assert (job.task, job.queue) == ("reports.build", "default")


def test_a_job_sent_by_name_runs_in_a_worker_that_registers_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    producer, worker = errands.App(url), errands.App(url)
    try:

        @worker.task(name="billing.charge", queue="billing")
        def charge(order: int, amount: float) -> str:
            return f"charged {amount} for order {order}"

        handle = producer.by_name("billing.charge").options(queue="billing").enqueue(7, 9.5)
        assert worker.run_until_idle(queues=["billing"]) == 1

        assert handle.result(timeout=WITHIN) == "charged 9.5 for order 7"
    finally:
        producer.close()
        worker.close()


def test_app_enqueue_many_stores_calls_of_two_tasks_in_order(app: errands.App) -> None:
    @app.task
    def first(x: int) -> int:
        return x

    @app.task
    def second(x: int) -> int:
        return -x

    handles = app.enqueue_many(
        [first.call(1), second.call(2), second.options(delay=timedelta(hours=1)).call(3)]
    )

    jobs = [h.refresh() for h in handles]
    assert [j.task for j in jobs] == [first.name, second.name, second.name]
    assert [j.state for j in jobs] == [JobState.AVAILABLE, JobState.AVAILABLE, JobState.SCHEDULED]


async def test_app_enqueue_many_async_returns_handles_in_call_order(app: errands.App) -> None:
    @app.task
    def first(x: int) -> int:
        return x

    @app.task
    async def second(x: int) -> int:
        return -x

    handles = await app.enqueue_many_async([second.call(1), first.call(2)])
    jobs = [await h.refresh_async() for h in handles]

    assert [j.task for j in jobs] == [second.name, first.name]


def test_app_job_makes_a_handle_on_an_existing_id(app: errands.App) -> None:
    @app.task
    def noop() -> None: ...

    handle = noop.enqueue()

    assert app.job(handle.id) == handle
    assert app.job(handle.id).refresh().task == noop.name


def test_locate_finds_a_module_level_app() -> None:
    from tests.unit.worker.pools import procapp

    assert procapp.app.locate() == "tests.unit.worker.pools.procapp:app"


def test_locate_refuses_an_app_it_cannot_find(app: errands.App) -> None:
    with pytest.raises(RuntimeError, match="import_ref"):
        app.locate()
