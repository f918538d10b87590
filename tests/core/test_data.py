"""DATA mode: end-of-data detection, unstuffing, limits, smuggling (no sockets).

A small reference model (``reference``) states the framing rules line by line; the
Hypothesis tests check the bulk reader against it under every way of splitting the input.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiosmtpd._core import data as data_module
from aiosmtpd._core import replies
from aiosmtpd._core.connection import CoreConfig, ServerConnection
from aiosmtpd._core.data import first_overlong_line
from aiosmtpd._core.events import (
    NEED_DATA,
    Command,
    ConnectionClosed,
    DataChunk,
    EndOfData,
    Event,
)
from aiosmtpd._core.replies import Reply
from aiosmtpd._core.state import Mode

from .driver import SPLITTERS, at_cuts, drive

Splitter = Callable[[bytes], list[bytes]]

DATA_CMD = Command("DATA", None, b"DATA")


@pytest.fixture(params=sorted(SPLITTERS))
def split(request: pytest.FixtureRequest) -> Splitter:
    return SPLITTERS[request.param]


@dataclass
class Expected:
    content: bytes
    error: Reply | None
    size: int
    rest: bytes


def reference(stream: bytes, size_limit: int | None, line_limit: int) -> Expected | None:
    """The DATA rules, one line at a time; ``None`` if ``stream`` holds no terminator."""
    end = (b"\r\n" + stream).find(b"\r\n.\r\n")
    if end < 0:
        return None
    raw_content, rest = stream[:end], stream[end + 3 :]
    content = []
    size = 0
    error: Reply | None = None
    for line in raw_content.split(b"\r\n")[:-1]:
        if error is None and len(line) + 2 > line_limit:
            error = replies.DATA_LINE_TOO_LONG
        unstuffed = line[1:] if line.startswith(b".") else line
        size += len(unstuffed) + 2
        content.append(unstuffed + b"\r\n")
        if error is None and size_limit and size > size_limit:
            error = replies.TOO_MUCH_DATA
    return Expected(b"".join(content), error, size, rest)


def check_against_reference(
    stream: bytes, pieces: list[bytes], size_limit: int | None, line_limit: int, eof: bool
) -> None:
    config = CoreConfig(data_size_limit=size_limit, line_length_limit=line_limit)
    events = drive(pieces, config=config, eof=eof)
    assert events[0] == DATA_CMD
    expected = reference(stream, size_limit, line_limit)
    body = events[1:]
    if expected is None:
        # No terminator: content so far (maybe), then EOF abandons the message.
        assert not any(isinstance(event, EndOfData) for event in body)
        assert all(isinstance(event, DataChunk) for event in body[:-1] if body)
        if eof:
            assert body[-1] == ConnectionClosed()
        return
    end = next(i for i, event in enumerate(body) if isinstance(event, EndOfData))
    chunks = body[:end]
    delivered = chunks[0].data if chunks else b""  # type: ignore[union-attr]
    assert len(chunks) <= 1  # drive() merges consecutive chunks
    if expected.error is None:
        assert delivered == expected.content
    else:
        # Content delivered before the limit broke is a prefix; the driver discards it.
        assert expected.content.startswith(delivered)
    assert body[end] == EndOfData(expected.error, expected.size)
    # What follows the terminator is parsed exactly as a fresh connection parses it.
    assert body[end + 1 :] == drive([expected.rest], config=config, eof=eof)


def test_reference_model_examples() -> None:
    assert reference(b".\r\n", None, 1001) == Expected(b"", None, 0, b"")
    assert reference(b"a\r\n..b\r\n.\r\nX", None, 1001) == Expected(b"a\r\n.b\r\n", None, 7, b"X")
    assert reference(b"a\n.\nb", None, 1001) is None


# --- framing table -------------------------------------------------------------------------

DATA_TABLE = [
    # (stream after "DATA\r\n", content)
    (b".\r\n", b""),
    (b"hello\r\n.\r\n", b"hello\r\n"),
    (b"\r\n.\r\n", b"\r\n"),
    (b"..\r\n.\r\n", b".\r\n"),
    (b"...\r\n.\r\n", b"..\r\n"),
    (b".x\r\n.y\r\nz.\r\n.\r\n", b"x\r\ny\r\nz.\r\n"),
    (b"a\r\n..\r\n.\r\n", b"a\r\n.\r\n"),
    (b"a\rb\nc\r\n.\r\n", b"a\rb\nc\r\n"),
    (b"bare\n.\nlf\r\n.\r\n", b"bare\n.\nlf\r\n"),
    (b"\x00\xff\r\n.\r\n", b"\x00\xff\r\n"),
    (b". \r\n.\r\n", b" \r\n"),
    (b".\r\r\n.\r\n", b"\r\r\n"),
]


@pytest.mark.parametrize(("stream", "content"), DATA_TABLE)
def test_data_table(stream: bytes, content: bytes, split: Splitter) -> None:
    events = drive(split(b"DATA\r\n" + stream + b"NOOP\r\n"))
    expected: list[Event] = [DATA_CMD]
    if content:
        expected.append(DataChunk(content))
    expected += [EndOfData(None, len(content)), Command("NOOP", None, b"NOOP")]
    assert events == expected


def test_data_after_bare_lf_data_command() -> None:
    events = drive([b"DATA\n.\r\n"])
    assert events == [DATA_CMD, EndOfData(None, 0)]


def test_data_not_entered_without_354() -> None:
    reply_503 = lambda event: (b"503 Error: need RCPT command",)  # noqa: E731
    events = drive([b"DATA\r\nhello\r\n.\r\n"], responder=reply_503)
    assert events == [
        DATA_CMD,
        Command("HELLO", None, b"hello"),
        Command(".", None, b"."),
    ]


def test_pipelined_bytes_after_terminator_stay_for_commands() -> None:
    conn = ServerConnection(CoreConfig())
    conn.receive_data(b"DATA\r\n")
    assert conn.next_event() == DATA_CMD
    conn.send(b"354 go")
    conn.receive_data(b"x\r\n.\r\nNOOP\r\nRS")
    assert conn.next_event() == DataChunk(b"x\r\n")
    assert conn.next_event() == EndOfData(None, 3)
    assert conn.mode is Mode.COMMAND
    assert conn.buffered_size == len(b"NOOP\r\nRS")
    assert conn.next_event() == Command("NOOP", None, b"NOOP")
    assert conn.next_event() is NEED_DATA


def test_354_after_end_of_data_does_not_reenter_data() -> None:
    conn = ServerConnection(CoreConfig())
    conn.receive_data(b"DATA\r\n.\r\nhello\r\n")
    assert conn.next_event() == DATA_CMD
    conn.send(b"354 go")
    assert conn.next_event() == EndOfData(None, 0)
    conn.send(b"354 confused driver")
    assert conn.mode is Mode.COMMAND
    assert conn.next_event() == Command("HELLO", None, b"hello")


# --- SMTP smuggling ----------------------------------------------------------------------

SMUGGLING_SEQUENCES = [
    b"\n.\n",
    b"\n.\r\n",
    b"\r.\r",
    b"\r.\n",
    b"\n.\r",
    b"\r\n.\n",
    b"\r.\r\n",
    b"\r\n.\r",
    b"\r\n\x00.\r\n",
    b"\r\r\n.\r\r\n",
]
SMUGGLED = b"MAIL FROM:<evil@x>\r\nRCPT TO:<v@x>\r\nDATA\r\nsmuggled\r\n.\r\n"


@pytest.mark.parametrize("sequence", SMUGGLING_SEQUENCES, ids=repr)
@pytest.mark.parametrize("prefix", [b"Subject: hi\r\n\r\nbody", b""], ids=["inside", "at-start"])
def test_smuggling_sequence_does_not_end_data(
    sequence: bytes, prefix: bytes, split: Splitter
) -> None:
    stream = prefix + sequence + SMUGGLED
    events = drive(split(b"DATA\r\n" + stream))
    expected = reference(stream, None, 1001)
    assert expected is not None
    assert expected.rest == b""
    assert events == [DATA_CMD, DataChunk(expected.content), EndOfData(None, expected.size)]
    assert b"MAIL FROM:<evil@x>\r\n" in expected.content
    assert b"smuggled\r\n" in expected.content


# --- limits --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"x" * 998, None),
        (b"x" * 999, None),  # 999 + CRLF = 1001: the longest line accepted
        (b"x" * 1000, replies.DATA_LINE_TOO_LONG),
        (b"." + b"x" * 998, None),  # the stuffing dot counts, as received
        (b"." + b"x" * 999, replies.DATA_LINE_TOO_LONG),
        (b"x\n" * 500, replies.DATA_LINE_TOO_LONG),  # bare LFs do not end lines
        (b"x\n" * 499 + b"x", None),
        (b"x\n" * 500 + b"x", replies.DATA_LINE_TOO_LONG),
        (b"x" * 100_000, replies.DATA_LINE_TOO_LONG),
    ],
)
def test_data_line_limit_1001(line: bytes, error: Reply | None, split: Splitter) -> None:
    stream = b"ok\r\n" + line + b"\r\nafter\r\n.\r\n"
    expected = reference(stream, None, 1001)
    assert expected is not None
    assert expected.error == error
    events = drive(split(b"DATA\r\n" + stream + b"NOOP\r\n"))
    assert events[-2] == EndOfData(error, expected.size)
    assert events[-1] == Command("NOOP", None, b"NOOP")
    if error is None:
        assert events[1] == DataChunk(expected.content)


@pytest.mark.parametrize(("size", "ok"), [(999, True), (1000, True), (1001, False)])
def test_data_size_limit(size: int, ok: bool, split: Splitter) -> None:
    line = b"y" * 98 + b"\r\n"
    content = line * 9 + b"z" * (size - 902) + b"\r\n"
    assert len(content) == size
    config = CoreConfig(data_size_limit=1000)
    events = drive(split(b"DATA\r\n" + content + b".\r\n"), config=config)
    error = None if ok else replies.TOO_MUCH_DATA
    assert events[-1] == EndOfData(error, size)
    if ok:
        assert events[1] == DataChunk(content)


def test_size_limit_counts_unstuffed_octets() -> None:
    content = b"..\r\n" * 250  # 1000 octets received, 750 once unstuffed
    events = drive([b"DATA\r\n" + content + b".\r\n"], config=CoreConfig(data_size_limit=750))
    assert events[-1] == EndOfData(None, 750)


@pytest.mark.parametrize("limit", [None, 0])
def test_no_size_limit(limit: int | None) -> None:
    content = b"x" * 998 + b"\r\n"
    events = drive([b"DATA\r\n" + content * 100 + b".\r\n"], config=CoreConfig(limit))
    assert events[-1] == EndOfData(None, 100_000)


def test_first_limit_broken_wins() -> None:
    size_first = b"a\r\n" * 10 + b"x" * 2000 + b"\r\n.\r\n"
    events = drive([b"DATA\r\n" + size_first], config=CoreConfig(data_size_limit=20))
    assert events[-1] == EndOfData(replies.TOO_MUCH_DATA, 2032)
    line_first = b"x" * 2000 + b"\r\n" + b"a\r\n" * 10 + b".\r\n"
    events = drive([b"DATA\r\n" + line_first], config=CoreConfig(data_size_limit=20))
    assert events[-1] == EndOfData(replies.DATA_LINE_TOO_LONG, 2032)


def test_forty_mib_over_one_mib_limit_stays_bounded() -> None:
    conn = ServerConnection(CoreConfig(data_size_limit=1 << 20))
    conn.receive_data(b"DATA\r\n")
    assert conn.next_event() == DATA_CMD
    conn.send(b"354 go")
    piece = (b"x" * 76 + b"\r\n") * 840  # 65,520 octets
    total = 0
    delivered = 0
    max_buffered = 0
    while total < 40 << 20:
        conn.receive_data(piece)
        total += len(piece)
        while (event := conn.next_event()) is not NEED_DATA:
            assert isinstance(event, DataChunk)
            delivered += len(event.data)
        max_buffered = max(max_buffered, conn.buffered_size, len(conn._buf))
    assert delivered <= 1 << 20
    assert max_buffered <= 2 * len(piece)
    conn.receive_data(b".\r\nNOOP\r\n")
    assert conn.next_event() == EndOfData(replies.TOO_MUCH_DATA, total)
    assert conn.next_event() == Command("NOOP", None, b"NOOP")


def test_ten_mib_data_line_without_crlf_stays_bounded() -> None:
    conn = ServerConnection(CoreConfig())
    conn.receive_data(b"DATA\r\n")
    assert conn.next_event() == DATA_CMD
    conn.send(b"354 go")
    for _ in range(160):
        conn.receive_data(b"\n" * 65_536)
        assert conn.next_event() is NEED_DATA
        assert len(conn._buf) <= 2 * 65_536
    conn.receive_data(b"\r\n.\r\n")
    assert conn.next_event() == EndOfData(replies.DATA_LINE_TOO_LONG, 160 * 65_536 + 2)


@pytest.mark.parametrize("discarding", [False, True])
def test_eof_mid_data_abandons_the_message(discarding: bool, split: Splitter) -> None:
    config = CoreConfig(data_size_limit=5 if discarding else None)
    conn = ServerConnection(config)
    events = drive(split(b"DATA\r\nSubject: x\r\n\r\npartial"), conn=conn, eof=True)
    assert events[0] == DATA_CMD
    assert events[-1] == ConnectionClosed()
    assert not any(isinstance(event, EndOfData) for event in events)
    assert conn.mode is Mode.CLOSED


def test_eof_after_terminator_completes_the_message() -> None:
    events = drive([b"DATA\r\nx\r\n.\r\n"], eof=True)
    assert events == [DATA_CMD, DataChunk(b"x\r\n"), EndOfData(None, 3), ConnectionClosed()]


def test_byte_at_a_time_is_not_quadratic() -> None:
    message = (b"x" * 76 + b"\r\n") * 4000  # 312 KB
    conn = ServerConnection(CoreConfig())
    conn.receive_data(b"DATA\r\n")
    assert conn.next_event() == DATA_CMD
    conn.send(b"354 go")
    started = time.perf_counter()
    delivered = 0
    for i in range(len(message)):
        conn.receive_data(message[i : i + 1])
        while (event := conn.next_event()) is not NEED_DATA:
            delivered += len(event.data)  # type: ignore[union-attr]
        assert len(conn._buf) < 8192
    elapsed = time.perf_counter() - started
    assert delivered == len(message)
    # Linear work is ~1 µs per octet; a rescan of the buffer per octet would take minutes.
    assert elapsed < 20


def test_first_overlong_line() -> None:
    assert first_overlong_line(b"", 5) == -1
    assert first_overlong_line(b"abc\r\n", 5) == -1
    assert first_overlong_line(b"abcd\r\n", 5) == 0
    assert first_overlong_line(b"ab\r\nabc\r\nabcd\r\n", 5) == 9
    assert first_overlong_line(b"a\rb\r\n", 5) == -1
    assert first_overlong_line(b"a\rbc\r\n", 5) == 0
    slab = (b"x" * 997 + b"\r\n") * 100 + b"y" * 1000 + b"\r\n"
    assert first_overlong_line(slab, 1001) == 99_900


def _overlong_reference(data: bytes, limit: int, start: int = 0) -> int:
    """What ``first_overlong_line`` must answer, line by line (only CRLF ends a line)."""
    while start < len(data):
        end = data.index(b"\r\n", start) + 2
        if end - start > limit:
            return start
        start = end
    return -1


def _lines(widths: list[int], filler: bytes = b"Q") -> bytes:
    return b"".join(filler * (width - 2) + b"\r\n" for width in widths)


@pytest.mark.parametrize("width_vs_limit", [-1, 0, 1])
def test_a_grid_of_equal_lines_just_under_at_and_over_the_limit(width_vs_limit: int) -> None:
    limit = 80
    data = _lines([limit + width_vs_limit] * 100)
    assert first_overlong_line(data, limit) == (0 if width_vs_limit > 0 else -1)


@pytest.mark.parametrize("where", [0, 1, 31, 32, 33, 60, 99])
@pytest.mark.parametrize("long_width", [81, 82, 200, 1000])
def test_one_long_line_among_equal_ones_is_found(where: int, long_width: int) -> None:
    """The grid of 78-octet lines is broken by one longer line: the walk takes over where
    the grid stops and finds it, wherever it is."""
    widths = [78] * 100
    widths[where] = long_width
    data = _lines(widths)
    assert first_overlong_line(data, 80) == 78 * where


def test_lines_shorter_than_the_grid_between_its_crlfs_are_fine() -> None:
    # A CRLF every 78 octets, and more CRLFs in between: every line is shorter still.
    line = b"QQ\r\nQQQQ\r\n" + b"Q" * 66 + b"\r\n"
    assert len(line) == 78
    assert first_overlong_line(line * 100, 78) == -1
    assert first_overlong_line(line * 100, 68) == -1
    assert first_overlong_line(line * 100, 67) == 10


def test_bare_cr_and_lf_on_the_grid_do_not_end_lines() -> None:
    """A bare CR or LF where the grid expects CRLF leaves a line twice as long."""
    for broken in (b"Q" * 76 + b"\rQ", b"Q" * 76 + b"Q\n", b"Q" * 76 + b"\n\r"):
        data = bytearray(_lines([78] * 100))
        data[78 * 40 : 78 * 41] = broken
        assert first_overlong_line(bytes(data), 100) == 78 * 40
        assert first_overlong_line(bytes(data), 156) == -1


@settings(max_examples=300, deadline=None)
@given(
    runs=st.lists(st.tuples(st.integers(2, 40), st.integers(1, 60)), min_size=1, max_size=6),
    limit=st.integers(2, 50),
    breaks=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from([b"\r", b"\n", b"Q"]))),
)
def test_first_overlong_line_equals_the_reference(
    runs: list[tuple[int, int]], limit: int, breaks: list[tuple[int, bytes]]
) -> None:
    """Runs of equal lines (what the grid proves) of any widths, with octets overwritten
    anywhere but in the final CRLF (bare CRs and LFs, broken grids), against the
    line-by-line reference."""
    data = bytearray(_lines([width for width, count in runs for _ in range(count)]))
    for at, octet in breaks:
        if at < len(data) - 2:
            data[at : at + 1] = octet
    expected = _overlong_reference(bytes(data), limit)
    assert first_overlong_line(bytes(data), limit) == expected
    assert first_overlong_line(data, limit) == expected
    # From a later line start, and within a larger buffer.
    starts = [i + 2 for i in range(len(data) - 1) if data[i : i + 2] == b"\r\n"]
    for start in starts[:3]:
        padded = b"junk" + bytes(data) + b"tail"
        assert first_overlong_line(padded, limit, start + 4, len(data) + 4) == (
            -1 if (found := _overlong_reference(bytes(data), limit, start)) < 0 else found + 4
        )


# --- property tests against the reference model -----------------------------------------

_TOKENS = st.sampled_from(
    [b"\r\n", b"\r", b"\n", b".", b"..", b"a", b"bc", b"\x00", b"\r\n.\r\n", b"\r\n.", b"x" * 9]
)
_STREAMS = st.lists(_TOKENS, max_size=40).map(b"".join)


@contextmanager
def dot_budget(head_start: int) -> Iterator[None]:
    """Set how many transparency dots the reader visits one by one before going bulk.

    The budget also sets how many lone dots (not after a CRLF) the scan of one read walks
    with ``memchr`` before it falls back to the 3-octet search: in these short streams 0
    falls back at the first lone dot, 2 mid-read, 64 hardly ever.
    """
    with (
        mock.patch.object(data_module, "_DOT_HEAD_START", head_start),
        mock.patch.object(data_module, "_DOTS_PER_KIB", min(head_start, 4)),
        mock.patch.object(data_module, "_LONE_DOT_HEAD_START", head_start),
    ):
        yield


#: 0: bulk from the first dot; 2: switches mid-message; 64: the default (per-dot scan).
_BUDGETS = st.sampled_from([0, 2, 64])


#: A 6,000-octet head makes the connection compact its buffer mid-message.
_HEADS = st.sampled_from([b"", b"ab\r\n" * 1500, b".a\r\n" * 1500])


@settings(max_examples=500)
@given(
    head=_HEADS,
    tail=_STREAMS,
    cuts=st.lists(st.integers(0, 7000), max_size=10),
    size_limit=st.sampled_from([None, 0, 1, 5, 20, 60, 6010]),
    line_limit=st.sampled_from([3, 4, 6, 12, 1001]),
    eof=st.booleans(),
    budget=_BUDGETS,
)
def test_matches_reference_at_random_splits(
    head: bytes,
    tail: bytes,
    cuts: list[int],
    size_limit: int | None,
    line_limit: int,
    eof: bool,
    budget: int,
) -> None:
    stream = head + tail
    data = b"DATA\r\n" + stream
    with dot_budget(budget):
        check_against_reference(stream, at_cuts(data, cuts), size_limit, line_limit, eof)


@settings(max_examples=200)
@given(
    stream=_STREAMS,
    size_limit=st.sampled_from([None, 5, 20]),
    line_limit=st.sampled_from([3, 6, 1001]),
    budget=_BUDGETS,
)
def test_matches_reference_byte_at_a_time(
    stream: bytes, size_limit: int | None, line_limit: int, budget: int
) -> None:
    data = b"DATA\r\n" + stream
    pieces = [data[i : i + 1] for i in range(len(data))]
    with dot_budget(budget):
        check_against_reference(stream, pieces, size_limit, line_limit, eof=True)


@pytest.mark.parametrize("budget", [0, 2, 64])
def test_dot_heavy_message_in_large_chunks(budget: int) -> None:
    lines = [b"..%d\r\n" % i if i % 3 else b"plain %d\r\n" % i for i in range(20_000)]
    stream = b"".join(lines) + b".\r\n"
    data = b"DATA\r\n" + stream
    pieces = [data[i : i + 65_536] for i in range(0, len(data), 65_536)]
    with dot_budget(budget):
        check_against_reference(stream, pieces, None, 1001, eof=False)


@pytest.mark.parametrize("size_limit", [None, 1], ids=["delivering", "discarding"])
@pytest.mark.parametrize("budget", [0, 64], ids=["bulk", "per-dot"])
def test_terminator_after_compaction_at_a_line_boundary(
    size_limit: int | None, budget: int
) -> None:
    # Regression: the first receive ends exactly at a CRLF past the compaction threshold;
    # the scan position must survive the buffer compaction.
    stream = b"ab\r\n" * 1500 + b"\r\n.\r\nNOOP\r\n"
    data = b"DATA\r\n" + stream
    for cut in (6 + 4 * 1457, 6 + 4 * 1500, 6 + 4 * 1500 + 2):
        with dot_budget(budget):
            check_against_reference(stream, [data[:cut], data[cut:]], size_limit, 1001, False)


@pytest.mark.parametrize("lone_dots", [0, 3, 4, 5, 40])
def test_stuffed_dots_after_many_lone_dots_in_one_read(lone_dots: int) -> None:
    # The dot walk gives up after _LONE_DOT_HEAD_START (4) lone dots near the start of a
    # read and falls back to the plain search: stuffed dots and the terminator before, at
    # and after that point are all found, whatever the receive boundaries.
    prose = b"Smith. " * lone_dots + b"\r\n"
    stream = (b"..a\r\n" + prose) * 3 + b"a.b\r\n.\r\n" + b"QUIT\r\n"
    data = b"DATA\r\n" + stream
    for pieces in ([data], [data[i : i + 7] for i in range(0, len(data), 7)]):
        check_against_reference(stream, pieces, None, 1001, eof=False)


def test_content_receives_keep_the_buffer_allocation() -> None:
    # Compacting message content by overwriting in place (not ``del`` then append) keeps
    # the buffer's allocation across receives: no large malloc/free per receive.  And the
    # buffer never holds more than one receive plus the unconsumed partial line.
    line = b"0123456789" * 7 + b"abcdef\r\n"
    stream = line * 20_000 + b".\r\n"
    data = b"DATA\r\n" + stream
    receive = 65_536 + 13  # receives end mid-line
    conn = ServerConnection(CoreConfig(data_size_limit=None))
    conn.receive_data(data[:6])
    assert conn.next_event() == DATA_CMD
    conn.send(b"354 go")
    delivered = []
    allocations = []
    for offset in range(6, len(data), receive):
        conn.receive_data(data[offset : offset + receive])
        assert len(conn._buf) <= receive + len(line)
        allocations.append(sys.getsizeof(conn._buf))
        while isinstance(event := conn.next_event(), DataChunk):
            delivered.append(event.data)
    assert event == EndOfData(None, len(stream) - 3)
    assert b"".join(delivered) == stream[:-3]
    # One growth at most once the first receives are in (remainders differ in length).
    assert len(set(allocations[2:-1])) <= 2
