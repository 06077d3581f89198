-- 0003_topology: exchanges and bindings. routing.py decides where a message goes; the broker
-- stores the topology every producer reads (topology.py). Applied like 0001, in the URL's
-- schema. Every text is COLLATE "C": listed in the order Python sorts str.

CREATE TABLE exchanges (
    name       text COLLATE "C" PRIMARY KEY,
    kind       text COLLATE "C" NOT NULL,                  -- direct, topic or fanout
    unroutable text COLLATE "C" NOT NULL DEFAULT 'raise'   -- raise or drop
);

CREATE TABLE bindings (
    exchange    text COLLATE "C" NOT NULL,
    destination text COLLATE "C" NOT NULL,             -- a queue, or a task for errands.events
    key         text COLLATE "C" NOT NULL DEFAULT '',
    PRIMARY KEY (exchange, destination, key)
);
