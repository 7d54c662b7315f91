"""The event every subject stores: one realistic assistant turn of about 500 bytes.

A turn has a text answer, one tool call and a timestamp. Each subject turns
it into its own native shape (a sessionhub ``Event``, an ADK ``Event``, two
OpenAI Responses items, an AgentScope ``Msg``) before the clock starts. The
tool call id is unique in a run, so it identifies a stored turn in every
subject: the concurrency workload checks with it that no turn was lost.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = ["Turn", "TurnFactory"]

TEXT = (
    "I found three direct flights from Paris (CDG) to New York (JFK) on 14 June. "
    "The cheapest, AF006, leaves at 10:25 and lands at 12:55 for 412 EUR. "
    "Let me check that two seats together are still free."
)
TOOL_NAME = "check_seat_availability"


@dataclass(frozen=True)
class Turn:
    """One assistant turn: text, a tool call (``call_id`` is unique in the run), a timestamp."""

    call_id: str
    text: str
    tool_name: str
    arguments: dict[str, Any]
    timestamp: datetime


@dataclass
class TurnFactory:
    """Makes turns with run-unique tool call ids (``call-<run>-<n>``)."""

    run_id: str
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def __call__(self) -> Turn:
        """Return the next turn."""
        number = next(self._counter)
        return Turn(
            call_id=f"call-{self.run_id}-{number}",
            text=TEXT,
            tool_name=TOOL_NAME,
            arguments={
                "flight": "AF006",
                "date": "2025-06-14",
                "passengers": 2,
                "seats": "34A,34B",
            },
            timestamp=datetime.now(timezone.utc),
        )

    def many(self, count: int) -> list[Turn]:
        """Return the next ``count`` turns."""
        return [self() for _ in range(count)]
