"""Listing every user's sessions of an app, and the apps of a store, from their indexes.

An app's index (``{<app tag>}:sessions``, see :mod:`._keys`) holds one entry per
session, scored by its ``updated_at``; the sessions' hashes live in their users'
slots, so a page is read in two steps whatever the deployment: APP_PAGE returns
the entries after the cursor, then one pipeline reads their hashes. Entries whose
session vanished or expired are removed, and entries whose score is not the
session's ``updated_at`` (a Cluster write whose index command has not arrived, or
failed) are moved to it, by the next APP_PAGE call, each only if no write moved
it meanwhile. Each page also checks a few of the oldest entries, where those of
expired sessions sink, so they do not pile up in an app that is listed.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sessionhub import ListCursor, Session
from sessionhub.backend_tools import to_micros
from sessionhub_redis import _codec
from sessionhub_redis._keys import app_member, member_parts
from sessionhub_redis._protocol import APP_PAGE, AppPageArgs, IndexFix, decode_app_page

if TYPE_CHECKING:
    from sessionhub_redis._keys import KeyLayout
    from sessionhub_redis._topology import Topology

__all__ = ["list_app_sessions", "list_apps"]

_SLACK = 16
"""Each APP_PAGE call reads up to this many entries more than the page still needs."""
_OLDEST = 8
"""How many of the oldest entries a listing checks, once per page."""


async def list_app_sessions(
    topology: Topology,
    keys: KeyLayout,
    app_name: str,
    *,
    limit: int,
    after: ListCursor | None,
    now: datetime,
) -> list[Session]:
    """One page of the app's live sessions, ``(updated_at, user, id)`` descending."""
    now_us = to_micros(now)
    args = AppPageArgs(
        app_sessions=keys.app_sessions(app_name),
        after_updated="" if after is None else to_micros(after.updated_at),
        after_member="" if after is None else app_member(after.user_id or "", after.session_id),
        count=limit + _SLACK,
        oldest=_OLDEST,
        fixes=[],
    )
    page: list[Session] = []
    while True:
        reply = decode_app_page(await topology.run(APP_PAGE, args))
        args.fixes, args.oldest = [], 0
        entries = reply.entries + reply.oldest
        found = await topology.hashes(
            [keys.session(app_name, *member_parts(member)).hash for member, _ in entries]
        )
        for index, ((member, score), fields) in enumerate(zip(entries, found, strict=True)):
            session, fix = _checked(member, score, fields, now_us)
            if fix is not None:
                args.fixes.append(fix)
            elif session is not None and index < len(reply.entries) and len(page) < limit:
                page.append(session)
        if len(page) >= limit or len(reply.entries) < args.count:
            break
        args.after_updated, args.after_member = reply.entries[-1][1], reply.entries[-1][0]
        args.count = limit - len(page) + _SLACK
    if args.fixes:
        args.count = 0
        await topology.run(APP_PAGE, args)
    return page


def _checked(
    member: str, score: int, fields: list[Any], now_us: int
) -> tuple[Session | None, IndexFix | None]:
    """The live session an entry names, or the fix the entry needs."""
    if not fields:
        return None, IndexFix(member=member, seen=str(score), score="")
    head = {_codec.text(name): value for name, value in zip(fields[::2], fields[1::2], strict=True)}
    expires = head.get("exp")
    if expires not in (None, b"", "") and int(_codec.text(expires)) <= now_us:
        return None, IndexFix(member=member, seen=str(score), score="")
    updated = int(_codec.text(head["upd"]))
    if updated != score:
        return None, IndexFix(member=member, seen=str(score), score=updated)
    return _codec.session(fields), None


async def list_apps(
    topology: Topology, keys: KeyLayout, *, limit: int, after: str | None
) -> list[str]:
    """One page of the index of apps, ascending (byte order, as ``sorted`` on names)."""
    low = "-" if after is None else "(" + after
    apps = await topology.command("ZRANGEBYLEX", keys.apps, low, "+", "LIMIT", 0, limit)
    return [_codec.text(app) for app in apps]
