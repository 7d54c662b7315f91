"""The ``sessionhub`` data commands: ``sessions``, ``apps``, ``export``, ``import``, ``migrate``.

``add_data_commands`` adds them to the parser and ``DATA_COMMANDS`` maps each to
its handler; the printing helpers here are shared with the other commands.
Commands that only read never create a store (see ``_reading_service``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from sessionhub.errors import SessionHubError
from sessionhub.models import Event, Session, TextPart, ToolCallPart, ToolResultPart
from sessionhub.plugins import get_plugin_manager
from sessionhub.registry import BackendRegistry
from sessionhub.service import SessionHistoryService
from sessionhub.settings import load_settings
from sessionhub.transfer import (
    TransferReport,
    apps_to_copy,
    count_sessions,
    export_records,
    import_records,
    migrate,
    read_agentscope_sessions,
    read_export,
    read_history_files,
)

__all__ = ["add_data_commands", "DATA_COMMANDS", "print_session", "print_table"]


class _CommandLineError(SessionHubError):
    """An argument names something the command cannot use (a missing file, a bad path)."""


def add_data_commands(commands: Any) -> None:
    """Add the data commands to the ``sessionhub`` parser's subcommands."""
    sessions = commands.add_parser("sessions", help="list, show or delete sessions")
    actions = sessions.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="one page of sessions, newest first")
    listing.add_argument("--user", help="only this user's sessions (default: every user's)")
    listing.add_argument("--limit", type=int, default=50, help="page size (1-1000, default 50)")
    listing.add_argument("--cursor", help="the next_cursor printed by the previous page")
    listing.add_argument("--parent", help="list only this session's children")
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = actions.add_parser("show", help="print a session and its events")
    show.add_argument("session_id", help="the session to show")
    show.add_argument("--user", required=True, help="the session's user")
    show.add_argument("--last", type=int, help="only the newest N events")
    show.add_argument("--json", action="store_true", help="print JSON")
    delete = actions.add_parser("delete", help="delete a session (and its children)")
    delete.add_argument("session_id", help="the session to delete")
    delete.add_argument("--user", required=True, help="the session's user")
    delete.add_argument("--keep-children", action="store_true", help="do not delete children")
    delete.add_argument("--json", action="store_true", help="print JSON")

    apps = commands.add_parser("apps", help="list the apps the store holds")
    apps.add_argument("--json", action="store_true", help="print JSON")

    export = commands.add_parser("export", help="write sessions and state as JSON lines")
    export.add_argument("--output", "-o", default="-", help="file to write (default: stdout)")
    export.add_argument("--app", action="append", help="only this app (repeatable; default: all)")
    export.add_argument("--user", action="append", help="only this user (repeatable)")
    export.add_argument("--updated-after", type=_aware_time, help="ISO time: newer sessions only")
    export.add_argument("--updated-before", type=_aware_time, help="ISO time: older sessions only")

    imports = commands.add_parser("import", help="read JSON lines (or other tools' files)")
    imports.add_argument("paths", nargs="+", type=Path, help="files (or directories) to read")
    imports.add_argument(
        "--format",
        choices=["sessionhub", "agentscope", "history"],
        default="sessionhub",
        help="sessionhub export lines (default), AgentScope JSONSession files, "
        "or history-list session files",
    )
    imports.add_argument("--user", help="the user AgentScope sessions belong to")
    imports.add_argument("--keep-going", action="store_true", help="skip bad records, report them")
    imports.add_argument("--json", action="store_true", help="print the report as JSON")

    migrate = commands.add_parser("migrate", help="copy everything from one store to another")
    migrate.add_argument("--from", dest="source", required=True, help="source URL")
    migrate.add_argument("--to", dest="target", required=True, help="target URL")
    migrate.add_argument("--app", action="append", help="only this app (repeatable; default: all)")
    migrate.add_argument("--user", action="append", help="only this user (repeatable)")
    migrate.add_argument("--json", action="store_true", help="print the report as JSON")
    migrate.add_argument(
        "--no-count",
        action="store_true",
        help="skip the first pass that counts sessions and events (no time-left estimate)",
    )


def print_session(session: Session) -> None:
    """Print a session, one line per event, then its state."""
    print(f"session {session.id} (user {session.user_id}, app {session.app_name})")
    for event in session.events:
        print(f"  #{event.seq:<3} {event.role:<9} {_describe(event)}")
    print(f"state: {json.dumps(session.state, ensure_ascii=False, sort_keys=True)}")


