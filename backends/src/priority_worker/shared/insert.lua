-- Stores a new task and queues it at the back of its lane, in one step: a task is never stored but unqueued.
-- ARGV: prefix, priority, task_type, duration, fail ("0"/"1"), queued_at. Returns {seq, tasks now in the lane}.
local p = ARGV[1]
local seq = redis.call('INCR', p .. 'seq')
local id = 'task-' .. seq
redis.call('HSET', p .. 'task:' .. id, 'seq', seq, 'priority', ARGV[2], 'task_type', ARGV[3],
  'duration', ARGV[4], 'fail', ARGV[5], 'status', 'queued', 'queued_at', ARGV[6], 'attempts', 0)
local waiting = redis.call('RPUSH', p .. 'lane:' .. ARGV[2], id)
redis.call('HINCRBY', p .. 'stats', 'total', 1)
return {seq, waiting}
