"""Redis's errors as errands' own: what a broker call raises when Redis is gone, full, or
refuses the call. Either way the script did not run, or ran whole."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Final

from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from errands.errors import BrokerError, BrokerFull, BrokerUnavailable

#: Errors that mean Redis cannot be reached or cannot serve right now.
_UNAVAILABLE: Final = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ClusterDownError,
    TryAgainError,
    MasterDownError,
    ReadOnlyError,
    RedisClusterException,
    OSError,
)


@contextlib.asynccontextmanager
async def translated(location: str) -> AsyncIterator[None]:
    """Raise BrokerUnavailable, BrokerFull or BrokerError for what Redis at `location` raises
    inside the block."""
    try:
        yield
    except RuntimeError as error:
        if not closed_transport(error):
            raise
        raise BrokerUnavailable(f"Redis at {location} unavailable: {error}") from error
    except OutOfMemoryError as error:
        raise BrokerFull(f"Redis at {location} is out of memory: {error}") from error
    except _UNAVAILABLE as error:
        raise BrokerUnavailable(f"Redis at {location} unavailable: {error}") from error
    except RedisError as error:
        raise BrokerError(f"Redis at {location} refused a call: {error}") from error


def closed_transport(error: RuntimeError) -> bool:
    """uvloop's error for a write to a closed connection (asyncio raises ConnectionError)."""
    return "handler is closed" in str(error)