def _describe(event: Event) -> str:
    pieces = []
    for part in event.content:
        if isinstance(part, TextPart):
            pieces.append(part.text)
        elif isinstance(part, ToolCallPart):
            pieces.append(f"-> {part.name}({json.dumps(part.arguments, ensure_ascii=False)})")
        elif isinstance(part, ToolResultPart):
            pieces.append(f"<- {json.dumps(part.output, ensure_ascii=False)}")
        else:
            pieces.append(f"[{part.type}]")
    return " ".join(pieces)


def print_table(rows: list[list[str]]) -> None:
    """Print rows as columns padded to their widest cell."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )


def _aware_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time (e.g. 2025-06-01 or 2025-06-01T12:00:00Z)"
        ) from exc
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _reading_service(url: str | None = None) -> SessionHistoryService:
    """A service for a command that only reads: it must find the store, never create one.

    A backend that makes its store on first use offers a ``create_if_missing``
    setting (SQLite: the database file); it is false here, so a mistyped path
    is an error rather than a new, empty database.
    """
    settings = load_settings(**({} if url is None else {"url": url}))
    plugin_manager = get_plugin_manager(load=settings.plugins, disable=settings.disable_plugins)
    registry = BackendRegistry.from_plugin_manager(plugin_manager)
    info = registry.select(
        settings.backend, settings.url.get_secret_value() if settings.url else None
    )
    overrides: dict[str, Any] = {}
    if "create_if_missing" in registry.settings_model(info).model_fields:
        overrides[info.name] = {**settings.backend_table(info.name), "create_if_missing": False}
    return SessionHistoryService(settings=settings, plugin_manager=plugin_manager, **overrides)


def _sessions(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with _reading_service() as service:
            if args.action == "list":
                return await _list_sessions(service, args)
            if args.action == "show":
                session = await service.get_session(args.user, args.session_id, last_n=args.last)
                if session is None:
                    print(
                        f"error: no session {args.session_id!r} for user {args.user!r}",
                        file=sys.stderr,
                    )
                    return 1
                if args.json:
                    print(session.model_dump_json(indent=2))
                else:
                    print_session(session)
                return 0
            deleted = await service.delete_session(
                args.user, args.session_id, cascade=not args.keep_children
            )
            if args.json:
                print(json.dumps({"deleted": deleted}))
            else:
                print("deleted" if deleted else "no such session (nothing to delete)")
            return 0

    return asyncio.run(run())


async def _list_sessions(service: SessionHistoryService, args: argparse.Namespace) -> int:
    page = await service.list_sessions(
        args.user, limit=args.limit, cursor=args.cursor, parent_id=args.parent
    )
    if args.json:
        items = [s.model_dump(mode="json", exclude={"events"}) for s in page.items]
        print(
            json.dumps(
                {"items": items, "next_cursor": page.next_cursor}, indent=2, ensure_ascii=False
            )
        )
        return 0
    table = [["SESSION", "UPDATED", "EVENTS", "PARENT", "TITLE"]]
    if args.user is None:
        table[0].insert(0, "USER")
    for s in page.items:
        row = [
            s.id,
            f"{s.updated_at:%Y-%m-%d %H:%M:%S}",
            str(s.event_count),
            s.parent_id or "-",
            str(s.metadata.get("title", "")),
        ]
        table.append([s.user_id, *row] if args.user is None else row)
    print_table(table)
    if page.next_cursor:
        more = "" if args.user is None else f"--user {args.user} "
        print(f"\nmore: sessionhub sessions list {more}--cursor {page.next_cursor}")
    return 0


def _apps(args: argparse.Namespace) -> int:
    async def run() -> int:
        found: list[str] = []
        async with _reading_service() as service:
            cursor: str | None = None
            while True:
                page = await service.list_apps(limit=1000, cursor=cursor)
                found += page.items
                cursor = page.next_cursor
                if cursor is None:
                    break
        if args.json:
            print(json.dumps(found, ensure_ascii=False))
        elif found:
            print("\n".join(found))
        else:
            print("the store holds no apps (no sessions and no state)", file=sys.stderr)
        return 0

    return asyncio.run(run())


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


async def _say_if_empty(service: SessionHistoryService, sessions: int, apps: list[str]) -> None:
    """On stderr: a transfer that found no session says where it looked and what is there."""
    if sessions:
        return
    names = ", ".join(apps) or "none"
    seen = ""
    if service.backend.capabilities.list_apps:
        held = await apps_to_copy(service)
        seen = f"; the store holds apps: {', '.join(held) or 'none'}"
    _note(f"0 sessions found in app(s): {names}{seen}")


def _export(args: argparse.Namespace) -> int:
    async def write(service: SessionHistoryService, out: TextIO) -> None:
        sessions, apps = 0, list[str]()
        async for record in export_records(
            service,
            apps=args.app,
            user_ids=args.user,
            updated_after=args.updated_after,
            updated_before=args.updated_before,
            note=_note,
        ):
            out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
            sessions += record["kind"] == "session"
            apps = record["apps"] if record["kind"] == "header" else apps
        await _say_if_empty(service, sessions, apps)

    async def run() -> int:
        # The store opens first: a store that cannot be read leaves no output file behind.
        async with _reading_service() as service:
            if args.output == "-":
                await write(service, sys.stdout)
                return 0
            with _output_file(args.output) as out:
                await write(service, out)
        return 0

    return asyncio.run(run())


def _output_file(path: str) -> TextIO:
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise _CommandLineError(
            f"cannot write {path}: {exc.strerror or exc}. Give -o a file in an existing, "
            "writable directory."
        ) from exc


def _import_files(paths: Sequence[Path]) -> list[Path]:
    """The files named on the command line (a directory: its ``*.json*`` files), all readable."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = list(path.glob("*.json*"))
            if not found:
                raise _CommandLineError(f"cannot import {path}: it holds no *.json or *.jsonl file")
            files.extend(found)
        elif not path.exists():
            raise _CommandLineError(f"cannot import {path}: no such file or directory")
        elif not os.access(path, os.R_OK):
            raise _CommandLineError(f"cannot import {path}: permission denied")
        else:
            files.append(path)
    return sorted(files)


