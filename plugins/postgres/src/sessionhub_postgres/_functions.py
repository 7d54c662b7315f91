"""The server-side functions: a write primitive is one call, one round trip, one transaction.

The usual append is a plain statement instead (``_statements.append_plain``); the
``append`` function takes every other batch.

Templates for :meth:`Names.fill <sessionhub_postgres._schema.Names.fill>`:
``{sessions}`` and the like become qualified table or function names, ``{{``
and ``}}`` stand for literal braces. Output columns are named ``r_*`` so that
they never shadow a table column inside a PL/pgSQL body.

Locks, always taken in this order so that no two primitives deadlock: the
session row (its ``UPDATE`` in ``append``, ``FOR UPDATE`` elsewhere: it serialises
the seq allocation of one session, and nothing else), then the user state row,
then the app state row. A state or
metadata delta arrives as the keys it touches (``p_*_keys``, the JSON text of
each) and a ``jsonb`` object of the values it sets (``p_*_set``): the new object
is ``(old - keys) || set``.
"""

from __future__ import annotations

__all__ = ["NAMES", "SOURCES", "SESSION_COLUMNS", "KEY", "STORED_IDS", "APPEND_ARGUMENTS"]

SESSION_COLUMNS = (
    "r_pk bigint, r_parent_id text, r_root_id text, r_depth integer, r_created_at timestamptz, "
    "r_updated_at timestamptz, r_expires_at timestamptz, r_state jsonb, r_metadata jsonb, "
    "r_event_count bigint, r_last_seq bigint, r_app_state jsonb, r_user_state jsonb, "
    "r_seqs bigint[], r_events text[]"
)
"""What the functions returning a session return, in this order (``{session_columns}``)."""

KEY = "app_name = p_app AND user_id = p_user AND session_id = p_sid"
"""The session a function's key parameters name (``{key}``)."""

_PUT_STATE = """
CREATE FUNCTION {put_state}(p_app text, p_user text, p_keys text[], p_set jsonb,
                             p_exp timestamptz, p_now timestamptz)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE r jsonb;
BEGIN
    -- An expired state starts empty: the delta applies to nothing.
    IF p_user IS NULL THEN
        INSERT INTO {app_state} AS t (app_name, state, expires_at) VALUES (p_app, p_set, p_exp)
        ON CONFLICT (app_name) DO UPDATE SET
            state = CASE WHEN t.expires_at <= p_now THEN excluded.state
                         ELSE (t.state - p_keys) || excluded.state END,
            expires_at = excluded.expires_at
        RETURNING t.state INTO r;
    ELSE
        INSERT INTO {user_state} AS t (app_name, user_id, state, expires_at)
        VALUES (p_app, p_user, p_set, p_exp)
        ON CONFLICT (app_name, user_id) DO UPDATE SET
            state = CASE WHEN t.expires_at <= p_now THEN excluded.state
                         ELSE (t.state - p_keys) || excluded.state END,
            expires_at = excluded.expires_at
        RETURNING t.state INTO r;
    END IF;
    RETURN r;
END $$
"""

_READ_SESSION = """
CREATE FUNCTION {read_session}(p_app text, p_user text, p_sid text, p_now timestamptz,
                                 p_after_seq bigint, p_after_time timestamptz, p_last_n bigint)
RETURNS TABLE ({session_columns}) LANGUAGE sql STABLE AS $$
    SELECT s.pk, s.parent_id, s.root_id, s.depth, s.created_at, s.updated_at, s.expires_at,
           s.state, s.metadata, s.event_count, s.last_seq,
           (SELECT a.state FROM {app_state} a WHERE a.app_name = p_app
                AND (a.expires_at IS NULL OR a.expires_at > p_now)),
           (SELECT u.state FROM {user_state} u WHERE u.app_name = p_app AND u.user_id = p_user
                AND (u.expires_at IS NULL OR u.expires_at > p_now)),
           w.seqs, w.events
    FROM {sessions} s
    LEFT JOIN LATERAL (
        -- Newest first through the primary key: only the returned rows are read.
        SELECT array_agg(e.seq ORDER BY e.seq) AS seqs, array_agg(e.data ORDER BY e.seq) AS events
        FROM (SELECT seq, data FROM {events}
              WHERE session_pk = s.pk AND seq > coalesce(p_after_seq, 0)
                AND (p_after_time IS NULL OR ts > p_after_time)
              ORDER BY seq DESC LIMIT p_last_n) e
    ) w ON p_last_n IS DISTINCT FROM 0
    WHERE s.app_name = p_app AND s.user_id = p_user AND s.session_id = p_sid
      AND (s.expires_at IS NULL OR s.expires_at > p_now)
$$
"""

