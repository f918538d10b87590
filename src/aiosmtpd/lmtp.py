"""LMTP (RFC 2033) on top of the SMTP adapter.

Owns: ``LMTP``: LHLO (the EHLO lines and the ``handle_EHLO`` hook), HELO/EHLO refused as
unknown commands, and one reply per accepted recipient after DATA, in RCPT order
(RFC 2033 §4.2; DECISIONS row 6).
Invariants: ``handle_DATA`` may return one string (sent once per recipient) or a list
with one string per recipient; a list of the wrong length is a handler bug, answered
with a temporary error for each recipient it does not cover.
Must not know: transports, the core.
"""

from __future__ import annotations

import logging
from typing import Any

from ._core import replies as R
from ._engine import ALLOWED_BEFORE_STARTTLS
from ._session import Envelope, syntax
from .smtp import SMTP

__all__ = ["LMTP"]

log = logging.getLogger("mail.log")


class LMTP(SMTP):
    """A Local Mail Transfer Protocol server protocol."""

    show_smtp_greeting = False
    allowed_before_starttls = frozenset(ALLOWED_BEFORE_STARTTLS | {"LHLO"})

    @syntax("LHLO hostname")
    async def smtp_LHLO(self, arg: str | None) -> None:
        await self._ehlo(arg, R.LHLO_SYNTAX)

    async def smtp_HELO(self, arg: str | None) -> None:
        self._say(R.UNRECOGNIZED, verb="HELO")

    async def smtp_EHLO(self, arg: str | None) -> None:
        self._say(R.UNRECOGNIZED, verb="EHLO")

    async def _push_data_replies(self, status: Any, envelope: Envelope) -> None:
        count = len(envelope.rcpt_tos)
        if isinstance(status, list | tuple):
            replies = [str(item) for item in status[:count]]
            if len(status) != count:
                log.error(
                    "%r handle_DATA returned %d replies for %d recipients",
                    self.session.peer,
                    len(status),
                    count,
                )
                replies += [self._render(R.LOCAL_ERROR)] * (count - len(replies))
        else:
            replies = [status] * count
        for line in replies:
            await self.push(line)
