"""CHUNKING (RFC 3030): the ``BDAT`` command, mixed into ``SMTP``.

Owns: ``smtp_BDAT`` and the per-transaction chunk buffer.  Each ``BDAT <size>`` has the
core read exactly ``size`` raw octets (``ServerConnection.start_chunk``); a non-LAST chunk
is answered ``250 <size> octets received``, the LAST one delivers the whole message
through the same path as DATA (``handle_DATA``, ``content``/``original_content``).
A refused BDAT (no EHLO/HELO, no RCPT, not authenticated) still has its octets consumed
and discarded, so chunk content is never read as commands.  A BDAT whose size cannot be
parsed is answered (``501``, or a gate's refusal) and the connection is closed: the
chunk's length is unknown, so the stream cannot be resynchronised, and reading the
octets as commands would run whatever the message holds.  A chunk past the size limit
is discarded while it streams, answered ``552`` and ends the transaction; so does any
refusal after the transaction started.

Invariants: only enabled with ``enable_CHUNKING`` (otherwise ``SMTP`` drops the verb
and BDAT is an unknown command, as in aiosmtpd 1.4).  At most ``data_size_limit``
octets of one message are ever held.  The chunk buffer belongs to one envelope: RSET,
HELO/EHLO and delivery end it.
Must not know: how bytes are framed (the core), transports.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any, Final

from ._core import replies as R
from ._core.events import Command, ConnectionClosed, DataChunk, EndOfChunk
from ._engine import SessionEngine
from ._hooks import verb_table
from ._session import Envelope, _ConnectionGone, syntax

log = logging.getLogger("mail.log")

#: ``BDAT`` argument (RFC 3030 §2): chunk-size = 1*DIGIT, then optional ``LAST``.  The
#: size is capped at 18 digits so that parsing it is cheap whatever the client sends.
_BDAT_ARG: Final = re.compile(r"([0-9]{1,18})(?: +(LAST))?", re.IGNORECASE)


_VERB_TABLES_WITHOUT_BDAT: dict[type, dict[str, Callable[..., Any]]] = {}


def verb_table_without_bdat(server_type: type) -> dict[str, Callable[..., Any]]:
    # One table per class, not one per connection (memory per idle connection).
    table = _VERB_TABLES_WITHOUT_BDAT.get(server_type)
    if table is None:
        table = {v: m for v, m in verb_table(server_type).items() if v != "BDAT"}
        _VERB_TABLES_WITHOUT_BDAT[server_type] = table
    return table


class ChunkTransfer:
    """The chunks received so far for one envelope."""

    __slots__ = ("buffer", "envelope", "size")

    def __init__(self, envelope: Envelope) -> None:
        self.envelope = envelope
        self.buffer = io.BytesIO()
        self.size = 0


class ChunkingMixin(SessionEngine):
    """``smtp_BDAT`` for ``SMTP``; see the module docstring."""

    enable_CHUNKING: bool
    _chunk_transfer: ChunkTransfer | None = None
    #: Whether ``smtp_BDAT`` ran for the BDAT command being served.
    _bdat_served = False

    def _on_command(self, command: Command) -> Coroutine[Any, Any, None]:
        # Not a coroutine itself: every other verb gets the engine's coroutine as is,
        # without a frame of ours around it (this runs once per command).
        if (
            command.verb != "BDAT"
            or not self.enable_CHUNKING
            # A subclass's own smtp_BDAT reads (or not) its chunk itself.
            or self._smtp_methods.get("BDAT") is not ChunkingMixin.smtp_BDAT
        ):
            return super()._on_command(command)
        return self._on_bdat_command(command)

    async def _on_bdat_command(self, command: Command) -> None:
        self._bdat_served = False
        await super()._on_command(command)
        if self._bdat_served or self._closing:
            return
        # A gate refused BDAT before smtp_BDAT ran (require_starttls, a failed TLS
        # check, ...): its octets are on their way all the same and are not commands.
        match = _BDAT_ARG.fullmatch(command.arg or "")
        if match is not None:
            await self._read_chunk(int(match.group(1)), None, discard=True)
        else:
            self._close_unframed_bdat()

    async def _deliver_content(self, content: bytes) -> None:
        raise NotImplementedError

    def _set_rset_state(self) -> None:
        super()._set_rset_state()
        self._chunk_transfer = None

    def _current_transfer(self) -> ChunkTransfer | None:
        transfer = self._chunk_transfer
        return transfer if transfer is not None and transfer.envelope is self.envelope else None

    @syntax("BDAT <chunk-size> [LAST]", when="enable_CHUNKING")
    async def smtp_BDAT(self, arg: str | None) -> None:
        self._bdat_served = True
        match = _BDAT_ARG.fullmatch(arg or "")
        if match is None:
            self._say(R.BDAT_SYNTAX)
            self._close_unframed_bdat()
            return
        size, last = int(match.group(1)), match.group(2) is not None
        if (
            not await self.check_helo_needed()
            or not await self.check_auth_needed("BDAT")
            or not self._may_start_chunk()
        ):
            self._end_transfer_if_started()
            await self._read_chunk(size, None, discard=True)
            return
        transfer = self._current_transfer()
        if transfer is None:
            transfer = self._chunk_transfer = ChunkTransfer(self.envelope)
        limit = self.data_size_limit
        room = max(0, limit - transfer.size) if limit else None
        end = await self._read_chunk(size, transfer.buffer, discard=False, room=room)
        if end.error is not None:
            self._chunk_transfer = None
            self._set_rset_state()
            self._say(end.error)
            return
        transfer.size += end.size
        if not last:
            self._say(R.BDAT_CHUNK_RECEIVED, size=end.size)
            return
        self._chunk_transfer = None
        content = transfer.buffer.getvalue()
        transfer.buffer = io.BytesIO()
        await self._deliver_content(content)

    def _close_unframed_bdat(self) -> None:
        """Close after the reply to a BDAT whose chunk size cannot be parsed.

        The octets that follow are a chunk of unknown length: they cannot be skipped, and
        must not be read as commands (a message holding ``RSET``/``MAIL``/... lines would
        be executed). go-smtp answers ``501 Malformed size`` and closes; so do we.
        """
        log.info("%r BDAT without a valid chunk size: connection closed", self.session.peer)
        self._close_after_reply()

    def _may_start_chunk(self) -> bool:
        """Refuse (with a reply) a BDAT that has no transaction to belong to."""
        if not self.envelope.mail_from:
            self._say(R.NEED_MAIL)
            return False
        if not self.envelope.rcpt_tos:
            self._say(R.NEED_RCPT)
            return False
        return True

    def _end_transfer_if_started(self) -> None:
        if self._current_transfer() is not None:
            self._chunk_transfer = None
            self._set_rset_state()

    async def _read_chunk(
        self, size: int, sink: io.BytesIO | None, *, discard: bool, room: int | None = None
    ) -> EndOfChunk:
        """Have the core read the chunk; write its content to ``sink``."""
        self._conn.start_chunk(size, room, discard=discard)
        if sink is not None:
            # The core writes the content straight from its receive buffer.
            self._conn.write_content_to(sink)
        while True:
            event = await self._next_event()
            if isinstance(event, DataChunk):
                if sink is not None:
                    sink.write(event.data)  # b"": the core wrote it into the sink
            elif isinstance(event, EndOfChunk):
                return event
            elif event is None or isinstance(event, ConnectionClosed):
                raise _ConnectionGone
            else:
                log.error("%r unexpected event in BDAT: %r", self.session.peer, event)
