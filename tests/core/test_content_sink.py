"""``ServerConnection.write_content_to``: content written straight into the driver's sink.

With a sink the readers write each validated, unstuffed slab into it from the receive
buffer, and the ``DataChunk`` events carry only the count (``written``).  Everything else
must be exactly as without a sink: the same content, the same events in the same order,
the same limits in stream order, the same bytes left for the commands that follow.  And
no view of the buffer may outlive a call: the core must stay free to resize it.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiosmtpd._core import replies
from aiosmtpd._core.connection import CoreConfig, ServerConnection
from aiosmtpd._core.events import (
    NEED_DATA,
    PAUSED,
    Command,
    DataChunk,
    EndOfChunk,
    EndOfData,
    Event,
)
from aiosmtpd._core.state import CoreUsageError, Mode

from .driver import SPLITTERS, at_cuts, default_replies
from .test_data import (
    _BUDGETS,
    _HEADS,
    _STREAMS,
    DATA_TABLE,
    SMUGGLED,
    SMUGGLING_SEQUENCES,
    dot_budget,
    reference,
)

Splitter = Callable[[bytes], list[bytes]]


class ViewSink:
    """A sink that checks what it is given (a view or bytes, never kept) and copies it."""

    def __init__(self) -> None:
        self.content = io.BytesIO()
        self.views = 0

    def write(self, data: memoryview | bytes) -> int:
        if isinstance(data, memoryview):
            self.views += 1
        return self.content.write(data)


def assert_resizable(conn: ServerConnection) -> None:
    """The receive buffer is not exported: the core may grow, shrink or compact it."""
    buf = conn._buf
    buf.append(0)  # raises BufferError while any view of the buffer is alive
    buf.pop()


def run(
    pieces: list[bytes],
    config: CoreConfig,
    *,
    sink: ViewSink | None,
    eof: bool = False,
    sink_after: int = 0,
) -> tuple[list[Event], bytes]:
    """Drive DATA content through a connection; with ``sink``, give it to the core after
    the ``sink_after``-th DataChunk (as the adapter does once the content spans reads).

    Returns the events (DataChunks merged into one ``DataChunk(content, written)``) and
    the content, from the events and the sink together."""
    conn = ServerConnection(config)
    events: list[Event] = []
    content = bytearray()
    written = 0
    chunks = 0
    pending = 0  # content octets since the last other event
    feed = [*pieces, b""] if eof else pieces
    for piece in feed:
        if not piece and not eof:
            continue
        conn.receive_data(piece)
        while (event := conn.next_event()) is not NEED_DATA and event is not PAUSED:
            assert_resizable(conn)
            if isinstance(event, DataChunk):
                if event.written:
                    assert sink is not None
                    assert event.data == b""
                content += event.data
                written += event.written
                pending += len(event.data) + event.written
                chunks += 1
                if sink is not None and chunks == sink_after:
                    conn.write_content_to(sink)
                continue
            if pending:
                events.append(DataChunk(b"", pending))
                pending = 0
            events.append(event)
            for line in default_replies(event):
                conn.send(line)
            if sink is not None and sink_after == 0 and conn.mode is Mode.DATA:
                conn.write_content_to(sink)
        assert_resizable(conn)
    if pending:
        events.append(DataChunk(b"", pending))
    if sink is not None:
        assert written == len(sink.content.getvalue())
        content += sink.content.getvalue()
    return events, bytes(content)


def check_same(
    stream: bytes, pieces: list[bytes], config: CoreConfig, *, eof: bool = False
) -> tuple[ViewSink, bytes]:
    """The same events and content with a sink from the start, after the first chunk,
    and without one; returns the sink given from the start, and the content."""
    plain_events, plain = run(pieces, config, sink=None, eof=eof)
    sinks = [ViewSink(), ViewSink()]
    for sink_after, sink in enumerate(sinks):
        events, content = run(pieces, config, sink=sink, eof=eof, sink_after=sink_after)
        assert events == plain_events
        assert content == plain
    return sinks[0], plain


@pytest.fixture(params=sorted(SPLITTERS))
def split(request: pytest.FixtureRequest) -> Splitter:
    return SPLITTERS[request.param]


@pytest.mark.parametrize(("stream", "expected"), DATA_TABLE)
def test_data_table_through_a_sink(stream: bytes, expected: bytes, split: Splitter) -> None:
    _, content = check_same(stream, split(b"DATA\r\n" + stream + b"NOOP\r\n"), CoreConfig())
    assert content == expected


@pytest.mark.parametrize("sequence", SMUGGLING_SEQUENCES, ids=repr)
def test_smuggling_sequences_stay_content_in_the_sink(sequence: bytes, split: Splitter) -> None:
    stream = b"Subject: hi\r\n\r\nbody" + sequence + SMUGGLED
    expected = reference(stream, None, 1001)
    assert expected is not None
    sink, content = check_same(stream, split(b"DATA\r\n" + stream), CoreConfig())
    assert content == expected.content
    assert b"MAIL FROM:<evil@x>\r\n" in sink.content.getvalue()


def test_content_is_written_from_views_of_the_buffer() -> None:
    lines = b"".join(b"..%d\r\n" % i if i % 20 == 0 else b"line %d\r\n" % i for i in range(3000))
    sink = ViewSink()
    data = b"DATA\r\n" + lines + b".\r\nNOOP\r\n"
    events, content = run(
        [data[i : i + 8192] for i in range(0, len(data), 8192)], CoreConfig(), sink=sink
    )
    assert sink.views > 0
    assert content == sink.content.getvalue() == lines[1:].replace(b"\r\n.", b"\r\n")
    assert events[-1] == Command("NOOP", None, b"NOOP")


@pytest.mark.parametrize(("size", "error"), [(1000, None), (1001, replies.TOO_MUCH_DATA)])
def test_size_limit_nothing_past_it_reaches_the_sink(size: int, error: object) -> None:
    line = b"y" * 98 + b"\r\n"
    content = line * 9 + b"z" * (size - 902) + b"\r\n"
    data = b"DATA\r\n" + content + b".\r\n"
    sink, _ = check_same(content, [data[:200], data[200:]], CoreConfig(data_size_limit=1000))
    delivered = sink.content.getvalue()
    assert len(delivered) <= 1000
    assert (delivered == content) is (error is None)


def test_line_limit_in_stream_order_with_a_sink() -> None:
    stream = b"a\r\n" * 10 + b"x" * 2000 + b"\r\n" + b"b\r\n" * 10 + b".\r\n"
    data = b"DATA\r\n" + stream
    for config, error in (
        (CoreConfig(data_size_limit=20), replies.TOO_MUCH_DATA),
        (CoreConfig(data_size_limit=None), replies.DATA_LINE_TOO_LONG),
    ):
        sink = ViewSink()
        events, _ = run([data[:9], data[9:]], config, sink=sink)
        assert events[-1] == EndOfData(error, 2062)
        assert b"x" not in sink.content.getvalue()


def test_forty_mib_over_a_one_mib_limit_stays_bounded_with_a_sink() -> None:
    conn = ServerConnection(CoreConfig(data_size_limit=1 << 20))
    conn.receive_data(b"DATA\r\n")
    conn.next_event()
    conn.send(b"354 go")
    sink = ViewSink()
    conn.write_content_to(sink)
    piece = (b"x" * 76 + b"\r\n") * 840
    total = 0
    while total < 40 << 20:
        conn.receive_data(piece)
        total += len(piece)
        while (event := conn.next_event()) is not NEED_DATA:
            assert isinstance(event, DataChunk)
            assert event.data == b""
        assert len(conn._buf) <= 2 * len(piece)
    assert sink.content.tell() <= 1 << 20
    conn.receive_data(b".\r\n")
    assert conn.next_event() == EndOfData(replies.TOO_MUCH_DATA, total)


@settings(max_examples=300)
@given(
    head=_HEADS,
    tail=_STREAMS,
    cuts=st.lists(st.integers(0, 7000), max_size=10),
    size_limit=st.sampled_from([None, 1, 20, 6010]),
    line_limit=st.sampled_from([3, 6, 1001]),
    eof=st.booleans(),
    budget=_BUDGETS,
)
def test_sink_matches_events_at_random_splits(
    head: bytes,
    tail: bytes,
    cuts: list[int],
    size_limit: int | None,
    line_limit: int,
    eof: bool,
    budget: int,
) -> None:
    stream = head + tail
    config = CoreConfig(data_size_limit=size_limit, line_length_limit=line_limit)
    with dot_budget(budget):
        check_same(stream, at_cuts(b"DATA\r\n" + stream + b"NOOP\r\n", cuts), config, eof=eof)


def in_content_with_sink() -> tuple[ServerConnection, ViewSink]:
    """A connection past ``DATA``'s 354 that writes the content to a new ``ViewSink``."""
    conn = ServerConnection(CoreConfig())
    sink = ViewSink()
    conn.receive_data(b"DATA\r\n")
    conn.next_event()
    conn.send(b"354 go")
    conn.write_content_to(sink)
    return conn, sink