# The app state is read by every session of the app: its expiry moves only when
# that moves it by more than p_app_move (the backend passes 1/100 of the TTL, at
# least one second), so reads do not all write one hot row.
_READ_SESSION_REFRESH = """
CREATE FUNCTION {read_session_refresh}(
    p_app text, p_user text, p_sid text, p_now timestamptz, p_after_seq bigint,
    p_after_time timestamptz, p_last_n bigint, p_session_exp timestamptz,
    p_user_exp timestamptz, p_app_exp timestamptz, p_app_move interval)
RETURNS TABLE ({session_columns}) LANGUAGE plpgsql AS $$
BEGIN
    -- The row lock taken here holds appends off until the events are read.
    UPDATE {sessions} SET expires_at = p_session_exp
    WHERE {key} AND (expires_at IS NULL OR expires_at > p_now);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE {user_state} SET expires_at = p_user_exp
    WHERE app_name = p_app AND user_id = p_user AND (expires_at IS NULL OR expires_at > p_now)
      AND expires_at IS DISTINCT FROM p_user_exp;
    UPDATE {app_state} SET expires_at = p_app_exp
    WHERE app_name = p_app AND (expires_at IS NULL OR expires_at > p_now)
      AND expires_at IS DISTINCT FROM p_app_exp
      AND (expires_at IS NULL OR p_app_exp IS NULL
           OR p_app_exp - expires_at > p_app_move OR expires_at - p_app_exp > p_app_move);
    RETURN QUERY SELECT * FROM {read_session}(
        p_app, p_user, p_sid, p_now, p_after_seq, p_after_time, p_last_n);
END $$
"""

_CREATE_SESSION = """
CREATE FUNCTION {create_session}(
    p_app text, p_user text, p_sid text, p_parent text, p_root text, p_depth integer,
    p_created timestamptz, p_updated timestamptz, p_expires timestamptz, p_state jsonb,
    p_metadata jsonb, p_now timestamptz, p_user_exp timestamptz, p_app_exp timestamptz,
    p_user_keys text[], p_user_set jsonb, p_app_keys text[], p_app_set jsonb,
    OUT r_pk bigint, OUT r_app_state jsonb, OUT r_user_state jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    -- An expired session with this id is replaced: nothing of it may show through.
    DELETE FROM {sessions} WHERE {key} AND expires_at <= p_now;
    INSERT INTO {sessions} (app_name, user_id, session_id, parent_id, root_id, depth,
                            created_at, updated_at, expires_at, state, metadata)
    VALUES (p_app, p_user, p_sid, p_parent, p_root, p_depth, p_created, p_updated, p_expires,
            p_state, p_metadata)
    ON CONFLICT (app_name, user_id, session_id) DO NOTHING
    RETURNING pk INTO r_pk;
    IF r_pk IS NULL THEN
        RETURN;  -- a live session has this id
    END IF;
    IF cardinality(p_user_keys) > 0 THEN
        PERFORM {put_state}(p_app, p_user, p_user_keys, p_user_set, p_user_exp, p_now);
    END IF;
    IF cardinality(p_app_keys) > 0 THEN
        PERFORM {put_state}(p_app, NULL, p_app_keys, p_app_set, p_app_exp, p_now);
    END IF;
    SELECT state INTO r_user_state FROM {user_state} WHERE app_name = p_app
        AND user_id = p_user AND (expires_at IS NULL OR expires_at > p_now);
    SELECT state INTO r_app_state FROM {app_state} WHERE app_name = p_app
        AND (expires_at IS NULL OR expires_at > p_now);
END $$
"""

APPEND_ARGUMENTS = 21
"""How many parameters the ``append`` function takes."""

