-- Removes (or, when soft, marks stale) the objects with these storage keys. KEYS: object keys.
-- ARGV: "1" for soft. A soft purge sets bit 1 of the flags byte (offset 36 in format version 1,
-- see cache/codec.rs) so every proxy serves the object stale while one refreshes it.
local count = 0
for _, key in ipairs(KEYS) do
  if ARGV[1] == '1' then
    local head = redis.call('GETRANGE', key, 0, 36)
    if string.len(head) == 37 and string.byte(head, 1) == 1 then
      redis.call('SETRANGE', key, 36, string.char(bit.bor(string.byte(head, 37), 2)))
      count = count + 1
    end
  else
    count = count + redis.call('DEL', key)
  end
end
return count
