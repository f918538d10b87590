"""The bulk reader for dot-stuffed DATA content (RFC 5321 §4.5.2).

Owns: finding the end of the message, unstuffing transparency dots, enforcing the DATA
line-length and message-size limits, and counting the message size while it streams.

Theory of operation.  The reader works in place on the connection's receive buffer
(``buf`` from index ``pos`` on) and never copies it whole.  Per call it does:

1. one ``bytes.find`` for ``CRLF.CRLF`` starting where the previous unsuccessful search
   stopped (minus 4 octets, so a terminator split across receives is still found), plus
   an O(1) look at ``pos`` for the ``.CRLF`` line that follows the previous CRLF;
2. one ``rfind`` for the last CRLF before the terminator (or the buffer end), so content
   is handed out in *slabs* of whole lines; at most one partial line is held back, and
   that line is never longer than ``line_limit``;
3. per slab: a windowed ``rfind`` walk that proves every line fits ``line_limit`` in about
   ``len(slab) / line_limit`` C-level searches, one ``replace(b"\\r\\n.", b"\\r\\n")``
   plus the leading-dot case to unstuff, and a size check.

Invariants: ``pos`` is always the start of a line while content is being delivered (the
previous consumed octets were CRLF, or the CRLF of the DATA command itself).  Only
``CRLF.CRLF`` ends the data: a bare CR or LF never ends a line, so every SMTP-smuggling
variant (``LF.LF``, ``CR.CR``, ``LF.CRLF``, ...) stays message content.  Once a limit is
broken the reader stops handing out content and discards it, keeping only the last 4
octets (enough to spot a terminator that straddles two receives) and the last 2 consumed
octets (for the ``.CRLF``-after-CRLF case and for exact size counting).  The first limit
broken, in stream order, is the error reported.

Must not know: commands, replies other than its two errors, the driver, asyncio.
"""

from __future__ import annotations

from typing import Final

from . import replies
from .events import ConnectionClosed, DataChunk, EndOfData
from .limits import DATA_TERMINATOR
from .replies import Reply

_CRLF: Final = b"\r\n"
_DOT_LINE: Final = b".\r\n"
_STUFFED: Final = b"\r\n."

#: The longest slab handed out in one ``DataChunk``.  Bounds the copy made per event when
#: the driver let a lot of input pile up; a large power of two keeps the per-event cost
#: negligible at normal receive sizes (64-256 KiB).
SLAB_LIMIT: Final = 1 << 20

#: How many trailing octets a discarding reader keeps: one less than the terminator.
_TAIL_KEEP: Final = len(DATA_TERMINATOR) - 1

DataEvent = DataChunk | EndOfData | ConnectionClosed


def first_overlong_line(slab: bytes, limit: int) -> int:
    """Index of the first line of ``slab`` longer than ``limit`` (CRLF included), or -1.

    ``slab`` starts at a line start and ends with CRLF.  A line starting at ``p`` fits iff
    a CRLF lies wholly inside ``slab[p:p + limit]``; the *last* CRLF in that window ends the
    last line that fits, so the walk jumps up to ``limit`` octets per C-level ``rfind``.
    """
    size = len(slab)
    start = 0
    while size - start > limit:
        crlf = slab.rfind(_CRLF, start, start + limit)
        if crlf < 0:
            return start
        start = crlf + 2
    return -1


def _stuffing_dots(prev: bytes, buf: bytearray, start: int, end: int) -> int:
    """Transparency dots in ``buf[start:end]``, given the 2 octets consumed before it.

    A dot counts when it follows a CRLF; the CRLF may lie partly or wholly in ``prev``.
    Every dot is counted exactly once across consecutive calls.
    """
    dots = buf.count(_STUFFED, start, end)
    after_crlf = prev == _CRLF and buf[start : start + 1] == b"."
    after_cr = prev[-1:] == b"\r" and buf[start : start + 2] == b"\n."
    if (after_crlf and end - start >= 1) or (after_cr and end - start >= 2):
        dots += 1
    return dots


def _last_two(prev: bytes, buf: bytearray, start: int, end: int) -> bytes:
    """The last 2 octets of ``prev + buf[start:end]``."""
    if end - start >= 2:
        return bytes(buf[end - 2 : end])
    return (prev + bytes(buf[start:end]))[-2:]