def test_the_sink_is_forgotten_when_the_message_ends() -> None:
    conn, sink = in_content_with_sink()
    conn.receive_data(b"one\r\n.\r\nDATA\r\n")
    assert conn.next_event() == DataChunk(b"", 5)
    assert conn.next_event() == EndOfData(None, 5)
    conn.send(b"250 OK")
    assert conn.next_event() == Command("DATA", None, b"DATA")
    conn.send(b"354 go")
    conn.receive_data(b"two\r\n.\r\n")
    assert conn.next_event() == DataChunk(b"two\r\n")
    assert sink.content.getvalue() == b"one\r\n"


def test_write_content_to_none_goes_back_to_events() -> None:
    conn, sink = in_content_with_sink()
    conn.receive_data(b"one\r\n")
    assert conn.next_event() == DataChunk(b"", 5)
    conn.write_content_to(None)
    conn.receive_data(b"two\r\n")
    assert conn.next_event() == DataChunk(b"two\r\n")
    assert sink.content.getvalue() == b"one\r\n"


def test_write_content_to_outside_content() -> None:
    conn = ServerConnection(CoreConfig())
    conn.write_content_to(None)  # nothing to undo: fine
    with pytest.raises(CoreUsageError):
        conn.write_content_to(ViewSink())
    conn.close()
    conn.write_content_to(ViewSink())  # closed: ignored, as start_chunk


