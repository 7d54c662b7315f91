"""The Lua scripts: each primitive is one script, run with EVALSHA (reloaded on NOSCRIPT).

Conventions shared by every script:

- Times are integer microseconds since the Unix epoch, passed as decimal
  strings; ``now`` is the service's clock (which may be a test's fake clock),
  never the server's. A record whose stored ``exp`` is ``<= now`` is expired.
- TTLs are relative milliseconds (``PEXPIRE``), computed by the caller from
  ``expires_at - now``, so the server's clock is never compared with ours.
  An empty string means "no expiry" (``PERSIST``).
- State hashes (session state inside the session hash, user and app state)
  hold ``s:<key>`` -> JSON text; metadata ``m:<key>`` -> JSON text. A delta is
  a count followed by (key, JSON) pairs; an empty JSON text deletes the key.
  No JSON is decoded in Lua.
- The optional app-slot keys (the app state, the app's user index) come last
  in KEYS. They are passed on a single node, so one script also applies the
  ``app:`` deltas and records the user; on Cluster they live in another slot
  and the caller sends those writes as commands of their own.
- All checks happen before the first write: Redis does not roll a script back,
  so a script that returns early has written nothing.
- Session and children keys are derived from ``base`` (``<prefix>{<tag>}``),
  always in the slot of KEYS[1].
- An event's time travels as a time key (18 digits, see :mod:`._keys`); the
  list of a session's time keys runs parallel to its events list, so a window
  by time is chosen on the server. A session hash carries ``tnew``, the newest
  event's time key, while it keeps times, and ``tuno`` once they ever
  decreased with seq. A session whose times list is not as long as its events
  list (stored before times were kept) is read by time as before: the events
  by seq, the time filter left to the caller.
- Cluster: an ``app:`` delta goes to the app's slot in a second script, so two
  writes' app deltas may arrive in either order. Each carries a stamp: the
  app's clock (``HINCRBY`` on the stamps hash, taken before the session's
  script), raised by the session script above the session's previous stamp
  (``ast``), so a session's stamps grow with its seqs. The app script applies
  a key only if (stamp, writer) is later than the key's last write, and raises
  the clock to the stamp, so a write begun after another finished stamps later.
"""

from __future__ import annotations

__all__ = [
    "APPEND",
    "CREATE",
    "GET",
    "LIST",
    "UPDATE",
    "DELETE",
    "STATE",
    "APP_DELTA",
    "RESTORE",
]

