"""The Lua source of the scripts: each primitive is one script (run by EVALSHA, EVAL on NOSCRIPT).

The scripts that rewrite a history (pop, replace, restore) are in
:mod:`._rewrite_scripts`; the conventions below hold for them too.

Each script opens with a header naming its KEYS and ARGV in order (``?``: an
optional key, left out when absent; ``*``: a count followed by that many
entries; a line ``name*: ...`` lists the fields of each entry of ``name``),
then unpacks the fixed ones into locals of the same names. Its arguments are
built by the class of the same name in :mod:`._protocol`;
``tests/test_protocol.py`` checks that the two agree.

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
  Counted parts are read by a cursor ``i`` over ARGV.
  No JSON is decoded in Lua.
- The optional app-slot keys (the app state, the app's user index) come last
  in KEYS (``app_state?``, ``app_users?``). They are passed on a single node,
  so one script also applies the ``app:`` deltas and records the user; on
  Cluster they live in another slot and the caller sends those writes as
  commands of their own.
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
- An event's list position: its seq's distance from ``last_seq`` while the
  stored seqs are the run ending at ``last_seq`` (every session that was never
  popped); a session hash carries ``gap`` once they may not be (after a pop,
  or a restore with gaps), and positions are then counted in the id index,
  whose scores are the seqs, one entry per stored event (``ZCOUNT``,
  O(log n)); its trims go by rank. The events list, the id index and the times
  list always hold the same events in the same order. A replace numbers its
  events after ``last_seq``, which clears ``gap``.
- Cluster: an ``app:`` delta goes to the app's slot in a second script, so two
  writes' app deltas may arrive in either order. Each carries a stamp: the
  app's clock (``HINCRBY`` on the stamps hash, taken before the session's
  script), raised by the session script above the session's previous stamp
  (``ast``), so a session's stamps grow with its seqs. The app script applies
  a key only if (stamp, writer) is later than the key's last write, and raises
  the clock to the stamp, so a write begun after another finished stamps later.
"""

from __future__ import annotations

from sessionhub_redis._lua_library import COMMON as _COMMON

__all__ = [
    "APPEND",
    "CREATE",
    "GET",
    "LIST",
    "UPDATE",
    "DELETE",
    "STATE",
    "APP_DELTA",
    "APP_PAGE",
]

