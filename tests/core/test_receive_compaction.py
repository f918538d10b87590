"""Receiving message content into a buffer that is being compacted (``receive_data``).

While message content streams, the connection compacts its buffer by writing the new
octets over the consumed ones (``_replace_tail``).  It must give exactly what a slice
assignment gives, for any receive size against the room there is, and must not copy a
receive into a temporary object first (a slice assignment from anything but a
``bytearray`` does, which was one more copy of every big message).
"""

from __future__ import annotations

import array
import tracemalloc

import pytest

from aiosmtpd._core.connection import CoreConfig, ServerConnection, _replace_tail
from aiosmtpd._core.events import NEED_DATA, DataChunk, EndOfData

LINE = b"QUJD" * 19 + b"\r\n"


@pytest.mark.parametrize("at", [0, 1, 5, 10])
@pytest.mark.parametrize("size_vs_room", [-3, -1, 0, 1, 7])
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_replace_tail_is_slice_assignment(at: int, size_vs_room: int, kind: type) -> None:
    buf = bytearray(b"0123456789")
    room = len(buf) - at
    data = bytes(range(65, 65 + max(0, room + size_vs_room)))
    expected = bytearray(buf)
    expected[at:] = data
    _replace_tail(buf, at, kind(data))
    assert buf == expected


def test_replace_tail_reads_a_buffer_of_wider_items_as_octets() -> None:
    buf = bytearray(b"abcdef")
    numbers = array.array("I", [1, 2])
    _replace_tail(buf, 2, memoryview(numbers))
    assert buf == b"ab" + numbers.tobytes()


def _streaming(read: int) -> ServerConnection:
    """A connection in message content with its buffer ready to be compacted."""
    conn = ServerConnection(CoreConfig(data_size_limit=None))
    conn.receive_data(b"DATA\r\n")
    conn.next_event()
    conn.send(b"354 go ahead")
    conn.receive_data(LINE * (read // len(LINE)))
    assert isinstance(conn.next_event(), DataChunk)
    assert conn.next_event() is NEED_DATA
    return conn


@pytest.mark.parametrize("pieces", [1, 3])
def test_a_receive_is_not_copied_into_a_temporary(pieces: int) -> None:
    read = 256 * 1024
    conn = _streaming(read)
    body = memoryview(bytearray(LINE * (read // len(LINE))))
    step = len(body) // pieces + 1
    tracemalloc.start()
    try:
        for start in range(0, len(body), step):
            conn.receive_data(body[start : start + step])
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The buffer may grow (it keeps what the reader has not taken yet), but nothing the
    # size of a receive is made and dropped on the way.
    assert peak - kept < step // 2
    assert isinstance(conn.next_event(), DataChunk)


@pytest.mark.parametrize("second", [100, 4096, 256 * 1024, 300 * 1024])
def test_content_after_compaction_is_what_was_sent(second: int) -> None:
    """Receives smaller, equal and larger than the consumed part the new one replaces."""
    conn = _streaming(256 * 1024)
    tail = (LINE * (second // len(LINE) + 1))[:second]
    content = bytearray()
    conn.receive_data(memoryview(tail))
    conn.receive_data(b"\r\n.\r\n")
    while True:
        event = conn.next_event()
        if isinstance(event, DataChunk):
            content += event.data
        else:
            assert isinstance(event, EndOfData)
            assert event.error is None
            break
    assert content == tail + b"\r\n"
