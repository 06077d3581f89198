"""The shapes of a workflow: what chain, group and chord accept and refuse."""

from __future__ import annotations

from typing import Any

import pytest

import errands


@pytest.fixture
def add(app: errands.App) -> errands.Task[..., int]:
    @app.task(name="add")
    def add(x: int, y: int = 0) -> int:
        return x + y

    return add


def test_every_shape_needs_at_least_one_step() -> None:
    with pytest.raises(ValueError, match="chain needs at least one step"):
        errands.chain()
    with pytest.raises(ValueError, match="group needs at least one step"):
        errands.group()


def test_a_step_is_a_call_not_a_task_or_a_value(add: errands.Task[..., int]) -> None:
    with pytest.raises(TypeError, match=r"call the task with \.call"):
        errands.chain(add.call(1), add)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"takes task\.call"):
        errands.group(42)  # type: ignore[arg-type]


def test_a_chords_header_is_a_group(add: errands.Task[..., int]) -> None:
    with pytest.raises(TypeError, match=r"header is an errands\.group"):
        errands.chord(errands.chain(add.call(1)), add.call())  # type: ignore[arg-type]


def test_a_group_inside_a_group_adds_its_members(add: errands.Task[..., int]) -> None:
    inner = errands.group(add.call(2), add.call(3))
    outer = errands.group(add.call(1), inner, errands.chain(add.call(4)))
    assert len(outer.members) == 4
    assert outer.members[1:3] == inner.members


def test_the_failure_policy_is_cancel_or_continue(add: errands.Task[..., int]) -> None:
    assert errands.chain(add.call(1)).on_failure is None  # inherits; "cancel" at the top
    assert errands.group(add.call(1), on_failure="continue").on_failure == "continue"
    with pytest.raises(ValueError, match="'cancel' or 'continue'"):
        errands.chain(add.call(1), on_failure="ignore")  # type: ignore[arg-type]


def test_immutable_keeps_the_call_and_drops_the_input(add: errands.Task[..., int]) -> None:
    call = add.call(1, y=2)
    fixed = call.immutable()
    assert (fixed.args, fixed.kwargs, fixed.task) == (call.args, call.kwargs, call.task)
    assert (call.takes_input, fixed.takes_input) == (True, False)


def test_shapes_show_their_steps(add: errands.Task[..., Any]) -> None:
    shape = errands.chord(errands.group(add.call(1)), add.call())
    assert repr(shape) == "chord(group(add(...)), add(...))"
