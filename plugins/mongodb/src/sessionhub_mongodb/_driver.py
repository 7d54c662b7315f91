"""The few places where PyMongo's async API and Motor differ, and what a driver error means.

Both clients share the collection API this backend uses (``find_one``,
``find(...).sort(...).limit(...).to_list(None)``, ``insert_many``,
``update_one``, ``find_one_and_update``, ``delete_many``, ``create_indexes``,
``command``). They differ in how a session and a transaction start:
``AsyncMongoClient.start_session()`` returns the session and
``start_transaction()`` is a coroutine, while Motor's ``start_session()`` is a
coroutine and its ``start_transaction()`` is not. The functions here accept
either shape.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from bson.errors import InvalidDocument
from pymongo.errors import (
    BulkWriteError,
    ClientBulkWriteException,
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
    WTimeoutError,
)

__all__ = [
    "start_session",
    "start_transaction",
    "is_duplicate_key",
    "is_transient",
    "is_unknown_commit",
    "is_too_large",
    "is_connection_error",
    "is_timeout",
    "may_have_applied",
    "summary",
]

_DUPLICATE_KEY = 11000
_TOO_LARGE_CODES = frozenset({10334, 17419, 2})  # BSONObjectTooLarge, doc too large to insert


async def start_session(client: Any) -> Any:
    """Start a client session on an ``AsyncMongoClient`` or a Motor client."""
    session = client.start_session()
    if inspect.isawaitable(session):
        session = await session
    return session


async def start_transaction(session: Any, **options: Any) -> None:
    """Start a transaction on a PyMongo async or a Motor session."""
    started = session.start_transaction(**options)
    if inspect.isawaitable(started):
        await started


def is_duplicate_key(exc: BaseException) -> bool:
    """Whether ``exc`` is a unique-index violation (single write or any write of a bulk)."""
    if isinstance(exc, DuplicateKeyError):
        return True
    if isinstance(exc, ClientBulkWriteException):
        errors = _write_errors(exc)
        return (
            exc.error is None and bool(errors) and all(_code(e) == _DUPLICATE_KEY for e in errors)
        )
    if isinstance(exc, BulkWriteError):
        errors = exc.details.get("writeErrors", [])
        return bool(errors) and all(error.get("code") == _DUPLICATE_KEY for error in errors)
    return isinstance(exc, OperationFailure) and exc.code == _DUPLICATE_KEY


def is_transient(exc: BaseException) -> bool:
    """Whether a transaction failed in a way that retrying the whole transaction may fix."""
    return isinstance(exc, PyMongoError) and exc.has_error_label("TransientTransactionError")


def is_unknown_commit(exc: BaseException) -> bool:
    """Whether a commit's outcome is unknown and the commit itself may be retried."""
    return isinstance(exc, PyMongoError) and exc.has_error_label("UnknownTransactionCommitResult")


def is_too_large(exc: BaseException) -> bool:
    """Whether a write failed because a document exceeds the BSON size limit."""
    if isinstance(exc, DocumentTooLarge):
        return True
    if isinstance(exc, ClientBulkWriteException):
        return (exc.error is not None and is_too_large(exc.error)) or any(
            _code(error) in _TOO_LARGE_CODES for error in _write_errors(exc)
        )
    if isinstance(exc, BulkWriteError):
        return any(
            error.get("code") in _TOO_LARGE_CODES for error in exc.details.get("writeErrors", [])
        )
    return isinstance(exc, OperationFailure) and exc.code == 10334


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the server could not be reached or answered too late."""
    if isinstance(exc, ClientBulkWriteException) and isinstance(exc.error, BaseException):
        return is_connection_error(exc.error)
    return isinstance(exc, ConnectionFailure)


def is_timeout(exc: BaseException) -> bool:
    """Whether the server gave up waiting (an operation's time limit, or its write concern's)."""
    if isinstance(exc, ClientBulkWriteException) and isinstance(exc.error, BaseException):
        return is_timeout(exc.error)
    return isinstance(exc, (ExecutionTimeout, WTimeoutError))


def may_have_applied(exc: BaseException) -> bool:
    """Whether a write that raised ``exc`` may have been applied all the same.

    No, when the client refused to send it (a document it cannot encode) or the
    server answered with an error for it. Maybe, when there was no answer (a lost
    connection, a timeout, a cancelled task) or only the write concern failed.
    """
    if isinstance(exc, InvalidDocument):
        return False
    if isinstance(exc, ClientBulkWriteException):
        return bool(exc.write_concern_errors) or (
            isinstance(exc.error, BaseException) and may_have_applied(exc.error)
        )
    if isinstance(exc, BulkWriteError):
        return bool(exc.details.get("writeConcernErrors"))
    return not isinstance(exc, OperationFailure) or isinstance(exc, WriteConcernError)


def summary(exc: BaseException) -> str:
    """``exc`` in one line: the server's message and error code, without the driver's dumps."""
    if isinstance(exc, ClientBulkWriteException) and isinstance(exc.error, BaseException):
        return summary(exc.error)
    text = str(exc)
    if isinstance(exc, ServerSelectionTimeoutError):
        text = text.partition(", Timeout:")[0]  # what follows is the whole topology description
    elif isinstance(exc, OperationFailure):
        # str(exc) ends with the raw reply (cluster time and all): quote the message only.
        reply = _first_write_error(exc) or exc.details or {}
        text = reply.get("errmsg") or text.partition(", full error:")[0]
        code = " ".join(str(part) for part in (reply.get("codeName"), reply.get("code")) if part)
        if code:
            text = f"{text} ({code})"
    return _CONFIGURED_TIMEOUTS.sub("", text)


def _first_write_error(exc: OperationFailure) -> dict[str, Any] | None:
    if isinstance(exc, ClientBulkWriteException):
        errors = _write_errors(exc)
    elif isinstance(exc, BulkWriteError):
        errors = exc.details.get("writeErrors") or []
    else:
        return None
    return errors[0] if errors and isinstance(errors[0], dict) else None


_CONFIGURED_TIMEOUTS = re.compile(r" \(configured timeouts: [^)]*\)")


def _write_errors(exc: ClientBulkWriteException) -> list[Any]:
    return list(exc.write_errors or [])


def _code(error: Any) -> Any:
    return error.get("code") if isinstance(error, dict) else getattr(error, "code", None)
