"""The fast lane (``_fastlane``) is invisible: the same bytes and hook calls as the general path.

Every scripted session runs three times: with the fast lane, with it switched off (the
general path of the same class: ``_on_command`` and the ``smtp_<VERB>`` coroutines), and
through a subclass that overrides ``push`` (every command in the session task, awaiting
every step). The replies must be byte-identical and the hooks called with the same
arguments on the same state. Then each condition that must take the general path is
shown to take it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

import pytest

from aiosmtpd import _driver, _fastlane
from aiosmtpd._core.state import (
    TRANSITIONS_BY_INPUT,
    Action,
    Input,
    Mode,
    classify_reply,
    is_final_reply_line,
)
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session
from aiosmtpd.testing.transport import MemoryTransport, SMTPClient

#: One step of a script: bytes handed to one ``data_received``, and how many replies
#: (final lines) the server owes once it has them.
Step = tuple[bytes, int]

BODY = b"Subject: hi\r\n\r\n..dot-stuffed\r\nbody\r\n.\r\n"
UNSTUFFED = b"Subject: hi\r\n\r\n.dot-stuffed\r\nbody\r\n"


class PushingSMTP(SMTP):
    """Overrides ``push``: no fast lane and no inline command at all."""

    async def push(self, status: str | bytes) -> None:
        await super().push(status)


class OwnMail(SMTP):
    async def smtp_MAIL(self, arg: str | None) -> None:
        await super().smtp_MAIL(arg)


class OwnHook(SMTP):
    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        return await super()._call_handler_hook(command, *args)


class Plain:
    """A handler without hooks (the Sink of the benchmarks)."""

    def __init__(self) -> None:
        self.calls: list[Any] = []


def _snapshot(envelope: Envelope) -> tuple[Any, ...]:
    return (
        envelope.mail_from,
        tuple(envelope.mail_options),
        tuple(envelope.rcpt_tos),
        tuple(envelope.rcpt_options),
        envelope.smtp_utf8,
        envelope.content,
    )


def hooked(*verbs: str) -> Any:
    """A handler with a recording ``handle_<VERB>`` for each of ``verbs``."""

    class Hooked(Plain):
        pass

    def record(name: str) -> Any:
        async def hook(
            self: Plain, server: SMTP, session: Session, envelope: Envelope, *args: Any
        ) -> Any:
            self.calls.append((name, args, session.host_name, _snapshot(envelope)))
            if name == "HELO":
                session.host_name = args[0]
                return f"250 {server.hostname}"
            if name == "EHLO":
                session.host_name = args[0]
                return args[1]
            if name == "MAIL":
                envelope.mail_from = args[0]
                envelope.mail_options.extend(args[1])
            elif name == "RCPT":
                envelope.rcpt_tos.append(args[0])
                envelope.rcpt_options.extend(args[1])
            elif name == "QUIT":
                return "221 See you"
            elif name == "DATA":
                return "250 Queued"
            return "250 Hooked"

        return hook

    for verb in verbs:
        setattr(Hooked, "handle_" + verb, record(verb))
    return Hooked()


@pytest.fixture
def fast_verbs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The verbs served in the fast lane, in order."""
    served: list[str] = []

    def noting(verb: str, command: Any) -> Any:
        def served_fast(engine: Any, arg: str | None) -> Any:
            served.append(verb)
            return command(engine, arg)

        return served_fast

    spied = {verb: noting(verb, command) for verb, command in _fastlane._COMMANDS.items()}
    monkeypatch.setattr(_fastlane, "_COMMANDS", spied)
    monkeypatch.setattr(_driver, "_LANES", {})
    return served


def lane_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_fastlane, "fast_verbs", lambda cls, inline: {})
    monkeypatch.setattr(_driver, "_LANES", {})


