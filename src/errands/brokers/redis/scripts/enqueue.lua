-- enqueue: store a batch of job specs, in order, atomically.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms)
-- ARGV[3..] ten values per spec: id, task, queue, payload, priority, due (ms; '' = now),
--           max_attempts, max_crashes, result_ttl (ms), idempotency key ('' = none)
-- Returns two values per spec: the id it is stored under, and 1 when it was a duplicate (its
-- id was already stored, or its task's key names a live job), else 0.
-- Publishes the queues of the stored jobs on the ready channel.

-- The job owning `field` of the idempotency hash, unless it is gone or its result expired.
local function key_owner(field)
  local owner = redis.call('HGET', K_idempotency, field)
  if not owner then return nil end
  local v = redis.call('HMGET', K_job(owner), 'state', 'result_expires_at')
  if not v[1] then return nil end
  if TERMINAL[v[1]] and v[2] and tonumber(v[2]) <= NOW then return nil end
  return owner
end

local out, queues = {}, {}
local stored = 0
for i = 3, #ARGV, 10 do
  local id, task, queue, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local priority, due = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
  local key = ARGV[i + 9]
  local field = key ~= '' and (task .. '\0' .. key) or nil
  local owner = nil
  if redis.call('EXISTS', K_job(id)) == 1 then
    owner = id  -- a resend: never reset the stored job
  elseif field then
    owner = key_owner(field)
  end
  if owner then
    out[#out + 1] = owner
    out[#out + 1] = 1
  else
    local later = due ~= nil and due > NOW
    local state = later and 'scheduled' or 'available'
    local at = later and due or NOW  -- a past ETA is stored as now: arrival order
    local fields = {
      'task', task, 'queue', queue, 'state', state, 'payload', payload,
      'max_attempts', ARGV[i + 6], 'max_crashes', ARGV[i + 7], 'enqueued_at', NOW,
      'scheduled_at', at, 'result_ttl', ARGV[i + 8],
    }
    if priority ~= 0 then
      fields[#fields + 1] = 'priority'
      fields[#fields + 1] = priority
    end
    if field then
      fields[#fields + 1] = 'idempotency_key'
      fields[#fields + 1] = key
      redis.call('HSET', K_idempotency, field, id)
    end
    redis.call('HSET', K_job(id), unpack(fields))
    index(id, {queue = queue, priority = priority}, state, at)
    redis.call('ZADD', K_queue_ids(queue), 0, id)
    queues[queue] = true
    wake(queue)  -- a scheduled job too: a waiter may sleep past its due time
    count(queue, state, 1)
    stored = stored + 1
    out[#out + 1] = id
    out[#out + 1] = 0
  end
end
for queue in pairs(queues) do redis.call('SADD', K_queues, queue) end
flush_counts()
publish_ready()
return out