def test_bdat_chunk_through_a_sink(split: Splitter) -> None:
    chunk = b"raw\r\n.\r\n..dots stay\r\n" * 50
    data = b"BDAT %d\r\n" % len(chunk) + chunk + b"NOOP\r\n"
    conn = ServerConnection(CoreConfig())
    sink = ViewSink()
    events: list[Event] = []
    written = 0
    for piece in split(data):
        conn.receive_data(piece)
        while (event := conn.next_event()) is not NEED_DATA and event is not PAUSED:
            assert_resizable(conn)
            if isinstance(event, DataChunk):
                assert event.data == b""
                written += event.written
                continue
            events.append(event)
            if isinstance(event, Command) and event.verb == "BDAT":
                conn.start_chunk(len(chunk))
                conn.write_content_to(sink)
            elif isinstance(event, EndOfChunk):
                conn.send(b"250 chunk")
            else:
                conn.send(b"250 OK")
    assert sink.content.getvalue() == chunk
    assert written == len(chunk)
    assert events[1:] == [EndOfChunk(None, len(chunk)), Command("NOOP", None, b"NOOP")]


def test_bdat_chunk_past_its_room_never_reaches_the_sink() -> None:
    conn = ServerConnection(CoreConfig())
    sink = ViewSink()
    conn.receive_data(b"BDAT 100\r\n" + b"a" * 40)
    assert isinstance(conn.next_event(), Command)
    conn.start_chunk(100, room=60)
    conn.write_content_to(sink)
    assert conn.next_event() == DataChunk(b"", 40)
    conn.receive_data(b"b" * 60)
    assert conn.next_event() == EndOfChunk(replies.TOO_MUCH_DATA, 100)
    assert sink.content.getvalue() == b"a" * 40