async def run(
    script: list[Step],
    *,
    cls: type[SMTP] = SMTP,
    handler: Any = None,
    greet: bool = True,
    **kwargs: Any,
) -> tuple[bytes, list[Any]]:
    """Play ``script``; everything the server wrote, and the hook calls."""
    handler = handler if handler is not None else Plain()
    kwargs.setdefault("hostname", "mx.test")
    server = cls(handler, **kwargs)
    client = SMTPClient(server)
    await client.connect(read_greeting=greet)
    try:
        async with asyncio.timeout(10):
            for data, owed in script:
                await client.send(data)
                await client.replies(owed)
    finally:
        await client.close()
    return bytes(client.transport.output), handler.calls


async def three_ways(
    monkeypatch: pytest.MonkeyPatch,
    fast_verbs: list[str],
    script: list[Step],
    hooks: tuple[str, ...] = (),
    **kwargs: Any,
) -> bytes:
    """Run ``script`` fast, general and all-task; assert they agree; return the bytes."""
    fast = await run(script, handler=hooked(*hooks), **kwargs)
    served_fast = list(fast_verbs)
    with monkeypatch.context() as patch:
        lane_off(patch)
        general = await run(script, handler=hooked(*hooks), **kwargs)
    tasked = await run(script, cls=PushingSMTP, handler=hooked(*hooks), **kwargs)
    assert fast == general
    assert fast == tasked
    # A hooked command runs in the session task, which serves what is pipelined behind it.
    assert served_fast or "MAIL" in hooks, "the script never took the fast lane"
    return fast[0]


def lines(*commands: bytes) -> list[Step]:
    """Lock step: one command per step, one reply each."""
    return [(command + b"\r\n", 1) for command in commands]


LOCK_STEP = [
    *lines(b"EHLO client.test", b"MAIL FROM:<a@example.com>", b"RCPT TO:<b@example.com>"),
    *lines(b"RCPT TO:<c@example.com>", b"DATA"),
    (BODY, 1),
    *lines(b"NOOP", b"NOOP whatever", b"RSET", b"HELO again.test", b"MAIL FROM:<>"),
    *lines(b"RCPT TO:<d@example.com>", b"RSET", b"QUIT"),
]

