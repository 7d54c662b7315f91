"""The Lua source of the scripts that rewrite a session's history: POP, REPLACE, RESTORE.

Their headers, arguments and conventions are those of :mod:`._scripts`; each
runs on the session's slot only. The stored seqs of a popped session no
longer end at ``last_seq``: POP (and RESTORE, given seqs with gaps) sets
``gap`` in the session hash, so reads and appends count positions in the id
index; REPLACE numbers its events after ``last_seq`` and clears it.
"""

from __future__ import annotations

from sessionhub_redis._lua_library import COMMON as _COMMON

__all__ = ["POP", "REPLACE", "RESTORE"]

RESTORE = (
    _COMMON
    + r"""
-- KEYS: session_hash, event_list, id_index, time_list, user_index, app_users?, app_sessions?,
--       apps?
-- ARGV: now, exp, ttl, updated_at, base, session_id, parent_escaped, fields*,
--       restored_events*, user_id, app_name
-- restored_events*: id, seq, time, json
-- Replaces whatever session has this key with exactly the given one. The seqs increase
-- and may have gaps; fields then carry 'gap' (set by the caller, like 'tnew' and 'tuno').
local session_hash, event_list, id_index, time_list, user_index, app_users, app_sessions,
  apps = unpack(KEYS)
local now, exp, ttl, updated_at, base, session_id, parent_escaped = unpack(ARGV, 1, 7)
local old = redis.call('HGET', session_hash, 'pesc')
redis.call('DEL', session_hash, event_list, id_index, time_list)
redis.call('ZREM', user_index, session_id)
if old and old ~= '' then redis.call('ZREM', base .. ':c:' .. old, session_id) end
local n = tonumber(ARGV[8])
for j = 9, 8 + 2 * n, 2 do redis.call('HSET', session_hash, ARGV[j], ARGV[j + 1]) end
redis.call('HSET', session_hash, 'pesc', parent_escaped)
local i = 9 + 2 * n
local after = i + 1 + 4 * tonumber(ARGV[i])
for j = i + 1, after - 1, 4 do
  redis.call('RPUSH', event_list, ARGV[j + 3])
  redis.call('RPUSH', time_list, ARGV[j + 2])
  redis.call('ZADD', id_index, ARGV[j + 1], ARGV[j])
end
session_ttl(session_hash, event_list, id_index, time_list, exp, ttl, false)
index_touch(user_index, session_id, updated_at, ttl)
if parent_escaped ~= '' then
  index_touch(base .. ':c:' .. parent_escaped, session_id, updated_at, ttl)
end
if app_users then redis.call('ZADD', app_users, 0, ARGV[after]) end
if app_sessions then
  redis.call('ZADD', app_sessions, updated_at, ARGV[after] .. '\0' .. session_id)
end
if apps then redis.call('ZADD', apps, 0, ARGV[after + 1]) end
return 1
"""
)

POP = (
    _COMMON
    + r"""
-- KEYS: session_hash, event_list, id_index, time_list, user_index, app_sessions?
-- ARGV: now, exp, ttl, base, session_id
-- Reply: {0} if the session is absent or expired, {1} if it holds no events, else
--        {1, the removed event's stored JSON}
-- The newest event is the last of the events list, and its id the highest-scored entry
-- of the id index (scores are seqs). last_seq stays (a seq is never reused), so the
-- stored seqs no longer end at last_seq: 'gap' is set unless no event is left, and
-- positions are then counted in the id index (see APPEND and GET).
local session_hash, event_list, id_index, time_list, user_index, app_sessions = unpack(KEYS)
local now, exp, ttl, base, session_id = unpack(ARGV, 1, 5)
local head = redis.call('HMGET', session_hash, 'count', 'exp', 'pesc', 'tnew', 'user')
if not head[1] or expired(head[2], tonumber(now)) then return {0} end
local count = tonumber(head[1])
if count == 0 then return {1} end
local json = redis.call('RPOP', event_list)
if not json then return {1} end
redis.call('ZPOPMAX', id_index)
count = count - 1
redis.call('HSET', session_hash, 'count', count, 'upd', now)
if count > 0 then redis.call('HSET', session_hash, 'gap', 1) end
if head[4] then  -- the session keeps times: the times list loses its newest too
  redis.call('RPOP', time_list)
  local newest = redis.call('LINDEX', time_list, -1)
  if newest then
    redis.call('HSET', session_hash, 'tnew', newest)
  else
    redis.call('HDEL', session_hash, 'tnew')
  end
end
session_written(KEYS, now, exp, ttl, head[2], base, session_id, head[3], app_sessions, head[5])
return {1, json}
"""
)

REPLACE = (
    _COMMON
    + r"""
-- KEYS: session_hash, event_list, id_index, time_list, user_index, app_sessions?
-- ARGV: now, exp, ttl, base, session_id, expected_last_seq, event_limit, new_events*
-- new_events*: id, json, time
-- expected_last_seq: '' for no check; event_limit: '' for none; json: the event (any seq).
-- Reply: {0} if the session is absent or expired; {2, last_seq} if last_seq is not
--        expected_last_seq; else {1, last_seq, event_count}
-- Every event goes (events, ids and times); the new ones are numbered after last_seq and
-- the newest event_limit of them stored. Their seqs are the run ending at the new
-- last_seq, so 'gap' is cleared; 'tnew' and 'tuno' are set from the new times.
local session_hash, event_list, id_index, time_list, user_index, app_sessions = unpack(KEYS)
local now, exp, ttl, base, session_id, expected_last_seq, event_limit = unpack(ARGV, 1, 7)
local head = redis.call('HMGET', session_hash, 'last_seq', 'exp', 'pesc', 'user')
if not head[1] or expired(head[2], tonumber(now)) then return {0} end
local last_seq = tonumber(head[1])
if expected_last_seq ~= '' and tonumber(expected_last_seq) ~= last_seq then
  return {2, last_seq}
end
local n = tonumber(ARGV[8])
local skip = event_limit == '' and 0 or math.max(0, n - tonumber(event_limit))
redis.call('DEL', event_list, id_index, time_list)
redis.call('HDEL', session_hash, 'gap', 'tnew', 'tuno')
local newest, ordered = nil, true
for k = skip + 1, n do
  local j = 6 + 3 * k
  local seq, time = last_seq + k, ARGV[j + 2]
  redis.call('RPUSH', event_list, numbered(ARGV[j + 1], seq))
  redis.call('RPUSH', time_list, time)
  redis.call('ZADD', id_index, seq, ARGV[j])
  if newest and later(newest, time) then ordered = false end
  newest = time
end
last_seq = last_seq + n
redis.call('HSET', session_hash, 'last_seq', last_seq, 'count', n - skip, 'upd', now)
if newest then redis.call('HSET', session_hash, 'tnew', newest) end
if not ordered then redis.call('HSET', session_hash, 'tuno', 1) end
session_written(KEYS, now, exp, ttl, head[2], base, session_id, head[3], app_sessions, head[4])
return {1, last_seq, n - skip}
"""
)
