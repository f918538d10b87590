"""The readers of message content: dot-stuffed DATA (RFC 5321 §4.5.2) and BDAT chunks.

Owns: finding the end of the message, unstuffing transparency dots, enforcing the DATA
line-length and message-size limits, and counting the message size while it streams;
and ``ChunkReader``, which reads a counted, raw BDAT chunk (RFC 3030; see its
docstring).  The rest of this header is about ``DotDataReader``.

Theory of operation.  The reader works in place on the connection's receive buffer
(``buf`` from index ``pos`` on) and never copies it whole.  Per call it does:

1. one scan of the newly received octets for ``CRLF.`` (resuming where the last scan
   stopped, minus 2 octets so a sequence split across receives is still seen), plus an
   O(1) look at ``pos`` for the ``.CRLF`` line that follows the previous CRLF.  The scan
   walks the dots with ``memchr`` while they are few (``_find_stuffed``), else it is one
   C-level 3-octet search.  Each ``CRLF.`` is either the terminator (``CRLF.CRLF``) or a
   transparency dot, whose position is remembered; so the one scan both finds the end
   and tells which slabs need unstuffing (most mail has no dot-led lines, and then none
   does).  A message with many
   dots (``_DOTS_PER_KIB``) switches to *bulk mode*: one ``find`` for ``CRLF.CRLF`` per
   call and one ``replace(b"\r\n.", b"\r\n")`` per slab, so the Python work per call
   stays bounded whatever the content;
2. one ``rfind`` for the last CRLF before the terminator (or the buffer end), so content
   is handed out in *slabs* of whole lines; at most one partial line is held back, and
   that line is never longer than ``line_limit``;
3. per slab: a proof that every line fits ``line_limit``: lines of one width (base64)
   by checking with two strided slices that a CRLF ends every ``width`` octets
   (``_past_regular_lines``), the rest by a windowed ``rfind`` walk in about
   ``len(slab) / line_limit`` C-level searches; a size check (the unstuffed size is known
   before anything is copied), and one copy that drops the remembered dots (plus the
   first line's, whose CRLF was the DATA command's): into the ``bytes`` of a
   ``DataChunk``, or, once the driver gave a ``sink`` (``write_content_to``), straight
   from the buffer into the sink, one ``write`` of a ``memoryview`` per piece between
   two dots, and the ``DataChunk`` only carries the count.

Measured with tests/core/bench_data_reader.py (78-octet lines, 256 KiB receives): about
2.6 GB/s for base64 (no dot), 0.9 GB/s for prose (lone dots), 1.2 GB/s with one line in
20 dot-led, 450 MB/s with every line dot-stuffed (bulk mode), against about 16 MB/s for
aiosmtpd 1.4's line-at-a-time reading (before the grid proof, which took base64's line
check from 54 to 6.5 µs per 256 KiB).  What remains per octet: the line-length walk for
lines of mixed widths (about 0.2 CPU-s/GB: one ``rfind`` call per ~1 KiB), the copy out
of the buffer (into the driver's storage when it gave a sink, else into the events), the
scan.

Invariants: ``pos`` is always the start of a line while content is being delivered (the
previous consumed octets were CRLF, or the CRLF of the DATA command itself).  Only
``CRLF.CRLF`` ends the data: a bare CR or LF never ends a line, so every SMTP-smuggling
variant (``LF.LF``, ``CR.CR``, ``LF.CRLF``, ...) stays message content.  Once a limit is
broken the reader stops handing out content and discards it, keeping only the last 4
octets (enough to spot a terminator that straddles two receives) and the last 2 consumed
octets (for the ``.CRLF``-after-CRLF case and for exact size counting).  The first limit
broken, in stream order, is the error reported; content past it is never handed out nor
written to a sink.  No view of the buffer outlives a call (the connection resizes it).

Must not know: commands, replies other than its two errors, the driver, asyncio.
"""

from __future__ import annotations

import bisect
from typing import Final, Protocol

