-- Adds a storage key to a tag's set, which lives as long as the longest-lived object in it.
-- KEYS: the tag's set. ARGV: storage key, lifetime (ms).
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
