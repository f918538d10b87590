"""The core's per-command shortcuts agree with the general code they stand in for.

Cached reply bytes equal the rendered reply; the tables derived for the hot paths equal
state.py's transition table and ``CoreConfig.command_limit``; the one-regex MAIL/RCPT
argument parser returns exactly what ``strip_keyword`` + ``parse_path`` return.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aiosmtpd._core import connection, replies, syntax
from aiosmtpd._core.connection import CoreConfig, ServerConnection
from aiosmtpd._core.events import Command, Rejected
from aiosmtpd._core.state import (
    MODE_CHANGING_VERBS,
    TRANSITIONS,
    TRANSITIONS_BY_INPUT,
    Input,
    Mode,
)

from .driver import drive

CANONICAL = sorted(
    (name for name, value in vars(replies).items() if isinstance(value, replies.Reply)),
)


# --- Reply.line -------------------------------------------------------------------------


@pytest.mark.parametrize("name", CANONICAL)
@pytest.mark.parametrize("enhanced", [False, True])
def test_line_is_the_rendered_reply_encoded(name: str, enhanced: bool) -> None:
    reply: replies.Reply = getattr(replies, name)
    line = reply.line(enhanced)
    assert line == reply.render(enhanced).encode("utf-8")
    assert reply.line(enhanced) is line  # rendered once, then reused


def test_line_defaults_to_no_enhanced_codes_and_keeps_both_forms_apart() -> None:
    reply = replies.Reply(250, "OK", "2.0.0")
    assert reply.line(True) == b"250 2.0.0 OK"
    assert reply.line() == b"250 OK"
    assert reply.line(True) == b"250 2.0.0 OK"
    always = replies.Reply(421, "Bye", "4.3.2", always_enhanced=True)
    assert always.line() == always.line(True) == b"421 4.3.2 Bye"


def test_line_of_a_substituted_reply_encodes_utf8() -> None:
    reply = replies.HELO_OK.with_text("m\u00e9l.example")
    assert reply.line() == "250 m\u00e9l.example".encode()


def test_cached_line_changes_no_equality_hash_or_repr() -> None:
    fresh = replies.Reply(250, "OK", "2.0.0")
    used = replies.Reply(250, "OK", "2.0.0")
    before = repr(used)
    used.line(True)
    used.line(False)
    assert used == fresh
    assert hash(used) == hash(fresh)
    assert (
        repr(used)
        == before
        == "Reply(code=250, text='OK', enhanced='2.0.0', always_enhanced=False)"
    )
    with pytest.raises(AttributeError):
        used.code = 251  # type: ignore[misc]


def test_line_goes_through_send() -> None:
    conn = ServerConnection(CoreConfig())
    conn.receive_data(b"NOOP\r\n")
    assert isinstance(conn.next_event(), Command)
    assert conn.send(replies.OK.line(True)) == b"250 2.0.0 OK\r\n"


# --- tables derived from state.TRANSITIONS ------------------------------------------------


@pytest.mark.parametrize(("mode", "event"), list(itertools.product(Mode, Input)))
def test_transitions_by_input_is_the_table_regrouped(mode: Mode, event: Input) -> None:
    assert TRANSITIONS_BY_INPUT[event].get(mode) == TRANSITIONS.get((mode, event))


def test_transitions_by_input_holds_nothing_else() -> None:
    regrouped = {
        (mode, event): step
        for event, steps in TRANSITIONS_BY_INPUT.items()
        for mode, step in steps.items()
    }
    assert regrouped == TRANSITIONS


def test_command_line_mode_comes_from_the_table() -> None:
    assert connection._MODE_AFTER_COMMAND_LINE is TRANSITIONS[Mode.COMMAND, Input.LINE][1]


def test_mode_is_a_plain_attribute() -> None:
    assert "mode" in ServerConnection.__slots__
    conn = ServerConnection(CoreConfig())
    assert conn.mode is Mode.COMMAND
    conn.receive_data(b"DATA\r\n")
    conn.next_event()
    conn.send(b"354 go ahead")
    assert conn.mode is Mode.DATA


def test_send_returns_the_line_with_crlf_for_bytes_and_bytearray() -> None:
    conn = ServerConnection(CoreConfig())
    for _ in range(2):  # the first call fills the cache, the second uses it
        assert conn.send(b"250 OK") == b"250 OK\r\n"
    wire = conn.send(bytearray(b"250 OK"))
    assert wire == b"250 OK\r\n"
    assert isinstance(wire, bytearray)
    with pytest.raises(ValueError, match="CR or LF"):
        conn.send(b"250 OK\r\n")


def test_cached_reply_kind_is_per_current_verb() -> None:
    # The same line changes the mode after DATA and nothing after NOOP.
    conn = ServerConnection(CoreConfig())
    conn.receive_data(b"NOOP\r\nDATA\r\n")
    conn.next_event()
    conn.send(b"354 x")
    assert conn.mode is Mode.COMMAND
    conn.next_event()
    conn.send(b"354 x")
    assert conn.mode is Mode.DATA


# --- send_known: a reply worked out ahead does what send does -------------------------

KNOWN_VERBS = ["MAIL", "RCPT", "DATA", "NOOP", "RSET", "QUIT", "HELO", "EHLO", "STARTTLS", "AUTH"]
KNOWN_LINES = [
    b"250 OK",
    b"250 2.0.0 OK",
    b"250-continued",
    b"354 End data with <CR><LF>.<CR><LF>",
    b"221 Bye",
    b"220 Ready to start TLS",
    b"334 ",
    b"501 Syntax error",
    b"x",
]


def _serving(verb: str | None) -> ServerConnection:
    """A connection whose current command is ``verb`` (``None``: none yet)."""
    conn = ServerConnection(CoreConfig())
    if verb is not None:
        argument = b" x" if verb in ("AUTH", "HELO", "EHLO") else b""
        conn.receive_data(verb.encode() + argument + b"\r\n")
        event = conn.next_event()
        assert isinstance(event, Command)
        assert event.verb == verb
    return conn


def _state(conn: ServerConnection) -> tuple[object, ...]:
    return (conn.mode, conn._awaiting_reply, conn._data_reader, conn._esmtp, conn._verbs)


def _outcome(conn: ServerConnection, send: Callable[[], bytes]) -> tuple[object, ...]:
    try:
        wire: object = send()
    except Exception as error:  # the error is the outcome compared
        wire = type(error)
    conn.receive_data(b"NOOP\r\n.\r\n")
    return (wire, _state(conn), conn.next_event())


@pytest.mark.parametrize("verb", [*KNOWN_VERBS, None])
@pytest.mark.parametrize("line", KNOWN_LINES)
@pytest.mark.parametrize("made_for", ["same", "other"])
def test_send_known_does_what_send_does(verb: str | None, line: bytes, made_for: str) -> None:
    """Same bytes, mode, pause and next event as ``send(line)``, whether the line was
    worked out for the current command or for another one (then it is a plain send)."""
    known_verb = verb if made_for == "same" else ("NOOP" if verb == "DATA" else "DATA")
    known = connection.known_reply(line, known_verb)
    plain, ahead = _serving(verb), _serving(verb)
    assert _outcome(ahead, lambda: ahead.send_known(known)) == _outcome(
        plain, lambda: plain.send(line)
    )


def test_send_known_changes_the_mode_for_its_verb_only() -> None:
    go_ahead = connection.known_reply(b"354 go ahead", "DATA")
    data = _serving("DATA")
    assert data.send_known(go_ahead) == b"354 go ahead\r\n"
    assert data.mode is Mode.DATA
    noop = _serving("NOOP")
    noop.send_known(go_ahead)  # made for DATA: sent as send() would, no mode change
    assert noop.mode is Mode.COMMAND


def test_known_reply_refuses_line_breaks() -> None:
    for line in (b"250 OK\r\n", b"250 a\nb", b"250 a\rb"):
        with pytest.raises(ValueError, match="CR or LF"):
            connection.known_reply(line, "MAIL")


CONFIGS = st.builds(
    CoreConfig,
    command_size_limit=st.integers(3, 2000),
    mail_esmtp_extra=st.integers(0, 600),
    rcpt_esmtp_extra=st.integers(0, 600),
    auth_line_limit=st.integers(3, 20000),
)


@given(CONFIGS)
def test_verb_tables_equal_command_limit(config: CoreConfig) -> None:
    for esmtp, table in ((False, config.base_verbs), (True, config.esmtp_verbs)):
        assert set(table) == {
            spelling
            for verb in connection._COMMON_VERBS.split()
            for spelling in (verb, verb.lower())
        }
        for spelling, (verb, limit, pauses) in table.items():
            upper = spelling.upper()
            assert verb == upper.decode("ascii")
            assert limit == config.command_limit(upper, esmtp=esmtp)
            assert pauses == (verb in MODE_CHANGING_VERBS)
    assert config.longest_command_limit == max(
        config.auth_line_limit,
        config.command_size_limit + config.mail_esmtp_extra,
        config.command_size_limit + config.rcpt_esmtp_extra,
    )


def test_derived_config_fields_are_not_compared_or_shown() -> None:
    assert CoreConfig() == CoreConfig()
    assert hash(CoreConfig()) == hash(CoreConfig())
    assert CoreConfig(command_size_limit=600) != CoreConfig()
    assert "verbs" not in repr(CoreConfig())
    with pytest.raises(TypeError):
        CoreConfig(base_verbs={})  # type: ignore[call-arg]


EHLO = b"EHLO x\r\n"


@pytest.mark.parametrize("spelling", [b"MAIL", b"mail", b"Mail", b"rcpt", b"RcPt", b"NOOP"])
@pytest.mark.parametrize("esmtp", [False, True])
@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_limits_are_the_same_for_every_spelling(spelling: bytes, esmtp: bool, delta: int) -> None:
    # Table spellings (MAIL, mail) and the general way (Mail) give the same limits.
    config = CoreConfig(mail_esmtp_extra=26, rcpt_esmtp_extra=100)
    limit = config.command_limit(spelling.upper(), esmtp=esmtp)
    head = spelling + b" "
    line = head + b"x" * (limit + delta - len(head) - 2) + b"\r\n"
    events = drive([(EHLO if esmtp else b"HELO x\r\n") + line], config=config)
    expected_ok = delta <= 0
    last = events[-1]
    if expected_ok:
        assert isinstance(last, Command)
        assert last.verb == spelling.upper().decode()
    else:
        assert last == Rejected(replies.COMMAND_TOO_LONG)


@pytest.mark.parametrize("spelling", [b"DATA", b"data", b"Data", b"StartTLS", b"quit"])
def test_mode_changing_verbs_pause_for_every_spelling(spelling: bytes) -> None:
    conn = ServerConnection(CoreConfig())
    conn.receive_data(spelling + b"\r\nNOOP\r\n")
    assert isinstance(conn.next_event(), Command)
    assert repr(conn.next_event()) == "PAUSED"


# --- syntax.parse_path_argument -----------------------------------------------------------


def full_parser(arg: str, keyword: str) -> tuple[str, str] | syntax.PathError:
    """What the adapter did before ``parse_path_argument``: the general parsers."""
    text = syntax.strip_keyword(arg, keyword)
    return syntax.parse_path(text) if text else syntax.PathError.SYNTAX


KEYWORDS = ["FROM:", "TO:"]
# Characters that sit on the edges of the fast path's grammar: whitespace (ASCII and not),
# brackets, quotes, route and literal syntax, non-ASCII letters whose upper case is ASCII.
EDGY = ' \t\x0b\x0c\r\x1c\x85\xa0\u3000<>@.,:;"\\[]()=+é\u017f\u212a\udcff'
ATEXT = "abcXYZ019!#$%&'*+-/=?^_`{|}~"
pieces = st.one_of(
    st.sampled_from(["FROM:", "from:", "FrOm:", "TO:", "to:", "tO:", "<", ">", "@", "."]),
    st.sampled_from([" SIZE=100", " BODY=8BITMIME", " SMTPUTF8", "  ", " x=y z"]),
    st.text(alphabet=ATEXT, min_size=1, max_size=6),
    st.text(alphabet=EDGY, min_size=1, max_size=2),
)
arguments = st.lists(pieces, max_size=10).map("".join)
# Mostly nothing at a seam, often whitespace (the parsers strip it in different places).
edge = st.sampled_from(["", "", "", " ", "  ", "\t", "\xa0", "\x85", "\u3000", "\x1c"]) | st.text(
    alphabet=EDGY, max_size=2
)
atoms = st.text(alphabet=ATEXT + ".", min_size=1, max_size=5)
SPELLINGS = {
    "FROM:": ["FROM:", "from:", "fRoM:", "\u017fROM:"],
    "TO:": ["TO:", "to:", "tO:", "T\u212a:"],
}


@st.composite
def near_common(draw: st.DrawFn) -> tuple[str, str]:
    """A MAIL/RCPT argument close to the common form, odd at any of its seams."""
    keyword = draw(st.sampled_from(KEYWORDS))
    parts = [
        draw(st.sampled_from(SPELLINGS[keyword])),
        draw(edge),
        draw(st.sampled_from(["<", "<", "<", "", "<<"])),
        draw(edge),
        draw(atoms),
        draw(st.sampled_from(["@", "@", "@", "", "@@", "@["])),
        draw(atoms),
        draw(edge),
        draw(st.sampled_from([">", ">", ">", "", ">>"])),
        draw(edge),
        draw(st.sampled_from(["", " SIZE=1", " SMTPUTF8 BODY=8BITMIME", "x"])),
        draw(edge),
    ]
    return "".join(parts), keyword


@settings(max_examples=300)
@given(st.one_of(st.tuples(arguments, st.sampled_from(KEYWORDS)), near_common()))
@example(("FROM:<a@b.c>", "FROM:"))
@example(("TO:<\xa0a@b>", "TO:"))
@example(("TO:<a@b\u3000>", "TO:"))
@example(("TO:< a@b>", "TO:"))
@example(("from: <a.b@c-d.e>  SIZE=1 BODY=7BIT ", "FROM:"))
@example(("TO:<a@b>\xa0", "TO:"))
@example(("TO:\xa0<a@b>", "TO:"))
@example(("TO:<a@b>>", "TO:"))
@example(("TO:<.a..b.@c>", "TO:"))
@example(("TO:<a@b.>", "TO:"))
@example(("TO:<a@.b>", "TO:"))
@example(("TO:<a@b..c>", "TO:"))
@example(("TO:<@r:a@b>", "TO:"))
@example(("\u017fTO:<a@b>", "TO:"))
@example(("FROM:<a@b>\x1c", "FROM:"))
@example(("FROM:<>", "FROM:"))
@example(("FROM:", "FROM:"))
@example(("FROM:<a@b", "FROM:"))
@example(("FROM:<a@b>\r", "FROM:"))
def test_fast_path_argument_equals_the_full_parsers(case: tuple[str, str]) -> None:
    arg, keyword = case
    assert syntax.parse_path_argument(arg, keyword) == full_parser(arg, keyword)


@given(st.text(max_size=40), st.sampled_from([*KEYWORDS, "FROM", "X:"]))
def test_path_argument_equals_the_full_parsers_on_any_text(arg: str, keyword: str) -> None:
    assert syntax.parse_path_argument(arg, keyword) == full_parser(arg, keyword)


@pytest.mark.parametrize(
    ("arg", "keyword", "expected"),
    [
        ("FROM:<sender@example.com>", "FROM:", ("sender@example.com", "")),
        ("from: <a@b.c> SIZE=10 BODY=8BITMIME", "FROM:", ("a@b.c", "SIZE=10 BODY=8BITMIME")),
        ("TO:<recipient@example.org>", "TO:", ("recipient@example.org", "")),
        ("To:<x.y+tag@[not.fast]>", "TO:", None),  # an address literal: full parser
        ("TO:<\u00e9@example.org>", "TO:", None),  # non-ASCII: full parser
    ],
)
def test_the_common_forms_take_the_fast_path(
    arg: str, keyword: str, expected: tuple[str, str] | None
) -> None:
    match = syntax._FAST_PATH_ARGUMENTS[keyword].match(arg)
    assert (match is not None) == (expected is not None)
    if expected is not None:
        assert syntax.parse_path_argument(arg, keyword) == expected


def test_empty_esmtp_params_are_fresh_each_time() -> None:
    first = syntax.parse_esmtp_params("")
    second = syntax.parse_esmtp_params("")
    assert first == second == syntax.EsmtpParams([], {})
    assert first is not None
    assert second is not None
    assert first.options is not second.options
    assert first.values is not second.values
