-- 0004_topology: exchanges and bindings. routing.py decides where a message goes; the broker
-- stores the topology every producer reads (brokers/contract.py, Broker.topology).

CREATE TABLE exchanges (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,                  -- direct, topic or fanout
    unroutable TEXT NOT NULL DEFAULT 'raise'   -- raise or drop
);

CREATE TABLE bindings (
    exchange    TEXT NOT NULL,
    destination TEXT NOT NULL,                 -- a queue, or a task for errands.events
    key         TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (exchange, destination, key)
) WITHOUT ROWID;
