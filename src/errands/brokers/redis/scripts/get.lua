-- get: jobs by id, in the order asked; unknown ids are left out.
-- KEYS[1] P:meta
-- ARGV[1] P   ARGV[2] now (ms, unused)   ARGV[3..] ids
-- Returns the reply (prelude) of each stored job.

local out = {}
for i = 3, #ARGV do
  if redis.call('EXISTS', K_job(ARGV[i])) == 1 then reply(out, ARGV[i]) end
end
return out
