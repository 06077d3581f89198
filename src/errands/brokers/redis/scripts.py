"""The Lua scripts, one file per broker operation in scripts/, each prepended with
`_prelude.lua` (with the key names of keys.py filled in), loaded once and called by SHA.

redis-py's script objects reload a script when the server answers NOSCRIPT (after `SCRIPT
FLUSH`, a restart or a failover), so a call never fails for that reason.

Each script starts with a `#!lua` shebang: Redis then judges a writing script against
`maxmemory` before it runs, so an out-of-memory refusal never leaves half a script's writes
behind; the reading ones say `no-writes`, so they still run when Redis is full.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any, Final, Protocol

from errands.brokers.redis.keys import Keys, lua_prelude

NAMES: Final = (
    "enqueue",
    "enqueue_limited",
    "enqueue_workflow",
    "claim",
    "extend",
    "finish",
    "reclaim",
    "promote",
    "prune",
    "get",
    "list",
    "counts",
    "workers",
    "cancel",
    "requeue",
    "purge",
    "pause",
    "readiness",
    "migrate",
    "schedules",
    "put_schedules",
    "remove_schedules",
    "pause_schedules",
    "fire",
    "topology",
    "declare",
    "unbind",
)

#: Scripts that only read.
READ_ONLY: Final = frozenset(
    {"get", "list", "counts", "workers", "readiness", "schedules", "topology"}
)

Arg = str | bytes | int | float


class ScriptClient(Protocol):
    """What scripts need of a redis-py asyncio client (a Redis or a RedisCluster)."""

    def register_script(self, script: str) -> Any:
        """A callable script object for `script`."""
        ...


def source(name: str) -> str:
    """The full text of script `name`: the prelude with key names, then the script itself."""
    folder = resources.files(__package__).joinpath("scripts")
    prelude = folder.joinpath("_prelude.lua").read_text(encoding="utf-8")
    body = folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    shebang = "#!lua flags=no-writes" if name in READ_ONLY else "#!lua"
    return f"{shebang}\n{prelude.replace('--KEYS--', lua_prelude())}\n{body}"


class Scripts:
    """Every script registered on one client, called as `await scripts.run("claim", now, ...)`."""

    def __init__(self, client: ScriptClient, keys: Keys) -> None:
        self._keys = keys
        self._routing = [keys.meta]
        self._scripts = {name: client.register_script(source(name)) for name in NAMES}

    async def run(self, name: str, now_ms: int | str, args: Sequence[Arg] = ()) -> Any:
        """Run script `name` at `now_ms` ("": Redis's own clock) with its own ARGV after the
        first two."""
        return await self._scripts[name](keys=self._routing, args=[self._keys.tag, now_ms, *args])
