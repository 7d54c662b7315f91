"""Built-in plugin: an audit trail of session lifecycle on the ``sessionhub.audit`` logger.

Records each created and deleted session at INFO level, with app, user and
session ids as structured ``extra`` fields. Disable it with
``SESSIONHUB_DISABLE_PLUGINS=sessionhub._builtin.audit_log``.
"""

from __future__ import annotations

import logging

from sessionhub.hookspecs import hookimpl
from sessionhub.models import Session

logger = logging.getLogger("sessionhub.audit")


@hookimpl
def sessionhub_session_created(session: Session) -> None:
    """Log the creation of a session."""
    if logger.isEnabledFor(logging.INFO):
        logger.info(
            "session created: app=%s user=%s session=%s parent=%s",
            session.app_name,
            session.user_id,
            session.id,
            session.parent_id,
            extra={
                "app_name": session.app_name,
                "user_id": session.user_id,
                "session_id": session.id,
            },
        )


@hookimpl
def sessionhub_session_deleted(app_name: str, user_id: str, session_id: str) -> None:
    """Log the deletion of a session."""
    if logger.isEnabledFor(logging.INFO):
        logger.info(
            "session deleted: app=%s user=%s session=%s",
            app_name,
            user_id,
            session_id,
            extra={"app_name": app_name, "user_id": user_id, "session_id": session_id},
        )
