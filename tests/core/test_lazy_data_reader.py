"""The dot-stuffed reader is made on the first DATA event, not on ``354``.

``whole_message`` takes a short message with no reader at all; when it declines, the
first ``next_event`` makes the reader at the content's start and every limit holds as
if the reader had been there since the ``354``.
"""

from __future__ import annotations

import pytest

from aiosmtpd._core import replies
from aiosmtpd._core.connection import CoreConfig, ServerConnection
from aiosmtpd._core.data import DotDataReader, whole_message
from aiosmtpd._core.events import NEED_DATA, Command, DataChunk, EndOfData, Event
from aiosmtpd._core.state import Mode

SIZE_LIMIT = 20
LINE_LIMIT = 12


def in_data(before: bytes = b"") -> ServerConnection:
    """A connection right after ``354``, with ``before`` received ahead of the DATA line."""
    conn = ServerConnection(CoreConfig(data_size_limit=SIZE_LIMIT, line_length_limit=LINE_LIMIT))
    conn.receive_data(before + b"DATA\r\n")
    for _ in range(before.count(b"\n")):
        event = conn.next_event()
        assert isinstance(event, Command)
        conn.send(b"250 ok")
    assert conn.next_event() == Command("DATA", None, b"DATA")
    conn.send(b"354 go")
    return conn


def rest(conn: ServerConnection) -> list[Event]:
    """The message's events, up to its ``EndOfData``."""
    events: list[Event] = []
    while not events or not isinstance(events[-1], EndOfData):
        event = conn.next_event()
        assert isinstance(event, (DataChunk, EndOfData))
        events.append(event)
    return events


def test_no_reader_until_the_content_is_read() -> None:
    conn = in_data(b"NOOP\r\n")
    assert conn.mode is Mode.DATA
    assert conn._data_reader is None
    conn.receive_data(b"a\r\n.\r\nNOOP\r\n")
    assert conn.whole_message() == b"a\r\n"
    assert conn._data_reader is None
    assert conn.mode is Mode.COMMAND
    assert conn.next_event() == Command("NOOP", None, b"NOOP")


def test_the_first_event_makes_the_reader_at_the_contents_start() -> None:
    conn = in_data(b"NOOP\r\n")
    conn.receive_data(b"a\r\n..b\r\n.\r\nNOOP\r\n")
    assert conn.whole_message() is None  # a transparency dot: left to the reader
    assert conn._data_reader is None
    assert conn.next_event() == DataChunk(b"a\r\n.b\r\n")
    assert type(conn._data_reader) is DotDataReader
    assert conn.next_event() == EndOfData(None, 7)
    assert conn._data_reader is None
    assert conn.next_event() == Command("NOOP", None, b"NOOP")


def test_whole_message_with_a_reader_that_read_nothing_yet() -> None:
    conn = in_data()
    conn.receive_data(b"a\r\n")
    assert conn.next_event() == DataChunk(b"a\r\n")
    conn2 = in_data()
    assert conn2.next_event() is NEED_DATA  # made the reader, read nothing
    assert type(conn2._data_reader) is DotDataReader
    conn2.receive_data(b"b\r\n.\r\n")
    assert conn2.whole_message() == b"b\r\n"
    assert conn2.mode is Mode.COMMAND
    conn.receive_data(b"b\r\n.\r\n")
    assert conn.whole_message() is None  # some content was read: the reader goes on
    assert conn.next_event() == DataChunk(b"b\r\n")


@pytest.mark.parametrize("size", [SIZE_LIMIT - 1, SIZE_LIMIT, SIZE_LIMIT + 1])
def test_size_limit_just_under_at_and_over(size: int) -> None:
    content = b"x" * 8 + b"\r\n" + b"y" * (size - 12) + b"\r\n"  # lines within the limit
    assert len(content) == size
    conn = in_data()
    conn.receive_data(content + b".\r\n")
    taken = conn.whole_message()
    if size <= SIZE_LIMIT:
        assert taken == content
        return
    assert taken is None
    events = rest(conn)
    assert isinstance(events[-1], EndOfData)
    assert events[-1].error is replies.TOO_MUCH_DATA
    assert conn.mode is Mode.COMMAND


@pytest.mark.parametrize("length", [LINE_LIMIT - 1, LINE_LIMIT, LINE_LIMIT + 1])
def test_line_limit_just_under_at_and_over(length: int) -> None:
    line = b"y" * (length - 2) + b"\r\n"  # ``length`` octets, CRLF included
    conn = in_data()
    conn.receive_data(line + b".\r\n")
    taken = conn.whole_message()
    if length <= LINE_LIMIT:
        assert taken == line
        return
    assert taken is None
    events = rest(conn)
    assert isinstance(events[-1], EndOfData)
    assert events[-1].error is replies.DATA_LINE_TOO_LONG


@pytest.mark.parametrize(
    "content", [b"a\r\n.\nb\r\n.\r\n", b"a\n.\r\nb\r\n.\r\n", b"a\r\n.\rb\r\n.\r\n"]
)
def test_smuggling_sequences_do_not_end_the_message(content: bytes) -> None:
    conn = in_data()
    conn.receive_data(content + b"NOOP\r\n")
    taken = conn.whole_message()
    if taken is None:
        chunks = rest(conn)
        assert isinstance(chunks[-1], EndOfData)
        taken = b"".join(e.data for e in chunks if isinstance(e, DataChunk))
        taken = taken if chunks[-1].error is None else None
    assert taken is not None
    assert taken.endswith(b"b\r\n")
    assert conn.next_event() == Command("NOOP", None, b"NOOP")


def test_whole_message_function_matches_the_reader() -> None:
    buf = bytearray(b"NOOP\r\nhello\r\n.\r\nQUIT\r\n")
    assert whole_message(buf, 6, SIZE_LIMIT, LINE_LIMIT) == (b"hello\r\n", 16)
    assert DotDataReader(6, SIZE_LIMIT, LINE_LIMIT).whole(buf, 6) == (b"hello\r\n", 16)
    assert whole_message(buf, 6, 5, LINE_LIMIT) is None  # over the size limit
    assert whole_message(buf, 6, None, 6) is None  # "hello\r\n" is 7 octets
    assert whole_message(buf, 6, 0, 7) == (b"hello\r\n", 16)


def test_the_end_not_yet_here_then_read_in_pieces() -> None:
    conn = in_data()
    conn.receive_data(b"abc\r\n.\r")
    assert conn.whole_message() is None
    assert conn._data_reader is None
    assert conn.next_event() == DataChunk(b"abc\r\n")
    conn.receive_data(b"\n")
    assert conn.next_event() == EndOfData(None, 5)
