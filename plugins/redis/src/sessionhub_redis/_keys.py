"""The key layout: which Redis keys hold a session, a user's index and state, an app's state.

Every key of one user's sessions in one app shares one hash tag, so every
script that touches them runs on one Cluster slot::

    <prefix>{<user tag>}:h:<session>  hash: header fields, state s:<key>, metadata m:<key>
    <prefix>{<user tag>}:e:<session>  list: the session's events (JSON), oldest first
    <prefix>{<user tag>}:i:<session>  sorted set: event id -> seq, for idempotent appends
    <prefix>{<user tag>}:t:<session>  list: the events' time keys, parallel to the events
    <prefix>{<user tag>}:c:<session>  sorted set: the session's children by updated_at
    <prefix>{<user tag>}:x            sorted set: the user's sessions by updated_at
    <prefix>{<user tag>}:u            hash: the user's state (s:<key>)
    <prefix>{<app tag>}:a             hash: the app's state (s:<key>), in the app's own slot
    <prefix>{<app tag>}:users         sorted set: ids of the app's users (for export, migrate)
    <prefix>{<app tag>}:sessions      sorted set: every user's sessions of the app by updated_at,
                                      member ``<user id> NUL <session id>``
    <prefix>apps                      sorted set: names of the apps with data (for export, migrate)
    <prefix>{<app tag>}:stamps        hash: Cluster only: the app's write clock, the stamp of
                                      the last write of each app state key

An app index member joins the user id and the session id with a NUL, which no
identifier contains and which sorts below every character they may hold, so
members of one score sort as ``(user id, session id)`` in byte order, which is
code point order. The app index and the apps index carry no expiry: listings
drop the entries of vanished sessions as they meet them.

A time key is an event's timestamp as 18 decimal digits: microseconds since
0001-01-01T00:00:00Z, zero-padded, so that digit order is time order.

``<user tag>`` is 32 hex digits of SHA-256 over the length-prefixed
``(app name, user id)``, ``<app tag>`` the same over the app name alone (in
another domain, so the two never meet). Identifiers never reach the hash tag,
so ``{``, ``}`` or ``:`` in an id cannot move a key to another slot; the session
id that ends a key is percent-encoded (RFC 3986 unreserved characters kept), an
injective encoding, so no two ids share a key and keys hold no glob characters.
The Lua scripts derive children and session keys from the ``<prefix>{<tag>}``
base with the same encoding.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

__all__ = [
    "KeyLayout",
    "UserKeys",
    "SessionKeys",
    "escape",
    "user_tag",
    "app_tag",
    "app_member",
    "member_parts",
]

_TAG_HEX_DIGITS = 32


def escape(identifier: str) -> str:
    """Percent-encode every byte of ``identifier`` outside ``A-Z a-z 0-9 _ . ~ -``."""
    return quote(identifier, safe="")


def _digest(*parts: str) -> str:
    framed = "".join(f"{len(part)}:{part}" for part in parts)
    return hashlib.sha256(framed.encode("utf-8")).hexdigest()[:_TAG_HEX_DIGITS]


def app_member(user_id: str, session_id: str) -> str:
    """A session's member in its app's index: ``user_id`` NUL ``session_id``."""
    return f"{user_id}\x00{session_id}"


def member_parts(member: str) -> tuple[str, str]:
    """The ``(user_id, session_id)`` of an app index member."""
    user_id, _, session_id = member.partition("\x00")
    return user_id, session_id


def user_tag(app_name: str, user_id: str) -> str:
    """The hash tag content shared by every key of one user of one app."""
    return _digest("user", app_name, user_id)


def app_tag(app_name: str) -> str:
    """The hash tag content of one app's state key."""
    return _digest("app", app_name)


@dataclass(frozen=True)
class SessionKeys:
    """The keys of one session."""

    hash: str
    events: str
    ids: str
    times: str


@dataclass(frozen=True)
class UserKeys:
    """The keys of one user of one app: the base of every session key, the index, the state."""

    base: str
    """``<prefix>{<user tag>}``: every key of this user starts with it."""
    index: str
    state: str

    def session(self, session_id: str) -> SessionKeys:
        """The keys of session ``session_id`` of this user."""
        escaped = escape(session_id)
        return SessionKeys(
            f"{self.base}:h:{escaped}",
            f"{self.base}:e:{escaped}",
            f"{self.base}:i:{escaped}",
            f"{self.base}:t:{escaped}",
        )

    def children(self, session_id: str) -> str:
        """The index of the children of session ``session_id``."""
        return f"{self.base}:c:{escape(session_id)}"


class KeyLayout:
    """Key names under one ``key_prefix`` (which must not contain ``{`` or ``}``)."""

    def __init__(self, prefix: str) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError("a key prefix must not contain '{' or '}' (they start hash tags)")
        self.prefix = prefix
        self.user = lru_cache(maxsize=4096)(self._user)
        self.session = lru_cache(maxsize=8192)(self._session)
        self.app_state = lru_cache(maxsize=64)(self._app_state)
        self.app_users = lru_cache(maxsize=64)(self._app_users)
        self.app_stamps = lru_cache(maxsize=64)(self._app_stamps)
        self.app_sessions = lru_cache(maxsize=64)(self._app_sessions)
        self.apps = f"{prefix}apps"
        """The key of the index of the apps with data (no hash tag: a slot of its own)."""

    def _user(self, app_name: str, user_id: str) -> UserKeys:
        base = f"{self.prefix}{{{user_tag(app_name, user_id)}}}"
        return UserKeys(base, f"{base}:x", f"{base}:u")

    def _session(self, app_name: str, user_id: str, session_id: str) -> SessionKeys:
        return self.user(app_name, user_id).session(session_id)

    def _app_state(self, app_name: str) -> str:
        """The key of the app state of ``app_name``."""
        return f"{self.prefix}{{{app_tag(app_name)}}}:a"

    def _app_users(self, app_name: str) -> str:
        """The key of the index of the users of ``app_name`` (in the app's slot)."""
        return f"{self.prefix}{{{app_tag(app_name)}}}:users"

    def _app_sessions(self, app_name: str) -> str:
        """The key of the index of every user's sessions of ``app_name`` (in the app's slot)."""
        return f"{self.prefix}{{{app_tag(app_name)}}}:sessions"

    def _app_stamps(self, app_name: str) -> str:
        """The key of the write stamps of the app state of ``app_name`` (Cluster only)."""
        return f"{self.prefix}{{{app_tag(app_name)}}}:stamps"
