"""The ``sessionhub`` command: inspect plugins and configuration, check the backend, run a demo.

Every command reads the same settings as the library. Errors print one
readable message to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sessionhub._cli_data import DATA_COMMANDS, add_data_commands, print_session, print_table
from sessionhub.errors import SessionHubError
from sessionhub.models import Event, HealthStatus, TextPart, ToolCallPart, ToolResultPart
from sessionhub.plugins import SessionHubPluginManager, get_plugin_manager
from sessionhub.registry import BackendRegistry
from sessionhub.service import SessionHistoryService
from sessionhub.settings import explain_settings, load_settings

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sessionhub`` command."""
    parser = argparse.ArgumentParser(
        prog="sessionhub", description="Session history for AI agents: plugins, settings, checks."
    )
    parser.add_argument(
        "--version", action="version", version=f"sessionhub {_version()}", help="print the version"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    backends = commands.add_parser("backends", help="list installed storage backends")
    backends.add_argument("--json", action="store_true", help="print JSON")
    plugins = commands.add_parser(
        "plugins", help="list loaded plugins and the hooks they implement"
    )
    plugins.add_argument("--json", action="store_true", help="print JSON")
    config = commands.add_parser("config", help="show resolved settings and where each came from")
    config.add_argument("--json", action="store_true", help="print JSON")
    check = commands.add_parser("check", help="build the configured backend and ping it")
    check.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="seconds to wait for the backend to answer (default: 5)",
    )
    demo = commands.add_parser("demo", help="store and print a short conversation")
    demo.add_argument("--user", default="demo-user", help="user id to use (default: demo-user)")
    add_data_commands(commands)
    return parser


def _version() -> str:
    try:
        return importlib.metadata.version("sessionhub")
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown: not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        handler = _COMMANDS[args.command]
        return handler(args)
    except SessionHubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _plugin_manager() -> SessionHubPluginManager:
    settings = load_settings()
    return get_plugin_manager(load=settings.plugins, disable=settings.disable_plugins)


def _backends(args: argparse.Namespace) -> int:
    pm = _plugin_manager()
    registry = BackendRegistry.from_plugin_manager(pm)
    rows: list[dict[str, Any]] = []
    for info in registry.infos():
        row: dict[str, Any] = {
            "name": info.name,
            "distribution": info.distribution,
            "version": info.version,
            "url_schemes": list(info.url_schemes),
            "description": info.description,
        }
        try:
            factory = registry.factory(info)
            capabilities = getattr(factory, "capabilities", None)
            row["capabilities"] = asdict(capabilities) if capabilities is not None else None
        except SessionHubError as exc:
            row["error"] = str(exc)
        rows.append(row)
    for name, error in sorted(pm.broken.items()):
        rows.append({"name": name, "error": str(error)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("No sessionhub backends are installed. Try: pip install sessionhub-sqlite")
        return 0
    table = [["NAME", "DISTRIBUTION", "VERSION", "URL SCHEMES", "CAPABILITIES"]]
    for row in rows:
        if "error" in row:
            table.append([row["name"], row.get("distribution") or "?", "", "", "BROKEN"])
            continue
        caps = row.get("capabilities") or {}
        table.append(
            [
                row["name"],
                row["distribution"] or "(in code)",
                row["version"] or "",
                ", ".join(f"{s}://" for s in row["url_schemes"]),
                ", ".join(k for k, v in caps.items() if v) or "-",
            ]
        )
    print_table(table)
    for row in rows:
        if "error" in row:
            print(f"\n{row['name']}: {row['error']}")
    return 0


def _plugins(args: argparse.Namespace) -> int:
    pm = _plugin_manager()
    rows: list[dict[str, Any]] = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        record = pm.records.get(name)
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        rows.append(
            {
                "name": name,
                "distribution": record.distribution if record else None,
                "version": record.version if record else None,
                "hooks": hooks,
            }
        )
    rows.sort(key=lambda row: str(row["name"]))
    broken = [{"name": n, "error": str(e)} for n, e in sorted(pm.broken.items())]
    if args.json:
        print(json.dumps({"plugins": rows, "broken": broken}, indent=2))
        return 0
    table = [["NAME", "DISTRIBUTION", "VERSION", "HOOKS"]]
    table += [
        [r["name"], r["distribution"] or "", r["version"] or "", ", ".join(r["hooks"])]
        for r in rows
    ]
    print_table(table)
    for row in broken:
        print(f"\nBROKEN {row['name']}: {row['error']}")
    return 0


def _config(args: argparse.Namespace) -> int:
    rows = explain_settings()
    problem: SessionHubError | None = None
    try:
        settings = load_settings()
        pm = get_plugin_manager(load=settings.plugins, disable=settings.disable_plugins)
        effective = BackendRegistry.from_plugin_manager(pm).effective(settings)
        rows = [(k, *effective[k]) if k in effective else (k, v, s) for k, v, s in rows]
    except SessionHubError as exc:  # show what is configured, then what is wrong with it
        problem = exc
    if args.json:
        print(
            json.dumps(
                [{"key": k, "value": v, "source": s} for k, v, s in rows], indent=2, default=str
            )
        )
    else:
        print_table([["SETTING", "VALUE", "SOURCE"]] + [[k, _show(v), s] for k, v, s in rows])
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    return 0


def _check(args: argparse.Namespace) -> int:
    async def run() -> int:
        service = SessionHistoryService()
        try:
            status = await asyncio.wait_for(service.health(), args.timeout)
        except asyncio.TimeoutError:
            status = HealthStatus(
                ok=False,
                backend=service.backend.name,
                detail=f"no answer within {args.timeout:g} s. Check that the server is running "
                "and reachable from here, and the url setting (sessionhub config shows it); "
                "--timeout waits longer",
            )
        finally:
            await service.stop()
        if status.ok:
            print(f"ok: backend {status.backend!r} answered in {status.latency_ms:.1f} ms")
            return 0
        print(f"failed: backend {status.backend!r}: {status.detail}", file=sys.stderr)
        return 1

    return asyncio.run(run())


def _demo(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with SessionHistoryService() as service:
            session = await service.create_session(
                args.user,
                state={"user:name": "Ada", "topic": "weather"},
                metadata={"title": "Demo: weather in Paris"},
            )
            await service.append(
                session,
                [
                    Event(role="system", content=[TextPart(text="You are a concise assistant.")]),
                    "What's the weather in Paris?",
                    Event(
                        role="assistant",
                        content=[
                            ToolCallPart(
                                id="call-1", name="get_weather", arguments={"city": "Paris"}
                            )
                        ],
                    ),
                    Event(
                        role="tool",
                        content=[
                            ToolResultPart(call_id="call-1", output={"temp_c": 18, "sky": "clear"})
                        ],
                    ),
                    Event(
                        role="assistant",
                        content=[TextPart(text="It's 18 °C and clear in Paris.")],
                        state_delta={"last_city": "Paris", "user:units": "metric"},
                    ),
                ],
            )
            stored = await service.get_session(args.user, session.id)
            assert stored is not None
            print(f"backend: {service.backend.name}")
            print_session(stored)
            page = await service.list_sessions(args.user, limit=10)
            print(f"\n{args.user}'s sessions (newest first):")
            for item in page.items:
                print(
                    f"  {item.id}  {item.updated_at:%Y-%m-%d %H:%M:%S}  "
                    f"{item.event_count} events  {item.metadata.get('title', '')}"
                )
        return 0

    return asyncio.run(run())


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


_COMMANDS = {
    "backends": _backends,
    "plugins": _plugins,
    "config": _config,
    "check": _check,
    "demo": _demo,
    **DATA_COMMANDS,
}
