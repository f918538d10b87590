"""The BDAT chunk reader (RFC 3030): ``start_chunk`` and ``EndOfChunk``, however the input
is split."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from aiosmtpd._core import replies
from aiosmtpd._core.connection import CoreConfig, ServerConnection
from aiosmtpd._core.data import SLAB_LIMIT
from aiosmtpd._core.events import (
    NEED_DATA,
    Command,
    ConnectionClosed,
    DataChunk,
    EndOfChunk,
    Event,
)
from aiosmtpd._core.state import Mode

from .driver import bytewise, drive, random_pieces, whole

Splitter = Callable[[bytes], list[bytes]]
SPLITTERS: list[Splitter] = [
    whole,
    bytewise,
    *(lambda data, seed=seed: random_pieces(data, seed) for seed in range(5)),
]


def run(
    data: bytes,
    split: Splitter,
    *,
    room: int | None = None,
    discard: bool = False,
    eof: bool = False,
    reply_first: bool = False,
) -> list[Event]:
    conn = ServerConnection(CoreConfig())

    def respond(event: Event) -> Sequence[bytes]:
        if isinstance(event, Command) and event.verb == "BDAT":
            assert event.arg is not None
            if reply_first:
                conn.send(b"503 refused")
            conn.start_chunk(int(event.arg.split()[0]), room, discard=discard)
            return ()
        if isinstance(event, EndOfChunk):
            return (b"250 chunk",)
        if isinstance(event, Command):
            return (b"250 OK",)
        return ()

    return drive(split(data), conn=conn, responder=respond, eof=eof)


@pytest.mark.parametrize("split", SPLITTERS)
def test_chunk_is_raw_and_exact(split: Splitter) -> None:
    content = b"a\r\n.\r\n..b\nc\rd\x00" + b"x" * 1500 + b"\r\n.\r\n"
    data = b"BDAT %d\r\n" % len(content) + content + b"NOOP\r\n"
    assert run(data, split) == [
        Command("BDAT", str(len(content)), b"BDAT %d" % len(content)),
        DataChunk(content),
        EndOfChunk(None, len(content)),
        Command("NOOP", None, b"NOOP"),
    ]


@pytest.mark.parametrize("split", SPLITTERS)
def test_pipelined_chunks_and_commands(split: Splitter) -> None:
    data = b"BDAT 3\r\nabcBDAT 0\r\nBDAT 2 LAST\r\n\r\nQUIT\r\n"
    assert run(data, split) == [
        Command("BDAT", "3", b"BDAT 3"),
        DataChunk(b"abc"),
        EndOfChunk(None, 3),
        Command("BDAT", "0", b"BDAT 0"),
        EndOfChunk(None, 0),
        Command("BDAT", "2 LAST", b"BDAT 2 LAST"),
        DataChunk(b"\r\n"),
        EndOfChunk(None, 2),
        Command("QUIT", None, b"QUIT"),
    ]


@pytest.mark.parametrize("split", SPLITTERS)
@pytest.mark.parametrize(("room", "error"), [(9, None), (10, None), (8, replies.TOO_MUCH_DATA)])
def test_room_just_under_at_and_over(
    split: Splitter, room: int, error: replies.Reply | None
) -> None:
    events = run(b"BDAT 9\r\n123456789NOOP\r\n", split, room=room)
    assert events[-2:] == [EndOfChunk(error, 9), Command("NOOP", None, b"NOOP")]
    delivered = b"".join(e.data for e in events if isinstance(e, DataChunk))
    assert len(delivered) <= room
    if error is None:
        assert delivered == b"123456789"


@pytest.mark.parametrize("split", SPLITTERS)
@pytest.mark.parametrize("reply_first", [False, True])
def test_discarded_chunk_is_never_a_command(split: Splitter, reply_first: bool) -> None:
    events = run(b"BDAT 6\r\nQUIT\r\nNOOP\r\n", split, discard=True, reply_first=reply_first)
    assert events == [
        Command("BDAT", "6", b"BDAT 6"),
        EndOfChunk(None, 6),
        Command("NOOP", None, b"NOOP"),
    ]


@pytest.mark.parametrize("split", SPLITTERS)
def test_eof_inside_a_chunk_abandons_it(split: Splitter) -> None:
    events = run(b"BDAT 10\r\nabc", split, eof=True)
    assert events[0] == Command("BDAT", "10", b"BDAT 10")
    assert events[-1] == ConnectionClosed()
    assert not any(isinstance(e, EndOfChunk) for e in events)


def test_large_chunk_streams_in_bounded_slabs() -> None:
    conn = ServerConnection(CoreConfig())
    size = 3 * SLAB_LIMIT + 5
    conn.receive_data(b"BDAT %d LAST\r\n" % size)
    assert isinstance(conn.next_event(), Command)
    conn.start_chunk(size, size)
    assert conn.mode is Mode.DATA
    received = sent = 0
    ends = []
    piece = b"\x00\xff" * 32768
    while sent < size:
        data = piece[: size - sent]
        conn.receive_data(data)
        sent += len(data)
        while (event := conn.next_event()) is not NEED_DATA:
            if isinstance(event, DataChunk):
                assert len(event.data) <= SLAB_LIMIT
                received += len(event.data)
            else:
                ends.append(event)
        assert conn.buffered_size == 0
    assert received == size
    assert ends == [EndOfChunk(None, size)]
    assert conn.mode is Mode.COMMAND


def test_over_the_room_keeps_nothing_buffered() -> None:
    conn = ServerConnection(CoreConfig())
    conn.receive_data(b"BDAT 1000000\r\n")
    conn.next_event()
    conn.start_chunk(1_000_000, 10)
    delivered = 0
    events = []
    for _ in range(100):
        conn.receive_data(b"y" * 10_000)
        while (event := conn.next_event()) is not NEED_DATA:
            if isinstance(event, DataChunk):
                delivered += len(event.data)
            else:
                events.append(event)
        assert conn.buffered_size == 0
    assert delivered <= 10
    conn.receive_data(b"NOOP\r\n")
    events.append(conn.next_event())
    assert events == [EndOfChunk(replies.TOO_MUCH_DATA, 1_000_000), Command("NOOP", None, b"NOOP")]
