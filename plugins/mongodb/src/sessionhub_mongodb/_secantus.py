"""A private SecantusDB server in its own process, for the tests and the benchmark.

python -m sessionhub_mongodb._secantus STORAGE_PATH PORT [--standalone]
    start a SecantusDB server (a MongoDB wire-protocol server on WiredTiger) on
    127.0.0.1:PORT (0: a free port) with its data in STORAGE_PATH, print the
    port, and serve until standard input closes or SIGTERM arrives. By default
    it presents itself as a one-member replica set (transactions available);
    with --standalone, as a standalone server.

Running it in a separate process keeps the server's threads off the test
process's interpreter lock, and lets a test stop (even kill) and restart it.
SecantusDB is a test-only dependency (``pip install sessionhub-mongodb[testing]``),
imported only when the server starts.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

__all__ = ["INSTALL_HINT", "main"]

INSTALL_HINT = (
    "SecantusDB (a MongoDB wire-protocol server for tests) is not installed: "
    "pip install 'sessionhub-mongodb[testing]'"
)
"""What to do when SecantusDB is missing."""


def _stop(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def main() -> None:
    """Start the server named by the command line, print its port, serve until told to stop."""
    try:
        from secantus import SecantusDBServer  # type: ignore[import-untyped]
    except ImportError as exc:
        raise SystemExit(INSTALL_HINT) from exc
    storage, port, *flags = sys.argv[1:]
    server = SecantusDBServer(
        host="127.0.0.1",
        port=int(port),
        storage_path=storage,
        replica_set_name=None if "--standalone" in flags else "secantus",
        ttl_sweep_seconds=1.0,
        # mongod aborts a transaction abandoned by a dead client after
        # transactionLifetimeLimitSeconds (60 s); the crash tests do not wait that long.
        transaction_lifetime_seconds=3.0,
    )
    server.start()
    signal.signal(signal.SIGTERM, _stop)
    print(server.port, flush=True)
    try:
        sys.stdin.read()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