_COMMON = r"""
local function esc(s)
  return (string.gsub(s, '[^A-Za-z0-9_%.~%-]', function(c)
    return string.format('%%%02X', string.byte(c))
  end))
end

-- Byte-wise comparison: Lua's '<' on strings follows the server's locale.
local function bytes_less(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- Whether time key a is after time key b (both 18 digits). Doubles order them
-- whenever they differ as doubles; past 2^53 equal doubles need the digits.
local function later(a, b)
  local x, y = tonumber(a), tonumber(b)
  if x ~= y then return x > y end
  return bytes_less(b, a)
end

local function expired(exp, now)
  return exp and exp ~= '' and tonumber(exp) <= now
end

-- Apply n (key, json) pairs from ARGV[i...] to hash h under prefix p; return the next index.
local function apply_pairs(h, p, i, n)
  for j = i, i + 2 * n - 1, 2 do
    local v = ARGV[j + 1]
    if v == '' then
      redis.call('HDEL', h, p .. ARGV[j])
    else
      redis.call('HSET', h, p .. ARGV[j], v)
    end
  end
  return i + 2 * n
end

local function skip_pairs(i)
  return i + 1 + 2 * tonumber(ARGV[i])
end

-- A state hash about to be written: an expired one starts empty.
local function state_for_write(h, now)
  if expired(redis.call('HGET', h, 'exp'), now) then redis.call('DEL', h) end
end

-- After a write to a state hash: drop it when empty, else stamp its expiry.
local function state_written(h, exp, ttl)
  local has = redis.call('HEXISTS', h, 'exp')
  if redis.call('HLEN', h) == has then
    if has == 1 then redis.call('DEL', h) end
    return
  end
  if exp == '' then
    if has == 1 then
      redis.call('HDEL', h, 'exp')
      redis.call('PERSIST', h)
    end
  else
    redis.call('HSET', h, 'exp', exp)
    redis.call('PEXPIRE', h, ttl)
  end
end

-- A delta of n (key, JSON) pairs at ARGV[i] ('' deletes) to state hash h, if n > 0, with
-- the expiry rules above; return the index after it.
local function write_state(h, i, now, exp, ttl)
  local n = tonumber(ARGV[i])
  if n > 0 then
    state_for_write(h, now)
    apply_pairs(h, 's:', i + 1, n)
    state_written(h, exp, ttl)
  end
  return skip_pairs(i)
end

-- A sliding read of a live state hash: push its expiry.
local function state_refresh(h, now, exp, ttl)
  local old = redis.call('HGET', h, 'exp')
  if expired(old, now) or redis.call('EXISTS', h) == 0 then return end
  if exp == '' then
    if old then
      redis.call('HDEL', h, 'exp')
      redis.call('PERSIST', h)
    end
  else
    redis.call('HSET', h, 'exp', exp)
    redis.call('PEXPIRE', h, ttl)
  end
end

-- Put a session in an index (the user's, or its parent's children) and keep the
-- index alive as long as its longest-lived session.
local function index_touch(idx, sid, score, ttl)
  local before = redis.call('PTTL', idx)
  redis.call('ZADD', idx, score, sid)
  if ttl == '' then
    if before >= 0 then redis.call('PERSIST', idx) end
  elseif before == -2 or (before == -1 and redis.call('ZCARD', idx) == 1)
      or (before >= 0 and before < tonumber(ttl)) then
    redis.call('PEXPIRE', idx, ttl)
  end
end

-- index_touch for a session without expiry in an index that has none: an index keeps
-- no expiry while it holds a session without one.
local function index_add(idx, sid, score)
  redis.call('ZADD', idx, score, sid)
end

-- The session's own keys get its expiry; "had" says whether they carried one.
local function session_ttl(h, e, i, t, exp, ttl, had)
  if exp ~= '' then
    redis.call('HSET', h, 'exp', exp)
    for _, k in ipairs({h, e, i, t}) do redis.call('PEXPIRE', k, ttl) end
  elseif had then
    redis.call('HDEL', h, 'exp')
    for _, k in ipairs({h, e, i, t}) do redis.call('PERSIST', k) end
  end
end

-- The app stamp of a write to session hash h, kept there as 'ast': the app clock's
-- reading, raised to one above the session's previous stamp `last` if need be.
local function next_stamp(h, clock, last)
  local stamp = math.max(tonumber(clock), tonumber(last or '0') + 1)
  redis.call('HSET', h, 'ast', stamp)
  return stamp
end
"""

