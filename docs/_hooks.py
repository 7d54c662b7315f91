"""mkdocs hooks: generate the settings tables from the settings models, so they never drift.

``<!-- sessionhub:settings -->`` becomes the table of every core setting and
``<!-- sessionhub:backend-settings NAME -->`` the table of backend NAME's options.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from sessionhub.plugins import get_plugin_manager
from sessionhub.registry import BackendRegistry
from sessionhub.settings import ENV_PREFIX, SessionHubSettings

_BACKEND_MARKER = re.compile(r"<!-- sessionhub:backend-settings (\w+) -->")


def _type_name(field: FieldInfo) -> str:
    text = str(field.annotation).replace("typing.", "").replace("datetime.", "")
    text = re.sub(r"<class '([\w.]+)'>", r"\1", text)
    text = re.sub(r"Annotated\[(.*), NoDecode\]", r"\1", text)
    text = text.replace("pydantic.types.", "").replace("pathlib.", "").replace("NoneType", "None")
    return text.replace(" | ", " \\| ")


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return f"`{field.default_factory()!r}`"  # type: ignore[call-arg]
    value: Any = field.default
    if hasattr(value, "total_seconds"):
        return f"`{value.total_seconds():g}` s"
    return f"`{value!r}`"


def settings_table(model: type[BaseModel], env_prefix: str) -> str:
    """A markdown table of a settings model: key, environment variable, type, default, meaning."""
    rows = [
        "| setting | environment variable | type | default | meaning |",
        "|---|---|---|---|---|",
    ]
    for attribute, field in model.model_fields.items():
        name = field.alias or attribute  # the key a config file and the environment use
        description = (field.description or "").replace("|", "\\|")
        rows.append(
            f"| `{name}` | `{env_prefix}{name.upper()}` | {_type_name(field)} "
            f"| {_default(field)} | {description} |"
        )
    return "\n".join(rows)


def backend_settings_table(name: str) -> str:
    """The options table of an installed backend, or a note that it is not installed."""
    registry = BackendRegistry.from_plugin_manager(get_plugin_manager(load=None, disable=[]))
    if name not in registry.names():
        return f"*(The `{name}` backend is not installed where these docs were built.)*"
    model = registry.settings_model(registry.get(name))
    return settings_table(model, f"{ENV_PREFIX}{name.upper()}__")


def render(markdown: str) -> str:
    """Replace the generation markers of a page."""
    markdown = markdown.replace(
        "<!-- sessionhub:settings -->", settings_table(SessionHubSettings, ENV_PREFIX)
    )
    return _BACKEND_MARKER.sub(lambda m: backend_settings_table(m.group(1)), markdown)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Render the generated tables of a page (the mkdocs hook)."""
    return render(markdown)
