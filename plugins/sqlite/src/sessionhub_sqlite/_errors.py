"""How the SQLite backend reports a failure of the database: one rule, in one place.

- The file cannot be used (it cannot be opened, another connection held the
  write lock past ``busy_timeout``, a disk I/O error, a full disk, a read-only
  file, a file that is not a database or is damaged): ``BackendUnavailable``,
  saying what to check.
- SQLite answered with any other error (a constraint the backend's own writes
  never break, a missing table or column), or a stored record cannot be read
  (not JSON, a value of the wrong type): ``BackendError`` quoting it. The file
  holds something this backend did not write; retrying will not help.

Writes are serialised by ``BEGIN IMMEDIATE``, so no SQLite error is ever a
race between writers that a retry would resolve.
"""

from __future__ import annotations

import sqlite3

from pydantic import ValidationError

from sessionhub import BackendError, BackendUnavailable, SessionHubError

__all__ = ["UnreadableRecord", "is_busy", "storage_error", "unavailable"]

# SQLite's primary result codes (an extended code keeps its primary in the low byte).
_BUSY = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
_UNUSABLE = _BUSY | {
    3,  # SQLITE_PERM
    7,  # SQLITE_NOMEM
    8,  # SQLITE_READONLY
    10,  # SQLITE_IOERR
    11,  # SQLITE_CORRUPT
    13,  # SQLITE_FULL
    14,  # SQLITE_CANTOPEN
    15,  # SQLITE_PROTOCOL
    22,  # SQLITE_NOLFS
    26,  # SQLITE_NOTADB
}
# Python 3.10 has no sqlite_errorcode: the same errors, as SQLite words them.
_BUSY_WORDS = ("locked", "busy")
_UNUSABLE_WORDS = (
    *_BUSY_WORDS,
    "unable to open",
    "disk i/o",
    "disk is full",
    "readonly",
    "permission",
    "out of memory",
    "not a database",
    "malformed",
    "locking protocol",
)


class UnreadableRecord(Exception):
    """A stored record did not decode (not JSON, a value of the wrong type); the cause is chained.

    Raised on the connection's thread by :func:`sessionhub_sqlite._transactions.run`.
    """

    def __init__(self, cause: ValueError | TypeError) -> None:
        super().__init__(_quote(cause))


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether SQLite refused because another connection held a lock."""
    code = _primary_code(exc)
    if code is not None:
        return code in _BUSY
    return any(words in str(exc).lower() for words in _BUSY_WORDS)


def _unusable(exc: sqlite3.Error) -> bool:
    code = _primary_code(exc)
    if code is not None:
        return code in _UNUSABLE
    return any(words in str(exc).lower() for words in _UNUSABLE_WORDS)


def unavailable(
    path: str, what: str, exc: sqlite3.Error, busy_timeout: float
) -> BackendUnavailable:
    """``BackendUnavailable`` for a file that cannot be used, quoting SQLite and what to check."""
    message = str(exc)
    if is_busy(exc):
        advice = (
            f"Another connection held the write lock for longer than busy_timeout "
            f"({busy_timeout:g}s): find the long transaction, or raise [sqlite] busy_timeout."
        )
    elif "unable to open" in message:
        advice = (
            "Check that the directory exists and is writable, and that the path names a "
            "file, not a directory (set [sqlite] path or url = sqlite:///file.db)."
        )
    elif "not a database" in message or "malformed" in message:
        advice = (
            "The file is not a usable SQLite database: point [sqlite] path at another "
            "file, or restore this one from a backup."
        )
    else:
        advice = "Check the file, its directory and the disk."
    return BackendUnavailable(f"The SQLite database {path!r} {what}: {message}. {advice}")


def _quote(exc: ValueError | TypeError) -> str:
    if isinstance(exc, ValidationError):  # one line per problem is several lines: summarise
        return "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'value'}: {error['msg']}"
            for error in exc.errors()[:3]
        )
    return str(exc)


def storage_error(
    path: str, exc: sqlite3.Error | UnreadableRecord, busy_timeout: float
) -> SessionHubError:
    """The error to raise for ``exc``, raised while running a transaction on ``path``."""
    if isinstance(exc, UnreadableRecord):
        what = "holds a record this backend cannot read"
    elif _unusable(exc):
        return unavailable(path, "failed", exc, busy_timeout)
    else:
        what = f"answered with an error ({type(exc).__name__})"
    return BackendError(
        f"The SQLite database {path!r} {what}: {exc}. The file holds data or a schema "
        "this backend did not write (another program, or damage); retrying will not help: "
        "inspect the file, or restore it from a backup."
    )
