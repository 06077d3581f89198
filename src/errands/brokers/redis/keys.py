"""Every Redis key and channel name of the broker, for Python and for the Lua scripts alike.

All names of one app start with its prefix inside a hash tag, `{errands}:job:<id>`, so every
key a script touches lies in one hash slot and the broker runs unchanged on Redis Cluster. The
scripts build names from the same tables: `lua_prelude()` turns them into Lua definitions that
scripts.py prepends to every script, so the layout is written down once, here.

Layout (P is the tagged prefix):

| key                    | type   | holds                                                    |
|------------------------|--------|----------------------------------------------------------|
| P:meta                 | hash   | `schema` version; every script's KEYS[1] (routing)       |
| P:job:<id>             | hash   | one job's fields (FIELDS below, plus its lease `token`)  |
| P:result:<id>          | string | a completed job's result, expiring with its result_ttl  |
| P:ready:<queue>        | zset   | available jobs by rank (priority, scheduled_at, id) lex  |
| P:due                  | zset   | scheduled and retryable jobs by due time (ms)            |
| P:running              | zset   | running jobs by lease expiry (ms)                        |
| P:finished             | zset   | terminal jobs by finish time (ms), for retention         |
| P:results              | zset   | jobs with a stored result by its expiry (ms)             |
| P:queue-ids:<queue>    | zset   | one queue's job ids (lex), for newest-first pages        |
| P:counts:<queue>       | hash   | jobs per state in one queue                              |
| P:claim:<token>        | string | the ids one claim took, for a lease (a resent claim)    |
| P:limit:<key>          | hash   | a limit key's GCRA `tat` (µs), expiring when it passes   |
| P:limit-running:<key>  | set    | jobs claimed under a concurrency key (pruned by claims)  |
| P:held:<queue>         | string | the ready count when a claim found only held jobs (wait) |
| P:waiting:<id>         | set    | a pending job's dependencies not yet ended              |
| P:dependents:<id>      | hash   | the pending jobs waiting for job <id> -> their policy   |
| P:idempotency          | hash   | `task NUL key` -> the id of the job that owns the key    |
| P:key-ids:<key>        | zset   | the ids (lex) of the jobs holding idempotency key <key>  |
| P:workflow:<id>        | zset   | the ids (lex) of workflow <id>'s jobs, for list_jobs     |
| P:queues, P:paused     | set    | every queue seen; the paused ones                        |
| P:workers, P:seen      | hash, zset | heartbeats (JSON) by worker id; last seen (ms)       |
| P:schedule:<name>      | hash   | one schedule (SCHEDULE_FIELDS below)                     |
| P:schedules            | zset   | every schedule's name, all scored 0 (so by name)         |
| P:exchanges            | hash   | exchange name -> JSON {kind, unroutable} (topology.py)   |
| P:bindings             | set    | bindings, each the JSON [exchange, destination, key]     |
| P:notify:ready/done    | channel | published after writes that may wake workers / waiters |
"""

from __future__ import annotations

from typing import Final

#: Job hash fields in the order every script returns them (after the id, before the result).
FIELDS: Final = (
    "task",
    "queue",
    "state",
    "payload",
    "priority",
    "attempt",
    "failures",
    "crashes",
    "max_attempts",
    "max_crashes",
    "enqueued_at",
    "scheduled_at",
    "started_at",
    "finished_at",
    "expires_at",
    "worker_id",
    "result_ttl",
    "result_expires_at",
    "idempotency_key",
    "fail_reason",
    "cancel_reason",
    "cancel_requested",
    "progress",
    "errors",
    "workflow_id",
)

#: Schedule hash fields in the order the schedules script returns them (after the name).
#: Instants are ms, `paused` is 1 or 0, `skipped` a JSON array of values.skipped_json objects.
SCHEDULE_FIELDS: Final = (
    "definition",
    "paused",
    "cursor",
    "created_at",
    "updated_at",
    "last_slot",
    "last_job_id",
    "last_fired_at",
    "skipped",
)

#: Keys that exist once per app: Lua name -> suffix after the prefix.
SINGLE: Final = {
    "meta": "meta",
    "due": "due",
    "running": "running",
    "finished": "finished",
    "results": "results",
    "idempotency": "idempotency",
    "queues": "queues",
    "paused": "paused",
    "workers": "workers",
    "seen": "seen",
    "schedules": "schedules",
    "exchanges": "exchanges",
    "bindings": "bindings",
    "ready_channel": "notify:ready",
    "done_channel": "notify:done",
}

#: Keys that exist once per job id or per queue name: Lua function name -> suffix.
PER_NAME: Final = {
    "job": "job",
    "result": "result",
    "ready": "ready",
    "queue_ids": "queue-ids",
    "counts": "counts",
    "claim": "claim",
    "schedule": "schedule",
    "waiting": "waiting",
    "dependents": "dependents",
    "limit": "limit",
    "limit_running": "limit-running",
    "held": "held",
    "key_ids": "key-ids",
    "workflow": "workflow",
}


def tagged(prefix: str) -> str:
    """The prefix as the hash tag every key starts with; braces inside it are refused, since
    they would move the tag and scatter an app's keys over several slots."""
    if not prefix or "{" in prefix or "}" in prefix:
        raise ValueError(f"a Redis key prefix must be non-empty and without braces: {prefix!r}")
    return "{" + prefix + "}"


class Keys:
    """The names of one app's keys, e.g. `Keys("errands").job("0190...")`."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.tag = tagged(prefix)
        self.meta = self._single("meta")
        self.ready_channel = self._single("ready_channel")
        self.done_channel = self._single("done_channel")

    def _single(self, name: str) -> str:
        return f"{self.tag}:{SINGLE[name]}"

    def job(self, job_id: str) -> str:
        """The hash holding job `job_id`."""
        return f"{self.tag}:{PER_NAME['job']}:{job_id}"

    def pattern(self) -> str:
        """A SCAN pattern for every key of this app (for cleanup in tests and tools)."""
        escaped = self.tag.replace("{", "\\{").replace("}", "\\}")
        return f"{escaped}:*"


def lua_prelude() -> str:
    """Lua definitions of every name above, for the prelude of each script: `K_due` for a
    single key and `K_job(id)` for a per-name one, both built on `P` (ARGV[1]), FIELDS and
    SCHEDULE_FIELDS."""
    lines = [f"local K_{name} = P .. ':{suffix}'" for name, suffix in SINGLE.items()]
    lines += [
        f"local function K_{name}(x) return P .. ':{suffix}:' .. x end"
        for name, suffix in PER_NAME.items()
    ]
    for name, fields in (("FIELDS", FIELDS), ("SCHEDULE_FIELDS", SCHEDULE_FIELDS)):
        lines.append(f"local {name} = {{" + ", ".join(f"'{field}'" for field in fields) + "}")
    return "\n".join(lines) + "\n"
