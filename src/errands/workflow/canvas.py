"""The shapes of a workflow: `chain`, `group` and `chord` of task calls (`task.call(...)`),
nested as deep as you like, each started with one atomic write of every job."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from errands.job import OnFailure
from errands.task import Call

if TYPE_CHECKING:
    from errands.workflow.handle import WorkflowHandle

Step: TypeAlias = "Call | Chain | Group | Chord"
POLICIES: tuple[OnFailure, ...] = ("cancel", "continue")


class Workflow:
    """What chain, group and chord share: the failure policy and how to start them.

    `on_failure` is what a step that ends without completing (failed for good, or cancelled)
    does to the steps that wait for it: "cancel" cancels them at once (reason parent_failed),
    "continue" lets them run, each receiving an errands.StepFailed in place of that result.
    None takes the policy of the workflow around it ("cancel" at the top).
    """

    def __init__(self, on_failure: OnFailure | None) -> None:
        if on_failure is not None and on_failure not in POLICIES:
            raise ValueError(f"on_failure must be 'cancel' or 'continue', got {on_failure!r}")
        self.on_failure = on_failure

    async def enqueue_async(self) -> WorkflowHandle:
        """Store every job of the workflow in one atomic write and return its handle."""
        from errands.workflow.plan import plan

        return await plan(self).store()

    def enqueue(self) -> WorkflowHandle:
        """Blocking twin of `enqueue_async`."""
        from errands.workflow.plan import plan

        planned = plan(self)
        return planned.app.portal.call(planned.store)


class Chain(Workflow):
    """Steps run one after the other; each receives the previous step's result as its first
    argument (unless made with `.immutable()`), a list after a group. Its result is its last
    step's."""

    def __init__(self, steps: Sequence[Step], on_failure: OnFailure | None = None) -> None:
        super().__init__(on_failure)
        self.steps = _checked(steps, "chain")

    def __repr__(self) -> str:
        return f"chain({', '.join(map(_name, self.steps))})"


class Group(Workflow):
    """Members run side by side; its result is the list of their results, in order. A group
    inside a group adds its members to it."""

    def __init__(self, members: Sequence[Step], on_failure: OnFailure | None = None) -> None:
        super().__init__(on_failure)
        flat: list[Step] = []
        for member in _checked(members, "group"):
            flat += member.members if isinstance(member, Group) else [member]
        self.members: tuple[Step, ...] = tuple(flat)

    def __repr__(self) -> str:
        return f"group({', '.join(map(_name, self.members))})"


class Chord(Workflow):
    """A group, then a callback released once, in the write that ends the group's last member;
    the callback receives the list of the members' results and its result is the chord's."""

    def __init__(self, header: Group, callback: Step, on_failure: OnFailure | None = None) -> None:
        super().__init__(on_failure)
        if not isinstance(header, Group):
            raise TypeError(f"a chord's header is an errands.group(...), got {header!r}")
        [self.callback] = _checked([callback], "chord")
        self.header = header

    def __repr__(self) -> str:
        return f"chord({self.header!r}, {_name(self.callback)})"


def chain(*steps: Step, on_failure: OnFailure | None = None) -> Chain:
    """`errands.chain(a.call(1), b.call(), ...)`: run the steps in order, passing results on."""
    return Chain(steps, on_failure)


def group(*members: Step, on_failure: OnFailure | None = None) -> Group:
    """`errands.group(a.call(1), a.call(2), ...)`: run the members side by side."""
    return Group(members, on_failure)


def chord(header: Group, callback: Step, *, on_failure: OnFailure | None = None) -> Chord:
    """`errands.chord(errands.group(...), total.call())`: the callback runs once every member
    has ended, with the list of their results."""
    return Chord(header, callback, on_failure)


def _checked(steps: Sequence[Any], kind: str) -> tuple[Step, ...]:
    if not steps:
        raise ValueError(f"a {kind} needs at least one step")
    for step in steps:
        if not isinstance(step, Call | Chain | Group | Chord):
            raise TypeError(
                f"a {kind} takes task.call(...), chain, group or chord steps, got {step!r} "
                "(call the task with .call(...) to make a step)"
            )
    return tuple(steps)


def _name(step: Step) -> str:
    return f"{step.task.name}(...)" if isinstance(step, Call) else repr(step)