APPEND = (
    _COMMON
    + r"""
-- KEYS: session hash, events, ids, times, user state, user index[, app state]
-- ARGV: now, exp, ttl, event_limit, user exp, user ttl, app exp, app ttl, base, session id,
--       event count, app clock (Cluster, when an event has app deltas; else ''),
--       then per event: id, JSON without seq, time key, session/user/app deltas
-- Reply: {0} if the session is absent or expired, else
--        {1, last_seq, event_count, app stamp ('' without an app clock),
--         then per event: seq, stored JSON (false if new)}
local H, E, I, T, U, X, A = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local now = tonumber(ARGV[1])
local head = redis.call('HMGET', H, 'last_seq', 'count', 'exp', 'pesc', 'ast', 'tuno', 'tnew')
if not head[1] or expired(head[3], now) then return {0} end
local last_seq, count = tonumber(head[1]), tonumber(head[2])
-- 'tnew' is the newest event's time key; without it, only an empty session keeps times.
local newest = head[7]
local timed = newest or count == 0
local ordered = not head[6]
local reply = {1, 0, 0, ''}
local fresh, user_written, app_written = 0, false, false
local i = 13
for _ = 1, tonumber(ARGV[11]) do
  local id, json = ARGV[i], ARGV[i + 1]
  -- Claims the next seq for the id, unless the id is stored already.
  if redis.call('ZADD', I, 'NX', last_seq + 1, id) == 0 then
    local seq = tonumber(redis.call('ZSCORE', I, id))
    reply[#reply + 1] = seq
    reply[#reply + 1] = redis.call('LINDEX', E, seq - last_seq - 1)
    i = skip_pairs(skip_pairs(skip_pairs(i + 3)))
  else
    last_seq = last_seq + 1
    count = count + 1
    fresh = fresh + 1
    redis.call('RPUSH', E, '{"seq":' .. last_seq .. ',' .. string.sub(json, 2))
    if timed then
      local time = ARGV[i + 2]
      if ordered and newest and later(newest, time) then ordered = false end
      newest = time
      redis.call('RPUSH', T, time)
    end
    i = apply_pairs(H, 's:', i + 4, tonumber(ARGV[i + 3]))
    local n = tonumber(ARGV[i])
    if n > 0 and not user_written then
      state_for_write(U, now)
      user_written = true
    end
    i = apply_pairs(U, 's:', i + 1, n)
    n = tonumber(ARGV[i])
    if n > 0 and not app_written then
      state_for_write(A, now)
      app_written = true
    end
    i = apply_pairs(A, 's:', i + 1, n)
    reply[#reply + 1] = last_seq
    reply[#reply + 1] = false
  end
end
if fresh > 0 then
  if ARGV[4] ~= '' and count > tonumber(ARGV[4]) then
    local keep = tonumber(ARGV[4])
    redis.call('LTRIM', E, -keep, -1)
    redis.call('LTRIM', T, -keep, -1)
    redis.call('ZREMRANGEBYSCORE', I, '-inf', last_seq - keep)
    count = keep
  end
  if timed then
    redis.call('HSET', H, 'last_seq', last_seq, 'count', count, 'upd', ARGV[1], 'tnew', newest)
  else
    redis.call('HSET', H, 'last_seq', last_seq, 'count', count, 'upd', ARGV[1])
  end
  if not ordered and not head[6] then redis.call('HSET', H, 'tuno', 1) end
  if ARGV[12] ~= '' then reply[4] = next_stamp(H, ARGV[12], head[5]) end
  session_ttl(H, E, I, T, ARGV[2], ARGV[3], head[3])
  -- A session that has no expiry and had none is in persistent indexes already.
  local touch = (ARGV[3] == '' and not head[3]) and index_add or index_touch
  touch(X, ARGV[10], ARGV[1], ARGV[3])
  if head[4] and head[4] ~= '' then
    touch(ARGV[9] .. ':c:' .. head[4], ARGV[10], ARGV[1], ARGV[3])
  end
  if user_written then state_written(U, ARGV[5], ARGV[6]) end
  if app_written then state_written(A, ARGV[7], ARGV[8]) end
end
reply[2] = last_seq
reply[3] = count
return reply
"""
)

CREATE = (
    _COMMON
    + r"""
-- KEYS: session hash, events, ids, times, user state, user index[, app state, app's users]
-- ARGV: now, exp, ttl, create token, user exp, user ttl, app exp, app ttl, base, session id,
--       escaped parent id ('' for none), field count, (field, value) pairs, user delta,
--       app delta, user id
-- Reply: {0} if a live session has this id; {1 or 2 (this very create ran before),
--        user state fields, app state fields}
local H, E, I, T, U, X = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local A, W = KEYS[7], KEYS[8]
local now = tonumber(ARGV[1])
local old = redis.call('HMGET', H, 'last_seq', 'exp', 'ct', 'pesc')
local status = 1
if old[1] and not expired(old[2], now) then
  if old[3] ~= ARGV[4] then return {0} end
  status = 2
else
  if old[1] then
    redis.call('DEL', H, E, I, T)
    redis.call('ZREM', X, ARGV[10])
    if old[4] and old[4] ~= '' then redis.call('ZREM', ARGV[9] .. ':c:' .. old[4], ARGV[10]) end
  end
  local n = tonumber(ARGV[12])
  for j = 13, 12 + 2 * n, 2 do redis.call('HSET', H, ARGV[j], ARGV[j + 1]) end
  redis.call('HSET', H, 'ct', ARGV[4], 'pesc', ARGV[11])
  session_ttl(H, E, I, T, ARGV[2], ARGV[3], false)
  index_touch(X, ARGV[10], ARGV[1], ARGV[3])
  if ARGV[11] ~= '' then index_touch(ARGV[9] .. ':c:' .. ARGV[11], ARGV[10], ARGV[1], ARGV[3]) end
  local i = write_state(U, 13 + 2 * n, now, ARGV[5], ARGV[6])
  write_state(A, i, now, ARGV[7], ARGV[8])
  if W then redis.call('ZADD', W, 0, ARGV[#ARGV]) end
end
return {status, redis.call('HGETALL', U), A and redis.call('HGETALL', A) or {}}
"""
)

