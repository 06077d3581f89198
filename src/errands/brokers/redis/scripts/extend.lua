-- extend: push back every lease whose token holds, record progress and the heartbeat.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms)   ARGV[3] lease (ms)   ARGV[4] worker id
-- ARGV[5] heartbeat (JSON)   ARGV[6..] three values per lease: id, token, progress JSON ('')
-- Returns {positions (1-based) of the leases kept, ids with a cancel requested, new expiry}.

local expires = NOW + tonumber(ARGV[3])
local kept, cancels = {}, {}
for i = 6, #ARGV, 3 do
  local id, token, progress = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local v = redis.call('HMGET', K_job(id), 'state', 'token', 'cancel_requested')
  if v[1] == 'running' and v[2] == token then
    redis.call('HSET', K_job(id), 'expires_at', expires)
    if progress ~= '' then redis.call('HSET', K_job(id), 'progress', progress) end
    redis.call('ZADD', K_running, expires, id)
    kept[#kept + 1] = (i - 3) / 3
    if v[3] == '1' then cancels[#cancels + 1] = id end
  end
end
redis.call('HSET', K_workers, ARGV[4], ARGV[5])
redis.call('ZADD', K_seen, NOW, ARGV[4])
return {kept, cancels, expires}