APPEND = (
    _COMMON
    + r"""
-- KEYS: session_hash, event_list, id_index, time_list, user_index, user_state, app_state?,
--       app_sessions?
-- ARGV: now, exp, ttl, user_exp, user_ttl, app_exp, app_ttl, base, session_id, event_limit,
--       app_clock, expected_last_seq, verified*, new_events*
-- new_events*: id, json, time, session_delta*, user_delta*, app_delta*
-- app_clock: Cluster, when an event has app deltas (else ''); json: the event (any seq);
-- expected_last_seq: compare and set, '' for no check; verified: (id, seq) pairs of
-- stored events the caller compared with its own (a seq is never reused, so the same id at
-- the same seq is the same event).
-- Reply: {0} if the session is absent or expired; {2, last_seq} if last_seq is not
--        expected_last_seq and an event id is not stored yet; {3, then per event: seq,
--        stored JSON (false, false if not stored)} with nothing written if the batch
--        mixes new ids with stored ones not verified at their seq; else
--        {1, last_seq, event_count, app stamp ('' without an app clock),
--         then per event: seq, stored JSON (false if stored now, '' if the id is
--         recorded but its event is not)}
-- A stored event's list position is computed from its seq while the session has no gap,
-- else counted in the id index (see `position`).
local session_hash, event_list, id_index, time_list, user_index, user_state,
  app_state, app_sessions = unpack(KEYS)
local now, exp, ttl, user_exp, user_ttl, app_exp, app_ttl, base, session_id, event_limit,
  app_clock, expected_last_seq = unpack(ARGV, 1, 12)
local events_at = 14 + 2 * tonumber(ARGV[13])
local event_total = tonumber(ARGV[events_at])
local now_us = tonumber(now)
local head = redis.call('HMGET', session_hash, 'last_seq', 'count', 'exp', 'pesc', 'ast', 'tuno',
                        'tnew', 'gap', 'user')
if not head[1] or expired(head[3], now_us) then return {0} end
local last_seq, count = tonumber(head[1]), tonumber(head[2])
local gap = head[8]
if expected_last_seq ~= '' and tonumber(expected_last_seq) ~= last_seq then
  -- Moved on: a conflict, unless the call is a retry of events all stored already.
  local j = events_at + 1
  for _ = 1, event_total do
    if not redis.call('ZSCORE', id_index, ARGV[j]) then return {2, last_seq} end
    j = skip_pairs(skip_pairs(skip_pairs(j + 3)))
  end
end
-- 'tnew' is the newest event's time key; without it, only an empty session keeps times.
local newest = head[7]
local timed = newest or count == 0
local ordered = not head[6]
-- The list index (from the end: -1 is the newest) of the stored event numbered seq: from
-- the seqs while they are the run ending at last_seq; after a pop ('gap' set) by counting
-- the newer ids in the id index (scores are seqs, one per stored event; O(log n)).
local function position(seq)
  if gap then return -1 - redis.call('ZCOUNT', id_index, '(' .. seq, '+inf') end
  return seq - last_seq - 1
end
if event_total > 1 then
  -- A batch mixing new ids with stored ones is written only once the caller has compared
  -- each stored event with its own: else a reused id would fail after the new ones landed.
  local verified = {}
  for j = 14, events_at - 1, 2 do verified[ARGV[j]] = tonumber(ARGV[j + 1]) end
  local seqs, new_ids, unverified = {}, false, false
  local j = events_at + 1
  for e = 1, event_total do
    local seq = redis.call('ZSCORE', id_index, ARGV[j])
    if seq then
      seqs[e] = tonumber(seq)
      if verified[ARGV[j]] ~= seqs[e] then unverified = true end
    else
      new_ids = true
    end
    j = skip_pairs(skip_pairs(skip_pairs(j + 3)))
  end
  if new_ids and unverified then
    local stored = {3}
    for e = 1, event_total do
      if seqs[e] then
        stored[#stored + 1] = seqs[e]
        stored[#stored + 1] = redis.call('LINDEX', event_list, position(seqs[e])) or ''
      else
        stored[#stored + 1] = false
        stored[#stored + 1] = false
      end
    end
    return stored
  end
end
local reply = {1, 0, 0, ''}
local fresh, user_written, app_written = 0, false, false
local i = events_at + 1
for _ = 1, event_total do
  local id, json, time = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  -- Claims the next seq for the id, unless the id is stored already.
  if redis.call('ZADD', id_index, 'NX', last_seq + 1, id) == 0 then
    local seq = tonumber(redis.call('ZSCORE', id_index, id))
    reply[#reply + 1] = seq
    reply[#reply + 1] = redis.call('LINDEX', event_list, position(seq)) or ''
    i = skip_pairs(skip_pairs(skip_pairs(i + 3)))
  else
    last_seq = last_seq + 1
    count = count + 1
    fresh = fresh + 1
    redis.call('RPUSH', event_list, numbered(json, last_seq))
    if timed then
      if ordered and newest and later(newest, time) then ordered = false end
      newest = time
      redis.call('RPUSH', time_list, time)
    end
    i = apply_pairs(session_hash, 's:', i + 4, tonumber(ARGV[i + 3]))
    local n = tonumber(ARGV[i])
    if n > 0 and not user_written then
      state_for_write(user_state, now_us)
      user_written = true
    end
    i = apply_pairs(user_state, 's:', i + 1, n)
    n = tonumber(ARGV[i])
    if n > 0 and not app_written then
      state_for_write(app_state, now_us)
      app_written = true
    end
    i = apply_pairs(app_state, 's:', i + 1, n)
    reply[#reply + 1] = last_seq
    reply[#reply + 1] = false
  end
end
if fresh > 0 then
  if event_limit ~= '' and count > tonumber(event_limit) then
    local keep = tonumber(event_limit)
    redis.call('LTRIM', event_list, -keep, -1)
    redis.call('LTRIM', time_list, -keep, -1)
    if gap then
      redis.call('ZREMRANGEBYRANK', id_index, 0, count - keep - 1)
    else
      redis.call('ZREMRANGEBYSCORE', id_index, '-inf', last_seq - keep)
    end
    count = keep
  end
  if timed then
    redis.call('HSET', session_hash, 'last_seq', last_seq, 'count', count, 'upd', now,
               'tnew', newest)
  else
    redis.call('HSET', session_hash, 'last_seq', last_seq, 'count', count, 'upd', now)
  end
  if not ordered and not head[6] then redis.call('HSET', session_hash, 'tuno', 1) end
  if app_clock ~= '' then reply[4] = next_stamp(session_hash, app_clock, head[5]) end
  session_written(KEYS, now, exp, ttl, head[3], base, session_id, head[4], app_sessions,
                  head[9])
  if user_written then state_written(user_state, user_exp, user_ttl) end
  if app_written then state_written(app_state, app_exp, app_ttl) end
end
reply[2] = last_seq
reply[3] = count
return reply
"""
)

