"""Events the core hands to its driver, one at a time, from ``ServerConnection.next_event``.

Owns: the event vocabulary and the two "nothing to hand out" sentinels.
Invariants: events are frozen, slotted and carry no behaviour; every field is documented.
``Command``, the one event made per command line (three per pipelined transaction), is
a ``NamedTuple`` rather than a frozen dataclass: just as immutable and slot-less, but
the core makes it with one C call (``tuple.__new__``) where a frozen dataclass's
``__init__`` costs a Python frame and one ``object.__setattr__`` per field (about 4x the
time).
Must not know: how events are acted on, logging, asyncio.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, NamedTuple

from .replies import Reply


class _Sentinel(enum.Enum):
    NEED_DATA = "NEED_DATA"
    PAUSED = "PAUSED"

    def __repr__(self) -> str:
        return self.value


#: ``next_event()`` needs more bytes (``receive_data``) before it can produce an event.
NEED_DATA: Final = _Sentinel.NEED_DATA
#: ``next_event()`` will produce nothing until the driver acts (TLS handshake pending, or
#: the connection is closing); feeding more bytes does not help.
PAUSED: Final = _Sentinel.PAUSED

Sentinel = _Sentinel


class Command(NamedTuple):
    """One complete, decoded command line."""

    #: The command word, upper-cased (``"MAIL"``); never empty.
    verb: str
    #: Text after the first space with surrounding whitespace stripped; ``None`` when the
    #: line had no space at all (so ``"NOOP "`` gives ``""``, ``"NOOP"`` gives ``None``).
    arg: str | None
    #: The raw line without its line ending, for (sanitised) logging.
    raw: bytes


@dataclass(frozen=True, slots=True)
class Rejected:
    """The peer broke the protocol in a way the core detected itself.

    The driver sends ``reply`` and, if ``close`` is true, closes the connection after it.
    """

    #: The reply to send.
    reply: Reply
    #: Whether the connection must be closed after sending ``reply``.
    close: bool = False


@dataclass(frozen=True, slots=True)
class DataChunk:
    """A piece of message content in DATA mode.

    Dot-unstuffed (RFC 5321 §4.5.2), line endings kept exactly as received; the
    concatenation of all chunks of a message is the message content.  Once the driver
    gave a sink (``ServerConnection.write_content_to``) the piece was written to it, and
    the event only tells its size: content keeps arriving.
    """

    #: The content bytes; empty if they were written to the driver's sink.
    data: bytes
    #: Octets written to the driver's sink for this event (0 without a sink).
    written: int = 0


@dataclass(frozen=True, slots=True)
class EndOfData:
    """The ``CRLF.CRLF`` terminator was received; the core is back in command mode."""

    #: ``None`` if the message is complete and within every limit; otherwise the reply to
    #: send instead of accepting it (the first limit broken wins).  When not ``None`` some
    #: or all content was discarded and must not be delivered.
    error: Reply | None
    #: Total size of the unstuffed content in octets, counted even past the size limit.
    size: int


@dataclass(frozen=True, slots=True)
class EndOfChunk:
    """The last octet of a ``BDAT`` chunk (RFC 3030) was received; back in command mode.

    The chunk's content came before it as ``DataChunk`` events, raw (no dot-unstuffing,
    no line-length check), unless the driver asked for it to be discarded.
    """

    #: ``None`` if the chunk fit in the room the driver gave; otherwise the reply to send
    #: (``552 Error: Too much mail data``): some or all content was discarded.
    error: Reply | None
    #: Octets consumed: always the size the driver announced when starting the chunk.
    size: int


@dataclass(frozen=True, slots=True)
class AuthLine:
    """One line sent by the client in answer to a ``334`` continuation (RFC 4954)."""

    #: The line without its line ending.  May hold credentials: never log it.
    line: bytes


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed its sending side; nothing more will arrive."""


Event = Command | Rejected | DataChunk | EndOfData | EndOfChunk | AuthLine | ConnectionClosed