from . import replies
from .events import ConnectionClosed, DataChunk, EndOfChunk, EndOfData
from .limits import DATA_TERMINATOR
from .replies import Reply

_CRLF: Final = b"\r\n"
_DOT_LINE: Final = b".\r\n"
_STUFFED: Final = b"\r\n."

#: The longest slab handed out in one ``DataChunk``.  Bounds the copy made per event when
#: the driver let a lot of input pile up; a large power of two keeps the per-event cost
#: negligible at normal receive sizes (64-256 KiB).
SLAB_LIMIT: Final = 1 << 20

#: Per-dot scanning allowance (see ``DotDataReader._scan_dots``): beyond this many
#: transparency dots per KiB of content, plus a head start, bulk unstuffing is cheaper.
_DOTS_PER_KIB: Final = 4
_DOT_HEAD_START: Final = 64

#: Dots that follow no CRLF which the scan of one read steps over one by one (plus two
#: per KiB scanned) before it falls back to the plain ``CRLF.`` search (``_find_stuffed``).
_LONE_DOT_HEAD_START: Final = 4

#: The most content ``DotDataReader.whole`` looks through for a message's end: beyond it
#: the events (``read``) take over, and a message that is not wholly buffered costs that
#: look at most once per DATA.
WHOLE_LIMIT: Final = 1 << 16

#: ``_past_regular_lines`` looks for a grid of equal lines only in ranges of at least this
#: many lines (and only if the second and third lines end on it).
_GRID_MIN_LINES: Final = 32

#: Up to this size a whole message is copied out of the buffer by slicing it (two copies,
#: cheaper than making and releasing a memoryview for a short message); beyond, through a
#: memoryview (one copy).
_SMALL_COPY: Final = 8192

#: How many trailing octets a discarding reader keeps: one less than the terminator.
_TAIL_KEEP: Final = len(DATA_TERMINATOR) - 1

DataEvent = DataChunk | EndOfData | EndOfChunk | ConnectionClosed


class ContentSink(Protocol):
    """Where a reader writes content instead of handing it out in ``DataChunk`` events
    (``ServerConnection.write_content_to``); ``io.BytesIO`` is one.

    ``write`` gets a ``memoryview`` of the receive buffer (or a ``bytes``), valid only
    during the call: it must copy what it needs and keep no reference to the view.
    """

    def write(self, data: memoryview | bytes, /) -> object: ...


def first_overlong_line(data: bytes | bytearray, limit: int, start: int = 0, end: int = -1) -> int:
    """Index of the first line of ``data[start:end]`` longer than ``limit`` (CRLF included),
    or -1 (``end=-1`` means the end of ``data``).

    The range starts at a line start and ends with CRLF.  A line starting at ``p`` fits iff
    a CRLF lies wholly inside ``data[p:p + limit]``; the *last* CRLF in that window ends the
    last line that fits, so the walk jumps up to ``limit`` octets per C-level ``rfind``.
    """
    if end < 0:
        end = len(data)
    last_start = end - limit
    if start < last_start:
        start = _past_regular_lines(data, limit, start, end)
    rfind = data.rfind  # about 280 calls per 256 KiB of short lines: keep them cheap
    while start < last_start:
        crlf = rfind(_CRLF, start, start + limit)
        if crlf < 0:
            return start
        start = crlf + 2
    return -1


