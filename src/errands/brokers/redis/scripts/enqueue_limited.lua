-- enqueue_limited: enqueue.lua for a batch in which some jobs carry limits (errands/limits.py).
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms)
-- ARGV[3..] eleven values per spec: the ten of enqueue.lua, then its limits (JSON [[key,
--           period_us, burst, concurrency], ...], 0 for none; '' for no limits), which
--           claim.lua enforces. A separate script keeps enqueue.lua's ten values, the protocol
--           other languages write (docs/protocol.md), as they are.
-- Returns two values per spec, as enqueue.lua does.

local out = insert_specs(3, 11, true)
flush_counts()
publish_ready()
return out
