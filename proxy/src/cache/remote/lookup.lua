-- A lookup in the shared tier: the object's bytes and, when it is there, its hit count across
-- the fleet (kept as long as the object). KEYS: object key, hits key. Returns false or {bytes, hits}.
local bytes = redis.call('GET', KEYS[1])
if not bytes then return false end
local hits = redis.call('INCR', KEYS[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return {bytes, hits}
