-- A rate limit shared by every proxy: GCRA (see ratelimit/gcra.rs) on one key, on Redis's clock
-- so that proxies with different clocks agree. KEYS: the bucket. ARGV: interval (us), burst.
-- Returns {1, remaining, reset (us)} when allowed, {0, retry after (us)} when refused.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local next_tat = math.max(tat, now) + interval
local ahead = next_tat - now
if ahead > tolerance then return {0, ahead - tolerance} end
-- The bucket expires once it is full again, so idle keys take no memory.
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil(ahead / 1000) + 1)
return {1, math.floor((tolerance - ahead) / interval), ahead}
