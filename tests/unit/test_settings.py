"""Settings: every default once; ERRANDS_* variables override them, durations in seconds."""

from __future__ import annotations

from datetime import timedelta

import pytest

from errands.settings import DEFAULT_BROKER_URL, Settings


def test_the_documented_defaults() -> None:
    settings = Settings()

    assert settings.broker_url == DEFAULT_BROKER_URL == "sqlite:///errands.db"
    assert (settings.lease, settings.extend_every, settings.rescue_every) == (
        timedelta(seconds=4),
        timedelta(milliseconds=500),
        timedelta(seconds=1),
    )
    assert (settings.max_attempts, settings.max_crashes) == (3, 3)
    assert settings.result_ttl == timedelta(days=1)
    assert settings.hard_timeout_margin == timedelta(seconds=5)


def test_a_lease_spans_at_least_three_extend_ticks() -> None:
    settings = Settings()

    assert settings.lease >= 3 * settings.extend_every


def test_no_variables_give_the_defaults() -> None:
    assert Settings.from_env({}) == Settings()


def test_durations_are_read_as_seconds_and_may_be_fractions() -> None:
    settings = Settings.from_env({"ERRANDS_LEASE": "45", "ERRANDS_FLUSH_WINDOW": "0.005"})

    assert settings.lease == timedelta(seconds=45)
    assert settings.flush_window == timedelta(milliseconds=5)


def test_counts_are_read_as_integers_and_urls_as_text() -> None:
    settings = Settings.from_env({"ERRANDS_MAX_ATTEMPTS": "7", "ERRANDS_BROKER_URL": "memory://"})

    assert settings.max_attempts == 7
    assert settings.broker_url == "memory://"


def test_a_variable_that_is_not_a_number_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="ERRANDS_MAX_ATTEMPTS='many'"):
        Settings.from_env({"ERRANDS_MAX_ATTEMPTS": "many"})


def test_unrelated_variables_are_ignored() -> None:
    assert Settings.from_env({"ERRANDS_NO_SUCH_THING": "1", "LEASE": "9"}) == Settings()


def test_the_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERRANDS_GRACE", "2.5")

    assert Settings.from_env().grace == timedelta(seconds=2.5)


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().lease = timedelta(0)  # type: ignore[misc]
