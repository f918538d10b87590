"""The core's modes and the one table that says how each input moves between them.

Owns: ``Mode`` (what the next received bytes mean), ``Input`` (everything that can happen
to a connection: framed peer input, a reply sent by the driver, a driver call),
``Action`` (what the connection does about it) and ``TRANSITIONS``, the table
``(mode, input) -> (action, next mode)``.
Invariants: the mode changes only through this table.  A pair that is not in the table is
a violation: ``transition`` raises ``CoreUsageError``.  Peer input can never be a
violation (every byte sequence has a meaning in every mode), so only driver misuse of the
API ends up there.  A reply line changes the mode only if it is a final line (``250 x``,
not ``250-x``), and only relative to the current command (the verb of the last
``Command`` handed out).
Must not know: bytes framing (connection.py, data.py), reply texts, asyncio.
"""

from __future__ import annotations

import enum
from typing import Final


class CoreUsageError(RuntimeError):
    """The driver used ``ServerConnection`` in a way the protocol does not allow."""


class Mode(enum.Enum):
    """What the connection expects next from the peer."""

    # Members are singletons compared by identity: hash them by identity too, in C.
    # (Enum's own __hash__ is a Python function; the transition table is looked up on
    # every receive, parse and reply.)
    __hash__ = object.__hash__

    #: Command lines (RFC 5321 §4.1).
    COMMAND = "COMMAND"
    #: Message content: dot-stuffed after a ``354`` (RFC 5321 §4.5.2), or a counted
    #: ``BDAT`` chunk after ``start_chunk`` (RFC 3030).
    DATA = "DATA"
    #: Exactly one line answering a ``334`` challenge (RFC 4954 §4).
    AUTH_LINE = "AUTH_LINE"
    #: ``220`` sent to STARTTLS: plaintext is discarded until the TLS handshake completes.
    TLS_PENDING = "TLS_PENDING"
    #: The connection is finished; nothing more is parsed.
    CLOSED = "CLOSED"


class Input(enum.Enum):
    """Everything that can happen to a connection, as the table sees it."""

    # Members are singletons compared by identity: hash them by identity too, in C.
    # (Enum's own __hash__ is a Python function; the transition table is looked up on
    # every receive, parse and reply.)
    __hash__ = object.__hash__

    # --- framed peer input (produced by the readers while parsing) ---
    #: A complete line within its length limit.
    LINE = "LINE"
    #: A line longer than its limit (seen whole, or its prefix already too long).
    OVERLONG_LINE = "OVERLONG_LINE"
    #: A slab of message content (complete lines; any octets in a BDAT chunk).
    DATA_CONTENT = "DATA_CONTENT"
    #: The end-of-data indication ``CRLF.CRLF``, or the last octet of a BDAT chunk.
    DATA_END = "DATA_END"
    #: The peer closed its sending side and the buffered events are exhausted.
    PEER_EOF = "PEER_EOF"
    #: Bytes arriving while nothing may be parsed.
    BYTES = "BYTES"
    # --- replies the driver sends (classified by ``classify_reply``) ---
    #: Final ``354`` while the current command is DATA.
    REPLY_354_TO_DATA = "REPLY_354_TO_DATA"
    #: Final ``334`` (any command: AUTH mechanisms may challenge more than once).
    REPLY_334 = "REPLY_334"
    #: Final ``220`` while the current command is STARTTLS.
    REPLY_220_TO_STARTTLS = "REPLY_220_TO_STARTTLS"
    #: Final ``221`` while the current command is QUIT.
    REPLY_221_TO_QUIT = "REPLY_221_TO_QUIT"
    #: Final ``250`` while the current command is EHLO or LHLO.
    REPLY_250_TO_EHLO = "REPLY_250_TO_EHLO"
    #: Final ``250`` while the current command is HELO.
    REPLY_250_TO_HELO = "REPLY_250_TO_HELO"
    #: Any other reply line, including every continuation line (``250-SIZE``).
    REPLY_OTHER = "REPLY_OTHER"
    # --- driver calls ---
    #: ``close()``.
    DRIVER_CLOSE = "DRIVER_CLOSE"
    #: ``tls_established()``.
    TLS_ESTABLISHED = "TLS_ESTABLISHED"
    #: ``start_chunk()``: the driver accepted (or will discard) a ``BDAT`` chunk.
    START_CHUNK = "START_CHUNK"


