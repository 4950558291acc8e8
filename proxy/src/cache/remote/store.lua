-- Stores an object and indexes it by its primary key (for its variants), then lets go of the
-- fleet fill lock if this proxy held it; every key is in the primary key's slot (tags are added
-- by tag.lua). KEYS: object key, hits key, variants set, lock key, variants marker. ARGV: bytes,
-- lifetime (ms), storage key, lock token, variants marker ('' when the response does not vary: the marker goes).
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
redis.call('SADD', KEYS[3], ARGV[3])
-- An index lives as long as the longest-lived object in it (PTTL is -1 for a key without expiry).
local function keep(key)
  if redis.call('PTTL', key) < tonumber(ARGV[2]) then redis.call('PEXPIRE', key, ARGV[2]) end
end
keep(KEYS[3])
if ARGV[5] == '' then
  redis.call('DEL', KEYS[5])
else
  -- The newest response decides the headers; it lives as long as the longest-lived variant.
  local ttl = redis.call('PTTL', KEYS[5])
  redis.call('SET', KEYS[5], ARGV[5])
  redis.call('PEXPIRE', KEYS[5], math.max(ttl, tonumber(ARGV[2])))
end
if ARGV[4] ~= '' and redis.call('GET', KEYS[4]) == ARGV[4] then redis.call('DEL', KEYS[4]) end
return 1
