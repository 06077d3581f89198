"""The errands pytest plugin, run the way a user runs it: a conftest that enables it and test
files that use its fixtures, in a pytest session of their own (pytester), judged by outcomes."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

CONFTEST = 'pytest_plugins = ["errands.testing.plugin"]\n'
#: The inner sessions' ini: pytest-asyncio warns without a loop scope, even where unused.
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"

SHOP_TESTS = """
import pytest


@pytest.fixture
def send(errands_app):
    @errands_app.task(name="shop.send_receipt", queue="mail")
    def send_receipt(order_id: int, *, copy: bool = False) -> str:
        return f"receipt {order_id}"

    return send_receipt


def test_an_enqueued_job_is_found_with_its_arguments_and_runs(errands_app, errands_jobs, send):
    send.enqueue(42, copy=True)
    found = errands_jobs.assert_enqueued(send, args=(42,), kwargs={"copy": True}, queue="mail")
    assert (found.task, found.queue, found.state) == ("shop.send_receipt", "mail", "available")
    assert errands_app.run_until_idle(queues=["mail"]) == 1
    assert found.handle.result(timeout=5) == "receipt 42"
    assert [job.state for job in errands_jobs.enqueued(send)] == ["completed"]


def test_each_test_starts_with_no_jobs(errands_jobs, send):
    assert errands_jobs.enqueued() == []
    errands_jobs.assert_not_enqueued(send)


def test_jobs_are_listed_oldest_first_and_filtered(errands_jobs, send):
    for order in (1, 2, 3):
        send.enqueue(order)
    assert [job.args for job in errands_jobs.enqueued("shop.send_receipt")] == [(1,), (2,), (3,)]
    assert errands_jobs.enqueued(send, queue="default") == []
    errands_jobs.assert_not_enqueued(send, args=(4,))


@pytest.mark.asyncio
async def test_async_tests_use_the_async_twins(errands_app, errands_jobs, send):
    await send.enqueue_async(9)
    found = await errands_jobs.assert_enqueued_async(send, args=(9,))
    assert await errands_app.run_until_idle_async() == 1
    assert await found.handle.result_async(timeout=5) == "receipt 9"
    await errands_jobs.assert_not_enqueued_async(send, args=(10,))


def test_nothing_enqueued_fails(errands_jobs):
    errands_jobs.assert_enqueued("shop.refund")


def test_wrong_arguments_fail(errands_jobs, send):
    send.enqueue(1)
    errands_jobs.assert_enqueued(send, args=(2,))


def test_an_unexpected_job_fails(errands_jobs, send):
    send.enqueue(7)
    errands_jobs.assert_not_enqueued(send, args=(7,))


def test_two_matches_fail(errands_jobs, send):
    send.enqueue(5)
    send.enqueue(5)
    errands_jobs.assert_enqueued(send, args=(5,))
"""


def test_the_fixtures_find_run_and_isolate_jobs_and_failures_name_them(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    pytester.makepyfile(test_shop=SHOP_TESTS)

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=4, failed=4)
    result.stdout.fnmatch_lines(
        [
            "*no job of shop.refund was enqueued; the App has no job at all*",
            "*no job of shop.send_receipt with args (2,) was enqueued; "
            "enqueued: shop.send_receipt(1) on mail [[]available[]]*",
            "*expected no job of shop.send_receipt with args (7,), "
            "found: shop.send_receipt(7) on mail [[]available[]]*",
            "*2 jobs of shop.send_receipt with args (5,) were enqueued, expected one*",
        ],
        consecutive=False,
    )


FACTORY = """
import errands


def make_app():
    app = errands.App("memory://")

    @app.task(name="shop.refund")
    def refund(order_id: int) -> int:
        return -order_id

    return app
"""

USES_FACTORY = """
def test_the_factory_app_has_its_tasks(errands_app, errands_jobs):
    refund = errands_app.get_task("shop.refund")
    refund.enqueue(3)
    assert errands_app.run_until_idle() == 1
    assert errands_jobs.assert_enqueued(refund, args=(3,)).handle.result(timeout=5) == -3
"""


def test_the_ini_option_names_the_app_factory(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(shopfactory=FACTORY, test_refund=USES_FACTORY)
    pytester.makeini(INI + "errands_app_factory = shopfactory:make_app\n")
    pytester.syspathinsert()

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)


def test_a_fixture_override_replaces_the_factory(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        CONFTEST
        + textwrap.dedent(
            """
            import pytest
            import shopfactory


            @pytest.fixture
            def errands_app_factory():
                return shopfactory.make_app
            """
        )
    )
    pytester.makeini(INI)
    pytester.makepyfile(shopfactory=FACTORY, test_refund=USES_FACTORY)
    pytester.syspathinsert()

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)


def test_an_ini_factory_that_cannot_be_imported_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_refund=USES_FACTORY)
    pytester.makeini(INI + "errands_app_factory = nowhere:make_app\n")

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*errands_app_factory = 'nowhere:make_app': No module named*"])
