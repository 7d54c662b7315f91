"""sessionhub as the session store of the OpenAI Agents SDK.

``SessionHubSession("conv-1", url="redis://localhost:6379/0")`` is an Agents SDK
``Session``: pass it as ``Runner.run(agent, input, session=...)``.
"""

from __future__ import annotations

from sessionhub_openai_agents._items import ITEM_KEY, event_to_item, item_to_event
from sessionhub_openai_agents._session import DEFAULT_USER_ID, SessionHubSession

__all__ = ["SessionHubSession", "DEFAULT_USER_ID", "ITEM_KEY", "item_to_event", "event_to_item"]
