-- A lookup in the shared tier: the object's bytes and, when it is there, its hit count across
-- the fleet (kept as long as the object). When it is not there and KEYS[3] is given (the asking
-- proxy does not know that the key varies), the key's variants marker instead, so that proxy
-- learns in the same round trip which headers pick the variant.
-- KEYS: object key, hits key[, variants marker]. Returns {bytes, hits, ''} or {'', 0, marker}
-- (the marker '' when there is none).
local bytes = redis.call('GET', KEYS[1])
if not bytes then
  local marker = KEYS[3] and redis.call('GET', KEYS[3])
  return {'', 0, marker or ''}
end
local hits = redis.call('INCR', KEYS[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return {bytes, hits, ''}
