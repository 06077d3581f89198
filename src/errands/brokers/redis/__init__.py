"""The Redis broker: the Broker contract as Lua scripts on Redis or Redis Cluster."""
