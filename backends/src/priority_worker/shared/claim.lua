-- Takes the task to run next, with the same policy as queue::next_lane: the oldest head that has waited the aging
-- bound, else the head of the most urgent non-empty lane. Claims whose worker stopped renewing them first go back to
-- the front of their lane, oldest first, so a task of a killed worker runs again before newer ones.
-- ARGV: prefix, now (unix s), aging (s), now (unix ms), visibility timeout (ms).
-- Returns false, or {id, priority, queued_at, task_type, duration, fail, attempt}.
local p = ARGV[1]
local now = tonumber(ARGV[2])
local aging = tonumber(ARGV[3])
local now_ms = tonumber(ARGV[4])
local visibility = tonumber(ARGV[5])

local expired = redis.call('ZRANGEBYSCORE', p .. 'running', '-inf', now_ms)
if #expired > 0 then
  local back = {}
  for _, id in ipairs(expired) do
    redis.call('ZREM', p .. 'running', id)
    local seq = redis.call('HGET', p .. 'task:' .. id, 'seq')
    if seq then table.insert(back, {id, tonumber(seq)}) end
  end
  -- Pushing to the front newest first leaves the oldest at the head.
  table.sort(back, function(a, b) return a[2] > b[2] end)
  for _, item in ipairs(back) do
    local key = p .. 'task:' .. item[1]
    redis.call('HSET', key, 'status', 'queued')
    redis.call('LPUSH', p .. 'lane:' .. redis.call('HGET', key, 'priority'), item[1])
  end
end

local chosen, chosen_seq, first = nil, nil, nil
for _, lane in ipairs({'high', 'normal', 'low'}) do
  local id = redis.call('LINDEX', p .. 'lane:' .. lane, 0)
  if id then
    local head = redis.call('HMGET', p .. 'task:' .. id, 'seq', 'queued_at')
    local seq, queued_at = tonumber(head[1]), tonumber(head[2])
    if seq and queued_at then
      if first == nil then first = lane end
      if now - queued_at >= aging and (chosen_seq == nil or seq < chosen_seq) then
        chosen, chosen_seq = lane, seq
      end
    else
      -- A lane entry whose task record is gone (deleted by hand) is dropped rather than blocking its lane.
      redis.call('LPOP', p .. 'lane:' .. lane)
    end
  end
end
local lane = chosen or first
if lane == nil then return false end

local id = redis.call('LPOP', p .. 'lane:' .. lane)
local key = p .. 'task:' .. id
local attempt = redis.call('HINCRBY', key, 'attempts', 1)
redis.call('HSET', key, 'status', 'running', 'started_at', ARGV[2])
redis.call('ZADD', p .. 'running', now_ms + visibility, id)
local task = redis.call('HMGET', key, 'priority', 'queued_at', 'task_type', 'duration', 'fail')
redis.call('LPUSH', p .. 'waits:' .. lane, tostring(now - tonumber(task[2])))
redis.call('LTRIM', p .. 'waits:' .. lane, 0, 9999)
return {id, task[1], task[2], task[3], task[4], task[5], attempt}
