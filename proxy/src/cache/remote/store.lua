-- Stores an object and indexes it by its primary key (for its variants) and its tags, then lets
-- go of the fleet fill lock if this proxy held it. KEYS: object key, hits key, variants set,
-- lock key, tag sets... ARGV: bytes, lifetime (ms), storage key, lock token.
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
redis.call('SADD', KEYS[3], ARGV[3])
-- An index lives as long as the longest-lived object in it (PTTL is -1 for a key without expiry).
local function keep(key)
  if redis.call('PTTL', key) < tonumber(ARGV[2]) then redis.call('PEXPIRE', key, ARGV[2]) end
end
keep(KEYS[3])
for i = 5, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[3])
  keep(KEYS[i])
end
if ARGV[4] ~= '' and redis.call('GET', KEYS[4]) == ARGV[4] then redis.call('DEL', KEYS[4]) end
return 1
