"""Several processes appending to one session through one Redis server."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

WRITER = Path(__file__).with_name("writer_process.py")


@pytest.mark.asyncio
async def test_four_processes_append_to_one_session(redis_url, key_prefix, backend, make_service):
    """4 processes x 250 appends: exactly 1000 events, seqs 1..1000, each writer's order kept."""
    service = make_service(backend)
    await service.create_session("writer", "shared")
    writers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(WRITER),
            "burst",
            redis_url,
            key_prefix,
            "shared",
            f"p{n}",
            "250",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for n in range(4)
    ]
    try:
        for writer in writers:
            assert writer.stdout is not None
            assert (await asyncio.wait_for(writer.stdout.readline(), 60)).strip() == b"ready"
        for writer in writers:  # start them together
            assert writer.stdin is not None
            writer.stdin.write(b"go\n")
            await writer.stdin.drain()
        for writer in writers:
            out, _ = await asyncio.wait_for(writer.communicate(), 120)
            assert writer.returncode == 0 and out.strip() == b"done"
    finally:
        for writer in writers:
            if writer.returncode is None:
                writer.kill()
                await writer.wait()
    got = await service.get_session("writer", "shared")
    assert got is not None
    assert [e.seq for e in got.events] == list(range(1, 1001))
    assert (got.event_count, got.last_seq) == (1000, 1000)
    order: dict[str, list[int]] = {}
    for event in got.events:
        name, i = event.text.split(":")
        order.setdefault(name, []).append(int(i))
    assert order == {f"p{n}": list(range(250)) for n in range(4)}
