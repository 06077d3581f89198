"""The gate of a claim: GCRA spacing and bursts, concurrency caps, every limit of a job at once,
and the state it leaves to store."""

from __future__ import annotations

from errands.brokers.gate import Gate, KeyState
from errands.limits import Limit

SECOND_US = 1_000_000
NOW_MS = 1_900_000_000_000


def test_a_rate_admits_one_job_per_period_and_records_when_it_opens() -> None:
    rate = Limit("k", period_us=SECOND_US)
    gate = Gate(NOW_MS, {}, {})
    assert gate.admit([rate])
    assert not gate.admit([rate])
    assert gate.states() == [KeyState("k", NOW_MS * 1000 + SECOND_US, NOW_MS + 1000, None)]


def test_a_stored_time_ahead_of_now_holds_the_key_until_then() -> None:
    rate = Limit("k", period_us=SECOND_US)
    assert not Gate(NOW_MS, {}, {"k": NOW_MS * 1000 + 1}).admit([rate])
    assert Gate(NOW_MS, {}, {"k": NOW_MS * 1000}).admit([rate])


def test_a_burst_admits_that_many_back_to_back() -> None:
    rate = Limit("k", period_us=SECOND_US, burst=3)
    gate = Gate(NOW_MS, {}, {})
    assert [gate.admit([rate]) for _ in range(4)] == [True, True, True, False]
    [state] = gate.states()
    assert state.open_at_ms == NOW_MS + 1000  # one period after the burst began


def test_a_concurrency_cap_counts_the_running_jobs_read_and_those_admitted() -> None:
    cap = Limit("k", concurrency=3)
    gate = Gate(NOW_MS, {"k": 1}, {})
    assert [gate.admit([cap]) for _ in range(3)] == [True, True, False]
    assert gate.blocked == {"k"}


def test_a_job_starts_only_if_every_limit_admits_it_and_then_counts_against_each() -> None:
    task, queue = Limit("task:t", concurrency=5), Limit("queue:q", concurrency=1)
    gate = Gate(NOW_MS, {}, {})
    assert gate.admit([task, queue])
    assert not gate.admit([task, queue])
    assert gate.running == {"task:t": 1, "queue:q": 1}  # the refused job counted nowhere


def test_a_job_without_limits_always_starts() -> None:
    gate = Gate(NOW_MS, {}, {})
    assert all(gate.admit([]) for _ in range(100))
    assert gate.states() == []


def test_learning_more_keys_keeps_what_the_claim_already_counted() -> None:
    cap = Limit("k", concurrency=2)
    gate = Gate(NOW_MS, {}, {})
    assert gate.admit([cap])
    gate.learn({"k": 0, "other": 1}, {"k": 0})
    assert gate.running == {"k": 1, "other": 1}
