-- Lets go of a fleet fill lock only if this proxy still holds it (it may have expired and been
-- taken by another). KEYS: lock key. ARGV: token.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