GET = (
    _COMMON
    + r"""
-- KEYS: session hash, events, ids, times, user state, user index[, app state]
-- ARGV: now, refresh ('1' or ''), exp, ttl, user exp, user ttl, app exp, app ttl, base,
--       session id, after_seq, last_n ('' for all; '0' reads no events),
--       after_time ('' for any time, else a time key)
-- Reply: {0} if absent or expired, else
--        {1, session hash fields, events (oldest first), user state fields, app state fields,
--         1 if the events are the window, 0 if the caller must still apply after_time
--         and last_n to them (events stored before times were kept)}
local H, E, I, T, U, X, A = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]

-- The newest `want` (nil: all) events at list positions >= first (negative: from the
-- end) whose time is later than `after`, oldest first: time keys are scanned from the
-- newest back, in growing chunks; while the session's times never decreased, the scan
-- stops at the first time not later. Only the events chosen are read.
local function timed_window(first, want, after, ordered)
  local found = {}
  local top, size, done = -1, (want or 63) + 1, false
  while top >= first and not done do
    local bottom = math.max(first, top - size + 1)
    local times = redis.call('LRANGE', T, bottom, top)
    for j = #times, 1, -1 do
      if later(times[j], after) then
        found[#found + 1] = bottom + j - 1
        if want and #found >= want then done = true break end
      elseif ordered then
        done = true
        break
      end
    end
    top, size = bottom - 1, math.min(2 * size, 4096)
  end
  local events, j = {}, #found
  while j >= 1 do
    local from, to = found[j], found[j]
    while j > 1 and found[j - 1] == to + 1 do
      j = j - 1
      to = to + 1
    end
    for _, e in ipairs(redis.call('LRANGE', E, from, to)) do events[#events + 1] = e end
    j = j - 1
  end
  return events
end

local now = tonumber(ARGV[1])
local fields = redis.call('HGETALL', H)
if #fields == 0 then return {0} end
local f = {}
for j = 1, #fields, 2 do f[fields[j]] = fields[j + 1] end
if expired(f['exp'], now) then return {0} end
if ARGV[2] == '1' then
  session_ttl(H, E, I, T, ARGV[3], ARGV[4], f['exp'])
  index_touch(X, ARGV[10], f['upd'], ARGV[4])
  if f['pesc'] and f['pesc'] ~= '' then
    index_touch(ARGV[9] .. ':c:' .. f['pesc'], ARGV[10], f['upd'], ARGV[4])
  end
  state_refresh(U, now, ARGV[5], ARGV[6])
  if A then state_refresh(A, now, ARGV[7], ARGV[8]) end
end
local events, windowed = {}, 1
local last_seq, count = tonumber(f['last_seq']), tonumber(f['count'])
local lo = math.max(last_seq - count + 1, tonumber(ARGV[11]) + 1)
local want = ARGV[12] ~= '' and tonumber(ARGV[12]) or nil
if ARGV[13] ~= '' and want ~= 0 and lo <= last_seq then
  if redis.call('LLEN', T) == count then
    events = timed_window(lo - last_seq - 1, want, ARGV[13], not f['tuno'])
  else
    windowed = 0
    events = redis.call('LRANGE', E, lo - last_seq - 1, -1)
  end
else
  if want then lo = math.max(lo, last_seq - want + 1) end
  if lo <= last_seq then events = redis.call('LRANGE', E, lo - last_seq - 1, -1) end
end
return {1, fields, events, redis.call('HGETALL', U), A and redis.call('HGETALL', A) or {},
        windowed}
"""
)

