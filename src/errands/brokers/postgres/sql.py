"""The PostgreSQL broker's SQL, loaded once from queries.sql and migrations/."""

from __future__ import annotations

from typing import Final

from errands.brokers.sqlfiles import load_migrations, load_queries

Q: Final = load_queries("errands.brokers.postgres")
MIGRATIONS: Final = load_migrations("errands.brokers.postgres")
