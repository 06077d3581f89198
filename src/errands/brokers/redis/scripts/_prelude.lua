-- _prelude.lua: shared by every script, prepended to each when scripts.py loads them.
--
-- Every script is called with KEYS[1] = P:meta, which routes the call to the node owning the
-- app's hash slot (every other key it builds shares that slot through the hash tag), and
-- ARGV[1] = P (the tagged prefix, e.g. "{errands}"), ARGV[2] = now in ms, or '' for Redis's
-- own clock: in production every worker on every host then judges leases and due times by
-- one clock, the server's; a test passes its fake clock's time. Key names come from keys.py,
-- inserted below as K_name / K_name(x). Instants and durations are integer ms.

local P = ARGV[1]
local NOW = tonumber(ARGV[2])
if not NOW then
  local time = redis.call('TIME')
  NOW = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
--KEYS--

local TERMINAL = {completed = true, failed = true, cancelled = true}
-- Priorities in [-2^40, 2^40] rank as 12 hex digits, high first: BIAS - priority.
local BIAS = 17592186044416

-- A job's place in its queue's ready set: members compare as strings, so the order is
-- priority (high first), then scheduled_at, then id, as the contract asks.
local function rank(priority, scheduled_at, id)
  return string.format('%012x%012x', BIAS - priority, scheduled_at) .. id
end

-- What the transitions need of a stored job, or nil when it is not stored. A field another
-- writer garbled reads as its default, so one bad hash never fails a script for every job.
local function load(id)
  local v = redis.call('HMGET', K_job(id), 'state', 'queue', 'priority', 'scheduled_at',
    'result_ttl', 'token', 'attempt', 'failures', 'crashes', 'cancel_requested', 'task',
    'idempotency_key', 'expires_at', 'workflow_id')
  if not v[1] then return nil end
  return {
    state = v[1], queue = v[2] or '', priority = tonumber(v[3]) or 0,
    scheduled_at = tonumber(v[4]) or 0, result_ttl = tonumber(v[5]) or 0, token = v[6],
    attempt = tonumber(v[7]) or 0, failures = tonumber(v[8]) or 0,
    crashes = tonumber(v[9]) or 0, cancel_requested = v[10] == '1', task = v[11] or '',
    idempotency_key = v[12], expires_at = tonumber(v[13]) or 0, workflow_id = v[14],
  }
end

-- Take the job out of the index of its current state.
local function unindex(id, job)
  local state = job.state
  if state == 'pending' then
    return  -- a pending job is in no index: only its dependencies' endings move it
  elseif state == 'available' then
    redis.call('ZREM', K_ready(job.queue), rank(job.priority, job.scheduled_at, id))
  elseif state == 'scheduled' or state == 'retryable' then
    redis.call('ZREM', K_due, id)
  elseif state == 'running' then
    redis.call('ZREM', K_running, id)
  else
    redis.call('ZREM', K_finished, id)
  end
end

-- Put the job in the index of `state`; `at` is its scheduled_at, lease expiry or finish time.
local function index(id, job, state, at)
  if state == 'pending' then
    return
  elseif state == 'available' then
    redis.call('ZADD', K_ready(job.queue), 0, rank(job.priority, at, id))
  elseif state == 'scheduled' or state == 'retryable' then
    redis.call('ZADD', K_due, at, id)
  elseif state == 'running' then
    redis.call('ZADD', K_running, at, id)
  else
    redis.call('ZADD', K_finished, at, id)
  end
end

-- Per-queue state counts change once per script, not once per job: count() adds up the
-- deltas and flush_counts(), at the end of every script that moves jobs, writes them.
local DELTAS = {}

local function count(queue, state, delta)
  local states = DELTAS[queue]
  if not states then
    states = {}
    DELTAS[queue] = states
  end
  states[state] = (states[state] or 0) + delta
end

local function flush_counts()
  for queue, states in pairs(DELTAS) do
    for state, delta in pairs(states) do
      if delta ~= 0 then redis.call('HINCRBY', K_counts(queue), state, delta) end
    end
  end
  DELTAS = {}
end