CREATE = (
    _COMMON
    + r"""
-- KEYS: session_hash, event_list, id_index, time_list, user_index, user_state, app_state?,
--       app_users?, app_sessions?, apps?
-- ARGV: now, exp, ttl, user_exp, user_ttl, app_exp, app_ttl, base, session_id, create_token,
--       parent_escaped, fields*, user_delta*, app_delta*, user_id, app_name
-- fields: the session hash's (field, value) pairs; parent_escaped: '' for none.
-- Reply: {0} if a live session has this id; {1 or 2 (this very create ran before),
--        user state fields, app state fields}
local session_hash, event_list, id_index, time_list, user_index, user_state, app_state,
  app_users, app_sessions, apps = unpack(KEYS)
local now, exp, ttl, user_exp, user_ttl, app_exp, app_ttl, base, session_id, create_token,
  parent_escaped = unpack(ARGV, 1, 11)
local now_us = tonumber(now)
local old = redis.call('HMGET', session_hash, 'last_seq', 'exp', 'ct', 'pesc')
local status = 1
if old[1] and not expired(old[2], now_us) then
  if old[3] ~= create_token then return {0} end
  status = 2
else
  if old[1] then
    redis.call('DEL', session_hash, event_list, id_index, time_list)
    redis.call('ZREM', user_index, session_id)
    if old[4] and old[4] ~= '' then redis.call('ZREM', base .. ':c:' .. old[4], session_id) end
  end
  local n = tonumber(ARGV[12])
  for j = 13, 12 + 2 * n, 2 do redis.call('HSET', session_hash, ARGV[j], ARGV[j + 1]) end
  redis.call('HSET', session_hash, 'ct', create_token, 'pesc', parent_escaped)
  session_ttl(session_hash, event_list, id_index, time_list, exp, ttl, false)
  index_touch(user_index, session_id, now, ttl)
  if parent_escaped ~= '' then
    index_touch(base .. ':c:' .. parent_escaped, session_id, now, ttl)
  end
  local i = write_state(user_state, 13 + 2 * n, now_us, user_exp, user_ttl)
  i = write_state(app_state, i, now_us, app_exp, app_ttl)
  if app_users then redis.call('ZADD', app_users, 0, ARGV[i]) end
  if app_sessions then redis.call('ZADD', app_sessions, now, ARGV[i] .. '\0' .. session_id) end
  if apps then redis.call('ZADD', apps, 0, ARGV[i + 1]) end
end
return {status, redis.call('HGETALL', user_state),
        app_state and redis.call('HGETALL', app_state) or {}}
"""
)