LIST = (
    _COMMON
    + r"""
-- KEYS: an index (the user's sessions, or one session's children)
-- ARGV: now, limit, after updated_at ('' for the first page), after session id, base,
--       parent id ('' when listing the user's index)
-- Reply: up to limit session hashes (field lists), (updated_at, id) descending.
-- Entries whose session is gone, expired, or (children) re-created under another
-- parent are removed from the index on the way.
local idx = KEYS[1]
local now, limit, base, parent = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[5], ARGV[6]
local page, stale = {}, {}
local function consider(sid)
  local fields = redis.call('HGETALL', base .. ':h:' .. esc(sid))
  local exp, par = nil, ''
  for j = 1, #fields, 2 do
    if fields[j] == 'exp' then exp = fields[j + 1] elseif fields[j] == 'parent' then
      par = fields[j + 1]
    end
  end
  if #fields == 0 or expired(exp, now) or (parent ~= '' and par ~= parent) then
    stale[#stale + 1] = sid
  else
    page[#page + 1] = fields
  end
end
local max = '+inf'
if ARGV[3] ~= '' then
  for _, sid in ipairs(redis.call('ZREVRANGEBYSCORE', idx, ARGV[3], ARGV[3])) do
    if #page >= limit then break end
    if bytes_less(sid, ARGV[4]) then consider(sid) end
  end
  max = '(' .. ARGV[3]
end
local batch, offset = limit + 16, 0
while #page < limit do
  local sids = redis.call('ZREVRANGEBYSCORE', idx, max, '-inf', 'LIMIT', offset, batch)
  for _, sid in ipairs(sids) do
    if #page >= limit then break end
    consider(sid)
  end
  if #sids < batch then break end
  offset = offset + batch
end
for _, sid in ipairs(stale) do redis.call('ZREM', idx, sid) end
return page
"""
)

UPDATE = (
    _COMMON
    + r"""
-- KEYS: session hash, events, ids, times, user state, user index[, app state]
-- ARGV: now, exp, ttl, app clock (Cluster, with an app delta; else ''), user exp, user ttl,
--       app exp, app ttl, base, session id, state delta, metadata delta, user delta,
--       app delta
-- Reply: {0} if absent or expired, else
--        {1, session hash fields, user state, app state, app stamp ('' without a clock)}
local H, E, I, T, U, X, A = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local now = tonumber(ARGV[1])
local head = redis.call('HMGET', H, 'last_seq', 'exp', 'pesc', 'ast')
if not head[1] or expired(head[2], now) then return {0} end
local stamp = ''
if ARGV[4] ~= '' then stamp = next_stamp(H, ARGV[4], head[4]) end
local i = apply_pairs(H, 's:', 12, tonumber(ARGV[11]))
i = apply_pairs(H, 'm:', i + 1, tonumber(ARGV[i]))
i = write_state(U, i, now, ARGV[5], ARGV[6])
write_state(A, i, now, ARGV[7], ARGV[8])
redis.call('HSET', H, 'upd', ARGV[1])
session_ttl(H, E, I, T, ARGV[2], ARGV[3], head[2])
index_touch(X, ARGV[10], ARGV[1], ARGV[3])
if head[3] and head[3] ~= '' then
  index_touch(ARGV[9] .. ':c:' .. head[3], ARGV[10], ARGV[1], ARGV[3])
end
return {1, redis.call('HGETALL', H), redis.call('HGETALL', U),
        A and redis.call('HGETALL', A) or {}, stamp}
"""
)

DELETE = r"""
-- KEYS: session hash, events, ids, times, user index
-- ARGV: base, session id, now
-- Reply: 1 if the session was live (its hash exists and has not expired), else 0
local H, E, I, T, X = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local head = redis.call('HMGET', H, 'pesc', 'exp')
redis.call('DEL', H, E, I, T)
redis.call('ZREM', X, ARGV[2])
local pesc, exp = head[1], head[2]
if not pesc then return 0 end
if pesc ~= '' then redis.call('ZREM', ARGV[1] .. ':c:' .. pesc, ARGV[2]) end
if exp and tonumber(exp) <= tonumber(ARGV[3]) then return 0 end
return 1
"""

