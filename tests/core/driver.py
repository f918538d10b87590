"""A scripted driver for ``ServerConnection``: what the adapter does, minus the I/O.

``drive`` feeds the input in the given pieces and, after every event, sends the reply a
well-behaved adapter would send (``default_replies``, overridable per test).  Consecutive
``DataChunk`` events are merged so results do not depend on how the input was split.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Sequence

from aiosmtpd._core.connection import CoreConfig, ServerConnection
from aiosmtpd._core.events import (
    NEED_DATA,
    PAUSED,
    AuthLine,
    Command,
    DataChunk,
    EndOfData,
    Event,
    Rejected,
)

Responder = Callable[[Event], Sequence[bytes]]

VERB_REPLIES: dict[str, Sequence[bytes]] = {
    "EHLO": (b"250-mail.example", b"250-SIZE 33554432", b"250 HELP"),
    "LHLO": (b"250-mail.example", b"250 HELP"),
    "HELO": (b"250 mail.example",),
    "DATA": (b"354 End data with <CR><LF>.<CR><LF>",),
    "QUIT": (b"221 Bye",),
    "STARTTLS": (b"220 Ready to start TLS",),
    "AUTH": (b"334 ",),
}


def default_replies(event: Event) -> Sequence[bytes]:
    if isinstance(event, Command):
        return VERB_REPLIES.get(event.verb, (b"250 OK",))
    if isinstance(event, AuthLine):
        return (b"235 2.7.0 Authentication successful",)
    if isinstance(event, Rejected):
        return (str(event.reply).encode(),)
    if isinstance(event, EndOfData):
        return (str(event.error).encode() if event.error else b"250 OK",)
    return ()


def pump(conn: ServerConnection, events: list[Event], responder: Responder) -> None:
    """Pull events until the core needs data or pauses, replying to each one."""
    while True:
        event = conn.next_event()
        if event is NEED_DATA or event is PAUSED:
            return
        events.append(event)
        for line in responder(event):
            conn.send(line)


def merge_chunks(events: Iterable[Event]) -> list[Event]:
    merged: list[Event] = []
    for event in events:
        if isinstance(event, DataChunk) and merged and isinstance(merged[-1], DataChunk):
            merged[-1] = DataChunk(merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged


def drive(
    pieces: Iterable[bytes],
    *,
    config: CoreConfig | None = None,
    responder: Responder = default_replies,
    eof: bool = False,
    conn: ServerConnection | None = None,
) -> list[Event]:
    conn = conn or ServerConnection(config or CoreConfig())
    events: list[Event] = []
    for piece in pieces:
        if not piece:
            continue  # b"" would mean EOF
        conn.receive_data(piece)
        pump(conn, events, responder)
    if eof:
        conn.receive_data(b"")
        pump(conn, events, responder)
    return merge_chunks(events)


def whole(data: bytes) -> list[bytes]:
    return [data]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def at_cuts(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def random_pieces(data: bytes, seed: int, max_piece: int = 17) -> list[bytes]:
    rng = random.Random(seed)
    pieces = []
    i = 0
    while i < len(data):
        n = rng.randint(1, max_piece)
        pieces.append(data[i : i + n])
        i += n
    return pieces


#: The three ways every framing test feeds its input.
SPLITTERS: dict[str, Callable[[bytes], list[bytes]]] = {
    "whole": whole,
    "bytewise": bytewise,
    "random": lambda data: random_pieces(data, seed=len(data)),
}
