-- Everything GET /stats shows, read at one instant. ARGV: prefix.
-- Returns {total, completed, failed, run_seconds, {queued high, normal, low}, {running high, normal, low},
-- {waits high}, {waits normal}, {waits low}}.
local p = ARGV[1]
local lanes = {'high', 'normal', 'low'}
local counters = redis.call('HMGET', p .. 'stats', 'total', 'completed', 'failed', 'run_seconds')
local queued, running, index = {}, {0, 0, 0}, {}
for i, lane in ipairs(lanes) do
  queued[i] = redis.call('LLEN', p .. 'lane:' .. lane)
  index[lane] = i
end
for _, id in ipairs(redis.call('ZRANGE', p .. 'running', 0, -1)) do
  local i = index[redis.call('HGET', p .. 'task:' .. id, 'priority')]
  if i then running[i] = running[i] + 1 end
end
return {counters[1] or '0', counters[2] or '0', counters[3] or '0', counters[4] or '0', queued, running,
  redis.call('LRANGE', p .. 'waits:high', 0, -1), redis.call('LRANGE', p .. 'waits:normal', 0, -1),
  redis.call('LRANGE', p .. 'waits:low', 0, -1)}
