-- Records a task's outcome once: only the latest attempt may finish it. A claim that expired but that no other worker
-- has taken yet still counts (the task is taken back out of its lane), so a slow renewal does not run a task twice.
-- ARGV: prefix, id, attempt, finished_at (unix s), failed ("0"/"1"), error. Returns 1, or 0 when dropped.
local p = ARGV[1]
local id = ARGV[2]
local key = p .. 'task:' .. id
local state = redis.call('HMGET', key, 'attempts', 'status', 'started_at', 'priority')
if state[1] ~= ARGV[3] then return 0 end
if state[2] == 'queued' then
  redis.call('LREM', p .. 'lane:' .. state[4], 0, id)
elseif state[2] ~= 'running' then
  return 0
end
redis.call('ZREM', p .. 'running', id)
if ARGV[5] == '1' then
  redis.call('HSET', key, 'status', 'failed', 'finished_at', ARGV[4], 'error', ARGV[6])
  redis.call('HINCRBY', p .. 'stats', 'failed', 1)
else
  redis.call('HSET', key, 'status', 'completed', 'finished_at', ARGV[4])
  redis.call('HINCRBY', p .. 'stats', 'completed', 1)
end
redis.call('HINCRBYFLOAT', p .. 'stats', 'run_seconds', tonumber(ARGV[4]) - tonumber(state[3]))
return 1