def _past_regular_lines(data: bytes | bytearray, limit: int, start: int, end: int) -> int:
    """The first line start of ``data[start:end]`` (a range as ``first_overlong_line``
    takes) that a regular grid of CRLFs does not already prove short; ``start`` if there
    is none.

    Base64 (RFC 2045), the bulk of big mail, comes in lines of one width.  If the first
    line is ``width`` octets long (``width <= limit``) and a CRLF also ends at every
    further multiple of ``width``, no line in between can be longer than ``width``.  Two
    strided slices and two comparisons check that grid for a whole receive at C speed,
    where the ``rfind`` walk makes one Python-level call per ``limit`` octets (54 against
    6.5 µs per 256 KiB of base64).  The grid is tried only if it holds for the first
    three lines, so text of mixed widths pays two slices for it.
    """
    first = data.find(_CRLF, start, start + limit)
    if first < 0:
        return start
    width = first + 2 - start
    lines = (end - start) // width
    if (
        lines < _GRID_MIN_LINES
        or data[first + width : first + width + 2] != _CRLF
        or data[first + 2 * width : first + 2 * width + 2] != _CRLF
    ):
        return start  # (text of mixed widths: two slices, not the whole grid)
    top = start + lines * width
    crs = data[first:top:width]
    lfs = data[first + 1 : top : width]
    if crs == b"\r" * lines and lfs == b"\n" * lines:  # (memset and memcmp)
        return top
    regular = min(lines - len(crs.lstrip(b"\r")), lines - len(lfs.lstrip(b"\n")))
    return start + regular * width


def whole_message(
    buf: bytearray, pos: int, size_limit: int | None, line_limit: int
) -> tuple[bytes, int] | None:
    """A whole message's content starting at ``buf[pos]`` and the index past its
    terminator, if ``buf[pos:]`` holds all of it within ``WHOLE_LIMIT`` octets, with no
    transparency dot, no line over ``line_limit`` and no more than ``size_limit`` octets
    (``None`` or 0: no limit); else ``None``.  The content is what a ``DotDataReader``
    started at ``pos`` would deliver in its events; the connection calls this before it
    makes one (most short messages never need one).
    """
    if pos < len(buf) and buf[pos] == 0x2E:
        # The terminator at once, or a dot-stuffed first line (or its end is not here yet).
        return (b"", pos + 3) if buf[pos + 1 : pos + 3] == _CRLF else None
    # The first ``CRLF.`` must be the terminator: a dot-led line needs unstuffing.  It is
    # looked for dot by dot (``memchr``) as long as there are few lone dots.
    found, _ = _find_stuffed(buf, pos, pos, 0, pos + WHOLE_LIMIT)
    if found < 0 or buf[found + 3 : found + 5] != _CRLF:
        return None
    end_at = found + 2
    if (size_limit and end_at - pos > size_limit) or (
        end_at - pos > line_limit and first_overlong_line(buf, line_limit, pos, end_at) >= 0
    ):
        return None
    if end_at - pos <= _SMALL_COPY:
        return bytes(buf[pos:end_at]), end_at + 3
    with memoryview(buf) as view:
        content = bytes(view[pos:end_at])
    return content, end_at + 3


def _find_stuffed(
    buf: bytearray, start: int, origin: int, lone: int, end: int | None = None
) -> tuple[int, int]:
    """Index of the first ``CRLF.`` in ``buf`` at or after ``start`` (and wholly before
    ``end``), or -1, and how many lone dots the walk has stepped over since ``origin``
    (``lone`` before this call).

    ``bytearray.find`` with a 3-octet needle crawls (about 1.3 GB/s: CPython only uses
    ``memchr`` for 1-octet needles), while ``memchr`` for the dot alone runs at memory
    speed.  Big messages are mostly base64 or other dot-free encodings, so walking the
    dots and checking the two octets before each is far cheaper there.  Text is full of
    lone dots (dots that follow no CRLF), each a Python step: past
    ``_LONE_DOT_HEAD_START`` plus two per KiB scanned, the plain search takes over.
    """
    dot = buf.find(b".", start + 2, end)
    while dot >= 0:
        if buf[dot - 1] == 0x0A and buf[dot - 2] == 0x0D:
            return dot - 2, lone
        lone += 1
        if lone > _LONE_DOT_HEAD_START + ((dot - origin) >> 9):
            # A ``CRLF.`` starting before ``dot - 1`` would have put its dot before ``dot``.
            return buf.find(_STUFFED, dot - 1, end), lone
        dot = buf.find(b".", dot + 1, end)
    return -1, lone


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


