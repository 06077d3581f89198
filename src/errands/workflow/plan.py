"""Planning: a workflow's shape turned into the JobSpecs of one enqueue, each step waiting for
the outputs of the step before it (`JobSpec.depends_on`), with the handle that waits for it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from errands.enqueue_hooks import tell_enqueued
from errands.job import JobId, JobSpec, OnFailure, new_job_id
from errands.task import Call
from errands.workflow.canvas import Chain, Chord, Group, Step, Workflow
from errands.workflow.handle import WorkflowHandle

if TYPE_CHECKING:
    from errands.app import App


@dataclass
class Plan:
    """The specs of a workflow, in an order where every spec comes after those it waits for,
    and which of them give the workflow's result (`outputs`, a list when `as_list`)."""

    app: App
    id: str
    specs: list[JobSpec] = field(default_factory=list)
    outputs: list[JobId] = field(default_factory=list)
    as_list: bool = False
    kept: dict[JobId, bool] = field(default_factory=dict)  # whether each spec keeps a result

    async def store(self) -> WorkflowHandle:
        """Enqueue every spec in one atomic write; the handle on the stored workflow."""
        stored = await self.app.call_broker(lambda broker: broker.enqueue_many(self.specs))
        tell_enqueued(self.app.enqueue_hooks, self.specs, stored)
        ids = [item.job_id for item in stored]
        return WorkflowHandle(self.app, self.id, ids, self.outputs, as_list=self.as_list)


def plan(workflow: Workflow) -> Plan:
    """The Plan of `workflow`; ValueError or TypeError for a step a workflow cannot hold."""
    assert isinstance(workflow, Chain | Group | Chord)
    calls = list(_calls(workflow))
    apps = {id(call.task.app): call.task.app for call in calls}
    if len(apps) > 1:
        raise ValueError("every step of a workflow must be a task of one App (one broker)")
    planned = Plan(next(iter(apps.values())), new_job_id())
    outputs, as_list = _place(planned, workflow, [], False, workflow.on_failure or "cancel")
    planned.outputs, planned.as_list = outputs, as_list
    return planned


def _place(
    planned: Plan, step: Step, after: list[JobId], after_list: bool, policy: OnFailure
) -> tuple[list[JobId], bool]:
    """Add the specs of `step`, which waits for the jobs `after` (their results make one list
    when `after_list`); returns the step's outputs and whether they make a list."""
    if isinstance(step, Call):
        return [_add(planned, step, after, after_list, policy)], False
    policy = step.on_failure or policy
    if isinstance(step, Chain):
        for inner in step.steps:
            after, after_list = _place(planned, inner, after, after_list, policy)
        return after, after_list
    if isinstance(step, Group):
        outputs: list[JobId] = []
        for member in step.members:
            outputs += _place(planned, member, after, after_list, policy)[0]
        return outputs, True
    assert isinstance(step, Chord)
    header, _ = _place(planned, step.header, after, after_list, policy)
    return _place(planned, step.callback, header, True, policy)


def _add(
    planned: Plan, call: Call, after: list[JobId], after_list: bool, policy: OnFailure
) -> JobId:
    options = call.options
    if options.idempotency_key is not None or options.exchange is not None:
        raise ValueError(
            f"a workflow step cannot use idempotency_key= or exchange= ({call.task.name}): "
            "each step is exactly one job of the workflow"
        )
    if options.connection is not None:
        raise ValueError(f"a workflow step cannot use connection= ({call.task.name})")
    takes = "none" if not after or not call.takes_input else "list" if after_list else "value"
    if takes != "none":
        _check_results_kept(planned, after, call)
    spec = call.task.build_spec(
        call.args,
        call.kwargs,
        options,
        after=after,
        workflow={"id": planned.id, "input": takes},
        on_failure=policy,
    )
    planned.specs.append(spec)
    planned.kept[spec.id] = bool(spec.result_ttl)
    return spec.id


def _check_results_kept(planned: Plan, after: list[JobId], call: Call) -> None:
    """A result passed on must be stored: a step with result_ttl 0 keeps none."""
    if not all(planned.kept[job_id] for job_id in after):
        raise ValueError(
            f"{call.task.name} takes the result of a step that keeps none (result_ttl=0): "
            "give that step a result_ttl, or make this one .immutable()"
        )


def _calls(step: Step) -> Iterator[Call]:
    if isinstance(step, Call):
        yield step
    elif isinstance(step, Chain):
        for inner in step.steps:
            yield from _calls(inner)
    elif isinstance(step, Group):
        for member in step.members:
            yield from _calls(member)
    else:
        yield from _calls(step.header)
        yield from _calls(step.callback)
