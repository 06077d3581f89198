"""`app.exchanges`: the exchanges and bindings declared in code and stored in the broker, and
the expansion of routed calls into jobs.

The topology lives in the broker, so every producer and worker routes alike. What an App
declares in code (`app.exchange`, `app.bind`, `@app.subscribe`) is written there before the
App first routes or publishes and when its workers start; bindings added at runtime (here or
with `errands exchanges bind`) are the broker's alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from errands.brokers.contract import Binding, Exchange, Topology
from errands.errors import ExchangeNotFound, Unroutable
from errands.job import JobSpec
from errands.routing import EVENTS, check_binding, check_exchange, destinations
from errands.shapes import specs_of

if TYPE_CHECKING:
    from errands.app import App
    from errands.task import Call

log = logging.getLogger("errands.routing")

#: Headers of a published event's jobs: the topic and the publisher's event id.
EVENT_HEADER = "errands-event"
EVENT_ID_HEADER = "errands-event-id"


class Exchanges:
    """The App's routing topology. Each method has a blocking twin without `_async`."""

    def __init__(self, app: App) -> None:
        self.app = app
        #: Declared in this App's code, written to the broker by `sync_async`.
        self.exchanges: dict[str, Exchange] = {}
        self.bindings: list[Binding] = []
        self._synced = False

    # -- declaring in code ---------------------------------------------------------------------

    def declare(self, exchange: Exchange) -> Exchange:
        """Add an exchange to the App's declared topology."""
        self.exchanges[exchange.name] = check_exchange(exchange)
        self._synced = False
        return exchange

    def declare_binding(self, binding: Binding) -> Binding:
        """Add a binding to the App's declared topology."""
        if binding not in self.bindings:
            self.bindings.append(check_binding(binding))
        self._synced = False
        return binding

    async def sync_async(self) -> None:
        """Write the declared topology to the broker (once, until something new is declared)."""
        if self._synced or not (self.exchanges or self.bindings):
            return
        exchanges, bindings = list(self.exchanges.values()), list(self.bindings)
        await self.app.call_broker(lambda b: b.declare(exchanges, bindings))
        self._synced = True

    # -- reading and changing at runtime -------------------------------------------------------

    async def topology_async(self) -> Topology:
        """The broker's topology, with this App's declarations stored first."""
        await self.sync_async()
        return await self.app.call_broker(lambda b: b.topology())

    def topology(self) -> Topology:
        """Blocking twin of `topology_async`."""
        return self.app.portal.call(self.topology_async)

    async def declare_exchange_async(
        self, name: str, kind: str = "direct", unroutable: str = "raise"
    ) -> Exchange:
        """Store an exchange at runtime (a stored name takes the new kind and flag)."""
        exchange = check_exchange(Exchange(name, kind, unroutable))
        await self.app.call_broker(lambda b: b.declare([exchange], []))
        return exchange

    def declare_exchange(
        self, name: str, kind: str = "direct", unroutable: str = "raise"
    ) -> Exchange:
        """Blocking twin of `declare_exchange_async`."""
        return self.app.portal.call(self.declare_exchange_async, name, kind, unroutable)

    async def bind_async(self, exchange: str, queue: str, key: str = "") -> Binding:
        """Bind `queue` to a stored exchange with `key`; ExchangeNotFound naming it."""
        binding = check_binding(Binding(exchange, queue, key))
        topology = await self.topology_async()
        if all(e.name != exchange for e in topology.exchanges):
            raise ExchangeNotFound(exchange, [e.name for e in topology.exchanges])
        await self.app.call_broker(lambda b: b.declare([], [binding]))
        return binding

    def bind(self, exchange: str, queue: str, key: str = "") -> Binding:
        """Blocking twin of `bind_async`."""
        return self.app.portal.call(self.bind_async, exchange, queue, key)

    async def unbind_async(self, exchange: str, queue: str, key: str = "") -> bool:
        """Delete a binding; False if there was none."""
        binding = Binding(exchange, queue, key)
        return bool(await self.app.call_broker(lambda b: b.unbind([binding])))

    def unbind(self, exchange: str, queue: str, key: str = "") -> bool:
        """Blocking twin of `unbind_async`."""
        return self.app.portal.call(self.unbind_async, exchange, queue, key)

    # -- routing -------------------------------------------------------------------------------

    async def specs_async(self, calls: Sequence[Call]) -> list[JobSpec]:
        """The specs of `calls`, a routed call giving one spec per destination queue (its
        idempotency key made per queue, since keys are unique per task); Unroutable when a
        routed call matches nothing on an exchange that does not drop it."""
        if not any(call.options.exchange for call in calls):
            return specs_of(calls)
        topology = await self.topology_async()
        specs: list[JobSpec] = []
        for call in calls:
            options = call.options
            if options.exchange is None:
                specs.append(call.spec())
                continue
            key = options.routing_key or ""
            queues = destinations(topology, options.exchange, key)
            if not queues:
                _unroutable(topology, options.exchange, key)
            for queue in queues:
                idempotency = (
                    f"{options.idempotency_key}@{queue}" if options.idempotency_key else None
                )
                one = replace(options, queue=queue, idempotency_key=idempotency)
                specs.append(call.task.build_spec(call.args, call.kwargs, one))
        return specs

    async def event_specs_async(
        self, topic: str, args: tuple[Any, ...], kwargs: dict[str, Any], event_id: str | None
    ) -> list[JobSpec]:
        """One spec per task subscribed to a pattern `topic` matches (an empty list, logged,
        when none is)."""
        topology = await self.topology_async()
        known = any(e.name == EVENTS for e in topology.exchanges)
        tasks = destinations(topology, EVENTS, topic) if known else []
        if not tasks:
            log.info("published %s: no task subscribes to it, no job made", topic)
            return []
        headers = {EVENT_HEADER: topic, **({EVENT_ID_HEADER: event_id} if event_id else {})}
        specs = []
        for name in tasks:
            task = self.app.by_name(name)
            options = replace(
                task.call_options,
                idempotency_key=f"event:{event_id}" if event_id else None,
                exchange=EVENTS,
                routing_key=topic,
                headers=headers,
            )
            specs.append(task.build_spec(args, kwargs, options))
        log.info("published %s to %s", topic, ", ".join(tasks))
        return specs


def _unroutable(topology: Topology, exchange: str, key: str) -> None:
    found = next(e for e in topology.exchanges if e.name == exchange)
    if found.unroutable == "raise":
        raise Unroutable(exchange, key)
    log.info("exchange %s dropped a message with key %r: no binding matches it", exchange, key)
