"""Job values: the TRANSITIONS table and time-ordered UUIDv7 ids."""

from __future__ import annotations

import time
import uuid

import pytest

from errands import job
from errands.job import (
    TERMINAL_STATES,
    TRANSITIONS,
    WAITING_STATES,
    AttemptError,
    ErrorKind,
    Job,
    JobState,
    new_job_id,
)


def test_every_state_has_a_row_in_the_transition_table() -> None:
    assert set(TRANSITIONS) == set(JobState)
    assert all(targets <= set(JobState) for targets in TRANSITIONS.values())


def test_terminal_states_have_no_way_out_but_requeue_to_available() -> None:
    assert TRANSITIONS[JobState.COMPLETED] == frozenset()
    assert TRANSITIONS[JobState.FAILED] == {JobState.AVAILABLE}
    assert TRANSITIONS[JobState.CANCELLED] == {JobState.AVAILABLE}


def test_terminal_is_exactly_completed_failed_and_cancelled() -> None:
    assert {s for s in JobState if s.terminal} == TERMINAL_STATES
    assert {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED} == TERMINAL_STATES
    assert not TERMINAL_STATES & WAITING_STATES


def test_only_a_claim_leads_into_running() -> None:
    into_running = {s for s, targets in TRANSITIONS.items() if JobState.RUNNING in targets}

    assert into_running == {JobState.AVAILABLE}


def test_a_running_job_can_end_every_way_an_outcome_names() -> None:
    assert TRANSITIONS[JobState.RUNNING] == {
        JobState.AVAILABLE,
        JobState.SCHEDULED,
        JobState.RETRYABLE,
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
    }


@pytest.mark.parametrize("state", sorted(WAITING_STATES))
def test_a_waiting_job_can_be_cancelled(state: JobState) -> None:
    assert JobState.CANCELLED in TRANSITIONS[state]


def test_states_are_their_lowercase_names_on_the_wire() -> None:
    assert [str(s) for s in JobState] == [
        "pending",
        "scheduled",
        "available",
        "running",
        "retryable",
        "completed",
        "failed",
        "cancelled",
    ]


def test_ids_made_in_a_burst_sort_in_creation_order_and_are_unique() -> None:
    ids = [new_job_id() for _ in range(10_000)]

    assert sorted(ids) == ids
    assert len(set(ids)) == len(ids)


def test_an_id_is_a_uuid_version_7_with_the_rfc_variant() -> None:
    made = new_job_id()
    parsed = uuid.UUID(made)

    assert str(parsed) == made
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_an_id_carries_the_time_it_was_made_in_its_first_48_bits() -> None:
    before = time.time_ns() // 1_000_000
    made = new_job_id()
    after = time.time_ns() // 1_000_000

    assert before <= uuid.UUID(made).int >> 80 <= after


def test_ids_still_sort_when_more_than_4096_are_made_in_one_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen = time.time_ns()
    monkeypatch.setattr(job.time, "time_ns", lambda: frozen)
    monkeypatch.setattr(job, "_last_ms", 0)
    monkeypatch.setattr(job, "_seq", 0)

    ids = [new_job_id() for _ in range(5000)]

    assert sorted(ids) == ids


def test_last_error_is_the_most_recent_attempt_error() -> None:
    first = AttemptError(1, ErrorKind.EXCEPTION, "ValueError", "one")
    second = AttemptError(2, ErrorKind.TIMEOUT, "Timeout", "two")
    stored = Job(
        id="j", task="t", queue="q", state=JobState.RETRYABLE, payload=b"", errors=(first, second)
    )

    assert stored.last_error == second
    assert (
        Job(id="j", task="t", queue="q", state=JobState.AVAILABLE, payload=b"").last_error is None
    )


def test_evolve_returns_a_changed_copy_and_leaves_the_job_alone() -> None:
    stored = Job(id="j", task="t", queue="q", state=JobState.AVAILABLE, payload=b"")

    moved = stored.evolve(state=JobState.RUNNING, attempt=1)

    assert (moved.state, moved.attempt) == (JobState.RUNNING, 1)
    assert (stored.state, stored.attempt) == (JobState.AVAILABLE, 0)