GET = (
    _COMMON
    + r"""
-- KEYS: session_hash, event_list, id_index, time_list, user_index, user_state, app_state?
-- ARGV: now, exp, ttl, user_exp, user_ttl, app_exp, app_ttl, base, session_id, refresh,
--       after_seq, last_n, after_time
-- refresh: '1' slides the TTLs, '' does not; last_n: '' for all, '0' reads no events;
-- after_time: '' for any time, else a time key.
-- Reply: {0} if absent or expired, else
--        {1, session hash fields, events (oldest first), user state fields, app state fields,
--         1 if the events are the window, 0 if the caller must still apply after_time
--         and last_n to them (events stored before times were kept)}
local session_hash, event_list, id_index, time_list, user_index, user_state,
  app_state = unpack(KEYS)
local now, exp, ttl, user_exp, user_ttl, app_exp, app_ttl, base, session_id, refresh,
  after_seq, last_n, after_time = unpack(ARGV, 1, 13)

-- The newest `want` (nil: all) events at list positions >= first (negative: from the
-- end) whose time is later than `after`, oldest first: time keys are scanned from the
-- newest back, in growing chunks; while the session's times never decreased, the scan
-- stops at the first time not later. Only the events chosen are read.
local function timed_window(first, want, after, ordered)
  local found = {}
  local top, size, done = -1, (want or 63) + 1, false
  while top >= first and not done do
    local bottom = math.max(first, top - size + 1)
    local times = redis.call('LRANGE', time_list, bottom, top)
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
    for _, e in ipairs(redis.call('LRANGE', event_list, from, to)) do events[#events + 1] = e end
    j = j - 1
  end
  return events
end

local now_us = tonumber(now)
local fields = redis.call('HGETALL', session_hash)
if #fields == 0 then return {0} end
local f = {}
for j = 1, #fields, 2 do f[fields[j]] = fields[j + 1] end
if expired(f['exp'], now_us) then return {0} end
if refresh == '1' then
  session_ttl(session_hash, event_list, id_index, time_list, exp, ttl, f['exp'])
  index_touch(user_index, session_id, f['upd'], ttl)
  if f['pesc'] and f['pesc'] ~= '' then
    index_touch(base .. ':c:' .. f['pesc'], session_id, f['upd'], ttl)
  end
  state_refresh(user_state, now_us, user_exp, user_ttl)
  if app_state then state_refresh(app_state, now_us, app_exp, app_ttl) end
end
local events, windowed = {}, 1
local last_seq, count = tonumber(f['last_seq']), tonumber(f['count'])
-- How many of the newest events have seq > after_seq: while the stored seqs are the run
-- ending at last_seq, at most last_seq - after_seq; after a pop ('gap' set) the newer ids
-- are counted in the id index (scores are seqs, one per stored event; O(log n)).
local after = tonumber(after_seq)
local tail = math.min(count, math.max(0, last_seq - after))
if f['gap'] and after > 0 and tail > 0 then
  tail = redis.call('ZCOUNT', id_index, '(' .. after_seq, '+inf')
end
local want = last_n ~= '' and tonumber(last_n) or nil
if after_time ~= '' and want ~= 0 and tail > 0 then
  if redis.call('LLEN', time_list) == count then
    events = timed_window(-tail, want, after_time, not f['tuno'])
  else
    windowed = 0
    events = redis.call('LRANGE', event_list, -tail, -1)
  end
else
  if want then tail = math.min(tail, want) end
  if tail > 0 then events = redis.call('LRANGE', event_list, -tail, -1) end
end
return {1, fields, events, redis.call('HGETALL', user_state),
        app_state and redis.call('HGETALL', app_state) or {}, windowed}
"""
)