def _unstuff(buf: bytearray, pos: int, stop: int, skip: list[int]) -> bytes:
    """A copy of ``buf[pos:stop]`` without the octets at the (sorted) indexes ``skip``."""
    with memoryview(buf) as view:
        if not skip:
            return bytes(view[pos:stop])
        pieces = []
        start = pos
        for dot in skip:
            pieces.append(view[start:dot])
            start = dot + 1
        pieces.append(view[start:stop])
        content = b"".join(pieces)
        pieces.clear()  # release the slices before the view itself
    return content


def _write_unstuffed(
    sink: ContentSink, buf: bytearray, pos: int, stop: int, skip: list[int]
) -> None:
    """Write ``buf[pos:stop]`` without the octets at the (sorted) indexes ``skip`` to
    ``sink``, straight from the buffer: one ``write`` per piece between two dots (a
    ``with`` per piece would cost more than the copy it saves).  Nothing here keeps a
    view once this returns, so the buffer can be resized again."""
    write = sink.write
    with memoryview(buf) as view:
        start = pos
        for dot in skip:
            if dot > start:
                write(view[start:dot])
            start = dot + 1
        write(view[start:stop])


class DotDataReader:
    """Reads one message's content from a shared receive buffer; one instance per DATA."""

    __slots__ = (
        "_bulk",
        "_dots",
        "_dots_seen",
        "_end_at",
        "_error",
        "_line_limit",
        "_prev",
        "_scan_from",
        "_size",
        "_size_limit",
        "_slab_limit",
        "_start",
        "sink",
    )

    def __init__(self, start: int, size_limit: int | None, line_limit: int) -> None:
        #: Where content goes instead of into ``DataChunk`` events (``None``: events).
        self.sink: ContentSink | None = None
        #: ``None`` or 0 means no size limit (aiosmtpd 1.4's ``data_size_limit``).
        self._size_limit = size_limit or 0
        self._line_limit = line_limit
        self._slab_limit = max(SLAB_LIMIT, line_limit)
        #: Where the content starts; with ``_scan_from`` it tells how much was scanned.
        self._start = start
        #: Where the next search for the terminator starts (absolute buffer index).
        self._scan_from = start
        #: Positions of the transparency dots found by the scan and not yet delivered.
        self._dots: list[int] = []
        self._dots_seen = 0
        #: Too many dots for the per-dot scan: find the terminator and ``replace`` instead.
        self._bulk = False
        #: Index of the terminating ``.`` line once found, else -1.
        self._end_at = -1
        #: The last two octets consumed; the DATA command's CRLF precedes the content.
        self._prev = _CRLF
        self._size = 0
        self._error: Reply | None = None

    def shift(self, removed: int) -> None:
        """The connection deleted ``removed`` octets from the front of the buffer."""
        # Delivery may have moved past the scan point: the scan never restarts before 0,
        # which is where the unconsumed octets now start (a negative index would count
        # from the end of the buffer and skip a terminator).
        self._scan_from = max(0, self._scan_from - removed)
        self._start -= removed
        if self._dots:
            self._dots = [dot - removed for dot in self._dots]
        if self._end_at >= 0:
            self._end_at -= removed

    def whole(self, buf: bytearray, pos: int) -> tuple[bytes, int] | None:
        """``whole_message`` for this reader's limits, when nothing was read yet; else
        ``None``, and nothing changes (``read`` then tells the rest, errors included)."""
        if pos != self._start or self._error is not None:
            return None
        return whole_message(buf, pos, self._size_limit, self._line_limit)

    def read(self, buf: bytearray, pos: int, eof: bool) -> tuple[DataEvent | None, int]:
        """Produce the next event from ``buf[pos:]``, or ``None`` if more input is needed.

        Returns the event and the new ``pos``.  After ``EndOfData`` ``pos`` is just past the
        terminator; after ``ConnectionClosed`` the rest of the buffer is consumed.  With a
        ``sink`` each slab is written to it and its ``DataChunk`` carries only the count.
        """
        end_at = self._find_end(buf, pos)
        if self._error is not None:
            return self._discard(buf, pos, pos, end_at, eof)
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
                    return self._discard(buf, pos, pos, end_at, eof)
                return None, pos
            stop = last_crlf + 2
        if stop - pos > self._slab_limit:
            last_crlf = buf.rfind(_CRLF, pos, pos + self._slab_limit)
            if last_crlf < 0:
                self._error = replies.DATA_LINE_TOO_LONG
                return self._discard(buf, pos, pos, end_at, eof)
            stop = last_crlf + 2
        return self._deliver(buf, pos, stop, end_at, eof)

    def _find_end(self, buf: bytearray, pos: int) -> int:
        end_at = self._end_at
        if end_at >= 0:
            return end_at
        if self._prev == _CRLF and buf[pos : pos + 3] == _DOT_LINE:
            end_at = pos
        elif self._bulk:
            found = buf.find(DATA_TERMINATOR, max(pos, self._scan_from))
            if found >= 0:
                end_at = found + 2
            else:
                self._scan_from = max(pos, len(buf) - _TAIL_KEEP)
        else:
            end_at = self._scan_dots(buf, pos)
        self._end_at = end_at
        return end_at

    def _scan_dots(self, buf: bytearray, pos: int) -> int:
        """Find the terminator by visiting every ``CRLF.``; remember the stuffing dots.

        Each ``CRLF.`` either starts the terminator or is a transparency dot, so one
        search serves both purposes and a slab without dots needs no unstuffing pass.
        Content with more dots than ``_DOTS_PER_KIB`` per KiB (plus a head start) switches
        to bulk mode for the rest of the message, bounding the per-dot Python work.
        """
        dots = self._dots
        size = len(buf)
        # A ``CRLF.`` that starts before ``pos`` has its dot at ``pos``: the start check
        # above and the first-line case of ``_take_dots`` handle it.
        origin = max(pos, self._scan_from)
        found, lone = _find_stuffed(buf, origin, origin, 0)
        while found >= 0:
            after = buf[found + 3 : found + 5]
            if after == _CRLF:
                return found + 2
            if len(after) < 2 and after in b"\r":
                # Not known yet whether this is the terminator: look again next time.
                self._scan_from = found
                return -1
            dots.append(found + 2)
            self._dots_seen += 1
            if self._dots_seen > _DOT_HEAD_START + ((found - self._start) >> 10) * _DOTS_PER_KIB:
                self._bulk = True
                dots.clear()  # bulk unstuffing finds every dot itself
                self._scan_from = found + 3
                return self._find_end(buf, pos)
            found, lone = _find_stuffed(buf, found + 3, origin, lone)
        self._scan_from = max(pos, size - 2)
        return -1

    def _deliver(
        self, buf: bytearray, pos: int, stop: int, end_at: int, eof: bool
    ) -> tuple[DataEvent | None, int]:
        long_line = first_overlong_line(buf, self._line_limit, pos, stop)
        if long_line >= 0:
            # Whichever limit broke first in stream order wins: the size limit if the
            # content before the long line already exceeded it.
            if long_line > pos:
                dots = buf.count(_STUFFED, pos, long_line) + (buf[pos] == 0x2E)
                self._size += long_line - pos - dots
            if self._size_limit and self._size > self._size_limit:
                self._error = replies.TOO_MUCH_DATA
            else:
                self._error = replies.DATA_LINE_TOO_LONG
            return self._discard(buf, pos, long_line, end_at, eof)
        # The size is known before anything is copied, so content past the limit is
        # never handed out (nor written to the sink).
        content: bytes | None = None
        skip: list[int] = []
        if self._bulk:
            content = self._bulk_unstuff(buf, pos, stop)
            self._size += len(content)
        else:
            skip = self._take_dots(buf, pos, stop)
            self._size += stop - pos - len(skip)
        if self._size_limit and self._size > self._size_limit:
            self._error = replies.TOO_MUCH_DATA
            return self._discard(buf, pos, stop, end_at, eof)
        sink = self.sink
        if sink is None:
            return DataChunk(_unstuff(buf, pos, stop, skip) if content is None else content), stop
        if content is None:
            _write_unstuffed(sink, buf, pos, stop, skip)
            return DataChunk(b"", stop - pos - len(skip)), stop
        sink.write(content)
        return DataChunk(b"", len(content)), stop

    def _take_dots(self, buf: bytearray, pos: int, stop: int) -> list[int]:
        """The positions of the dots to drop from ``buf[pos:stop]``, taken off ``_dots``."""
        dots = self._dots
        count = bisect.bisect_left(dots, stop)
        skip = dots[:count]
        del dots[:count]
        if buf[pos] == 0x2E and (not skip or skip[0] != pos):
            # The first line's dot: its CRLF was the DATA command's, outside the scan.
            skip.insert(0, pos)
        return skip

    @staticmethod
    def _bulk_unstuff(buf: bytearray, pos: int, stop: int) -> bytes:
        with memoryview(buf) as view:
            content = bytes(view[pos:stop]).replace(_STUFFED, _CRLF)
        return content[1:] if content[:1] == b"." else content

    def _discard(
        self, buf: bytearray, pos: int, counted_to: int, end_at: int, eof: bool
    ) -> tuple[DataEvent | None, int]:
        """Count and drop content after a limit was broken; report it at the terminator.

        ``buf[pos:counted_to]`` is already counted in ``_size``; ``counted_to`` is a line
        start (so the 2 octets before it are a CRLF) or ``pos`` itself.
        """
        self._dots.clear()
        if counted_to > pos:
            self._prev = _CRLF
            pos = counted_to
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


