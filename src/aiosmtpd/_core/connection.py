"""``ServerConnection``: the sans-I/O SMTP server protocol, bytes in, events out.

Owns: the receive buffer, command-line framing and decoding, the per-verb command-length
limits, the AUTH continuation line, the hand-off to the DATA readers (data.py: the
dot-stuffed one after ``354``, the counted BDAT one after ``start_chunk``), and the
mode changes implied by the replies the driver sends (through state.py's table).

Theory of operation.  ``receive_data`` only appends to a ``bytearray``.  ``next_event``
parses lazily from ``_pos``, exactly one event per call, so nothing is interpreted before
the driver asks; after a command that can change the mode (``MODE_CHANGING_VERBS``) and
after an ``AuthLine`` it returns ``PAUSED`` until the final line of the driver's reply has
gone through ``send``.  Consumed octets are dropped from the front of the buffer only when
they are at least half of it, so the cost is amortised O(1) per octet whatever the
pipelining depth; during message content that happens in ``receive_data``, by overwriting
in place, so the buffer keeps its allocation from one receive to the next.  Message
content is handed out in ``DataChunk`` events, or written by the readers straight from
the buffer into a sink the driver gave (``write_content_to``: the one place the core
calls out, and only into the driver's own object).  A command line that grows past the
largest limit that could apply to it is rejected at once and the rest of it is skipped
as it arrives: memory stays bounded by that limit plus one receive.

Invariants: the mode changes only through state.py's table (``transition``, or on the hot
paths a lookup in a table derived from it: ``TRANSITIONS_BY_INPUT``, the verb tables of
``CoreConfig``, ``_MODE_AFTER_COMMAND_LINE``, ``_MODE_AFTER_DATA_END``,
``_DISCARDING_MODES``).  Bytes received in
TLS-pending or closed mode are dropped unseen.  ``Rejected``, ``EndOfData`` and
``EndOfChunk`` clear the
current command, so a later ``354``/``220``/``221`` cannot be taken as its reply.
Must not know: asyncio, ssl, sockets, logging, reply texts beyond the named replies,
what a command means (syntax.py and the adapter do).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from . import replies
from .data import ChunkReader, ContentSink, DotDataReader, whole_message
from .events import (
    NEED_DATA,
    PAUSED,
    AuthLine,
    Command,
    ConnectionClosed,
    DataChunk,
    EndOfChunk,
    EndOfData,
    Event,
    Rejected,
    Sentinel,
)
from .limits import AUTH_LINE_LIMIT, COMMAND_LINE_LIMIT, DATA_LINE_LIMIT, DATA_SIZE_LIMIT
from .state import (
    MODE_CHANGING_VERBS,
    TRANSITIONS,
    TRANSITIONS_BY_INPUT,
    Action,
    CoreUsageError,
    Input,
    Mode,
    classify_reply,
    is_final_reply_line,
    transition,
)

__all__ = ["ContentSink", "CoreConfig", "KnownReply", "Mode", "ServerConnection", "known_reply"]

#: A verb is printable ASCII; HTAB is tolerated so that, as in aiosmtpd 1.4, ``NOOP\tx``
#: is the unknown verb ``NOOP\tX`` (answered 500 "not recognized") rather than bad syntax.
#: Controls (NUL, a stray CR, ESC) and non-ASCII octets make the line bad syntax, which
#: also keeps them out of the "not recognized" reply that echoes the verb.
_VERB: Final = re.compile(rb"[\t\x21-\x7e]+")
#: Makes a ``Command`` (a NamedTuple) without the Python frame of its ``__new__``.
_new_command: Final = tuple.__new__
#: The common verbs as clients spell them, already validated, decoded and upper-cased (a
#: dict lookup instead of the regex and two conversions per command line).
_COMMON_VERBS: Final = (
    b"AUTH BDAT DATA EHLO EXPN HELO HELP LHLO MAIL NOOP QUIT RCPT RSET STARTTLS VRFY"
)
_KNOWN_VERBS: Final = {
    spelling: (verb.decode("ascii"), verb)
    for verb in _COMMON_VERBS.split()
    for spelling in (verb, verb.lower())
}
#: ``(reply line, current verb) -> (TRANSITIONS_BY_INPUT[its table input], is final line,
#: line + CRLF)`` for the reply lines seen recently (most are the same few canonical
#: lines); cleared when it grows past ``_REPLY_CACHE_SIZE`` so that hook-made lines cannot
#: make it grow without bound.
_ReplyKind = tuple[dict[Mode, tuple[Action, Mode]], bool, bytes]
_REPLY_KINDS: dict[tuple[bytes, str | None], _ReplyKind] = {}
_REPLY_CACHE_SIZE: Final = 256

#: A reply line worked out ahead for one verb (``known_reply``): ``(verb, transitions,
#: is final line, line + CRLF, line)``, for ``ServerConnection.send_known``.
KnownReply = tuple[str | None, dict[Mode, tuple[Action, Mode]], bool, bytes, bytes]


def known_reply(line: bytes, verb: str | None) -> KnownReply:
    """What ``send(line)`` does while ``verb`` is the current command, worked out once:
    a driver that sends the same few lines for the same verbs (its own ``250 OK`` to
    MAIL, say) keeps these and calls ``send_known`` instead, with no per-reply lookup."""
    if b"\r" in line or b"\n" in line:
        raise ValueError("a reply line must not contain CR or LF")
    steps = TRANSITIONS_BY_INPUT[classify_reply(line, verb)]
    return (verb, steps, is_final_reply_line(line), line + b"\r\n", line)


#: What a complete command line does in command mode, from the table (the hot path
#: assigns the mode instead of looking the pair up for every line).
_LINE_ACTION, _MODE_AFTER_COMMAND_LINE = TRANSITIONS[Mode.COMMAND, Input.LINE]
if _LINE_ACTION is not Action.EMIT_COMMAND:  # pragma: no cover - a table edit broke it
    raise AssertionError("a command line in command mode must emit a Command")
#: The modes in which received bytes are dropped unseen, and the mode after the end of
#: message content: both from the table, for the per-receive and per-message hot paths.
_DISCARDING_MODES: Final = frozenset(
    mode for mode in Mode if TRANSITIONS[mode, Input.BYTES][0] is Action.DISCARD
)
_END_ACTION, _MODE_AFTER_DATA_END = TRANSITIONS[Mode.DATA, Input.DATA_END]
if _END_ACTION is not Action.EMIT_END_OF_DATA:  # pragma: no cover - a table edit broke it
    raise AssertionError("the end of message content must emit EndOfData")
_COMMAND_MODE: Final = Mode.COMMAND
_DATA_MODE: Final = Mode.DATA
_AUTH_LINE_MODE: Final = Mode.AUTH_LINE
_CLOSED_MODE: Final = Mode.CLOSED
_TLS_PENDING_MODE: Final = Mode.TLS_PENDING
_NOTHING: Final = Action.NOTHING

#: Consumed octets are deleted from the buffer only past this many (and past half of it).
_COMPACT_MIN: Final = 4096

#: Length of the prefix that decides which command limit applies (``b"AUTH "``).
_VERB_PREFIX: Final = 5


def _replace_tail(buf: bytearray, at: int, data: bytes | bytearray | memoryview) -> None:
    """Make ``buf[at:]`` a copy of ``data``, writing over the octets already there.

    ``buf[at:] = data`` would do the same, but a slice assignment whose value is not a
    ``bytearray`` first copies the value into a temporary one: one more copy of every
    receive of message content (a quarter of the copying of a big message).  Writing
    through a ``memoryview`` and appending with ``+=`` read ``data`` in place.
    """
    room = len(buf) - at
    with memoryview(data) as source, source.cast("B") as octets:
        size = len(octets)
        with memoryview(buf) as target:
            target[at : at + min(size, room)] = octets[:room]
        if size <= room:
            del buf[at + size :]
        else:
            buf += octets[room:]


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """Immutable per-server protocol configuration; every connection shares one."""

    #: Largest accepted message (unstuffed octets); ``None`` or 0 means unlimited.
    data_size_limit: int | None = DATA_SIZE_LIMIT
    #: Longest DATA line in octets including CRLF (aiosmtpd 1.4's 1001).
    line_length_limit: int = DATA_LINE_LIMIT
    #: Longest command line including CRLF (RFC 5321 §4.5.3.1.4).
    command_size_limit: int = COMMAND_LINE_LIMIT
    #: Extra octets MAIL may use after a successful EHLO/LHLO (the adapter passes 26 if it
    #: advertises SIZE, plus 10 if SMTPUTF8).
    mail_esmtp_extra: int = 0
    #: Longest AUTH command line and AUTH continuation line, incl. CRLF (RFC 4954 §4).
    auth_line_limit: int = AUTH_LINE_LIMIT
    #: Decode command lines as UTF-8 with ``surrogateescape`` instead of strict ASCII.
    smtputf8: bool = False
    #: Extra octets RCPT may use after a successful EHLO/LHLO (DSN's NOTIFY and ORCPT).
    rcpt_esmtp_extra: int = 0

    def __post_init__(self) -> None:
        if self.data_size_limit is not None and self.data_size_limit < 0:
            raise ValueError("data_size_limit must be None or >= 0")
        # Below 3 octets not even ".\r\n" or "X\r\n" fits: such limits are mistakes.
        for name in ("line_length_limit", "command_size_limit", "auth_line_limit"):
            if getattr(self, name) < 3:
                raise ValueError(f"{name} must be at least 3")
        if self.mail_esmtp_extra < 0 or self.rcpt_esmtp_extra < 0:
            raise ValueError("mail_esmtp_extra and rcpt_esmtp_extra must be >= 0")
        object.__setattr__(self, "base_verbs", self._verb_table(esmtp=False))
        object.__setattr__(self, "esmtp_verbs", self._verb_table(esmtp=True))
        object.__setattr__(
            self,
            "longest_command_limit",
            max(
                self.auth_line_limit,
                self.command_size_limit + self.mail_esmtp_extra,
                self.command_size_limit + self.rcpt_esmtp_extra,
            ),
        )

    # Derived from the fields above in __post_init__ (not arguments, not compared): the
    # per-line work of ServerConnection is a dict lookup instead of a chain of tests.
    #: The common verb spellings (``b"MAIL"``, ``b"mail"``) -> (upper-cased verb, line
    #: limit before EHLO/LHLO, whether its reply can change the mode).
    base_verbs: dict[bytes, tuple[str, int, bool]] = field(init=False, repr=False, compare=False)
    #: The same after a successful EHLO/LHLO (MAIL and RCPT get their allowances).
    esmtp_verbs: dict[bytes, tuple[str, int, bool]] = field(init=False, repr=False, compare=False)
    #: The largest limit any command line can have (an unknown head may be any verb).
    longest_command_limit: int = field(init=False, repr=False, compare=False)

    def command_limit(self, verb: bytes, *, esmtp: bool) -> int:
        """The longest accepted line, CRLF included, for upper-cased ``verb``."""
        if verb == b"AUTH":
            return self.auth_line_limit
        if verb == b"MAIL" and esmtp:
            return self.command_size_limit + self.mail_esmtp_extra
        if verb == b"RCPT" and esmtp:
            return self.command_size_limit + self.rcpt_esmtp_extra
        return self.command_size_limit

    def _verb_table(self, *, esmtp: bool) -> dict[bytes, tuple[str, int, bool]]:
        return {
            spelling: (verb, self.command_limit(upper, esmtp=esmtp), verb in MODE_CHANGING_VERBS)
            for spelling, (verb, upper) in _KNOWN_VERBS.items()
        }


class ServerConnection:
    """One SMTP server connection's protocol state.  See docs/design.rst for the API."""

    __slots__ = (
        "_awaiting_reply",
        "_buf",
        "_config",
        "_current_verb",
        "_data_reader",
        "_eof",
        "_esmtp",
        "_pos",
        "_scan_from",
        "_skipping_line",
        "_verbs",
        "mode",
    )

    def __init__(self, config: CoreConfig) -> None:
        self._config = config
        self._buf = bytearray()
        #: Start of the unconsumed octets in ``_buf``.
        self._pos = 0
        #: Where the search for the next LF resumes (octets before it hold none).
        self._scan_from = 0
        #: What the next received bytes mean.  A plain attribute so that reading it costs
        #: no call; read-only for drivers (only ``send`` and the other methods change it).
        self.mode = Mode.COMMAND
        self._eof = False
        self._esmtp = False
        #: ``config.base_verbs`` or, after a 250 to EHLO/LHLO, ``config.esmtp_verbs``.
        self._verbs = config.base_verbs
        self._current_verb: str | None = None
        self._awaiting_reply = False
        #: The head of an over-long line was rejected; drop octets up to its LF.
        self._skipping_line = False
        self._data_reader: DotDataReader | ChunkReader | None = None

    # --- public API ---------------------------------------------------------------------

    @property
    def drained(self) -> bool:
        """Nothing received is unconsumed and the peer has not closed: ``next_event``
        can only return ``NEED_DATA`` (or ``PAUSED``) until more data is received."""
        return self._pos == len(self._buf) and not self._eof

    @property
    def buffered_size(self) -> int:
        """Octets received and not yet consumed (for the driver's back-pressure)."""
        return len(self._buf) - self._pos

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append received octets; empty means the peer closed its side (EOF).

        Any bytes-like object is copied, so the driver may reuse its receive buffer.
        """
        if data:
            # Bytes are buffered in every mode that does not discard them (the table).
            if self.mode in _DISCARDING_MODES or self._eof:
                return
        else:
            action, _ = transition(self.mode, Input.PEER_EOF)
            if action is not Action.DISCARD:
                self._eof = True
            return
        buf = self._buf
        removed = self._pos
        if self._data_reader is not None and removed >= _COMPACT_MIN and removed * 2 >= len(buf):
            # Message content: compact while appending, by overwriting in place, so the
            # buffer keeps its allocation from one receive to the next.  ``del`` would
            # shrink it and the append regrow it: two large malloc/free per receive, which
            # glibc answers by trimming the heap and faulting fresh pages in every time.
            kept = len(buf) - removed
            buf[:kept] = buf[removed:]
            _replace_tail(buf, kept, data)
            self._shift(removed)
        else:
            buf += data

    def next_event(self) -> Event | Sentinel:
        """Parse and return the next event, or ``NEED_DATA`` / ``PAUSED``."""
        mode = self.mode
        if self._awaiting_reply or (mode is not _COMMAND_MODE and mode is not _AUTH_LINE_MODE):
            if self._awaiting_reply or mode is _CLOSED_MODE or mode is _TLS_PENDING_MODE:
                return PAUSED
            event = self._next_data_event()
        else:
            # Command and AUTH-line mode; the common case (a whole line is buffered) costs
            # one find and one call.
            newline = self._buf.find(b"\n", self._scan_from)
            if newline >= 0 and not self._skipping_line:
                start = self._pos
                self._pos = self._scan_from = newline + 1
                event = self._line_event(start, newline)
            elif newline < 0 and self._pos == len(self._buf) and not self._eof:
                # Everything consumed (a skipped line's rest too): what _next_line_event
                # would conclude, without the call.
                self._scan_from = self._pos
                event = NEED_DATA
            else:
                event = self._next_line_event(newline)
        if self._pos >= _COMPACT_MIN and self._pos * 2 >= len(self._buf):
            self._compact()
        return event

    def send(self, line: bytes) -> bytes:
        """Render one reply line (no CRLF) and apply the mode change it implies."""
        cacheable = type(line) is bytes  # a bytearray is not hashable
        key = (line, self._current_verb)
        known = _REPLY_KINDS.get(key) if cacheable else None
        if known is None:
            if b"\r" in line or b"\n" in line:
                raise ValueError("a reply line must not contain CR or LF")
            kind = classify_reply(line, self._current_verb)
            known = (TRANSITIONS_BY_INPUT[kind], is_final_reply_line(line), line + b"\r\n")
            if cacheable:
                if len(_REPLY_KINDS) >= _REPLY_CACHE_SIZE:
                    _REPLY_KINDS.clear()
                _REPLY_KINDS[key] = known
        steps, final, wire = known
        try:
            action, self.mode = steps[self.mode]
        except KeyError:  # a pair the table forbids: let transition() raise its error
            transition(self.mode, classify_reply(line, self._current_verb))
            raise
        if final:
            self._awaiting_reply = False
        if action is _NOTHING:
            return wire
        self._apply_reply_action(action)
        return wire

    def send_known(self, known: KnownReply) -> bytes:
        """``send(line)`` for a line worked out ahead by ``known_reply(line, verb)``: the
        same mode change and bytes, without looking the line up.  Made for another verb
        than the current one, it is sent as ``send(line)`` would."""
        verb, steps, final, wire, line = known
        if verb != self._current_verb:
            return self.send(line)
        try:
            action, self.mode = steps[self.mode]
        except KeyError:  # a pair the table forbids: send() raises its error
            return self.send(line)
        if final:
            self._awaiting_reply = False
        if action is not _NOTHING:
            self._apply_reply_action(action)
        return wire

    def _apply_reply_action(self, action: Action) -> None:
        """What a reply's table entry does besides changing the mode."""
        if action is Action.START_DATA:
            # The DotDataReader is made by the first ``next_event`` in DATA mode: a short
            # message ``whole_message`` takes never needs one.  Until then nothing moves
            # ``_pos``, so the content starts where it is then.
            self._data_reader = None
        elif action is Action.DROP_PLAINTEXT or action is Action.SHUT:
            self._drop_buffer()
        elif action is Action.USE_ESMTP_LIMITS:
            self._esmtp = True
            self._verbs = self._config.esmtp_verbs
        elif action is Action.USE_BASE_LIMITS:
            self._esmtp = False
            self._verbs = self._config.base_verbs

    def close(self) -> None:
        """The driver is closing the connection: parse nothing more, ever."""
        _, self.mode = transition(self.mode, Input.DRIVER_CLOSE)
        self._drop_buffer()

    def start_chunk(self, size: int, room: int | None = None, *, discard: bool = False) -> None:
        """The driver took a ``BDAT size`` command: the next ``size`` octets are its chunk.

        Call it while ``BDAT`` is the current command, before or after replying to it.
        ``room``: octets the message may still grow by (``None``: unlimited); ``discard``:
        consume the chunk without handing it out (a refused BDAT).
        """
        if size < 0 or (room is not None and room < 0):
            raise ValueError("size and room must be >= 0")
        action, mode = transition(self.mode, Input.START_CHUNK)
        if action is not Action.START_CHUNK:
            return
        if self._current_verb != "BDAT":
            raise CoreUsageError("start_chunk() is only allowed while BDAT is served")
        self.mode = mode
        self._data_reader = ChunkReader(size, room, discard)
        self._awaiting_reply = False

    def write_content_to(self, sink: ContentSink | None) -> None:
        """Write the rest of the current message's content (after ``354``) or BDAT chunk
        (after ``start_chunk``) to ``sink`` instead of handing it out in ``DataChunk``
        events, which then carry only its size (``written``); ``None`` undoes it.

        Each validated, unstuffed slab is written straight from the receive buffer (a
        ``memoryview`` valid only during ``sink.write``), so content is not copied on its
        way to the driver's storage; the events are as without a sink, one per slab.
        Every limit is checked before a slab is written: content past a limit never
        reaches the sink.  The sink is forgotten when the
        content ends (``EndOfData``, ``EndOfChunk``, ``ConnectionClosed``, ``close``).
        Once the connection is closed this does nothing (as ``start_chunk``).
        """
        reader = self._data_reader
        if reader is None:
            if self.mode is not _DATA_MODE:
                if sink is None or self.mode is _CLOSED_MODE:
                    return
                raise CoreUsageError("write_content_to() is only allowed in message content")
            reader = self._data_reader = self._new_data_reader()
        reader.sink = sink

    def tls_established(self) -> None:
        """The STARTTLS handshake completed: start afresh in command mode (RFC 3207 §4.2)."""
        action, self.mode = transition(self.mode, Input.TLS_ESTABLISHED)
        if action is Action.RESTART:
            self._drop_buffer()
            self._eof = False
            self._esmtp = False
            self._verbs = self._config.base_verbs
            self._current_verb = None
            self._awaiting_reply = False

    # --- command and AUTH lines ---------------------------------------------------------

    def _next_line_event(self, newline: int) -> Event | Sentinel:
        """The general case of ``next_event`` in line modes; ``newline`` is the first find."""
        buf = self._buf
        while True:
            if newline >= 0:
                start = self._pos
                self._pos = self._scan_from = newline + 1
                if self._skipping_line:
                    self._skipping_line = False
                    newline = buf.find(b"\n", self._scan_from)
                    continue
                return self._line_event(start, newline)
            if self._skipping_line:
                self._pos = self._scan_from = len(buf)
            elif len(buf) > self._pos and len(buf) - self._pos >= self._pending_line_limit():
                # Even a LF arriving next would make the line too long: reject now and
                # skip the rest of it as it arrives, instead of buffering it.
                self._skipping_line = True
                bdat = bytes(buf[self._pos : self._pos + _VERB_PREFIX]).upper() == b"BDAT "
                self._pos = self._scan_from = len(buf)
                return self._reject(replies.COMMAND_TOO_LONG, close=bdat)
            else:
                self._scan_from = len(buf)
            if self._eof:
                return self._peer_closed()
            return NEED_DATA

    def _line_event(self, start: int, newline: int) -> Event:
        line_length = newline + 1 - start
        raw = bytes(self._buf[start:newline]).rstrip(b"\r")
        if self.mode is _AUTH_LINE_MODE:
            if line_length > self._config.auth_line_limit:
                return self._reject(replies.COMMAND_TOO_LONG)
            _, self.mode = transition(self.mode, Input.LINE)
            self._awaiting_reply = True
            return AuthLine(raw)
        verb_bytes, space, arg_bytes = raw.partition(b" ")
        known = self._verbs.get(verb_bytes)
        if known is not None:
            verb, limit, pauses = known
            if line_length > limit:
                return self._reject(replies.COMMAND_TOO_LONG, close=verb == "BDAT")
        else:
            upper = verb_bytes.upper()
            if line_length > self._limit_for(upper):
                return self._reject(replies.COMMAND_TOO_LONG, close=upper == b"BDAT")
            if not _VERB.fullmatch(verb_bytes):
                return self._reject(replies.BAD_SYNTAX)
            verb = verb_bytes.decode("ascii").upper()
            pauses = verb in MODE_CHANGING_VERBS
        arg: str | None = None
        if space:
            if self._config.smtputf8:
                arg = arg_bytes.decode("utf-8", "surrogateescape").strip()
            else:
                try:
                    arg = arg_bytes.decode("ascii").strip()
                except UnicodeDecodeError:
                    return self._reject(replies.STRICT_ASCII, close=verb == "BDAT")
        # Command mode (AUTH-line mode returned above): the table's next mode for a line.
        self.mode = _MODE_AFTER_COMMAND_LINE
        self._current_verb = verb
        self._awaiting_reply = pauses
        return _new_command(Command, (verb, arg, raw))  # Command(verb, arg, raw), faster

    def _limit_for(self, verb: bytes) -> int:
        return self._config.command_limit(verb, esmtp=self._esmtp)

    def _pending_line_limit(self) -> int:
        """The limit for the incomplete line at ``_pos``, as far as its head tells."""
        config = self._config
        if self.mode is _AUTH_LINE_MODE:
            return config.auth_line_limit
        head = bytes(self._buf[self._pos : self._pos + _VERB_PREFIX]).upper()
        if len(head) < _VERB_PREFIX:
            return config.longest_command_limit
        if head[-1:] == b" ":
            return self._limit_for(head[:-1])
        return config.command_size_limit

    def _reject(self, reply: replies.Reply, *, close: bool = False) -> Rejected:
        """``close``: a BDAT line was refused, so the length of the chunk after it is
        unknown and its octets would be read as commands (RFC 3030 §2)."""
        _, self.mode = transition(self.mode, Input.OVERLONG_LINE)
        self._current_verb = None
        return Rejected(reply, close=close)

    # --- DATA ---------------------------------------------------------------------------

    def _next_data_event(self) -> Event | Sentinel:
        reader = self._data_reader
        if reader is None:  # START_DATA leaves it to be made here (start_chunk makes its own)
            reader = self._data_reader = self._new_data_reader()
        event, self._pos = reader.read(self._buf, self._pos, self._eof)
        if event is None:
            return NEED_DATA
        kind = type(event)
        if kind is DataChunk:
            return event
        if kind is ConnectionClosed:
            return self._peer_closed()
        if kind is not EndOfData and kind is not EndOfChunk:
            return event
        self._end_data()
        return event

    def _new_data_reader(self) -> DotDataReader:
        config = self._config
        return DotDataReader(self._pos, config.data_size_limit, config.line_length_limit)

    def whole_message(self) -> bytes | None:
        """The content of a DATA message, consumed at once, if none of it was read yet and
        ``DotDataReader.whole`` finds all of it buffered (no dot to unstuff, no limit
        broken): what its ``DataChunk`` and ``EndOfData`` events would carry, without them.
        Else ``None`` and nothing changes: ``next_event`` goes on as usual."""
        reader = self._data_reader
        if reader is None:
            if self.mode is not _DATA_MODE or self._awaiting_reply:
                return None
            config = self._config
            found = whole_message(
                self._buf, self._pos, config.data_size_limit, config.line_length_limit
            )
        elif type(reader) is DotDataReader and not self._awaiting_reply:
            found = reader.whole(self._buf, self._pos)
        else:
            return None
        if found is None:
            return None
        content, self._pos = found
        self._end_data()
        if self._pos >= _COMPACT_MIN and self._pos * 2 >= len(self._buf):
            self._compact()
        return content

    def _end_data(self) -> None:
        self.mode = _MODE_AFTER_DATA_END
        self._data_reader = None
        self._current_verb = None
        self._scan_from = self._pos

    # --- buffer housekeeping ------------------------------------------------------------

    def _peer_closed(self) -> ConnectionClosed:
        _, self.mode = transition(self.mode, Input.PEER_EOF)
        self._drop_buffer()
        return ConnectionClosed()

    def _drop_buffer(self) -> None:
        self._buf = bytearray()
        self._pos = self._scan_from = 0
        self._skipping_line = False
        self._data_reader = None

    def _compact(self) -> None:
        if self._data_reader is not None:
            return  # ``receive_data`` compacts message content as it appends
        removed = self._pos
        del self._buf[:removed]
        self._shift(removed)

    def _shift(self, removed: int) -> None:
        """``removed`` octets were deleted from the front of the buffer."""
        self._pos -= removed
        self._scan_from = max(0, self._scan_from - removed)
        if self._data_reader is not None:
            self._data_reader.shift(removed)