STORED_IDS = "SH409"
"""The SQLSTATE ``append`` raises when its fast path met an id already stored (rolled back)."""

# Raising STORED_IDS from an ON CONFLICT clause rolls back the statement that met an id
# stored already, whatever it wrote before (see _statements.append_plain).
_STORED_ID = """
CREATE FUNCTION {stored_id}() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the batch holds an event id stored already' USING ERRCODE = 'SH409';
END $$
"""

# The batch's session update, which takes the row lock and allocates the seqs, then one
# insert of every event. A batch reusing a stored id is rare (a retry after a lost
# answer): the fast path raises STORED_IDS, which rolls back everything, and the backend
# calls again with p_check, which locks the row first, looks the batch's ids up and
# writes only if the caller has compared the stored events (p_stored: their positions
# and seqs as the caller saw them).
_APPEND = """
CREATE FUNCTION {append}(
    p_app text, p_user text, p_sid text, p_now timestamptz, p_session_exp timestamptz,
    p_user_exp timestamptz, p_app_exp timestamptz, p_ids text[], p_ts timestamptz[],
    p_data text[], p_s_keys text[], p_s_set jsonb, p_u_keys text[], p_u_set jsonb,
    p_a_keys text[], p_a_set jsonb, p_limit bigint, p_expected bigint, p_check boolean,
    p_stored integer[], p_stored_seqs bigint[],
    OUT r_status integer, OUT r_last_seq bigint, OUT r_event_count bigint,
    OUT r_updated_at timestamptz, OUT r_expires_at timestamptz,
    OUT r_old_pos integer[], OUT r_old_seq bigint[], OUT r_old_data text[])
LANGUAGE plpgsql AS $$
DECLARE
    n integer := cardinality(p_ids);
    v_pk bigint;
    s record;
BEGIN
    r_old_pos := '{{}}'; r_old_seq := '{{}}'; r_old_data := '{{}}';
    IF NOT p_check THEN
        UPDATE {sessions} SET last_seq = last_seq + n, event_count = event_count + n,
            updated_at = p_now, expires_at = p_session_exp,
            state = CASE WHEN cardinality(p_s_keys) = 0 THEN state
                         ELSE (state - p_s_keys) || p_s_set END
        WHERE {key} AND (expires_at IS NULL OR expires_at > p_now)
          AND (p_expected IS NULL OR last_seq = p_expected)
        RETURNING pk, last_seq, event_count INTO v_pk, r_last_seq, r_event_count;
        IF FOUND THEN
            INSERT INTO {events} (session_pk, seq, event_id, ts, data)
            SELECT v_pk, r_last_seq - n + x.ord, x.id, x.ts, x.data
            FROM unnest(p_ids, p_ts, p_data) WITH ORDINALITY AS x(id, ts, data, ord)
            ON CONFLICT (session_pk, event_id) DO UPDATE SET data = {stored_id}();
        END IF;
    END IF;
    IF v_pk IS NULL THEN
        -- Absent, expired, moved on, or a batch holding stored ids: look under the lock.
        SELECT pk, expires_at, last_seq, event_count, updated_at INTO s FROM {sessions}
        WHERE {key} FOR UPDATE;
        IF NOT FOUND OR s.expires_at <= p_now THEN
            r_status := 1;  -- no such live session
            RETURN;
        END IF;
        SELECT coalesce(array_agg(x.ord ORDER BY x.ord), '{{}}'),
               coalesce(array_agg(e.seq ORDER BY x.ord), '{{}}'),
               coalesce(array_agg(e.data ORDER BY x.ord), '{{}}')
        INTO r_old_pos, r_old_seq, r_old_data
        FROM unnest(p_ids) WITH ORDINALITY AS x(id, ord)
        JOIN {events} e ON e.session_pk = s.pk AND e.event_id = x.id;
        r_last_seq := s.last_seq;
        IF p_expected IS NOT NULL AND p_expected <> s.last_seq
           AND cardinality(r_old_pos) < n THEN
            r_status := 2;  -- moved on (a retry whose events are all stored is no conflict)
            RETURN;
        END IF;
        IF cardinality(r_old_pos) = n THEN
            -- Every event was stored already: a no-op, no time moves.
            r_status := 0;
            r_event_count := s.event_count;
            r_updated_at := s.updated_at;
            r_expires_at := s.expires_at;
            RETURN;
        END IF;
        IF r_old_pos <> p_stored OR r_old_seq <> p_stored_seqs THEN
            r_status := 3;  -- compare these with the batch first: nothing is written
            RETURN;
        END IF;
        v_pk := s.pk;
        n := n - cardinality(p_stored);
        INSERT INTO {events} (session_pk, seq, event_id, ts, data)
        SELECT v_pk, s.last_seq + row_number() OVER (ORDER BY x.ord), x.id, x.ts, x.data
        FROM unnest(p_ids, p_ts, p_data) WITH ORDINALITY AS x(id, ts, data, ord)
        WHERE x.ord <> ALL (p_stored);
        UPDATE {sessions} SET last_seq = last_seq + n, event_count = event_count + n,
            updated_at = p_now, expires_at = p_session_exp,
            state = CASE WHEN cardinality(p_s_keys) = 0 THEN state
                         ELSE (state - p_s_keys) || p_s_set END
        WHERE pk = v_pk
        RETURNING last_seq, event_count INTO r_last_seq, r_event_count;
    END IF;
    IF p_limit IS NOT NULL AND r_event_count > p_limit THEN
        -- Seqs have gaps after a pop or a replace: the oldest are counted, never computed.
        DELETE FROM {events} WHERE session_pk = v_pk AND seq IN (
            SELECT seq FROM {events} WHERE session_pk = v_pk
            ORDER BY seq LIMIT r_event_count - p_limit);
        UPDATE {sessions} SET event_count = p_limit WHERE pk = v_pk;
        r_event_count := p_limit;
    END IF;
    IF cardinality(p_u_keys) > 0 THEN
        PERFORM {put_state}(p_app, p_user, p_u_keys, p_u_set, p_user_exp, p_now);
    END IF;
    IF cardinality(p_a_keys) > 0 THEN
        PERFORM {put_state}(p_app, NULL, p_a_keys, p_a_set, p_app_exp, p_now);
    END IF;
    r_status := 0;
    r_updated_at := p_now;
    r_expires_at := p_session_exp;
END $$
"""