def _import(args: argparse.Namespace) -> int:
    if args.format == "agentscope" and not args.user:
        raise _CommandLineError("--user is required with --format agentscope")
    files = _import_files(args.paths)
    if args.format == "agentscope":
        records = read_agentscope_sessions(files, user_id=args.user)
    elif args.format == "history":
        records = read_history_files(files)
    else:
        records = (located for f in files for located in read_export(f))

    async def run() -> int:
        async with SessionHistoryService() as service:
            report = await import_records(service, records, keep_going=args.keep_going)
        _print_report(report, args.json)
        return 0

    return asyncio.run(run())


def _migrate(args: argparse.Namespace) -> int:
    async def run() -> int:
        source = _reading_service(url=args.source)
        target = SessionHistoryService(url=args.target)
        console = Console(stderr=True)
        async with source, target:
            chosen = await apps_to_copy(source, args.app, note=_note)
            totals: tuple[int | None, int | None] = (None, None)
            if not args.no_count and sys.stderr.isatty():
                # One pass over the session headers gives the totals, and so an estimate.
                with console.status("counting sessions and events"):
                    totals = await count_sessions(source, apps=chosen, user_ids=args.user)
            with Progress(
                TextColumn("{task.description:<8}"),
                BarColumn(),
                TextColumn("{task.completed:>10,.0f}"),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
                disable=not sys.stderr.isatty(),
            ) as bars:
                tasks = {
                    name: bars.add_task(name, total=total, rate="")
                    for name, total in zip(("sessions", "events"), totals, strict=True)
                }

                def advance(name: str, count: int) -> None:
                    bars.advance(tasks[name], count)
                    speed = bars.tasks[tasks[name]].speed
                    bars.update(tasks[name], rate=f"{speed:>9,.0f}/s" if speed else "")

                report = await migrate(
                    source, target, apps=chosen, user_ids=args.user, progress=advance
                )
            await _say_if_empty(source, report.sessions, report.apps)
        _print_report(report, args.json)
        return 0

    return asyncio.run(run())


def _print_report(report: TransferReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(asdict(report), indent=2))
        return
    print(
        f"{report.sessions} sessions, {report.events} events, "
        f"{report.user_states} user states, {report.app_states} app states"
    )
    for line in report.skipped:
        print(f"skipped: {line}")


DATA_COMMANDS = {
    "sessions": _sessions,
    "apps": _apps,
    "export": _export,
    "import": _import,
    "migrate": _migrate,
}
"""Each data command's handler, by command name."""
