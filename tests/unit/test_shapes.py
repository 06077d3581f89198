"""Shapes: a batch of one task's calls shares its options, each call keeps its own job."""

from __future__ import annotations

from datetime import timedelta

import errands
from errands import envelope
from errands.shapes import specs_of


def test_each_call_of_a_batch_gets_its_own_id_and_arguments(app: errands.App) -> None:
    @app.task(queue="math", priority=3)
    def add(a: int, b: int) -> int:
        return a + b

    calls = [add.call(i, b=i + 1) for i in range(50)]
    specs = specs_of(calls)

    assert len({spec.id for spec in specs}) == 50
    for i, spec in enumerate(specs):
        sent = envelope.decode(spec.payload)
        assert (sent.id, sent.args, sent.kwargs) == (spec.id, [i], {"b": i + 1})
        assert (spec.queue, spec.priority) == ("math", 3)


def test_calls_with_other_options_in_one_batch_keep_their_own(app: errands.App) -> None:
    @app.task(queue="plain")
    def work(n: int) -> None: ...

    urgent = work.options(queue="urgent", priority=9, delay=timedelta(minutes=5))
    specs = specs_of([work.call(1), urgent.call(2), work.call(3)])

    assert [(s.queue, s.priority) for s in specs] == [("plain", 0), ("urgent", 9), ("plain", 0)]
    assert [s.scheduled_at is not None for s in specs] == [False, True, False]


def test_limits_keyed_by_an_argument_are_worked_out_per_call(app: errands.App) -> None:
    @app.task(concurrency_limit=1, limit_key="user")
    def sync(user: str) -> None: ...

    specs = specs_of([sync.call("ann"), sync.call("bob"), sync.call("ann")])

    keys = [spec.limits[0].key for spec in specs]
    assert keys[0] == keys[2] != keys[1]
    assert "ann" in keys[0]
    assert "bob" in keys[1]
