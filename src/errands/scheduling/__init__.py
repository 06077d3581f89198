"""Periodic jobs: schedules (cron or interval, in a time zone), the policy for missed runs,
and the scheduler that enqueues each slot exactly once, however many run."""
