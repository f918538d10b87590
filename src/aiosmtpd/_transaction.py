"""The mail transaction's inputs: MAIL/RCPT arguments and parameters, and DATA content.

Owns: parsing ``FROM:<address> params`` / ``TO:<address> params`` into an address and
ESMTP parameters, replying on failure (``_parse_path_arg``), checking MAIL's parameters
(SIZE, BODY, SMTPUTF8 and the opt-in extensions', ``_mail_params``), and collecting a
DATA command's content from the core (``_read_message``).
Invariants: arguments are parsed only by ``aiosmtpd._core.syntax``; a message is held
once (the first chunk as is; a message longer than one read in a ``BytesIO`` that hands
its buffer out, which the core writes into from its receive buffer).
Must not know: hooks, what is done with the message, the transport (``_buffered`` does).
"""

from __future__ import annotations

import io
import logging
from typing import Any

from . import _buffered as buffered
from . import _extensions as ext
from ._core import replies as R
from ._core import syntax as S
from ._core.events import NEED_DATA, PAUSED, ConnectionClosed, DataChunk, EndOfData, Event
from ._engine import SessionEngine
from ._session import _ConnectionGone

log = logging.getLogger("mail.log")


class TransactionMixin(ext.ExtensionsMixin):
    """MAIL/RCPT argument parsing and DATA content collection for ``SMTP``."""

    local_part_limit: int
    _decode_data: bool

    def _parse_path_arg(
        self, arg: str | None, keyword: str, syntax_error: R.Reply
    ) -> tuple[str, S.EsmtpParams] | None:
        """Parse ``FROM:<addr> params`` / ``TO:<addr> params``, replying on failure."""
        parsed = S.parse_path_argument(arg or "", keyword)
        if parsed is S.PathError.SYNTAX:
            self._say(syntax_error)
            return None
        if parsed is S.PathError.MALFORMED:
            self._say(R.MALFORMED_ADDRESS)
            return None
        address, param_text = parsed
        if (
            self.local_part_limit
            and address != "<>"
            and len(S.local_part(address)) > self.local_part_limit
        ):
            self._say(R.MALFORMED_ADDRESS)
            return None
        params = S.parse_esmtp_params(param_text)
        if params is None or (params.options and not self.session.extended_smtp):
            self._say(syntax_error)
            return None
        return address, params

    def _mail_params(
        self, params: S.EsmtpParams, syntax_error: R.Reply
    ) -> tuple[list[str], bool, bool] | None:
        """MAIL's parameters checked: (hook options, SMTPUTF8, BODY=BINARYMIME), or
        ``None`` after the reply refusing them."""
        values = dict(params.values)
        smtputf8 = values.pop("SMTPUTF8", False)
        if smtputf8 is not False:
            if smtputf8 is not True:
                self._say(R.SMTPUTF8_NO_ARGS)
                return None
            if not self.enable_SMTPUTF8:
                self._say(R.SMTPUTF8_DISABLED)
                return None
        body = values.pop("BODY", None)
        bodies = ("7BIT", "8BITMIME", "BINARYMIME") if self._binarymime_offered() else None
        if (
            body is not None
            and not self._decode_data
            and (not isinstance(body, str) or body.upper() not in (bodies or ("7BIT", "8BITMIME")))
        ):
            self._say(R.BAD_BODY_BINARYMIME if bodies else R.BAD_BODY)
            return None
        size = values.pop("SIZE", None)
        if size is not None:
            if not isinstance(size, str) or not (size.isascii() and size.isdigit()):
                self._say(syntax_error)
                return None
            if self.data_size_limit and int(size) > self.data_size_limit:
                self._say(R.SIZE_EXCEEDS_LIMIT)
                return None
        options = ext.take_mail_params(
            values, params.options, dsn=self.enable_DSN, requiretls=self._requiretls_offered()
        )
        if isinstance(options, R.Reply):
            self._say(options)
            return None
        if values:
            self._say(R.MAIL_PARAMS_UNRECOGNIZED)
            return None
        binarymime = isinstance(body, str) and body.upper() == "BINARYMIME"
        return options, smtputf8 is True, binarymime

    async def _read_message(self) -> EndOfData | tuple[bytes, EndOfData]:
        """Collect DATA content; the EndOfData alone if it carries an error."""
        # The first chunk is kept as is (most messages are one chunk: no copy at all).
        # When the content spans reads, it goes on in a BytesIO whose getvalue() hands its
        # own buffer out (trimmed in place) instead of copying it, so a big message exists
        # once, not twice as with a list of chunks and join(); the core writes the rest
        # of the content into it straight from its receive buffer (``write_content_to``),
        # so no slab is copied into a ``DataChunk`` first.
        first: bytes | None = None
        rest: io.BytesIO | None = None
        conn = self._conn
        # A message longer than one read is read through a ``_buffered`` forwarder where
        # that makes the transport read into our buffer (uvloop), given back at the end.
        transport = self.transport
        forwarder: buffered.ContentReads | None = None
        try:
            # ``_next_event`` inlined for the common cases (an event the core already
            # holds, or input to wait for): no coroutine per event. The idle timer is
            # touched once per batch: nothing is awaited between the events of one, so
            # no idle time passes.
            touched = False
            while True:
                event: Event | None
                if self._writes.paused or self._closing:
                    event = await self._next_event()
                    touched = True
                else:
                    polled = conn.next_event()
                    if polled is NEED_DATA:
                        self._flush()
                        if first is not None:
                            rest, forwarder = self._spill(first, transport)
                            first = None
                        await self._wait_for_input()
                        touched = False
                        continue
                    if polled is PAUSED:
                        event = await self._next_event()
                        touched = True
                    else:
                        event = polled
                        if not touched:
                            self._timer.touch()
                            touched = True
                if isinstance(event, DataChunk):
                    if first is None and rest is None:
                        first = event.data
                    else:
                        if rest is None:
                            rest, forwarder = self._spill(first, transport)
                            first = None
                        rest.write(event.data)  # b"" once the core writes into it
                    del event
                elif isinstance(event, EndOfData):
                    if event.error is not None:
                        return event
                    if rest is not None:
                        return rest.getvalue(), event
                    return (first if first is not None else b""), event
                elif event is None or isinstance(event, ConnectionClosed):
                    raise _ConnectionGone
                else:
                    log.error("%r unexpected event in DATA: %r", self.session.peer, event)
        finally:
            if rest is not None:
                conn.write_content_to(None)  # if we leave before the content ended
            if forwarder is not None:
                buffered.end(self, transport, forwarder)

    def _spill(
        self, first: bytes | None, transport: Any
    ) -> tuple[io.BytesIO, buffered.ContentReads | None]:
        """The content spans more than one read: a ``BytesIO`` holding ``first`` that the
        core writes the rest of the content into, and the read forwarder (``_buffered``)
        if the transport needs one."""
        rest = io.BytesIO()
        if first:
            rest.write(first)
        self._conn.write_content_to(rest)
        forwarder = buffered.begin(self, transport, self._library_reads())
        return rest, forwarder

    def _library_reads(self) -> bool:
        """Whether this class keeps the library's own read callbacks (``_buffered``)."""
        cls = type(self)
        return (
            cls.data_received is SessionEngine.data_received
            and cls.get_buffer is SessionEngine.get_buffer
            and cls.buffer_updated is SessionEngine.buffer_updated
        )