class Action(enum.Enum):
    """What the connection does for an ``(mode, input)`` pair."""

    EMIT_COMMAND = "EMIT_COMMAND"
    EMIT_AUTH_LINE = "EMIT_AUTH_LINE"
    REJECT_LINE = "REJECT_LINE"
    EMIT_DATA_CHUNK = "EMIT_DATA_CHUNK"
    EMIT_END_OF_DATA = "EMIT_END_OF_DATA"
    EMIT_CONNECTION_CLOSED = "EMIT_CONNECTION_CLOSED"
    #: Keep the bytes for ``next_event`` to parse lazily.
    BUFFER = "BUFFER"
    #: Throw the bytes away unparsed.
    DISCARD = "DISCARD"
    #: Start the dot-stuffed DATA reader at the current buffer position.
    START_DATA = "START_DATA"
    #: Start the counted BDAT chunk reader (RFC 3030) at the current buffer position.
    START_CHUNK = "START_CHUNK"
    #: Expect one AUTH continuation line.
    EXPECT_AUTH_LINE = "EXPECT_AUTH_LINE"
    #: Drop every buffered byte: it arrived in plaintext before the TLS handshake.
    DROP_PLAINTEXT = "DROP_PLAINTEXT"
    #: Switch command-length limits to the ESMTP ones (MAIL gets its allowance).
    USE_ESMTP_LIMITS = "USE_ESMTP_LIMITS"
    #: Switch command-length limits back to the base ones.
    USE_BASE_LIMITS = "USE_BASE_LIMITS"
    #: Forget everything and parse afresh in command mode (RFC 3207 §4.2).
    RESTART = "RESTART"
    #: Release the buffer; nothing is parsed any more.
    SHUT = "SHUT"
    #: Nothing changes.
    NOTHING = "NOTHING"


_M = Mode
_I = Input
_A = Action

_REPLIES_THAT_CHANGE_NOTHING: Final = (
    _I.REPLY_354_TO_DATA,
    _I.REPLY_334,
    _I.REPLY_220_TO_STARTTLS,
    _I.REPLY_221_TO_QUIT,
    _I.REPLY_250_TO_EHLO,
    _I.REPLY_250_TO_HELO,
    _I.REPLY_OTHER,
)


def _build_table() -> dict[tuple[Mode, Input], tuple[Action, Mode]]:
    table: dict[tuple[Mode, Input], tuple[Action, Mode]] = {
        # Command mode: lines become commands; replies to the current command move on.
        (_M.COMMAND, _I.BYTES): (_A.BUFFER, _M.COMMAND),
        (_M.COMMAND, _I.LINE): (_A.EMIT_COMMAND, _M.COMMAND),
        (_M.COMMAND, _I.OVERLONG_LINE): (_A.REJECT_LINE, _M.COMMAND),
        (_M.COMMAND, _I.PEER_EOF): (_A.EMIT_CONNECTION_CLOSED, _M.CLOSED),
        (_M.COMMAND, _I.REPLY_354_TO_DATA): (_A.START_DATA, _M.DATA),
        (_M.COMMAND, _I.REPLY_334): (_A.EXPECT_AUTH_LINE, _M.AUTH_LINE),
        (_M.COMMAND, _I.REPLY_220_TO_STARTTLS): (_A.DROP_PLAINTEXT, _M.TLS_PENDING),
        (_M.COMMAND, _I.REPLY_221_TO_QUIT): (_A.SHUT, _M.CLOSED),
        (_M.COMMAND, _I.REPLY_250_TO_EHLO): (_A.USE_ESMTP_LIMITS, _M.COMMAND),
        (_M.COMMAND, _I.REPLY_250_TO_HELO): (_A.USE_BASE_LIMITS, _M.COMMAND),
        (_M.COMMAND, _I.REPLY_OTHER): (_A.NOTHING, _M.COMMAND),
        (_M.COMMAND, _I.DRIVER_CLOSE): (_A.SHUT, _M.CLOSED),
        (_M.COMMAND, _I.START_CHUNK): (_A.START_CHUNK, _M.DATA),
        # AUTH-line mode: exactly one line, then back to commands.
        (_M.AUTH_LINE, _I.BYTES): (_A.BUFFER, _M.AUTH_LINE),
        (_M.AUTH_LINE, _I.LINE): (_A.EMIT_AUTH_LINE, _M.COMMAND),
        (_M.AUTH_LINE, _I.OVERLONG_LINE): (_A.REJECT_LINE, _M.COMMAND),
        (_M.AUTH_LINE, _I.PEER_EOF): (_A.EMIT_CONNECTION_CLOSED, _M.CLOSED),
        (_M.AUTH_LINE, _I.DRIVER_CLOSE): (_A.SHUT, _M.CLOSED),
        # DATA mode: content until CRLF.CRLF (after 354) or until the announced number of
        # octets (after start_chunk); EOF abandons the message.
        (_M.DATA, _I.BYTES): (_A.BUFFER, _M.DATA),
        (_M.DATA, _I.DATA_CONTENT): (_A.EMIT_DATA_CHUNK, _M.DATA),
        (_M.DATA, _I.DATA_END): (_A.EMIT_END_OF_DATA, _M.COMMAND),
        (_M.DATA, _I.PEER_EOF): (_A.EMIT_CONNECTION_CLOSED, _M.CLOSED),
        (_M.DATA, _I.DRIVER_CLOSE): (_A.SHUT, _M.CLOSED),
        # TLS pending: plaintext is never parsed; only the handshake (or close) moves on.
        (_M.TLS_PENDING, _I.BYTES): (_A.DISCARD, _M.TLS_PENDING),
        (_M.TLS_PENDING, _I.PEER_EOF): (_A.DISCARD, _M.TLS_PENDING),
        (_M.TLS_PENDING, _I.TLS_ESTABLISHED): (_A.RESTART, _M.COMMAND),
        (_M.TLS_PENDING, _I.DRIVER_CLOSE): (_A.SHUT, _M.CLOSED),
        # Closed: everything is ignored, closing twice is harmless.
        (_M.CLOSED, _I.BYTES): (_A.DISCARD, _M.CLOSED),
        (_M.CLOSED, _I.PEER_EOF): (_A.DISCARD, _M.CLOSED),
        (_M.CLOSED, _I.TLS_ESTABLISHED): (_A.NOTHING, _M.CLOSED),
        (_M.CLOSED, _I.DRIVER_CLOSE): (_A.NOTHING, _M.CLOSED),
        (_M.CLOSED, _I.START_CHUNK): (_A.NOTHING, _M.CLOSED),
    }
    # A reply sent while the peer owes us a line, message content, or the TLS handshake
    # (a 421 on timeout or shutdown, say) is written but changes no mode: only command
    # mode interprets replies.  Closed mode still renders replies (221 after close()).
    for mode in (_M.AUTH_LINE, _M.DATA, _M.TLS_PENDING, _M.CLOSED):
        for reply in _REPLIES_THAT_CHANGE_NOTHING:
            table[mode, reply] = (_A.NOTHING, mode)
    return table


