"""The broker conformance suite: one set of tests every broker must pass (DESIGN.md §13)."""
