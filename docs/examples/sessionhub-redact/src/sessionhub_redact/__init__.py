"""sessionhub-redact: replace e-mail addresses and API keys before events are stored."""

from __future__ import annotations

import re
from typing import Any

from sessionhub import AppendContext, TextPart, ToolCallPart, ToolResultPart, hookimpl

__all__ = ["redact", "sessionhub_before_append"]

PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), "[secret]"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), "[secret]"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "[secret]"),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{16,}=*"), "Bearer [secret]"),
]
"""What is replaced, and by what."""


def redact(value: Any) -> Any:
    """Return ``value`` with every string inside it redacted (dicts and lists walked)."""
    if isinstance(value, str):
        for pattern, replacement in PATTERNS:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, dict):
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


@hookimpl
def sessionhub_before_append(ctx: AppendContext) -> None:
    """Redact text, tool-call arguments and tool results of every event in place."""
    for event in ctx.events:
        for part in event.content:
            if isinstance(part, TextPart):
                part.text = redact(part.text)
            elif isinstance(part, ToolCallPart):
                part.arguments = redact(part.arguments)
            elif isinstance(part, ToolResultPart):
                part.output = redact(part.output)
