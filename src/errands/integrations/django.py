"""Django: the App that `settings.ERRANDS` names, enqueue when a transaction commits, and
enqueue inside the transaction of Django's own PostgreSQL connection.

`settings.ERRANDS` is a dict with one of: "APP" ("module:attr" of your App, with its tasks),
"BROKER_URL" (an App built once per URL, for sending by name), or "DATABASE" (the alias of a
PostgreSQL database in DATABASES: an App on that database, in the schema "SCHEMA", default
"errands", so Django's connection can write its jobs). Workers are started as usual.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any
from urllib.parse import quote, urlencode

from django.conf import settings  # type: ignore[import-untyped]
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
from django.db import DEFAULT_DB_ALIAS, connections, transaction  # type: ignore[import-untyped]

from errands.app import App
from errands.handle import JobHandle
from errands.task import Call

#: The keys of settings.ERRANDS, exactly one of the first three.
KEYS = ("APP", "BROKER_URL", "DATABASE", "SCHEMA")


def get_app() -> App:
    """The App `settings.ERRANDS` names; the same App on every call with the same settings."""
    config = _config()
    if "APP" in config:
        from errands.cli.target import TargetError, load_target

        try:
            return load_target(str(config["APP"])).app
        except TargetError as error:
            raise ImproperlyConfigured(f"settings.ERRANDS['APP']: {error}") from None
    if "BROKER_URL" in config:
        return _app_for(str(config["BROKER_URL"]))
    return _app_for(database_url(str(config["DATABASE"]), str(config.get("SCHEMA", "errands"))))


def enqueue_on_commit(call: Call, *, using: str | None = None) -> None:
    """Enqueue `call` (`task.call(...)`, options included) once the current transaction on
    database `using` commits; nothing when it rolls back, at once outside a transaction.

    The job is written after the commit, so a crash in between loses it: where the broker is
    the same PostgreSQL database, `enqueue_in_transaction` writes it in the transaction itself.
    """
    if not isinstance(call, Call):
        raise TypeError(f"enqueue_on_commit takes task.call(...), got {call!r}")
    transaction.on_commit(functools.partial(call.task.app.enqueue_many, [call]), using=using)


def enqueue_in_transaction(call: Call, *, using: str = DEFAULT_DB_ALIAS) -> JobHandle[Any]:
    """Write `call` as a job on Django's connection `using`, inside its current transaction
    (`transaction.atomic()`): the job exists, and wakes workers, only if that commits.

    The call's App must be a PostgreSQL App on the same database (settings.ERRANDS
    "DATABASE" builds one), and Django must use psycopg 3. Outside `atomic()` Django's
    connection is in autocommit mode and the job is stored at once.
    """
    if not isinstance(call, Call):
        raise TypeError(f"enqueue_in_transaction takes task.call(...), got {call!r}")
    raw = _psycopg_connection(using)
    app = call.task.app
    app.portal.call(app.open_async)  # migrations run before the first write on Django's side
    [handle] = app.enqueue_many([replace(call, options=replace(call.options, connection=raw))])
    return handle


def database_url(alias: str, schema: str = "errands") -> str:
    """The errands URL of the PostgreSQL database `alias` of settings.DATABASES, with the
    job tables in `schema`."""
    database = settings.DATABASES.get(alias)
    if database is None:
        raise ImproperlyConfigured(f"settings.ERRANDS['DATABASE']: no database {alias!r}")
    if "postgresql" not in database.get("ENGINE", ""):
        raise ImproperlyConfigured(
            f"settings.ERRANDS['DATABASE']: {alias!r} is {database.get('ENGINE')!r}, "
            "not django.db.backends.postgresql"
        )
    user = quote(str(database.get("USER") or ""), safe="")
    password = quote(str(database.get("PASSWORD") or ""), safe="")
    login = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    port = f":{database['PORT']}" if database.get("PORT") else ""
    name = quote(str(database.get("NAME") or ""), safe="")
    query = urlencode({"schema": schema})
    return f"postgresql://{login}{database.get('HOST') or ''}{port}/{name}?{query}"


@functools.cache
def _app_for(url: str) -> App:
    """One App per URL for the life of the process (each closes itself at exit)."""
    return App(url)


def _config() -> dict[str, Any]:
    config = getattr(settings, "ERRANDS", None)
    if not isinstance(config, dict):
        raise ImproperlyConfigured("settings.ERRANDS must be a dict, e.g. {'APP': 'shop:app'}")
    unknown = sorted(set(config) - set(KEYS))
    if unknown:
        raise ImproperlyConfigured(f"settings.ERRANDS: unknown keys {unknown} (known: {KEYS})")
    chosen = [key for key in KEYS[:3] if key in config]
    if len(chosen) != 1:
        raise ImproperlyConfigured(
            f"settings.ERRANDS needs exactly one of APP, BROKER_URL, DATABASE; got {chosen}"
        )
    return config


def _psycopg_connection(using: str) -> Any:
    connection = connections[using]
    if connection.vendor != "postgresql":
        raise TypeError(
            f"enqueue_in_transaction needs a PostgreSQL database; {using!r} is {connection.vendor}"
        )
    connection.ensure_connection()
    import psycopg  # only with errands[postgres]

    raw = connection.connection
    if not isinstance(raw, psycopg.Connection):
        raise TypeError(
            f"enqueue_in_transaction needs Django on psycopg 3, not {type(raw).__module__}: "
            "pip install 'errands[postgres]'"
        )
    return raw
