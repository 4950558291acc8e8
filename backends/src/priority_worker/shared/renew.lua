-- Extends a claim while its worker runs the task. ARGV: prefix, id, attempt, new deadline (unix ms).
-- Returns 1, or 0 when the claim is no longer this attempt's.
local key = ARGV[1] .. 'task:' .. ARGV[2]
if redis.call('HGET', key, 'attempts') ~= ARGV[3] or redis.call('HGET', key, 'status') ~= 'running' then
  return 0
end
redis.call('ZADD', ARGV[1] .. 'running', ARGV[4], ARGV[2])
return 1