_UPDATE_SESSION = """
CREATE FUNCTION {update_session}(
    p_app text, p_user text, p_sid text, p_now timestamptz, p_session_exp timestamptz,
    p_user_exp timestamptz, p_app_exp timestamptz, p_state_keys text[], p_state_set jsonb,
    p_meta_keys text[], p_meta_set jsonb, p_user_keys text[], p_user_set jsonb,
    p_app_keys text[], p_app_set jsonb)
RETURNS TABLE ({session_columns}) LANGUAGE plpgsql AS $$
BEGIN
    UPDATE {sessions} SET state = (state - p_state_keys) || p_state_set,
        metadata = (metadata - p_meta_keys) || p_meta_set,
        updated_at = p_now, expires_at = p_session_exp
    WHERE {key} AND (expires_at IS NULL OR expires_at > p_now);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF cardinality(p_user_keys) > 0 THEN
        PERFORM {put_state}(p_app, p_user, p_user_keys, p_user_set, p_user_exp, p_now);
    END IF;
    IF cardinality(p_app_keys) > 0 THEN
        PERFORM {put_state}(p_app, NULL, p_app_keys, p_app_set, p_app_exp, p_now);
    END IF;
    RETURN QUERY SELECT * FROM {read_session}(p_app, p_user, p_sid, p_now, NULL, NULL, 0);
END $$
"""

_POP_EVENT = """
CREATE FUNCTION {pop_event}(
    p_app text, p_user text, p_sid text, p_now timestamptz, p_session_exp timestamptz,
    OUT r_status integer, OUT r_seq bigint, OUT r_data text)
LANGUAGE plpgsql AS $$
DECLARE s record;
BEGIN
    SELECT pk, expires_at INTO s FROM {sessions} WHERE {key} FOR UPDATE;
    IF NOT FOUND OR s.expires_at <= p_now THEN
        r_status := 1;
        RETURN;
    END IF;
    r_status := 0;
    DELETE FROM {events} WHERE session_pk = s.pk AND seq = (
        SELECT max(seq) FROM {events} WHERE session_pk = s.pk)
    RETURNING seq, data INTO r_seq, r_data;
    IF NOT FOUND THEN
        RETURN;  -- no event: nothing moves
    END IF;
    UPDATE {sessions} SET event_count = event_count - 1, updated_at = p_now,
        expires_at = p_session_exp
    WHERE pk = s.pk;
END $$
"""

