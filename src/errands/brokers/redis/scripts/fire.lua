-- fire: one step of a schedule, applied only while its cursor holds; see Broker.fire.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms)   ARGV[3] name   ARGV[4] cursor (ms)   ARGV[5] advance_to (ms)
-- ARGV[6] last slot (ms; '' = none)   ARGV[7] skipped slots: a JSON array ('' = none)
-- ARGV[8] how many skipped records to keep (SKIPPED_KEEP)
-- ARGV[9..] the specs, eleven values each as in enqueue_limited.lua
-- Returns 1 when the firing applied, 0 when it changed nothing: the schedule is gone or
-- paused, or another firing moved its cursor. Publishes the queues of the stored jobs.

-- The stored skipped records (a garbled list reads as empty) with `added` after them, keeping
-- the newest `keep`, as JSON.
local function skipped_after(stored, added, keep)
  local ok, list = pcall(cjson.decode, stored or '[]')
  if not ok or type(list) ~= 'table' then list = {} end
  for _, item in ipairs(cjson.decode(added)) do list[#list + 1] = item end
  local newest = {}
  for i = math.max(1, #list - keep + 1), #list do newest[#newest + 1] = list[i] end
  return cjson.encode(newest)
end

local key = K_schedule(ARGV[3])
local v = redis.call('HMGET', key, 'paused', 'cursor', 'skipped')
if v[1] ~= '0' or tonumber(v[2]) ~= tonumber(ARGV[4]) then return 0 end
local set = {'cursor', ARGV[5]}
local out = insert_specs(9, 11, true)
if #out > 0 then
  -- The last spec's stored id: the owner's when its idempotency key was taken.
  set[#set + 1] = 'last_job_id'
  set[#set + 1] = out[#out - 1]
  set[#set + 1] = 'last_fired_at'
  set[#set + 1] = NOW
  if ARGV[6] == '' then
    redis.call('HDEL', key, 'last_slot')
  else
    set[#set + 1] = 'last_slot'
    set[#set + 1] = ARGV[6]
  end
end
if ARGV[7] ~= '' then
  set[#set + 1] = 'skipped'
  set[#set + 1] = skipped_after(v[3], ARGV[7], tonumber(ARGV[8]))
end
redis.call('HSET', key, unpack(set))
flush_counts()
publish_ready()
return 1