LIST = (
    _COMMON
    + r"""
-- KEYS: index
-- ARGV: now, limit, budget, after_updated, after_id, base, parent_id
-- index: the user's sessions, or one session's children (then parent_id is the parent's
-- id, else ''); after_updated, after_id: the entry to go on after ('' '' from the start).
-- Reply: {sessions, next_updated, next_id}: up to limit session hashes (field lists), by
--        (updated_at, id) descending; then '' '' if the page is full or the index ends,
--        else the entry to call again after (the budget ran out first).
-- Examines at most `budget` index entries, so a long run of stale ones costs several
-- calls, never one long one. Entries whose session is gone, expired, or (children)
-- re-created under another parent are removed on the way.
local index = unpack(KEYS)
local now, limit, budget, after_updated, after_id, base, parent_id = unpack(ARGV, 1, 7)
local now_us, wanted = tonumber(now), tonumber(limit)
local page, stale, last_id, last_score = {}, {}, nil, nil
local function consider(sid, score)
  last_id, last_score = sid, score
  local fields = redis.call('HGETALL', base .. ':h:' .. esc(sid))
  local exp, par = nil, ''
  for j = 1, #fields, 2 do
    if fields[j] == 'exp' then exp = fields[j + 1] elseif fields[j] == 'parent' then
      par = fields[j + 1]
    end
  end
  if #fields == 0 or expired(exp, now_us) or (parent_id ~= '' and par ~= parent_id) then
    stale[#stale + 1] = sid
  else
    page[#page + 1] = fields
  end
end
local start = rank_after(index, after_updated, after_id)
local room = tonumber(budget)
local entries = redis.call('ZREVRANGE', index, start, start + room - 1, 'WITHSCORES')
for j = 1, #entries, 2 do
  consider(entries[j], entries[j + 1])
  if #page >= wanted then break end
end
local next_updated, next_id = '', ''
if #page < wanted and #entries == 2 * room then next_updated, next_id = last_score, last_id end
for _, sid in ipairs(stale) do redis.call('ZREM', index, sid) end
return {page, next_updated, next_id}
"""
)

UPDATE = (
    _COMMON
    + r"""
-- KEYS: session_hash, event_list, id_index, time_list, user_index, user_state, app_state?,
--       app_sessions?
-- ARGV: now, exp, ttl, user_exp, user_ttl, app_exp, app_ttl, base, session_id, app_clock,
--       session_delta*, metadata_delta*, user_delta*, app_delta*
-- app_clock: Cluster, with an app delta (else '').
-- Reply: {0} if absent or expired, else
--        {1, session hash fields, user state, app state, app stamp ('' without a clock)}
local session_hash, event_list, id_index, time_list, user_index, user_state,
  app_state, app_sessions = unpack(KEYS)
local now, exp, ttl, user_exp, user_ttl, app_exp, app_ttl, base, session_id,
  app_clock = unpack(ARGV, 1, 10)
local now_us = tonumber(now)
local head = redis.call('HMGET', session_hash, 'last_seq', 'exp', 'pesc', 'ast', 'user')
if not head[1] or expired(head[2], now_us) then return {0} end
local stamp = ''
if app_clock ~= '' then stamp = next_stamp(session_hash, app_clock, head[4]) end
local i = apply_pairs(session_hash, 's:', 12, tonumber(ARGV[11]))
i = apply_pairs(session_hash, 'm:', i + 1, tonumber(ARGV[i]))
i = write_state(user_state, i, now_us, user_exp, user_ttl)
write_state(app_state, i, now_us, app_exp, app_ttl)
redis.call('HSET', session_hash, 'upd', now)
session_written(KEYS, now, exp, ttl, head[2], base, session_id, head[3], app_sessions, head[5])
return {1, redis.call('HGETALL', session_hash), redis.call('HGETALL', user_state),
        app_state and redis.call('HGETALL', app_state) or {}, stamp}
"""
)

DELETE = r"""
-- KEYS: session_hash, event_list, id_index, time_list, user_index, app_sessions?
-- ARGV: base, session_id, now, user_id
-- Reply: 1 if the session was live (its hash exists and has not expired), else 0
local session_hash, event_list, id_index, time_list, user_index, app_sessions = unpack(KEYS)
local base, session_id, now, user_id = unpack(ARGV, 1, 4)
local head = redis.call('HMGET', session_hash, 'pesc', 'exp')
redis.call('DEL', session_hash, event_list, id_index, time_list)
redis.call('ZREM', user_index, session_id)
if app_sessions then redis.call('ZREM', app_sessions, user_id .. '\0' .. session_id) end
local pesc, exp = head[1], head[2]
if not pesc then return 0 end
if pesc ~= '' then redis.call('ZREM', base .. ':c:' .. pesc, session_id) end
if exp and tonumber(exp) <= tonumber(now) then return 0 end
return 1
"""

