"""Workflows: chains, groups and chords of task calls, stored in one write and released by the
broker as their dependencies end (docs/workflows.md)."""