class DotDataReader:
    """Reads one message's content from a shared receive buffer; one instance per DATA."""

    __slots__ = (
        "_end_at",
        "_error",
        "_line_limit",
        "_prev",
        "_scan_from",
        "_size",
        "_size_limit",
        "_slab_limit",
    )

    def __init__(self, start: int, size_limit: int | None, line_limit: int) -> None:
        #: ``None`` or 0 means no size limit (aiosmtpd 1.4's ``data_size_limit``).
        self._size_limit = size_limit or 0
        self._line_limit = line_limit
        self._slab_limit = max(SLAB_LIMIT, line_limit)
        #: Where the next search for the terminator starts (absolute buffer index).
        self._scan_from = start
        #: Index of the terminating ``.`` line once found, else -1.
        self._end_at = -1
        #: The last two octets consumed; the DATA command's CRLF precedes the content.
        self._prev = _CRLF
        self._size = 0
        self._error: Reply | None = None

    def shift(self, removed: int) -> None:
        """The connection deleted ``removed`` octets from the front of the buffer."""
        self._scan_from -= removed
        if self._end_at >= 0:
            self._end_at -= removed

    def read(self, buf: bytearray, pos: int, eof: bool) -> tuple[DataEvent | None, int]:
        """Produce the next event from ``buf[pos:]``, or ``None`` if more input is needed.

        Returns the event and the new ``pos``.  After ``EndOfData`` ``pos`` is just past the
        terminator; after ``ConnectionClosed`` the rest of the buffer is consumed.
        """
        end_at = self._find_end(buf, pos)
        if self._error is not None:
            return self._discard(buf, pos, end_at, eof)
        if end_at == pos:
            return EndOfData(None, self._size), pos + len(_DOT_LINE)
        if end_at >= 0:
            stop = end_at
        else:
            if eof:
                return ConnectionClosed(), len(buf)
            last_crlf = buf.rfind(_CRLF, pos)
            if last_crlf < 0:
                if len(buf) - pos >= self._line_limit:
                    # The held-back partial line can only get longer.
                    self._error = replies.DATA_LINE_TOO_LONG
                    return self._discard(buf, pos, end_at, eof)
                return None, pos
            stop = last_crlf + 2
        if stop - pos > self._slab_limit:
            last_crlf = buf.rfind(_CRLF, pos, pos + self._slab_limit)
            if last_crlf < 0:
                self._error = replies.DATA_LINE_TOO_LONG
                return self._discard(buf, pos, end_at, eof)
            stop = last_crlf + 2
        return self._deliver(buf, pos, stop, end_at, eof)

    def _find_end(self, buf: bytearray, pos: int) -> int:
        end_at = self._end_at
        if end_at >= 0:
            return end_at
        if self._prev == _CRLF and buf[pos : pos + 3] == _DOT_LINE:
            end_at = pos
        else:
            found = buf.find(DATA_TERMINATOR, self._scan_from)
            if found >= 0:
                end_at = found + 2
            else:
                self._scan_from = max(pos, len(buf) - _TAIL_KEEP)
        self._end_at = end_at
        return end_at

    def _deliver(
        self, buf: bytearray, pos: int, stop: int, end_at: int, eof: bool
    ) -> tuple[DataEvent | None, int]:
        with memoryview(buf) as view:
            slab = bytes(view[pos:stop])
        long_line = first_overlong_line(slab, self._line_limit)
        if long_line >= 0:
            # Whichever limit broke first in stream order wins: the size limit if the
            # content before the long line already exceeded it.
            before = slab[:long_line]
            self._size += len(before) - before.count(_STUFFED) - before.startswith(b".")
            if self._size_limit and self._size > self._size_limit:
                self._error = replies.TOO_MUCH_DATA
            else:
                self._error = replies.DATA_LINE_TOO_LONG
            return self._discard(buf, pos + long_line, end_at, eof)
        content = slab.replace(_STUFFED, _CRLF)
        if content[:1] == b".":
            content = content[1:]
        self._size += len(content)
        if self._size_limit and self._size > self._size_limit:
            self._error = replies.TOO_MUCH_DATA
            return self._discard(buf, stop, end_at, eof)
        return DataChunk(content), stop

    def _discard(
        self, buf: bytearray, pos: int, end_at: int, eof: bool
    ) -> tuple[DataEvent | None, int]:
        """Count and drop content after a limit was broken; report it at the terminator."""
        # ``pos`` may sit inside a line here only when it is the start of the offending
        # line, so the 2 octets before it are still a CRLF.
        if end_at >= 0:
            self._size += (end_at - pos) - _stuffing_dots(self._prev, buf, pos, end_at)
            return EndOfData(self._error, self._size), end_at + len(_DOT_LINE)
        if eof:
            return ConnectionClosed(), len(buf)
        keep_from = len(buf) - _TAIL_KEEP
        if keep_from > pos:
            self._size += (keep_from - pos) - _stuffing_dots(self._prev, buf, pos, keep_from)
            self._prev = _last_two(self._prev, buf, pos, keep_from)
            pos = keep_from
        return None, pos