_REPLACE_EVENTS = """
CREATE FUNCTION {replace_events}(
    p_app text, p_user text, p_sid text, p_now timestamptz, p_session_exp timestamptz,
    p_expected bigint, p_limit bigint, p_ids text[], p_ts timestamptz[], p_data text[],
    OUT r_status integer, OUT r_last_seq bigint, OUT r_event_count bigint)
LANGUAGE plpgsql AS $$
DECLARE
    s record;
    n bigint := cardinality(p_ids);
    kept bigint;
BEGIN
    SELECT pk, expires_at, last_seq INTO s FROM {sessions} WHERE {key} FOR UPDATE;
    IF NOT FOUND OR s.expires_at <= p_now THEN
        r_status := 1;
        RETURN;
    END IF;
    IF p_expected IS NOT NULL AND p_expected <> s.last_seq THEN
        r_status := 2;
        r_last_seq := s.last_seq;
        RETURN;
    END IF;
    kept := CASE WHEN p_limit IS NULL THEN n ELSE least(n, p_limit) END;
    DELETE FROM {events} WHERE session_pk = s.pk;
    -- New seqs after last_seq (never reused); the trimmed ones are numbered, never stored.
    INSERT INTO {events} (session_pk, seq, event_id, ts, data)
    SELECT s.pk, s.last_seq + x.ord, x.id, x.ts, x.data
    FROM unnest(p_ids, p_ts, p_data) WITH ORDINALITY AS x(id, ts, data, ord)
    WHERE x.ord > n - kept;
    UPDATE {sessions} SET last_seq = s.last_seq + n, event_count = kept, updated_at = p_now,
        expires_at = p_session_exp
    WHERE pk = s.pk;
    r_status := 0;
    r_last_seq := s.last_seq + n;
    r_event_count := kept;
END $$
"""

_RESTORE_SESSION = """
CREATE FUNCTION {restore_session}(
    p_app text, p_user text, p_sid text, p_parent text, p_root text, p_depth integer,
    p_created timestamptz, p_updated timestamptz, p_expires timestamptz, p_state jsonb,
    p_metadata jsonb, p_last_seq bigint, p_seqs bigint[], p_ids text[], p_ts timestamptz[],
    p_data text[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE v_pk bigint;
BEGIN
    DELETE FROM {sessions} WHERE {key};
    INSERT INTO {sessions} (app_name, user_id, session_id, parent_id, root_id, depth,
        created_at, updated_at, expires_at, state, metadata, event_count, last_seq)
    VALUES (p_app, p_user, p_sid, p_parent, p_root, p_depth, p_created, p_updated, p_expires,
        p_state, p_metadata, cardinality(p_ids), p_last_seq)
    RETURNING pk INTO v_pk;
    INSERT INTO {events} (session_pk, seq, event_id, ts, data)
    SELECT v_pk, x.seq, x.id, x.ts, x.data
    FROM unnest(p_seqs, p_ids, p_ts, p_data) AS x(seq, id, ts, data);
END $$
"""

SOURCES = (
    _STORED_ID,
    _PUT_STATE,
    _READ_SESSION,
    _READ_SESSION_REFRESH,
    _CREATE_SESSION,
    _APPEND,
    _UPDATE_SESSION,
    _POP_EVENT,
    _REPLACE_EVENTS,
    _RESTORE_SESSION,
)
"""Every function's ``CREATE FUNCTION`` template, callees first."""

NAMES = (
    "stored_id",
    "put_state",
    "read_session",
    "read_session_refresh",
    "create_session",
    "append",
    "update_session",
    "pop_event",
    "replace_events",
    "restore_session",
)
"""Every function's name, without the prefix (dropped and created again by a migration)."""
