"""errands: a durable Python task queue. Public names only."""