class ChunkReader:
    """Reads one ``BDAT`` chunk (RFC 3030 §2): exactly ``size`` raw octets.

    No unstuffing, no line-length check: the chunk is content byte for byte.  ``room`` is
    how many more octets the message may hold (``None``: no limit); past it the rest of
    the chunk is consumed and discarded, and ``EndOfChunk.error`` is ``552``.  With
    ``discard`` every octet is consumed and dropped (the driver refuses the BDAT but must
    not read its content as commands).  Content goes out in slabs of at most
    ``SLAB_LIMIT`` octets, so nothing beyond one receive is ever held here; with a
    ``sink`` each slab is written to it straight from the buffer instead.
    """

    __slots__ = ("_discard", "_error", "_remaining", "_room", "_size", "sink")

    def __init__(self, size: int, room: int | None, discard: bool) -> None:
        self._size = size
        self._remaining = size
        self._room = room
        self._discard = discard
        self._error: Reply | None = None
        #: Where content goes instead of into ``DataChunk`` events (``None``: events).
        self.sink: ContentSink | None = None

    def shift(self, removed: int) -> None:
        """The connection compacted its buffer; a chunk reader keeps no positions."""

    def read(self, buf: bytearray, pos: int, eof: bool) -> tuple[DataEvent | None, int]:
        """Produce the next event from ``buf[pos:]``, or ``None`` if more input is needed."""
        while True:
            if self._remaining == 0:
                return EndOfChunk(self._error, self._size), pos
            take = min(len(buf) - pos, self._remaining, SLAB_LIMIT)
            if take == 0:
                return (ConnectionClosed(), len(buf)) if eof else (None, pos)
            self._remaining -= take
            if self._room is not None and self._error is None and not self._discard:
                if take > self._room:
                    self._error = replies.TOO_MUCH_DATA
                else:
                    self._room -= take
            if self._discard or self._error is not None:
                pos += take
                continue
            sink = self.sink
            with memoryview(buf) as view, view[pos : pos + take] as piece:
                if sink is not None:
                    sink.write(piece)
                    return DataChunk(b"", take), pos + take
                chunk = bytes(piece)  # one copy (a bytearray slice would be two)
            return DataChunk(chunk), pos + take