PIPELINED = [
    (b"EHLO client.test\r\n", 1),
    # A client that does not wait for the 354: the content is there with the DATA.
    (b"MAIL FROM:<z@example.com>\r\nRCPT TO:<y@example.com>\r\nDATA\r\n" + BODY, 4),
    (b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n", 3),
    (BODY + b"MAIL FROM:<c@example.com>\r\nRCPT TO:<d@example.com>\r\nDATA\r\n", 4),
    (BODY + b"RSET\r\nNOOP\r\nMAIL FROM:<e@example.com>\r\nRSET\r\nQUIT\r\n", 5),
]

ERRORS = [
    *lines(b"MAIL FROM:<a@example.com>", b"RCPT TO:<b@example.com>", b"DATA"),
    *lines(b"HELO", b"EHLO", b"HELO client.test", b"RCPT TO:<b@example.com>", b"DATA"),
    *lines(b"MAIL FROM:a@example.com", b"MAIL TO:<a@example.com>", b"MAIL"),
    *lines(b"MAIL FROM:<a@example.com> SIZE=10", b"MAIL FROM:<a b@example.com>"),
    *lines(b"mail from:<a@example.com>", b"MAIL FROM:<x@example.com>", b"DATA"),
    *lines(b"RCPT TO:b@example.com", b"RCPT FROM:<b@example.com>", b"RCPT TO:<b@x> NOTIFY=1"),
    *lines(b"RCPT TO:<b@example.com>", b"DATA now", b"RSET now", b"QUIT now", b"NOOP"),
    *lines(b"FOO bar", b"MAIL FROM:<\xc3\xa9@example.com>", b"MAIL\x00 FROM:<a@b>"),
    (b"MAIL FROM:<" + b"a" * 600 + b"@example.com>\r\n", 1),
    *lines(b"EHLO client.test", b"MAIL FROM:<a@example.com> SIZE=x", b"MAIL FROM:<a@x> BODY=X"),
    *lines(b"MAIL FROM:<a@example.com> SIZE=99999999999", b"MAIL FROM:<a@x> FOO=bar"),
    *lines(b"MAIL FROM:<a@example.com> SMTPUTF8", b"MAIL FROM:<a@x> BODY=8BITMIME SIZE=10"),
    *lines(b"RCPT TO:<b@example.com> FOO=bar", b"RCPT TO:<b@example.com>", b"DATA"),
    (b"line\r\n" + b"x" * 2000 + b"\r\n.\r\n", 1),
    *lines(b"MAIL FROM:<a@example.com>", b"RCPT TO:<b@example.com>", b"DATA"),
    (b"x" * 3000 + b"\r\n.\r\n", 1),
    *lines(b"QUIT"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("script", [LOCK_STEP, PIPELINED, ERRORS], ids=["lock", "pipe", "errors"])
@pytest.mark.parametrize(
    "hooks",
    [(), ("DATA",), ("RCPT", "DATA"), ("HELO", "EHLO", "MAIL", "RSET", "NOOP", "QUIT")],
    ids=["none", "data", "rcpt+data", "others"],
)
async def test_same_bytes_and_hook_calls_as_the_general_path(
    monkeypatch: pytest.MonkeyPatch,
    fast_verbs: list[str],
    script: list[Step],
    hooks: tuple[str, ...],
) -> None:
    await three_ways(monkeypatch, fast_verbs, script, hooks, data_size_limit=2048)
    for verb in hooks:
        if verb != "DATA":  # DATA's hook runs after the content, behind the same coroutine
            assert verb not in fast_verbs


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "options",
    [
        {"enhanced_status_codes": True},
        {"enable_SMTPUTF8": True},
        {"enable_DSN": True, "enable_REQUIRETLS": True},
        {"enable_CHUNKING": True},
        {"decode_data": True},
        {"data_size_limit": None},
    ],
    ids="+".join,
)
async def test_same_bytes_with_options(
    monkeypatch: pytest.MonkeyPatch, fast_verbs: list[str], options: dict[str, Any]
) -> None:
    script = [
        *lines(b"EHLO client.test", b"MAIL FROM:<a@example.com> SMTPUTF8 BODY=8BITMIME"),
        *lines(b"RCPT TO:<b@example.com> NOTIFY=SUCCESS ORCPT=rfc822;b@example.com"),
        *lines(b"RCPT TO:<\xc3\xa9@example.com>", b"RSET", b"MAIL FROM:<a@example.com>"),
        *lines(b"RCPT TO:<b@example.com>", b"DATA"),
        (b"caf\xc3\xa9\r\n.\r\n", 1),
        *lines(b"RSET", b"MAIL FROM:<a@example.com> BODY=BINARYMIME", b"RCPT TO:<b@example.com>"),
        *lines(b"DATA", b"RSET", b"MAIL FROM:<a@example.com>", b"RCPT TO:<b@example.com>"),
        (b"BDAT 3\r\nabc", 1),
        *lines(b"DATA", b"RSET", b"NOOP", b"QUIT"),
    ]
    await three_ways(monkeypatch, fast_verbs, script, ("DATA",), **options)


@pytest.mark.asyncio
async def test_call_limits_count_the_fast_lane_and_answer_in_the_general_path(
    monkeypatch: pytest.MonkeyPatch, fast_verbs: list[str]
) -> None:
    script = [
        *lines(b"HELO client.test", b"NOOP", b"NOOP"),
        (b"MAIL FROM:<a@example.com>\r\nNOOP\r\nRSET\r\n", 2),
    ]
    limits = {"command_call_limit": {"NOOP": 2, "*": 5}}
    output = await three_ways(monkeypatch, fast_verbs, script, **limits)
    assert output.endswith(b"250 OK\r\n421 4.7.0 NOOP sent too many times\r\n")
    # Just under and at the limit: fast; just over it: the general path answers.
    assert fast_verbs.count("NOOP") == 2


@pytest.mark.asyncio
async def test_the_default_call_limit_applies_to_fast_commands(
    monkeypatch: pytest.MonkeyPatch, fast_verbs: list[str]
) -> None:
    script = [(b"HELO client.test\r\n" + b"RSET\r\n" * 3, 4)]
    output = await three_ways(monkeypatch, fast_verbs, script, command_call_limit=2)
    assert output.endswith(b"250 OK\r\n250 OK\r\n421 4.7.0 RSET sent too many times\r\n")


@pytest.mark.asyncio
async def test_an_exception_in_a_fast_command_is_answered_as_in_the_general_path(
    monkeypatch: pytest.MonkeyPatch, fast_verbs: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    # A hostname that ASCII cannot encode: the HELO reply itself raises.
    script = lines(b"HELO client.test", b"NOOP")
    output = await three_ways(monkeypatch, fast_verbs, script, hostname="mx.t\xe9st")
    assert b"451 4.3.0 Error: local error in processing\r\n" in output
    assert "SMTP session exception" in caplog.text


@pytest.mark.asyncio
async def test_logged_commands_are_the_same(
    monkeypatch: pytest.MonkeyPatch, fast_verbs: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mail.log")
    await run(PIPELINED)
    fast = [r.getMessage() for r in caplog.records if " >> " in r.getMessage()]
    caplog.clear()
    lane_off(monkeypatch)
    await run(PIPELINED)
    assert fast == [r.getMessage() for r in caplog.records if " >> " in r.getMessage()]
    assert any(">> b'MAIL FROM:<a@example.com>'" in message for message in fast)


# --- every unusual condition takes the general path ------------------------------------


@pytest.mark.asyncio
async def test_fast_lane_serves_the_plain_session(fast_verbs: list[str]) -> None:
    await run(PIPELINED)
    assert fast_verbs == [
        *("EHLO", "MAIL", "RCPT", "DATA", "MAIL", "RCPT", "DATA", "MAIL", "RCPT", "DATA"),
        *("RSET", "NOOP", "MAIL", "RSET", "QUIT"),
    ]


@pytest.mark.asyncio
async def test_a_subclass_overriding_a_verb_keeps_it_off_the_fast_lane(
    fast_verbs: list[str],
) -> None:
    await run(LOCK_STEP, cls=OwnMail)
    assert "MAIL" not in fast_verbs
    assert "RCPT" in fast_verbs


@pytest.mark.asyncio
@pytest.mark.parametrize("cls", [PushingSMTP, OwnHook], ids=["push", "call_handler_hook"])
async def test_a_subclass_overriding_push_or_the_hook_call_has_no_fast_lane(
    fast_verbs: list[str], cls: type[SMTP]
) -> None:
    await run(PIPELINED, cls=cls)
    assert fast_verbs == []


@pytest.mark.asyncio
async def test_a_hook_keeps_its_verb_off_the_fast_lane(fast_verbs: list[str]) -> None:
    output, calls = await run(PIPELINED, handler=hooked("MAIL"))
    assert "MAIL" not in fast_verbs
    assert [call[0] for call in calls] == ["MAIL"] * 4
    assert output.count(b"250 Hooked\r\n") == 4


@pytest.mark.asyncio
async def test_a_handle_exception_hook_turns_the_fast_lane_off(fast_verbs: list[str]) -> None:
    class Handler(Plain):
        async def handle_exception(self, error: Exception) -> str:
            return "500 oops"

    await run(PIPELINED, handler=Handler())
    assert fast_verbs == []


@pytest.mark.asyncio
async def test_require_starttls_before_tls_takes_the_general_path(
    monkeypatch: pytest.MonkeyPatch, fast_verbs: list[str]
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    script = lines(b"EHLO client.test", b"MAIL FROM:<a@example.com>", b"NOOP", b"QUIT")
    output, _ = await run(script, tls_context=context, require_starttls=True)
    assert fast_verbs == []
    assert b"530 Must issue a STARTTLS command first\r\n" in output
    lane_off(monkeypatch)
    assert (await run(script, tls_context=context, require_starttls=True))[0] == output


@pytest.mark.asyncio
async def test_commands_behind_a_running_hook_wait_for_the_task(fast_verbs: list[str]) -> None:
    release = asyncio.Event()

    class Slow(Plain):
        async def handle_RCPT(
            self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
        ) -> Any:
            await release.wait()
            return MISSING

    server = SMTP(Slow(), hostname="mx.test")
    async with SMTPClient(server) as client:
        await client.command("HELO client.test")
        await client.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nNOOP\r\n")
        assert server._task is not None
        await client.send(b"RSET\r\n")  # arrives while the task runs: never served inline
        release.set()
        assert [r.code for r in await client.replies(4)] == [250, 250, 250, 250]
        assert envelope_free(server)
    assert fast_verbs == ["HELO", "MAIL"]


def envelope_free(server: SMTP) -> bool:
    return server._envelope is None or not server._envelope.rcpt_tos


@pytest.mark.asyncio
async def test_commands_after_a_proxy_header_agree(
    monkeypatch: pytest.MonkeyPatch, fast_verbs: list[str]
) -> None:
    header = b"PROXY TCP4 192.0.2.1 192.0.2.2 40000 25\r\n"
    script = [(header + b"EHLO client.test\r\nMAIL FROM:<a@example.com>\r\n", 3)]
    script += lines(b"RCPT TO:<b@example.com>", b"QUIT")

    class Proxied(Plain):
        async def handle_PROXY(
            self, server: SMTP, session: Session, envelope: Any, data: Any
        ) -> bool:
            return True

    options: dict[str, Any] = {"proxy_protocol_timeout": 10.0, "greet": False}
    fast = await run(script, handler=Proxied(), **options)
    lane_off(monkeypatch)
    assert await run(script, handler=Proxied(), **options) == fast
    assert fast[0].startswith(b"220 ")
    assert b"250 OK\r\n250 OK\r\n221 Bye\r\n" in fast[0]


def test_the_fast_lane_table_of_the_stock_and_derived_classes() -> None:
    from aiosmtpd.lmtp import LMTP

    inline = _driver._inline_verbs(SMTP)
    assert set(_fastlane.fast_verbs(SMTP, inline)) == set(inline)
    assert _fastlane.fast_verbs(LMTP, _driver._inline_verbs(LMTP)) == {}
    assert "MAIL" not in _fastlane.fast_verbs(OwnMail, _driver._inline_verbs(OwnMail))

    class OwnEnvelope(SMTP):
        @property
        def envelope(self) -> Envelope:
            return super().envelope

    assert _fastlane.fast_verbs(OwnEnvelope, _driver._inline_verbs(OwnEnvelope)) == {}


@pytest.mark.asyncio
async def test_reading_pauses_only_while_input_piles_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiosmtpd import _engine

    monkeypatch.setattr(_engine, "READ_HIGH_WATER", 1000)
    release = asyncio.Event()

    class Slow(Plain):
        async def handle_NOOP(
            self, server: SMTP, session: Session, envelope: Envelope, arg: Any
        ) -> str:
            await release.wait()
            return "250 Slow"

    server = SMTP(Slow(), hostname="mx.test")
    async with SMTPClient(server) as client:
        await client.command("HELO client.test")
        # Served in the receive that brought it: nothing is left to pile up.
        await client.send(b"RSET\r\n" * 300)
        assert not client.transport.reading_paused
        assert [r.code for r in await client.replies(300)] == [250] * 300
        # Behind a hook that is still working, the same input piles up: stop reading.
        await client.send(b"NOOP\r\n" + b"RSET\r\n" * 300)
        assert client.transport.reading_paused
        release.set()
        assert [r.code for r in await client.replies(301)] == [250] * 301
        assert not client.transport.reading_paused


@pytest.mark.asyncio
async def test_data_waits_for_its_content_without_a_coroutine() -> None:
    handler = hooked("DATA")
    server = SMTP(handler, hostname="mx.test")
    async with SMTPClient(server) as client:
        await client.command("HELO client.test")
        await client.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        assert [r.code for r in await client.replies(3)] == [250, 250, 354]
        parked = server._suspended
        assert parked is not None
        assert getattr(parked, "_coro", "started") is None
        await client.send(BODY[:10])  # part of the content: now the coroutine runs
        assert server._suspended is not None
        assert server._suspended is not parked
        await client.send(BODY[10:])
        assert (await client.reply()).code == 250
        # The hook ran once, on the whole message.
        assert [(call[0], call[3][-1]) for call in handler.calls] == [("DATA", UNSTUFFED)]
        assert server._suspended is None


@pytest.mark.asyncio
async def test_a_connection_lost_while_data_waits_leaves_nothing_behind() -> None:
    import gc
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        server = SMTP(Plain(), hostname="mx.test")
        client = SMTPClient(server)
        await client.connect()
        await client.send(b"HELO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n")
        assert [r.code for r in await client.replies(4)] == [250, 250, 250, 354]
        assert server._suspended is not None
        await client.close()
        assert server._suspended is None
        del server, client
        gc.collect()
    assert [str(w.message) for w in caught] == []


@pytest.mark.asyncio
async def test_eof_behind_data_while_writes_are_paused_ends_the_session() -> None:
    server = SMTP(Plain(), hostname="mx.test")
    async with SMTPClient(server) as client:
        await client.command("HELO client.test")
        await client.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n")
        await client.replies(2)
        server.pause_writing()
        await client.send(b"DATA\r\n")
        server.eof_received()
        server.resume_writing()  # DATA is served now, with the EOF already in the core
        assert (await client.reply()).code == 354
        async with asyncio.timeout(5):  # not the idle timeout: the EOF is seen at once
            await client.wait_closed()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "options",
    [
        {"hostname": "mx.t\xe9st"},
        {"hostname": "mx.t\xe9st", "enable_SMTPUTF8": True},
    ],
    ids=["non-ascii", "non-ascii-smtputf8"],
)
async def test_ehlo_lines_with_an_unusual_hostname_agree(
    monkeypatch: pytest.MonkeyPatch, fast_verbs: list[str], options: dict[str, Any]
) -> None:
    script = lines(b"EHLO client.test", b"NOOP", b"QUIT")
    await three_ways(monkeypatch, fast_verbs, script, **options)
    assert "EHLO" in fast_verbs


# --- EHLO and HELO replies rendered once (``_fastlane._EHLO_BLOCKS`` / ``_HELO_LINES``) ---


class HandlerAuth(Plain):
    """A handler that brings an AUTH mechanism of its own (it changes EHLO's AUTH line)."""

    async def auth_XTOKEN(self, server: SMTP, args: list[str]) -> Any:
        return MISSING


class LegacyEhloHook(SMTP):
    """1.4's ``ehlo_hook``: EHLO takes the general path, which awaits it."""

    async def ehlo_hook(self) -> None:
        await self.push("250-XLEGACY")


def accept_all(*args: Any) -> AuthResult:
    return AuthResult(success=True)


EHLO_SCRIPT = lines(b"EHLO client.test", b"HELO client.test", b"EHLO again.test", b"QUIT")

#: Each setting that changes EHLO's lines, alone and in combination.
EHLO_OPTIONS: list[dict[str, Any]] = [
    {},
    {"hostname": "other.test"},
    {"data_size_limit": None},
    {"data_size_limit": 1},
    {"data_size_limit": 2**40},
    {"decode_data": True},
    {"enable_SMTPUTF8": True},
    {"enhanced_status_codes": True},
    {"enable_DSN": True},
    {"enable_CHUNKING": True},
    {"enable_CHUNKING": True, "decode_data": True},
    {"enable_REQUIRETLS": True},
    {"auth_require_tls": False},
    {"auth_require_tls": False, "auth_exclude_mechanism": ["LOGIN"]},
    {"auth_require_tls": False, "auth_exclude_mechanism": ["LOGIN", "PLAIN"]},
    {"auth_require_tls": False, "handler": HandlerAuth},
    {"tls_context": "context"},
    {"tls_context": "context", "auth_require_tls": False, "enable_REQUIRETLS": True},
    {
        "hostname": "all.test",
        "data_size_limit": 12345,
        "decode_data": True,
        "enable_SMTPUTF8": True,
        "enhanced_status_codes": True,
        "enable_DSN": True,
        "enable_CHUNKING": True,
        "enable_REQUIRETLS": True,
        "auth_require_tls": False,
        "tls_context": "context",
    },
]


def ehlo_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` as server keyword arguments (a handler class is made per run)."""
    options = dict(options)
    if options.get("tls_context") == "context":
        options["tls_context"] = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    return options


async def session(
    script: list[Step],
    *,
    cls: type[SMTP] = SMTP,
    tls: bool = False,
    between: Callable[[SMTP, int], None] | None = None,
    **kwargs: Any,
) -> bytes:
    """Play ``script`` (``between(server, step)`` runs before each step); the bytes."""
    handler_type = kwargs.pop("handler", Plain)
    kwargs.setdefault("hostname", "mx.test")
    server = cls(handler_type(), **kwargs)
    extra = {"ssl_object": object(), "cipher": ("C", "TLSv1.3", 256)} if tls else None
    client = SMTPClient(server, MemoryTransport(extra=extra))
    await client.connect()
    try:
        async with asyncio.timeout(10):
            for step, (data, owed) in enumerate(script):
                if between is not None:
                    between(server, step)
                await client.send(data)
                await client.replies(owed)
    finally:
        await client.close()
    return bytes(client.transport.output)


async def fast_and_general(
    monkeypatch: pytest.MonkeyPatch, fast_verbs: list[str], script: list[Step], **kwargs: Any
) -> bytes:
    """The fast lane twice (the reply caches cold, then warm) and the general path twice
    (``smtp_<VERB>`` with the lane off; every step in the task): all four agree."""
    _fastlane._EHLO_BLOCKS.clear()
    _fastlane._HELO_LINES.clear()
    cold = await session(script, **kwargs)
    warm = await session(script, **kwargs)
    assert "EHLO" in fast_verbs
    assert "HELO" in fast_verbs
    assert _fastlane._EHLO_BLOCKS
    assert _fastlane._HELO_LINES
    with monkeypatch.context() as patch:
        lane_off(patch)
        general = await session(script, **kwargs)
    tasked = await session(script, cls=PushingSMTP, **kwargs)
    assert cold == warm == general == tasked
    return cold


def test_continuation_lines_change_nothing_in_the_core() -> None:
    """What lets ``_send_continuations`` queue them without ``ServerConnection.send``."""
    assert set(TRANSITIONS_BY_INPUT[Input.REPLY_OTHER]) == set(Mode)
    for mode, (action, next_mode) in TRANSITIONS_BY_INPUT[Input.REPLY_OTHER].items():
        assert (action, next_mode) == (Action.NOTHING, mode)
    assert classify_reply(b"250-SIZE 10", "EHLO") is Input.REPLY_OTHER
    assert not is_final_reply_line(b"250-SIZE 10")


def test_lines_worked_out_ahead_are_the_library_replies_for_their_verbs() -> None:
    """What the fast lane hands ``_send_known``: the reply ``_say`` would send, worked out
    for the verb it answers; never a challenge or STARTTLS's reply, which ``_send_line``
    must look at."""
    from aiosmtpd._core import replies as R

    cases = {
        "_MAIL_OK": (R.OK, "MAIL"),
        "_RCPT_OK": (R.OK, "RCPT"),
        "_RSET_OK": (R.OK, "RSET"),
        "_NOOP_OK": (R.OK, "NOOP"),
        "_QUIT_BYE": (R.BYE, "QUIT"),
        "_DATA_GO": (R.START_DATA, "DATA"),
        "_CONTENT_OK": (R.OK, None),
    }
    for name, (reply, verb) in cases.items():
        for enhanced in (False, True):
            known_verb, _, final, wire, line = getattr(_fastlane, name)[enhanced]
            assert (known_verb, final, line) == (verb, True, reply.line(enhanced)), name
            assert wire == line + b"\r\n"
    with pytest.raises(ValueError, match="334"):
        _fastlane._known(R.Reply(334, "challenge"), "AUTH")
    with pytest.raises(ValueError, match="STARTTLS"):
        _fastlane._known(R.Reply(220, "Ready"), "STARTTLS")


@pytest.mark.asyncio
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("options", EHLO_OPTIONS, ids=lambda o: "+".join(o) or "default")
async def test_ehlo_and_helo_replies_agree_for_every_setting(
    monkeypatch: pytest.MonkeyPatch, fast_verbs: list[str], options: dict[str, Any], tls: bool
) -> None:
    output = await fast_and_general(
        monkeypatch, fast_verbs, EHLO_SCRIPT, tls=tls, **ehlo_options(options)
    )
    assert output.count(b"250 HELP\r\n") == 2


@pytest.mark.asyncio
async def test_the_caches_serve_each_server_its_own_lines(
    monkeypatch: pytest.MonkeyPatch, fast_verbs: list[str]
) -> None:
    """Servers with different settings, one after the other, with the caches warm: each
    gets what the general path sends it."""
    sessions = [(ehlo_options(options), tls) for options in EHLO_OPTIONS for tls in (False, True)]
    fast = [await session(EHLO_SCRIPT, tls=tls, **options) for options, tls in sessions]
    fast += [await session(EHLO_SCRIPT, tls=tls, **options) for options, tls in sessions]
    assert "EHLO" in fast_verbs
    with monkeypatch.context() as patch:
        lane_off(patch)
        general = [await session(EHLO_SCRIPT, tls=tls, **options) for options, tls in sessions]
    assert fast == general * 2


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "change",
    [
        ("_tls_protocol", object()),  # STARTTLS done (what _starttls.finish_upgrade sets)
        ("hostname", "renamed.test"),
        ("data_size_limit", 99),
        ("enhanced_status_codes", True),
        ("advertise_pipelining", False),
        ("enable_SMTPUTF8", True),
    ],
    ids=lambda change: change[0] if isinstance(change, tuple) else "",
)
async def test_a_setting_changed_within_a_session_shows_in_the_next_ehlo(
    monkeypatch: pytest.MonkeyPatch, fast_verbs: list[str], change: tuple[str, Any]
) -> None:
    name, value = change

    def change_after_first_ehlo(server: SMTP, step: int) -> None:
        if step == 2:
            setattr(server, name, value)

    options = ehlo_options({"tls_context": "context", "enable_REQUIRETLS": True})
    output = await fast_and_general(
        monkeypatch, fast_verbs, EHLO_SCRIPT, between=change_after_first_ehlo, **options
    )
    first, second = output.split(b"250 HELP\r\n")[:2]
    assert first.split(b"\r\n")[1:] != second.split(b"\r\n")[2:]


@pytest.mark.asyncio
async def test_ehlo_after_auth_agrees(
    monkeypatch: pytest.MonkeyPatch, fast_verbs: list[str]
) -> None:
    script = [
        *lines(b"EHLO client.test", b"AUTH PLAIN AHVzZXIAcGFzcw==", b"EHLO client.test"),
        *lines(b"HELO client.test", b"MAIL FROM:<a@example.com>", b"QUIT"),
    ]
    output = await fast_and_general(
        monkeypatch, fast_verbs, script, auth_require_tls=False, authenticator=accept_all
    )
    assert b"235 2.7.0 Authentication successful\r\n" in output


@pytest.mark.asyncio
@pytest.mark.parametrize("hook", ["handle_EHLO", "ehlo_hook"])
async def test_an_ehlo_hook_takes_the_general_path(
    monkeypatch: pytest.MonkeyPatch, fast_verbs: list[str], hook: str
) -> None:
    script = lines(b"EHLO client.test", b"NOOP", b"EHLO again.test", b"QUIT")
    if hook == "ehlo_hook":
        with pytest.warns(DeprecationWarning, match="ehlo_hook"):
            fast = await session(script, cls=LegacyEhloHook)
        with monkeypatch.context() as patch:
            lane_off(patch)
            with pytest.warns(DeprecationWarning, match="ehlo_hook"):
                general = await session(script, cls=LegacyEhloHook)
        assert b"250-XLEGACY\r\n" in fast
    else:
        fast = await run(script, handler=hooked("EHLO"))
        with monkeypatch.context() as patch:
            lane_off(patch)
            general = await run(script, handler=hooked("EHLO"))
        assert fast[1] == general[1] != []
        fast, general = fast[0], general[0]
    assert fast == general
    assert "EHLO" not in fast_verbs
    assert "NOOP" in fast_verbs