#: ``(mode, input) -> (action, next mode)``.  Pairs absent from it are violations.
TRANSITIONS: Final[dict[tuple[Mode, Input], tuple[Action, Mode]]] = _build_table()


def _group_by_input(
    table: dict[tuple[Mode, Input], tuple[Action, Mode]],
) -> dict[Input, dict[Mode, tuple[Action, Mode]]]:
    grouped: dict[Input, dict[Mode, tuple[Action, Mode]]] = {event: {} for event in Input}
    for (mode, event), step in table.items():
        grouped[event][mode] = step
    return grouped


#: ``input -> {mode: (action, next mode)}``: ``TRANSITIONS`` regrouped, derived from it (so
#: the two cannot disagree), for hot paths that know their input before they know the mode
#: (a reply line, once classified): one lookup on the mode, no key tuple, no call.  A mode
#: absent from an input's dict is a violation, exactly as in ``TRANSITIONS``.
TRANSITIONS_BY_INPUT: Final[dict[Input, dict[Mode, tuple[Action, Mode]]]] = _group_by_input(
    TRANSITIONS
)


def transition(mode: Mode, event: Input) -> tuple[Action, Mode]:
    """Look up ``(mode, event)``; raise ``CoreUsageError`` for a pair the table forbids."""
    try:
        return TRANSITIONS[mode, event]
    except KeyError:
        raise CoreUsageError(f"{event.value} is not allowed in {mode.value} mode") from None


#: Commands whose reply can change the mode or the limits.  After handing one out the
#: core returns ``PAUSED`` until the driver has sent the final line of its reply, so that
#: nothing pipelined behind it is interpreted under the wrong mode (RFC 2920 §3.1, RFC
#: 3207 §4.2, and the STARTTLS command-injection class CVE-2011-0411).
MODE_CHANGING_VERBS: Final = frozenset(
    {"AUTH", "BDAT", "DATA", "EHLO", "HELO", "LHLO", "QUIT", "STARTTLS"}
)

_FINAL_REPLY_INPUTS: Final = {
    (354, "DATA"): Input.REPLY_354_TO_DATA,
    (220, "STARTTLS"): Input.REPLY_220_TO_STARTTLS,
    (221, "QUIT"): Input.REPLY_221_TO_QUIT,
    (250, "EHLO"): Input.REPLY_250_TO_EHLO,
    (250, "LHLO"): Input.REPLY_250_TO_EHLO,
    (250, "HELO"): Input.REPLY_250_TO_HELO,
}


def is_final_reply_line(line: bytes) -> bool:
    """``True`` unless ``line`` is a continuation line (``NNN-...``, RFC 5321 §4.2.1)."""
    return not (len(line) >= 4 and line[3:4] == b"-" and line[:3].isdigit())


def classify_reply(line: bytes, current_verb: str | None) -> Input:
    """The table input for sending reply ``line`` while ``current_verb`` is being served."""
    if len(line) < 3 or not line[:3].isdigit() or not is_final_reply_line(line):
        return Input.REPLY_OTHER
    if len(line) > 3 and line[3:4] != b" ":
        return Input.REPLY_OTHER
    code = int(line[:3])
    if code == 334:
        return Input.REPLY_334
    return _FINAL_REPLY_INPUTS.get((code, current_verb or ""), Input.REPLY_OTHER)