STATE = (
    _COMMON
    + r"""
-- KEYS: a state hash (a user's or an app's)[, the app's users, for a user's state]
-- ARGV: now, mode ('update' or 'refresh'), exp, ttl, delta[, user id]
-- Reply: the state hash fields after the change
local S = KEYS[1]
local now = tonumber(ARGV[1])
if ARGV[2] == 'update' then
  if KEYS[2] then redis.call('ZADD', KEYS[2], 0, ARGV[#ARGV]) end
  state_for_write(S, now)
  apply_pairs(S, 's:', 6, tonumber(ARGV[5]))
  state_written(S, ARGV[3], ARGV[4])
else
  state_refresh(S, now, ARGV[3], ARGV[4])
end
return redis.call('HGETALL', S)
"""
)

APP_DELTA = (
    _COMMON
    + r"""
-- KEYS: the app state, the app's write stamps
-- ARGV: now, exp, ttl, stamp, writer (the session hash's key), delta
-- Reply: the app state fields after the change
-- Cluster's second script of a write with app deltas. Each key of the delta is
-- applied unless a later write (by stamp, then writer) set it already.
local A, S = KEYS[1], KEYS[2]
local now, stamp, writer = tonumber(ARGV[1]), tonumber(ARGV[4]), ARGV[5]
local function is_later(last)
  local at = string.find(last, ' ', 1, true)
  local last_stamp = tonumber(string.sub(last, 1, at - 1))
  if stamp ~= last_stamp then return stamp > last_stamp end
  return bytes_less(string.sub(last, at + 1), writer)
end
if stamp > tonumber(redis.call('HGET', S, 'clock') or '0') then
  redis.call('HSET', S, 'clock', stamp)
end
state_for_write(A, now)
local mark = ARGV[4] .. ' ' .. writer
for j = 7, 6 + 2 * tonumber(ARGV[6]), 2 do
  local last = redis.call('HGET', S, 's:' .. ARGV[j])
  if not last or is_later(last) then
    apply_pairs(A, 's:', j, 1)
    redis.call('HSET', S, 's:' .. ARGV[j], mark)
  end
end
state_written(A, ARGV[2], ARGV[3])
if ARGV[2] == '' then redis.call('PERSIST', S) else redis.call('PEXPIRE', S, ARGV[3]) end
return redis.call('HGETALL', A)
"""
)

RESTORE = (
    _COMMON
    + r"""
-- KEYS: session hash, events, ids, times, user index[, app's users]
-- ARGV: now, exp, ttl, updated_at, base, session id, escaped parent id, field count,
--       (field, value) pairs, event count, (event id, seq, time key, JSON) quads, user id
-- Replaces whatever session has this key with exactly the given one.
local H, E, I, T, X, W = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local base, sid, pesc = ARGV[5], ARGV[6], ARGV[7]
local old = redis.call('HGET', H, 'pesc')
redis.call('DEL', H, E, I, T)
redis.call('ZREM', X, sid)
if old and old ~= '' then redis.call('ZREM', base .. ':c:' .. old, sid) end
local n = tonumber(ARGV[8])
for j = 9, 8 + 2 * n, 2 do redis.call('HSET', H, ARGV[j], ARGV[j + 1]) end
redis.call('HSET', H, 'pesc', pesc)
local i = 9 + 2 * n
for j = i + 1, i + 4 * tonumber(ARGV[i]), 4 do
  redis.call('RPUSH', E, ARGV[j + 3])
  redis.call('RPUSH', T, ARGV[j + 2])
  redis.call('ZADD', I, ARGV[j + 1], ARGV[j])
end
session_ttl(H, E, I, T, ARGV[2], ARGV[3], false)
index_touch(X, sid, ARGV[4], ARGV[3])
if pesc ~= '' then index_touch(base .. ':c:' .. pesc, sid, ARGV[4], ARGV[3]) end
if W then redis.call('ZADD', W, 0, ARGV[#ARGV]) end
return 1
"""
)
