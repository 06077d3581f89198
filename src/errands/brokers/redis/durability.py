"""The start-up check of Redis's settings against errands' promise that nothing is lost."""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger("errands.brokers.redis")


async def check_durability(node: Any, location: str) -> list[str]:
    """Log a warning for each setting of the Redis at `location` that can lose jobs, and
    return the warnings: an eviction policy other than `noeviction` (Redis would drop job keys
    under memory pressure) and no persistence at all (a restart loses everything). A Redis
    whose CONFIG command is disabled (some hosted ones) is reported as unchecked."""
    try:
        config = await node.config_get("maxmemory-policy")
        config.update(await node.config_get("appendonly"))
        config.update(await node.config_get("save"))
    except RedisError as error:
        log.info(
            "could not read the settings of Redis at %s (%s); durability unchecked", location, error
        )
        return []
    warnings = []
    policy = _text(config.get(b"maxmemory-policy", config.get("maxmemory-policy")))
    if policy and policy != "noeviction":
        warnings.append(
            f"Redis at {location} has maxmemory-policy {policy}: under memory pressure it "
            "evicts keys, which loses jobs; set maxmemory-policy noeviction"
        )
    aof = _text(config.get(b"appendonly", config.get("appendonly")))
    save = _text(config.get(b"save", config.get("save")))
    if aof != "yes" and not save:
        warnings.append(
            f'Redis at {location} persists nothing (appendonly no, save ""): a restart loses '
            "every job; turn on AOF (appendonly yes, appendfsync always) for no loss"
        )
    for warning in warnings:
        log.warning(warning)
    return warnings


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)
