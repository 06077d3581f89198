"""Planning: the specs of one enqueue, who waits for whom, and what each step takes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import errands
from errands import envelope
from errands.job import JobSpec
from errands.workflow.plan import plan


@pytest.fixture
def add(app: errands.App) -> errands.Task[..., int]:
    @app.task(name="add")
    def add(x: int, y: int = 0) -> int:
        return x + y

    return add


def takes(spec: JobSpec) -> str:
    """What the step takes first among its arguments: "none", "value" or "list"."""
    workflow = envelope.decode(spec.payload).workflow
    assert workflow is not None
    return workflow["input"]


def test_a_chain_waits_step_by_step_and_passes_single_values(add: errands.Task[..., int]) -> None:
    planned = plan(errands.chain(add.call(1), add.call(), add.call()))
    a, b, c = planned.specs
    assert [a.depends_on, b.depends_on, c.depends_on] == [(), (a.id,), (b.id,)]
    assert [takes(s) for s in planned.specs] == ["none", "value", "value"]
    assert (planned.outputs, planned.as_list) == ([c.id], False)
    assert envelope.decode(b.payload).depends_on == [a.id]


def test_after_a_group_the_next_step_waits_for_all_and_takes_a_list(
    add: errands.Task[..., int],
) -> None:
    planned = plan(errands.chain(add.call(1), errands.group(add.call(), add.call()), add.call()))
    first, left, right, last = planned.specs
    assert left.depends_on == right.depends_on == (first.id,)
    assert last.depends_on == (left.id, right.id)
    assert [takes(s) for s in planned.specs] == ["none", "value", "value", "list"]


def test_a_chord_is_a_group_then_its_callback(add: errands.Task[..., int]) -> None:
    planned = plan(errands.chord(errands.group(add.call(1), add.call(2)), add.call()))
    *members, callback = planned.specs
    assert callback.depends_on == tuple(s.id for s in members)
    assert (planned.outputs, planned.as_list) == ([callback.id], False)


def test_a_groups_outputs_are_its_members_last_steps(add: errands.Task[..., int]) -> None:
    planned = plan(
        errands.group(errands.chain(add.call(1), add.call()), errands.chain(add.call(2)))
    )
    _, a2, b1 = planned.specs
    assert (planned.outputs, planned.as_list) == ([a2.id, b1.id], True)


def test_the_policy_of_the_nearest_shape_applies(add: errands.Task[..., int]) -> None:
    inner = errands.chain(add.call(1), add.call(), on_failure="continue")
    planned = plan(errands.chain(add.call(1), add.call(), inner))
    assert [s.on_failure for s in planned.specs] == ["cancel"] * 2 + ["continue"] * 2


def test_an_immutable_step_waits_but_takes_nothing(add: errands.Task[..., int]) -> None:
    planned = plan(errands.chain(add.call(1), add.call(5).immutable()))
    assert planned.specs[1].depends_on == (planned.specs[0].id,)
    assert takes(planned.specs[1]) == "none"


def test_arguments_are_checked_with_the_input_in_front(add: errands.Task[..., int]) -> None:
    plan(errands.chain(add.call(1), add.call(2)))  # add(<input>, 2) fits
    with pytest.raises(TypeError, match="arguments do not fit task add"):
        plan(errands.chain(add.call(1), add.call(2, 3)))
    with pytest.raises(TypeError, match="arguments do not fit task add"):
        plan(errands.chain(add.call(1), add.call().immutable()))


@pytest.mark.parametrize(
    "options",
    [{"idempotency_key": "k"}, {"exchange": "orders", "routing_key": "eu"}],
)
def test_a_step_is_one_job_so_keys_and_exchanges_are_refused(
    add: errands.Task[..., int], options: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="exactly one job"):
        plan(errands.chain(add.call(1), add.options(**options).call()))


def test_a_result_passed_on_must_be_kept(add: errands.Task[..., int]) -> None:
    forgetful = add.options(result_ttl=timedelta(0))
    with pytest.raises(ValueError, match="keeps none"):
        plan(errands.chain(forgetful.call(1), add.call()))
    plan(errands.chain(forgetful.call(1), add.call(1).immutable()))


def test_steps_of_two_apps_are_refused(add: errands.Task[..., int]) -> None:
    other = errands.App("memory://")

    @other.task(name="other")
    def elsewhere() -> None: ...

    try:
        with pytest.raises(ValueError, match="one App"):
            plan(errands.chain(add.call(1), elsewhere.call().immutable()))
    finally:
        other.close()


def test_enqueue_stores_every_job_and_returns_their_handles(
    app: errands.App, add: errands.Task[..., int]
) -> None:
    handle = errands.chain(add.call(1, 1), add.call(3)).enqueue()
    assert [job.refresh().state for job in handle.jobs] == [
        errands.JobState.AVAILABLE,
        errands.JobState.PENDING,
    ]
    app.run_until_idle()
    assert handle.result(timeout=10) == 5
