-- claim: promote due jobs, then lease up to n available jobs of the given queues.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms)   ARGV[3] n   ARGV[4] lease (ms)   ARGV[5] worker id
-- ARGV[6] number of queues q   ARGV[7..6+q] queue names   ARGV[7+q] a fresh random token
-- (the i-th job claimed gets `<token>.<i>`: unique and unguessable, one argument per claim)
-- Returns per claimed job, in claim order: token, lease expiry (ms), then its reply (prelude).
-- Each job moves to `running` here, in Redis: no job is ever held only in a worker's memory.
-- The claim is remembered for a lease under its token: the same claim sent again (its
-- reply was lost to a dropped connection) hands back the jobs it took instead of taking more,
-- so they are not left running unseen until their lease lapses.

local n, lease, worker = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local q = tonumber(ARGV[6])
local base = ARGV[7 + q]
local claim_key = K_claim(base)

local earlier = redis.call('GET', claim_key)
if earlier then
  local out = {}
  for id in string.gmatch(earlier, '%S+') do
    local v = redis.call('HMGET', K_job(id), 'state', 'token', 'expires_at')
    if v[1] == 'running' and string.sub(v[2] or '', 1, #base + 1) == base .. '.' then
      out[#out + 1] = v[2]
      out[#out + 1] = tonumber(v[3])
      reply(out, id, true)
    end
  end
  return out
end

promote(1000)

-- The best n ranks over the open queues: each ready set is already in claim order, so the
-- first n of each, merged, hold the best n overall.
local ranks, queue_of = {}, {}
for i = 7, 6 + q do
  local queue = ARGV[i]
  if redis.call('SISMEMBER', K_paused, queue) == 0 then
    local head = redis.call('ZRANGEBYLEX', K_ready(queue), '-', '+', 'LIMIT', 0, n)
    for _, member in ipairs(head) do
      ranks[#ranks + 1] = member
      queue_of[member] = queue
    end
  end
end
if q > 1 then table.sort(ranks) end

-- The hot path, written out rather than through load/move/reply: one HMGET per job serves
-- the check, the new attempt number and the reply.
local AT = {}
for i, name in ipairs(FIELDS) do AT[name] = i end
local out, ids = {}, {}
local expires = NOW + lease
local taken = 0
for i = 1, math.min(n, #ranks) do
  local member = ranks[i]
  local id = string.sub(member, 25)
  local values = redis.call('HMGET', K_job(id), unpack(FIELDS))
  -- By its member, not a rank rebuilt from the hash: a garbled hash still leaves the set.
  redis.call('ZREM', K_ready(queue_of[member]), member)
  if values[AT.state] == 'available' then
    taken = taken + 1
    ids[taken] = id
    local token = base .. '.' .. taken
    local attempt = (tonumber(values[AT.attempt]) or 0) + 1
    redis.call('HSET', K_job(id), 'state', 'running', 'attempt', attempt, 'started_at', NOW,
      'expires_at', expires, 'token', token, 'worker_id', worker)
    if values[AT.cancel_requested] then redis.call('HDEL', K_job(id), 'cancel_requested') end
    redis.call('ZADD', K_running, expires, id)
    count(queue_of[member], 'available', -1)
    count(queue_of[member], 'running', 1)
    values[AT.state], values[AT.attempt], values[AT.started_at] = 'running', attempt, NOW
    values[AT.expires_at], values[AT.worker_id], values[AT.cancel_requested] = expires, worker, false
    out[#out + 1] = token
    out[#out + 1] = expires
    out[#out + 1] = id
    for f = 1, #FIELDS do out[#out + 1] = values[f] end
    out[#out + 1] = false  -- no result yet
  end
end
flush_counts()
publish_ready()  -- jobs it promoted, for the workers of other queues
if taken > 0 then redis.call('SET', claim_key, table.concat(ids, ' '), 'PX', lease) end
return out
