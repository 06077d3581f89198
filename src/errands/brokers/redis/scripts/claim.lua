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
-- first n of each, merged, hold the best n overall. `last_of` is where each queue's next page
-- starts, read only when limits held jobs back.
local ranks, queue_of, last_of, open = {}, {}, {}, {}
local function read_page(queue, after, size)
  local head = redis.call('ZRANGEBYLEX', K_ready(queue), after, '+', 'LIMIT', 0, size)
  for _, member in ipairs(head) do
    ranks[#ranks + 1] = member
    queue_of[member] = queue
  end
  if #head > 0 then last_of[queue] = head[#head] end
end
for i = 7, 6 + q do
  local queue = ARGV[i]
  if redis.call('SISMEMBER', K_paused, queue) == 0 then
    open[#open + 1] = queue
    read_page(queue, '-', n)
  end
end
if q > 1 then table.sort(ranks) end

-- Limits (errands/limits.py, brokers/gate.py states the rules): a job whose `limits` field is
-- set starts only if each of its keys admits it. A key's GCRA time lives in P:limit:<key>;
-- its running jobs are the ids in P:limit-running:<key> still running with a live lease
-- (others are dropped as they are met). A held job stays in its ready set.
local NOW_US = NOW * 1000
-- Members one claim reads at most: past this many held jobs in front, other keys' jobs wait
-- for a later claim (docs/limits.md).
local SCAN_BUDGET = 2000
local LIMITS = {}   -- key -> {running, tat, blocked, limit}: read once per claim
local wake_at = nil  -- when the first key held shut by its rate opens (ms)
local function limit_state(limit)
  local key = limit[1]
  local state = LIMITS[key]
  if state then return state end
  local running = 0
  if limit[4] > 0 then
    for _, id in ipairs(redis.call('SMEMBERS', K_limit_running(key))) do
      local v = redis.call('HMGET', K_job(id), 'state', 'expires_at')
      if v[1] ~= 'running' then
        redis.call('SREM', K_limit_running(key), id)
      elseif (tonumber(v[2]) or 0) > NOW then
        running = running + 1
      end
    end
  end
  state = {running = running, tat = tonumber(redis.call('HGET', K_limit(key), 'tat')) or 0}
  LIMITS[key] = state
  return state
end
local function shut(limit, state)
  if limit[4] > 0 and state.running >= limit[4] then return true end
  if limit[2] > 0 then
    local opens = state.tat - (limit[3] - 1) * limit[2]
    if opens > NOW_US then
      local at = math.ceil(opens / 1000)
      if not wake_at or at < wake_at then wake_at = at end
      return true
    end
  end
  return false
end
local function admit(limits, id)
  for _, limit in ipairs(limits) do
    local state = limit_state(limit)
    if state.blocked or shut(limit, state) then
      state.blocked = true
      return false
    end
  end
  for _, limit in ipairs(limits) do
    local state = LIMITS[limit[1]]
    state.running = state.running + 1
    if limit[2] > 0 then state.tat = math.max(state.tat, NOW_US) + limit[2] end
    if limit[4] > 0 then redis.call('SADD', K_limit_running(limit[1]), id) end
    state.limit = limit
    state.blocked = shut(limit, state)
  end
  return true
end

-- The hot path, written out rather than through load/move/reply: one HMGET per job serves
-- the check, the limits, the new attempt number and the reply.
local AT = {}
for i, name in ipairs(FIELDS) do AT[name] = i end
local WANT = {unpack(FIELDS)}
local LIMITS_AT = #FIELDS + 1
WANT[LIMITS_AT] = 'limits'
local out, ids = {}, {}
local expires = NOW + lease
local taken, scanned = 0, 0
local held_in = {}
while true do
  local held = 0
  for i = 1, #ranks do
    if taken == n then break end
    local member = ranks[i]
    local queue = queue_of[member]
    local id = string.sub(member, 25)
    local values = redis.call('HMGET', K_job(id), unpack(WANT))
    local available = values[AT.state] == 'available'
    local limits = values[LIMITS_AT]
    if available and limits and not admit(cjson.decode(limits), id) then
      held = held + 1
      held_in[queue] = true
      available = false
    else
      -- By its member, not a rank rebuilt from the hash: a garbled hash still leaves the set.
      redis.call('ZREM', K_ready(queue), member)
    end
    if available then
      taken = taken + 1
      ids[taken] = id
      local token = base .. '.' .. taken
      local attempt = (tonumber(values[AT.attempt]) or 0) + 1
      redis.call('HSET', K_job(id), 'state', 'running', 'attempt', attempt, 'started_at', NOW,
        'expires_at', expires, 'token', token, 'worker_id', worker)
      if values[AT.cancel_requested] then redis.call('HDEL', K_job(id), 'cancel_requested') end
      redis.call('ZADD', K_running, expires, id)
      count(queue, 'available', -1)
      count(queue, 'running', 1)
      values[AT.state], values[AT.attempt], values[AT.started_at] = 'running', attempt, NOW
      values[AT.expires_at], values[AT.worker_id], values[AT.cancel_requested] = expires, worker, false
      out[#out + 1] = token
      out[#out + 1] = expires
      out[#out + 1] = id
      for f = 1, #FIELDS do out[#out + 1] = values[f] end
      out[#out + 1] = false  -- no result yet
    end
  end
  -- Jobs held back by their limits still fill the front of their sets: read on past them,
  -- up to a budget, so other keys' jobs behind them are not starved.
  scanned = scanned + #ranks
  if taken == n or held == 0 or scanned >= SCAN_BUDGET then break end
  ranks, queue_of = {}, {}
  for _, queue in ipairs(open) do
    if last_of[queue] then read_page(queue, '(' .. last_of[queue], math.max(n, 100)) end
  end
  if #ranks == 0 then break end
  table.sort(ranks)
end

for key, state in pairs(LIMITS) do
  if state.limit and state.limit[2] > 0 then
    -- The state is inert once its time has passed: let Redis drop it then.
    redis.call('HSET', K_limit(key), 'tat', string.format('%.0f', state.tat))
    redis.call('PEXPIREAT', K_limit(key), math.ceil(state.tat / 1000) + 1)
  end
end
-- A queue whose readable jobs were all held: readiness reports it idle while its ready count
-- stays the same, until a held key's rate opens (or a second, for a running job to end).
if taken < n then
  for queue in pairs(held_in) do
    local wait = wake_at and math.max(1, math.min(1000, wake_at - NOW)) or 1000
    redis.call('SET', K_held(queue), redis.call('ZCARD', K_ready(queue)), 'PX', wait)
  end
end
flush_counts()
publish_ready()  -- jobs it promoted, for the workers of other queues
if taken > 0 then redis.call('SET', claim_key, table.concat(ids, ' '), 'PX', lease) end
return out