STATE = (
    _COMMON
    + r"""
-- KEYS: state, apps?, app_users?
-- ARGV: now, mode, exp, ttl, delta*, user_id, app_name
-- state: a user's or an app's state hash; apps: the index of apps, to record app_name in,
-- and app_users: the app's user index, to record user_id in (an update on a single node:
-- apps for either state, then app_users for a user's; the optional keys are a prefix of
-- the two, unlike other scripts'); mode: 'update' or 'refresh'.
-- Reply: the state hash fields after the change
local state, apps, app_users = unpack(KEYS)
local now, mode, exp, ttl = unpack(ARGV, 1, 4)
local now_us = tonumber(now)
if mode == 'update' then
  local after = skip_pairs(5)
  if apps then redis.call('ZADD', apps, 0, ARGV[after + 1]) end
  if app_users then redis.call('ZADD', app_users, 0, ARGV[after]) end
  state_for_write(state, now_us)
  apply_pairs(state, 's:', 6, tonumber(ARGV[5]))
  state_written(state, exp, ttl)
else
  state_refresh(state, now_us, exp, ttl)
end
return redis.call('HGETALL', state)
"""
)

APP_DELTA = (
    _COMMON
    + r"""
-- KEYS: app_state, app_stamps
-- ARGV: now, exp, ttl, stamp, writer, delta*
-- writer: the session hash's key.
-- Reply: the app state fields after the change
-- Cluster's second script of a write with app deltas. Each key of the delta is
-- applied unless a later write (by stamp, then writer) set it already.
local app_state, app_stamps = unpack(KEYS)
local now, exp, ttl, stamp, writer = unpack(ARGV, 1, 5)
local now_us, stamp_n = tonumber(now), tonumber(stamp)
local function is_later(last)
  local at = string.find(last, ' ', 1, true)
  local last_stamp = tonumber(string.sub(last, 1, at - 1))
  if stamp_n ~= last_stamp then return stamp_n > last_stamp end
  return bytes_less(string.sub(last, at + 1), writer)
end
if stamp_n > tonumber(redis.call('HGET', app_stamps, 'clock') or '0') then
  redis.call('HSET', app_stamps, 'clock', stamp)
end
state_for_write(app_state, now_us)
local mark = stamp .. ' ' .. writer
for j = 7, 6 + 2 * tonumber(ARGV[6]), 2 do
  local last = redis.call('HGET', app_stamps, 's:' .. ARGV[j])
  if not last or is_later(last) then
    apply_pairs(app_state, 's:', j, 1)
    redis.call('HSET', app_stamps, 's:' .. ARGV[j], mark)
  end
end
state_written(app_state, exp, ttl)
if exp == '' then redis.call('PERSIST', app_stamps) else redis.call('PEXPIRE', app_stamps, ttl) end
return redis.call('HGETALL', app_state)
"""
)

APP_PAGE = (
    _COMMON
    + r"""
-- KEYS: app_sessions
-- ARGV: after_updated, after_member, count, oldest, fixes*
-- fixes*: member, seen, score
-- app_sessions: an app's index of every user's sessions; after_updated, after_member: the
-- entry to go on after ('' '' from the start); oldest: how many of the oldest entries to
-- return too; fixes: entries the caller found stale, each removed (score '') or moved to
-- score, and only if its score is still `seen` (a write since the caller's read wins).
-- Reply: {entries after the position, the oldest entries}, each a flat list of member,
--        score pairs, by (score, member) descending: at most count of the first kind
-- The fixes are applied first; then the entries are read.
local app_sessions = unpack(KEYS)
local after_updated, after_member, count, oldest = unpack(ARGV, 1, 4)
local i = 6
for _ = 1, tonumber(ARGV[5]) do
  local member, seen, score = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local current = redis.call('ZSCORE', app_sessions, member)
  if current and tonumber(current) == tonumber(seen) then
    if score == '' then
      redis.call('ZREM', app_sessions, member)
    else
      redis.call('ZADD', app_sessions, score, member)
    end
  end
  i = i + 3
end
local entries, tail = {}, {}
if tonumber(count) > 0 then
  local start = rank_after(app_sessions, after_updated, after_member)
  entries = redis.call('ZREVRANGE', app_sessions, start, start + count - 1, 'WITHSCORES')
end
if tonumber(oldest) > 0 then
  tail = redis.call('ZRANGE', app_sessions, 0, oldest - 1, 'WITHSCORES')
end
return {entries, tail}
"""
)
