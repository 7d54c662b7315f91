"""How the PostgreSQL backend reports a failure of the server: one rule, in one place.

- The server cannot be used (refused or dropped connection, a server shutting
  down or starting up, too many connections, a timeout, a login or database
  that does not exist, a certificate not trusted): ``BackendUnavailable``,
  saying what to check.
- The server answered with any other error (missing privileges, a table
  someone dropped, a constraint the backend's own writes never break), or a
  stored record does not decode: ``BackendError`` quoting it. A prepared
  statement of asyncpg's that the server does not know (or knows already) means
  a pooler in transaction mode sits in between: the message says which setting
  to change. A write refused by a read-only server (a standby) says where to
  point the service instead.

Messages name the server by its URL with the password masked; the driver's
exception is chained.
"""

from __future__ import annotations

import asyncio
import ssl

import asyncpg
from asyncpg import exceptions as pg

from sessionhub import BackendError, BackendUnavailable, SessionHubError
from sessionhub.backend_tools import mask_url

__all__ = ["is_connection_error", "storage_error"]

_UNAVAILABLE = (
    pg.PostgresConnectionError,  # class 08: the connection failed
    pg.CannotConnectNowError,  # starting up or shutting down
    pg.OperatorInterventionError,  # admin or crash shutdown, statement cancelled
    pg.InsufficientResourcesError,  # too many connections, disk full, out of memory
    pg.InvalidAuthorizationSpecificationError,  # bad login or password (28xxx)
    pg.InvalidCatalogNameError,  # the database does not exist
)
_PREPARED = (pg.InvalidSQLStatementNameError, pg.DuplicatePreparedStatementError)
_DROPPED = (
    pg.PostgresConnectionError,
    pg.ConnectionDoesNotExistError,
    pg.AdminShutdownError,
    pg.CannotConnectNowError,
    ConnectionError,
)


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection was lost before or while a call ran.

    Such a call may be retried once on a fresh connection when repeating it is harmless.
    """
    if isinstance(exc, _DROPPED):
        return True
    if not isinstance(exc, asyncpg.InterfaceError):
        return False
    # A connection asyncpg handed back to its pool when the server closed it says so.
    said = str(exc)
    return "closed" in said or "released back to the pool" in said


def storage_error(url: str, exc: BaseException, timeout: float | None) -> SessionHubError:
    """The ``SessionHubError`` to raise for the driver's ``exc`` (chain it with ``from``)."""
    where = mask_url(url)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, pg.QueryCanceledError)):
        return BackendUnavailable(
            f"The PostgreSQL server at {where} did not answer in time ({timeout} s): {exc!r}. "
            "Check that the server is running and not overloaded, or raise command_timeout / "
            "pool_timeout in the [postgres] settings."
        )
    if isinstance(exc, (pg.InvalidAuthorizationSpecificationError, pg.InvalidPasswordError)):
        return BackendUnavailable(
            f"The PostgreSQL server at {where} refused the login: {_quote(exc)}. Check the user "
            "name and password in the URL and the server's pg_hba.conf."
        )
    if isinstance(exc, pg.InvalidCatalogNameError):
        return BackendUnavailable(
            f"The PostgreSQL server at {where} has no such database: {_quote(exc)}. Create it "
            "(createdb NAME) or fix the database name in the URL."
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return BackendUnavailable(
            f"The PostgreSQL server at {where} showed a certificate this client does not "
            f"trust: {_quote(exc)}. Check sslrootcert in the URL (the authority that signed "
            "the server's certificate) and that the host name is one the certificate names."
        )
    if isinstance(exc, ssl.SSLError):
        return BackendUnavailable(
            f"TLS with the PostgreSQL server at {where} failed: {_quote(exc)}. Check sslmode "
            "and the certificate and key files named in the URL."
        )
    if isinstance(exc, (OSError, *_UNAVAILABLE)) or is_connection_error(exc):
        return BackendUnavailable(
            f"The PostgreSQL server at {where} is unavailable: {_quote(exc)}. Check that the "
            "server is running and reachable, and the host and port in the URL."
        )
    if isinstance(exc, pg.InsufficientPrivilegeError):
        return BackendError(
            f"The PostgreSQL server at {where} refused: {_quote(exc)}. Either let this user "
            "create the tables (CREATE on the database, or on the schema if it exists), or open "
            "the backend once as the tables' owner and grant this user USAGE on the schema, "
            "SELECT, INSERT, UPDATE, DELETE on its tables and EXECUTE on its functions."
        )
    if isinstance(exc, pg.ReadOnlySQLTransactionError):
        return BackendError(
            f"The PostgreSQL server at {where} is read-only (a hot standby, or "
            f"default_transaction_read_only): {_quote(exc)}. Point a service that writes at "
            "the primary; a service without TTLs only reads in get_session, list_sessions and "
            "the state reads, and may use a standby once the primary has created the tables."
        )
    if isinstance(exc, _PREPARED) and "__asyncpg_" in str(exc):
        return BackendError(
            f"The PostgreSQL server at {where} answered: {_quote(exc)}. A connection pooler "
            "in transaction or statement mode (PgBouncer before 1.21, say) does not keep "
            "prepared statements: set statement_cache_size = 0 in the [postgres] settings, "
            "or max_prepared_statements in PgBouncer 1.21 or later."
        )
    if isinstance(exc, asyncpg.PostgresError):
        return BackendError(f"The PostgreSQL server at {where} answered: {_quote(exc)}")
    return BackendError(
        f"A record stored in PostgreSQL at {where} cannot be read ({_quote(exc)}): it was not "
        "written by this backend, or was changed by hand."
    )


def _quote(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
