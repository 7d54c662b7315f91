"""What counts as a secret, and how a value is shown so that no secret is printed.

A name holds a secret when it contains ``pass`` (password, passwd, passphrase),
``pwd``, ``secret``, ``token``, ``credential`` or ``signature``, when it ends in
``key`` (``api_key``, ``apiKey``, ``encryption_key``), or is ``sig`` or
``authMechanismProperties`` (which can carry a cloud session token); case does
not matter. Paths to key files (``tlsCertificateKeyFile``, ``ssl_keyfile``) and
``key_prefix`` name no secret and stay readable: a path says where a secret is,
not what it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import SecretStr

__all__ = ["MASK", "is_secret_name", "mask_url", "display", "conceal", "reveal"]

MASK = "***"
"""What a masked secret looks like."""

_SECRET_PARTS = ("pass", "pwd", "secret", "token", "credential", "signature")
_SECRET_NAMES = frozenset({"sig", "authmechanismproperties"})


def is_secret_name(name: str) -> bool:
    """Whether an option or query parameter called ``name`` holds a secret (see the module)."""
    lowered = name.lower()
    return (
        any(part in lowered for part in _SECRET_PARTS)
        or lowered.endswith("key")
        or lowered in _SECRET_NAMES
    )


def mask_url(url: str) -> str:
    """Return ``url`` with its password and secret query values replaced by ``***``."""
    if "://" not in url:  # not a URL: keep only what follows an "@" (a host, not a secret)
        return f"{MASK}@{url.rpartition('@')[2]}" if "@" in url else url
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if has_password else f"{userinfo}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_name(key) for key, _ in pairs):
            query = urlencode([(k, MASK if is_secret_name(k) else v) for k, v in pairs], safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def display(name: str, value: Any) -> Any:
    """``value`` of the option ``name`` as it may be printed: secrets masked, durations in s."""
    if isinstance(value, list):
        return [display(name, item) for item in value]
    if isinstance(value, SecretStr):
        text = value.get_secret_value()
        return mask_url(text) if "://" in text else MASK
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    if value is not None and is_secret_name(name):
        return MASK
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    return value


def conceal(table: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an options table with secret-named values and URLs wrapped in ``SecretStr``.

    Dumps, reprs and JSON of the settings then show ``**********`` for them.
    """
    return {key: _conceal(key, value) for key, value in table.items()}


def _conceal(name: str, value: Any) -> Any:
    if isinstance(value, Mapping):
        return conceal(value)
    if isinstance(value, list):
        return [_conceal(name, item) for item in value]
    if isinstance(value, str) and "://" in value:
        return SecretStr(value)
    if value is None or isinstance(value, SecretStr) or not is_secret_name(name):
        return value
    return SecretStr(value if isinstance(value, str) else str(value))


def reveal(table: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`conceal`: the plain values, for a backend's own settings model."""
    return {key: _reveal(value) for key, value in table.items()}


def _reveal(value: Any) -> Any:
    if isinstance(value, Mapping):
        return reveal(value)
    if isinstance(value, list):
        return [_reveal(item) for item in value]
    return value.get_secret_value() if isinstance(value, SecretStr) else value
