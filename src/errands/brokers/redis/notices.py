"""Wake-ups from Redis pub/sub: the scripts publish after writes that may wake someone, and
one subscriber connection per broker turns the messages into asyncio events.

Messages are hints: a waiter re-reads Redis after each one and at the end of its timeout, and
when the subscription drops and comes back every waiter is woken, since notices may have been
missed meanwhile. A lost message costs latency, never a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

from redis.exceptions import RedisError

from errands.brokers.redis.keys import Keys
from errands.brokers.waiters import Waiters

log = logging.getLogger(__name__)

SUBSCRIBE_WAIT: Final = 1.0  # seconds a waiter waits for the subscription before reading
RETRY: Final = 0.2  # seconds between attempts to subscribe again
READ: Final = 1.0  # seconds one read of the subscription waits for a message


class Notices(Waiters):
    """The ready and done channels of one app, as events for waiters in this process."""

    def __init__(self, client: Any, keys: Keys) -> None:
        super().__init__()
        self._client = client  # a plain redis.asyncio.Redis: pub/sub needs one node
        self._keys = keys
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def listen(self) -> None:
        """Subscribe (once); returns when subscribed, or after SUBSCRIBE_WAIT while Redis is
        unreachable (the waiter then reads and polls)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        if not self._subscribed.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SUBSCRIBE_WAIT):
                    await self._subscribed.wait()

    async def close(self) -> None:
        """Unsubscribe and stop the reader; idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError):
                await task
        self._subscribed.clear()

    async def _run(self) -> None:
        ready, done = self._keys.ready_channel.encode(), self._keys.done_channel.encode()
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(ready, done)
                while True:
                    # A bounded read: an idle subscription must never meet the socket timeout.
                    message = await pubsub.get_message(timeout=READ)
                    if message is None:
                        continue
                    kind, channel = message["type"], message["channel"]
                    if kind == "subscribe":
                        if message["data"] == 2:  # both channels: nothing can slip by now
                            self._subscribed.set()
                            self.wake_all()  # notices sent while unsubscribed are lost
                    elif channel == ready:
                        self.deliver_ready(message["data"].decode().split("\n"))
                    elif channel == done:
                        self.deliver_done(message["data"].decode().split())
            except (RedisError, OSError) as error:
                if self._subscribed.is_set():
                    log.warning("lost the Redis notice subscription (%s); resubscribing", error)
                self._subscribed.clear()
                self.wake_all()
                await asyncio.sleep(RETRY)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
