-- promote: due scheduled and retryable jobs become available.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms)   ARGV[3] limit
-- Returns how many moved; publishes on the ready channel when any did.

local moved = promote(tonumber(ARGV[3]))
publish_ready()
flush_counts()
return moved
