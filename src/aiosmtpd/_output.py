"""Replies on their way out: buffering a pipelined group and writing it in one go.

Owns: ``ReplyOutput``, the half of ``SessionEngine`` that turns reply lines into bytes
through the core (``_send_line``: the core applies the mode change each reply implies),
buffers them and writes them with ONE ``transport.write`` per pipelined group
(``_flush``), renders library replies (``_say``/``_render``, with RFC 3463 codes when
ENHANCEDSTATUSCODES is on) and ``push``, the 1.4 coroutine that waits while the peer is
not reading.
Invariants: ``220`` to STARTTLS is on the wire before anything can start the handshake;
a buffered group is written once it passes ``WRITE_FLUSH_SIZE`` even mid-group; the reply
to a message of ``EARLY_REPLY_SIZE`` or more is written before the message is released
(``_reply_before_release``).
Must not know: which command is being served, hooks, the driver.
"""

from __future__ import annotations

from typing import Any

from ._compat import CompatStream
from ._core import replies as R
from ._core.connection import KnownReply, Mode, ServerConnection
from ._flow import WriteGate

#: Write buffered replies out once they exceed this, even mid-group.
WRITE_FLUSH_SIZE = 64 * 1024

#: The reply to a message of at least this many octets is written at once, before the
#: message is released: freeing a block this large hands its pages back to the system
#: (glibc unmaps it), about 5 % of the time the message took to arrive, which the client
#: need not wait for. Smaller messages keep their reply in the pipelined group's write.
EARLY_REPLY_SIZE = 256 * 1024


class ReplyOutput:
    """Reply buffering and writing for ``SessionEngine`` (which holds the state)."""

    __slots__ = ("_final_replies", "_out", "_out_size", "_streams", "_tls_plain_transport")

    transport: Any
    enable_SMTPUTF8: bool
    enhanced_status_codes: bool
    _conn: ServerConnection
    _writes: WriteGate
    _streams: tuple[CompatStream, CompatStream] | None
    _out: list[bytes] | None
    _out_size: int
    _final_replies: int
    _tls_plain_transport: Any

    @property
    def _active_transport(self) -> Any:
        streams = self._streams
        transport: Any = streams[1]._transport if streams is not None else None
        return transport if transport is not None else self.transport

    @property
    def _reader(self) -> CompatStream:
        """1.4's ``StreamReader``: plugins assign a new transport to ``_transport``."""
        return self._compat_streams()[0]

    @property
    def _writer(self) -> CompatStream:
        """1.4's ``StreamWriter``: its ``_transport`` is the one replies are written to."""
        return self._compat_streams()[1]

    def _compat_streams(self) -> tuple[CompatStream, CompatStream]:
        # Made on first use: most connections never need them (an idle one holds less).
        streams = self._streams
        if streams is None:
            streams = self._streams = (CompatStream(self.transport), CompatStream(self.transport))
        return streams

    def _send_line(self, line: bytes) -> None:
        conn = self._conn
        mode = conn.mode
        data = conn.send(line)
        out = self._out
        if out is None:
            self._out = [data]
        else:
            out.append(data)
        self._out_size += len(data)
        if line[:3] != b"334":
            self._final_replies += 1
        if conn.mode is not mode and conn.mode is Mode.TLS_PENDING:
            # 220 to STARTTLS must be on the wire before the handshake starts, whoever
            # runs it (a plugin's smtp_STARTTLS awaits loop.start_tls right after push()).
            self._tls_plain_transport = self._active_transport
            self._flush()
        elif self._out_size > WRITE_FLUSH_SIZE:
            # Other replies wait for the end of the pipelined group (flushed on NEED_DATA).
            self._flush()

    def _send_known(self, known: KnownReply) -> None:
        """``_send_line`` for one of the library's own lines worked out ahead
        (``known_reply``; see ``_fastlane``): never a ``334`` challenge, never STARTTLS's
        ``220``, so neither needs looking for."""
        data = self._conn.send_known(known)
        out = self._out
        if out is None:
            self._out = [data]
        else:
            out.append(data)
        self._final_replies += 1
        self._out_size += len(data)
        if self._out_size > WRITE_FLUSH_SIZE:
            self._flush()

    def _reply_before_release(self, content: bytes | str) -> None:
        """The reply to ``content`` is queued and the caller is about to let it go: write
        the reply now if ``content`` is big (see ``EARLY_REPLY_SIZE``)."""
        if len(content) >= EARLY_REPLY_SIZE:
            self._flush()

    def _send_continuations(self, block: bytes, lines: int) -> None:
        """Queue ``lines`` continuation lines (``NNN-text``, each ending CRLF) rendered
        ahead: what ``_send_line`` queues for each of them, without asking the core,
        which passes a continuation line through unchanged in every mode (not final, no
        mode change; ``tests/adapter/test_fastlane.py`` checks its table says so). The
        caller sends the final line of the reply with ``_send_line``."""
        out = self._out
        if out is None:
            self._out = [block]
        else:
            out.append(block)
        self._out_size += len(block)
        self._final_replies += lines

    def _say(self, reply: R.Reply, **fields: Any) -> None:
        if fields:
            self._send_line(self._render(reply, **fields).encode("utf-8"))
        else:
            self._send_line(reply.line(self.enhanced_status_codes))

    def _render(self, reply: R.Reply, **fields: Any) -> str:
        """A library reply as sent: with its RFC 3463 code if ENHANCEDSTATUSCODES is on."""
        if fields:
            reply = reply.with_text(reply.text.format(**fields))
        return reply.render(self.enhanced_status_codes)

    def _flush(self) -> None:
        out = self._out
        if not out:
            return
        data = b"".join(out) if len(out) > 1 else out[0]
        self._out = None
        self._out_size = 0
        streams = self._streams  # _active_transport, inlined (once per pipelined group)
        transport: Any = streams[1]._transport if streams is not None else None
        if transport is None:
            transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    async def push(self, status: str | bytes) -> None:
        """Send one reply line (CRLF is added).

        A status holding line breaks (``"250-a\r\n250 b"``, which 1.4 wrote out raw) is
        sent as its lines.
        """
        if self._emit(status):
            await self._writes.wait()

    def _emit(self, status: str | bytes) -> bool:
        """``push`` up to its wait: queue the reply; whether the caller must now wait for
        the peer to read (writes paused; what was buffered has been handed over).

        The library's own commands call this instead of awaiting ``push`` when the class
        does not override ``push`` (one coroutine less per reply; see ``smtp``).
        """
        if isinstance(status, str):
            status = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii")
        if b"\n" in status or b"\r" in status:
            for line in status.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
                if line:
                    self._send_line(line)
        else:
            self._send_line(status)
        if self._writes.paused:
            self._flush()
            return True
        return False
