-- enqueue_workflow: store a batch of job specs some of which wait for others, atomically.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms)
-- ARGV[3..] fourteen values per spec: the first ten of enqueue.lua, then the ids it depends on
--           (earlier specs of the batch, space-separated; '' for none), its failure policy
--           ('cancel' or 'continue'), its limits and its workflow's id ('' for none), which
--           list.lua finds it by. A spec with dependencies is stored `pending`.
-- Returns two values per spec, as enqueue.lua does.

local out = insert_specs(3, 14, true)
flush_counts()
publish_ready()
return out
