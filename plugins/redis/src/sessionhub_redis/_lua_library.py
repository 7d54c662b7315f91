"""The Lua functions every script shares: :mod:`._scripts` puts them before each script."""

from __future__ import annotations

__all__ = ["COMMON"]

COMMON = r"""
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

-- An event's JSON as the events list keeps it: the client's text with its seq field (right
-- after the id: ',"' never occurs inside a JSON string) set to seq, the fields in the order
-- a read builds them.
local function numbered(json, seq)
  local at = string.find(json, ',"seq":', 1, true)
  local stop = string.find(json, ',', at + 7, true)
  return string.sub(json, 1, at + 6) .. seq .. string.sub(json, stop)
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

-- After a write to a live session at `now`: its own keys (keys[1..4]: hash, events, ids,
-- times) get its expiry, and its entries in the user's index (keys[5]) and in its parent's
-- children index (`pesc`: the escaped parent id, '' or nil for none) move to `now`, as does
-- its entry in the app's index `app_idx` (single node; nil on Cluster) for user `user`.
-- `had`: the expiry the session carried before the write (nil: none).
local function session_written(keys, now, exp, ttl, had, base, session_id, pesc, app_idx, user)
  session_ttl(keys[1], keys[2], keys[3], keys[4], exp, ttl, had)
  -- A session that has no expiry and had none is in persistent indexes already.
  local touch = (ttl == '' and not had) and index_add or index_touch
  touch(keys[5], session_id, now, ttl)
  if pesc and pesc ~= '' then touch(base .. ':c:' .. pesc, session_id, now, ttl) end
  if app_idx and user then redis.call('ZADD', app_idx, now, user .. '\0' .. session_id) end
end

-- The rank, counted from the highest, of the first entry of sorted set idx after the
-- position (score, member), by (score, member) descending: the entries before it have a
-- higher score, or its score and a member that does not sort before `member` (bisected
-- among them by rank), whether or not the position's own entry is still there.
-- score '': from the start.
local function rank_after(idx, score, member)
  if score == '' then return 0 end
  local above = redis.call('ZCOUNT', idx, '(' .. score, '+inf')
  local lo, hi = 0, redis.call('ZCOUNT', idx, score, score)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if bytes_less(redis.call('ZREVRANGE', idx, above + mid, above + mid)[1], member) then
      hi = mid
    else
      lo = mid + 1
    end
  end
  return above + lo
end

-- The app stamp of a write to session hash h, kept there as 'ast': the app clock's
-- reading, raised to one above the session's previous stamp `last` if need be.
local function next_stamp(h, clock, last)
  local stamp = math.max(tonumber(clock), tonumber(last or '0') + 1)
  redis.call('HSET', h, 'ast', stamp)
  return stamp
end
"""