-- Move a loaded job to state `to`, writing the fields of `set` and deleting those in `del`.
-- Leaving `running` drops the lease; entering a terminal state stamps finished_at and
-- result_expires_at, as every broker does. `indexed` false: the caller already took the job
-- out of its old index.
local function move(id, job, to, set, del, indexed)
  if indexed ~= false then unindex(id, job) end
  if job.state == 'running' then
    del[#del + 1] = 'token'
    del[#del + 1] = 'expires_at'
  end
  set.state = to
  local at
  if TERMINAL[to] then
    set.finished_at = NOW
    set.result_expires_at = NOW + job.result_ttl
    at = NOW
  elseif to == 'running' then
    at = set.expires_at
  else
    at = set.scheduled_at or job.scheduled_at
  end
  index(id, job, to, at)
  local flat = {}
  for name, value in pairs(set) do
    flat[#flat + 1] = name
    flat[#flat + 1] = value
  end
  redis.call('HSET', K_job(id), unpack(flat))
  if #del > 0 then redis.call('HDEL', K_job(id), unpack(del)) end
  if to ~= job.state then
    count(job.queue, job.state, -1)
    count(job.queue, to, 1)
  end
end

-- Append one JSON error object to the job's `errors` list (stored as JSON text); a list that
-- is not one (written by someone else) is replaced rather than made worse.
local function with_error(id, error_json)
  local errors = redis.call('HGET', K_job(id), 'errors')
  if not errors or string.sub(errors, 1, 1) ~= '[' or string.sub(errors, -1) ~= ']'
      or errors == '[]' then
    return '[' .. error_json .. ']'
  end
  return string.sub(errors, 1, -2) .. ',' .. error_json .. ']'
end

-- Append a job's reply to `out`: its id, FIELDS in order, then its result (false for a job
-- that cannot have one yet: `running` is false).
local function reply(out, id, running)
  out[#out + 1] = id
  local values = redis.call('HMGET', K_job(id), unpack(FIELDS))
  for i = 1, #FIELDS do out[#out + 1] = values[i] end
  out[#out + 1] = running ~= true and redis.call('GET', K_result(id))
end

-- Queues with jobs that became claimable in this script: publish_ready() names them on the
-- ready channel (one per line), so only the workers of those queues wake.
local WOKEN = {}

local function wake(queue)
  WOKEN[queue] = true
end

local function publish_ready()
  local names = {}
  for queue in pairs(WOKEN) do names[#names + 1] = queue end
  if #names > 0 then redis.call('PUBLISH', K_ready_channel, table.concat(names, '\n')) end
end

-- Due scheduled and retryable jobs (of every queue) become available, earliest first.
local function promote(limit)
  local due = redis.call('ZRANGEBYSCORE', K_due, '-inf', NOW, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    local job = load(id)
    if job then
      move(id, job, 'available', {}, {})
      wake(job.queue)
    else
      redis.call('ZREM', K_due, id)
    end
  end
  return #due
end

-- Delete a job and every index entry and key that names it, the edges from the jobs it still
-- waits for included.
local function delete(id, job)
  unindex(id, job)
  for _, parent in ipairs(redis.call('SMEMBERS', K_waiting(id))) do
    redis.call('HDEL', K_dependents(parent), id)
  end
  redis.call('ZREM', K_results, id)
  redis.call('ZREM', K_queue_ids(job.queue), id)
  redis.call('DEL', K_job(id), K_result(id), K_waiting(id), K_dependents(id))
  count(job.queue, job.state, -1)
  if job.workflow_id then redis.call('ZREM', K_workflow(job.workflow_id), id) end
  if job.idempotency_key then
    redis.call('ZREM', K_key_ids(job.idempotency_key), id)
    local field = job.task .. '\0' .. job.idempotency_key
    if redis.call('HGET', K_idempotency, field) == id then
      redis.call('HDEL', K_idempotency, field)
    end
  end
end

-- The job owning `field` of the idempotency hash, unless it is gone or its result expired.
local function key_owner(field)
  local owner = redis.call('HGET', K_idempotency, field)
  if not owner then return nil end
  local v = redis.call('HMGET', K_job(owner), 'state', 'result_expires_at')
  if not v[1] then return nil end
  if TERMINAL[v[1]] and v[2] and tonumber(v[2]) <= NOW then return nil end
  return owner
end

-- Give the idempotency key `key` (hash field `field`) to job `id`. A job that gave it up (its
-- result expired) no longer holds it, as in the SQL brokers, so list.lua finds only holders.
local function take_key(field, key, id)
  local previous = redis.call('HGET', K_idempotency, field)
  if previous then
    redis.call('HDEL', K_job(previous), 'idempotency_key')
    redis.call('ZREM', K_key_ids(key), previous)
  end
  redis.call('HSET', K_idempotency, field, id)
  redis.call('ZADD', K_key_ids(key), 0, id)
end

-- Store the job specs of ARGV[first..], ten values each as enqueue.lua lists them, in order:
-- the one insert of enqueue and fire, so a schedule's jobs obey the same idempotency rules.
-- With `stride` 14 (enqueue_workflow.lua) four more follow the ten: the ids it depends on,
-- space-separated ('' for none), its failure policy (a spec with dependencies is stored
-- `pending`), its limits and its workflow's id ('' for none), indexed for list.lua. With
-- `limited` and stride 11, the eleventh value is its limits. Limits are JSON [[key, period_us,
-- burst, concurrency], ...] (0 for none; '' for no limits), which claim.lua enforces.
-- Returns two values per spec: the id it is stored under and 1 when it was a duplicate, else 0.
-- The caller flushes the counts and publishes the woken queues.
local function insert_specs(first, stride, limited)
  local out, queues = {}, {}
  stride = stride or 10
  local steps = stride >= 14  -- enqueue_workflow.lua's dependencies, limits and workflow
  local limits_at = steps and 12 or 10
  for i = first, #ARGV, stride do
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
      if steps and ARGV[i + 10] ~= '' then
        state = 'pending'
        for parent in string.gmatch(ARGV[i + 10], '%S+') do
          redis.call('SADD', K_waiting(id), parent)
          redis.call('HSET', K_dependents(parent), id, ARGV[i + 11])
        end
      end
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
        take_key(field, key, id)
      end
      if limited and ARGV[i + limits_at] ~= '' then
        fields[#fields + 1] = 'limits'
        fields[#fields + 1] = ARGV[i + limits_at]
      end
      if steps and ARGV[i + 13] ~= '' then
        fields[#fields + 1] = 'workflow_id'
        fields[#fields + 1] = ARGV[i + 13]
        redis.call('ZADD', K_workflow(ARGV[i + 13]), 0, id)
      end
      redis.call('HSET', K_job(id), unpack(fields))
      index(id, {queue = queue, priority = priority}, state, at)
      redis.call('ZADD', K_queue_ids(queue), 0, id)
      queues[queue] = true
      wake(queue)  -- a scheduled job too: a waiter may sleep past its due time
      count(queue, state, 1)
      out[#out + 1] = id
      out[#out + 1] = 0
    end
  end
  for queue in pairs(queues) do redis.call('SADD', K_queues, queue) end
  return out
end

-- A job just ended (`completed` true if it completed): apply that to the pending jobs that
-- depend on it, as brokers/dependencies.py states the rule, and in turn the ending of each
-- dependent this cancels. Each edge is used up as it fires (the dependents hash is deleted,
-- the dependency leaves the dependent's waiting set), so a dependent is released once: by the
-- script that empties its waiting set. Appends the ids cancelled here to `ended`.
local function settle_dependents(id, completed, ended)
  local todo = {{id, completed}}
  while #todo > 0 do
    local item = table.remove(todo)
    local parent, ok = item[1], item[2]
    local children = redis.call('HGETALL', K_dependents(parent))
    if #children > 0 then redis.call('DEL', K_dependents(parent)) end
    for i = 1, #children, 2 do
      local child, policy = children[i], children[i + 1]
      if redis.call('SREM', K_waiting(child), parent) == 1 then
        local job = load(child)
        if job and job.state == 'pending' then
          if not ok and policy == 'cancel' then
            redis.call('DEL', K_waiting(child))
            move(child, job, 'cancelled', {cancel_reason = 'parent_failed'}, {})
            ended[#ended + 1] = child
            todo[#todo + 1] = {child, false}
          elseif redis.call('SCARD', K_waiting(child)) == 0 then
            move(child, job, job.scheduled_at > NOW and 'scheduled' or 'available', {}, {})
            wake(job.queue)
          end
        end
      end
    end
  end
end
