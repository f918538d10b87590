"""The built-in handlers: exact 1.4 output, relaying, parsing, Maildir, and ``from_cli``.

Unit tests call ``handle_DATA`` with a session and an envelope directly; the last section
runs them behind a real ``Controller`` and sends mail with ``smtplib``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import mailbox
import smtplib
import sys
from argparse import ArgumentParser
from email.message import EmailMessage
from email.message import Message as EmailMessageCompat
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from aiosmtpd import handlers
from aiosmtpd.handlers import AsyncMessage, Debugging, Mailbox, Message, Proxy, Sink
from aiosmtpd.smtp import Envelope, Session

PEER = ("127.0.0.1", 40001)


def make_envelope(
    content: bytes | str | None,
    *,
    mail_from: str = "anne@example.com",
    rcpt_tos: list[str] | None = None,
    mail_options: list[str] | None = None,
    original_content: bytes | None = None,
) -> Envelope:
    envelope = Envelope()
    envelope.mail_from = mail_from
    envelope.rcpt_tos = ["bart@example.com"] if rcpt_tos is None else rcpt_tos
    envelope.mail_options = mail_options or []
    envelope.content = content
    envelope.original_content = original_content
    return envelope


def make_session(peer: Any = PEER) -> Session:
    session = Session(loop=None)  # type: ignore[arg-type]
    session.peer = peer
    return session


class ParserExit(Exception):
    pass


class RecordingParser(ArgumentParser):
    def error(self, message: str) -> Any:  # type: ignore[override]
        raise ParserExit(message)


# --- Debugging -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_debugging_prints_the_1_4_format() -> None:
    stream = io.StringIO()
    envelope = make_envelope(
        b"Subject: hi\r\nX: y\r\n\r\nbody\r\nline2\r\n", mail_options=["SIZE=34", "BODY=8BITMIME"]
    )
    reply = await Debugging(stream).handle_DATA(None, make_session(), envelope)  # type: ignore[arg-type]
    assert reply == "250 OK"
    assert stream.getvalue() == (
        "---------- MESSAGE FOLLOWS ----------\n"
        "mail options: ['SIZE=34', 'BODY=8BITMIME']\n"
        "\n"
        "Subject: hi\n"
        "X: y\n"
        "X-Peer: ('127.0.0.1', 40001)\n"
        "\n"
        "body\n"
        "line2\n"
        "------------ END MESSAGE ------------\n"
    )


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("content", "peer", "expected_body"),
    [
        # No blank line: no header block end, so no X-Peer line.
        (b"no headers at all\r\n", PEER, "no headers at all\n"),
        (b"Subject: x\r\n\r\n", PEER, "Subject: x\nX-Peer: ('127.0.0.1', 40001)\n\n"),
        # decode_data=True gives str content.
        (
            "Subject: s\r\n\r\nstr body\r\n",
            PEER,
            "Subject: s\nX-Peer: ('127.0.0.1', 40001)\n\nstr body\n",
        ),
        # Not UTF-8: replaced, never a crash.
        (
            b"Subject: b\r\n\r\nbody \xe9\r\n",
            PEER,
            "Subject: b\nX-Peer: ('127.0.0.1', 40001)\n\nbody \ufffd\n",
        ),
        # Unix socket clients have a str peer (empty for an unnamed socket).
        (b"Subject: u\r\n\r\nhi\r\n", "", "Subject: u\nX-Peer: ''\n\nhi\n"),
        # Only the first blank line ends the headers.
        (b"A: 1\r\n\r\nb\r\n\r\nc\r\n", PEER, "A: 1\nX-Peer: ('127.0.0.1', 40001)\n\nb\n\nc\n"),
    ],
)
async def test_debugging_variants(content: Any, peer: Any, expected_body: str) -> None:
    stream = io.StringIO()
    await Debugging(stream).handle_DATA(None, make_session(peer), make_envelope(content))  # type: ignore[arg-type]
    assert stream.getvalue() == (
        "---------- MESSAGE FOLLOWS ----------\n"
        + expected_body
        + "------------ END MESSAGE ------------\n"
    )


@pytest.mark.asyncio
async def test_debugging_defaults_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    await Debugging().handle_DATA(None, make_session(), make_envelope(b"A: b\r\n\r\nc\r\n"))  # type: ignore[arg-type]
    assert "X-Peer: ('127.0.0.1', 40001)\n" in capsys.readouterr().out


def test_debugging_from_cli() -> None:
    parser = RecordingParser()
    assert Debugging.from_cli(parser).stream is sys.stdout
    assert Debugging.from_cli(parser, "stdout").stream is sys.stdout
    assert Debugging.from_cli(parser, "stderr").stream is sys.stderr
    for bad in (("stdin",), ("stdout", "stderr")):
        with pytest.raises(ParserExit, match=r"^Debugging usage: \[stdout\|stderr\]$"):
            Debugging.from_cli(parser, *bad)


# --- Sink ----------------------------------------------------------------------------------------


def test_sink() -> None:
    sink = Sink.from_cli(RecordingParser())
    assert isinstance(sink, Sink)
    assert not [name for name in dir(sink) if name.startswith("handle_")]
    with pytest.raises(ParserExit, match=r"^Sink handler does not accept arguments$"):
        Sink.from_cli(RecordingParser(), "x")


# --- Proxy ---------------------------------------------------------------------------------------


@pytest.fixture
def smtp_client() -> Any:
    with mock.patch.object(handlers.smtplib, "SMTP") as smtp_class:
        client = smtp_class.return_value
        client.sendmail.return_value = {}
        yield client


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("content", "relayed"),
    [
        (
            b"Subject: hi\r\n\r\nbody\r\n",
            b"Subject: hi\r\nX-Peer: 127.0.0.1\r\n\r\nbody\r\n",
        ),
        # No blank line: the header goes first.
        (b"no headers\r\n", b"X-Peer: 127.0.0.1\r\nno headers\r\n"),
        (b"Subject: x\r\n\r\n", b"Subject: x\r\nX-Peer: 127.0.0.1\r\n\r\n"),
        # Bare-LF messages keep their line ending.
        (b"Subject: lf\n\nbody\n", b"Subject: lf\nX-Peer: 127.0.0.1\n\nbody\n"),
        (b"", b"X-Peer: 127.0.0.1\r\n"),
    ],
)
async def test_proxy_relays_with_x_peer(smtp_client: Any, content: bytes, relayed: bytes) -> None:
    envelope = make_envelope(content, rcpt_tos=["b@example.com", "c@example.com"])
    reply = await Proxy("relay.example", 2525).handle_DATA(None, make_session(), envelope)  # type: ignore[arg-type]
    assert reply == "250 OK"
    smtp_client.connect.assert_called_once_with("relay.example", 2525)
    smtp_client.sendmail.assert_called_once_with(
        "anne@example.com", ["b@example.com", "c@example.com"], relayed
    )
    smtp_client.quit.assert_called_once_with()


@pytest.mark.asyncio
async def test_proxy_relays_original_bytes_when_content_is_str(smtp_client: Any) -> None:
    envelope = make_envelope(
        "Subject: \udce9\r\n\r\nb\r\n", original_content=b"Subject: \xe9\r\n\r\nb\r\n"
    )
    await Proxy("h", 1).handle_DATA(None, make_session(), envelope)  # type: ignore[arg-type]
    relayed = smtp_client.sendmail.call_args.args[2]
    assert relayed == b"Subject: \xe9\r\nX-Peer: 127.0.0.1\r\n\r\nb\r\n"


@pytest.mark.asyncio
async def test_proxy_unix_peer(smtp_client: Any) -> None:
    await Proxy("h", 1).handle_DATA(None, make_session("/tmp/s"), make_envelope(b"A: b\r\n\r\n"))  # type: ignore[arg-type]
    assert smtp_client.sendmail.call_args.args[2] == b"A: b\r\nX-Peer: /tmp/s\r\n\r\n"


@pytest.mark.asyncio
async def test_proxy_logs_refused_recipients(
    smtp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    smtp_client.sendmail.side_effect = smtplib.SMTPRecipientsRefused(
        {"b@example.com": (550, b"no")}
    )
    with caplog.at_level(logging.INFO, logger="mail.debug"):
        reply = await Proxy("h", 1).handle_DATA(None, make_session(), make_envelope(b"x\r\n"))  # type: ignore[arg-type]
    assert reply == "250 OK"
    assert "'b@example.com': (550, b'no')" in caplog.text
    smtp_client.quit.assert_called_once_with()


def test_proxy_deliver_when_the_relay_is_down(caplog: pytest.LogCaptureFixture) -> None:
    with mock.patch.object(handlers.smtplib, "SMTP") as smtp_class:
        smtp_class.return_value.connect.side_effect = ConnectionRefusedError("refused")
        with caplog.at_level(logging.INFO, logger="mail.debug"):
            refused = Proxy("h", 1)._deliver("a@x", ["b@y", "c@z"], b"data")
    assert refused == {"b@y": (-1, "ignore"), "c@z": (-1, "ignore")}
    assert any(record.exc_info for record in caplog.records)


def test_proxy_deliver_keeps_the_smtp_error_code() -> None:
    with mock.patch.object(handlers.smtplib, "SMTP") as smtp_class:
        smtp_class.return_value.sendmail.side_effect = smtplib.SMTPSenderRefused(
            553, b"bad sender", "a@x"
        )
        refused = Proxy("h", 1)._deliver("a@x", ["b@y"], b"data")
    assert refused == {"b@y": (553, b"bad sender")}


def test_proxy_deliver_returns_partial_refusals(smtp_client: Any) -> None:
    smtp_client.sendmail.return_value = {"c@z": (550, b"unknown")}
    assert Proxy("h", 1)._deliver("a@x", ["b@y", "c@z"], b"d") == {"c@z": (550, b"unknown")}


def test_proxy_from_cli() -> None:
    proxy = Proxy.from_cli(RecordingParser(), "relay.example", "2525")
    assert (proxy._hostname, proxy._port) == ("relay.example", 2525)
    with pytest.raises(ParserExit, match=r"^Proxy usage: HOST PORT$"):
        Proxy.from_cli(RecordingParser(), "relay.example")
    with pytest.raises(ParserExit, match=r"^Invalid port number: x$"):
        Proxy.from_cli(RecordingParser(), "relay.example", "x")


# --- Message / AsyncMessage ------------------------------------------------------------------


class Collecting(Message):
    def __init__(self, message_class: Any = None) -> None:
        super().__init__(message_class)
        self.messages: list[EmailMessageCompat] = []

    def handle_message(self, message: EmailMessageCompat) -> None:
        self.messages.append(message)


class AsyncCollecting(AsyncMessage):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.messages: list[EmailMessageCompat] = []

    async def handle_message(self, message: EmailMessageCompat) -> None:
        await asyncio.sleep(0)
        self.messages.append(message)


@pytest.mark.parametrize("content", [b"Subject: hi\r\n\r\nbody\r\n", "Subject: hi\r\n\r\nbody\r\n"])
def test_prepare_message_adds_envelope_headers(content: Any) -> None:
    envelope = make_envelope(content, rcpt_tos=["b@example.com", "c@example.com"])
    message = Collecting().prepare_message(make_session(), envelope)
    assert type(message) is EmailMessageCompat
    assert message["Subject"] == "hi"
    assert message["X-Peer"] == "('127.0.0.1', 40001)"
    assert message["X-MailFrom"] == "anne@example.com"
    assert message["X-RcptTo"] == "b@example.com, c@example.com"
    assert message.get_payload() == "body\r\n"


def test_prepare_message_uses_message_class() -> None:
    message = Collecting(EmailMessage).prepare_message(
        make_session(), make_envelope(b"A: b\r\n\r\n")
    )
    assert isinstance(message, EmailMessage)


def test_prepare_message_rejects_other_content() -> None:
    with pytest.raises(TypeError, match=r"^Expected str or bytes, got <class 'NoneType'>$"):
        Collecting().prepare_message(make_session(), make_envelope(None))


def test_message_is_abstract() -> None:
    with pytest.raises(TypeError):
        Message()  # type: ignore[abstract]
    with pytest.raises(TypeError):
        AsyncMessage()  # type: ignore[abstract]


@pytest.mark.asyncio
async def test_message_handle_data() -> None:
    handler = Collecting()
    reply = await handler.handle_DATA(None, make_session(), make_envelope(b"A: b\r\n\r\nc\r\n"))  # type: ignore[arg-type]
    assert reply == "250 OK"
    assert [m["A"] for m in handler.messages] == ["b"]


@pytest.mark.asyncio
async def test_async_message_handle_data() -> None:
    handler = AsyncCollecting()
    assert handler.loop is asyncio.get_running_loop()
    reply = await handler.handle_DATA(None, make_session(), make_envelope(b"A: b\r\n\r\nc\r\n"))  # type: ignore[arg-type]
    assert reply == "250 OK"
    assert [m["X-MailFrom"] for m in handler.messages] == ["anne@example.com"]


def test_async_message_loop_argument() -> None:
    assert AsyncCollecting().loop is None  # no running loop, and none is created
    loop = asyncio.new_event_loop()
    try:
        assert AsyncCollecting(loop=loop).loop is loop
    finally:
        loop.close()


# --- Mailbox -------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_mailbox_stores_and_resets(tmp_path: Path) -> None:
    maildir = tmp_path / "mail"
    handler = Mailbox(maildir)
    assert handler.mail_dir == maildir
    for n in range(2):
        envelope = make_envelope(f"Subject: m{n}\r\n\r\nbody\r\n".encode())
        assert await handler.handle_DATA(None, make_session(), envelope) == "250 OK"  # type: ignore[arg-type]
    stored = sorted(message["Subject"] for message in mailbox.Maildir(maildir))
    assert stored == ["m0", "m1"]
    assert all(m["X-RcptTo"] == "bart@example.com" for m in mailbox.Maildir(maildir))
    handler.reset()
    assert len(mailbox.Maildir(maildir)) == 0


def test_mailbox_from_cli(tmp_path: Path) -> None:
    handler = Mailbox.from_cli(RecordingParser(), str(tmp_path / "m"))
    assert handler.mail_dir == str(tmp_path / "m")
    with pytest.raises(ParserExit, match=r"^The directory for the maildir is required$"):
        Mailbox.from_cli(RecordingParser())
    with pytest.raises(ParserExit, match=r"^Too many arguments for Mailbox handler$"):
        Mailbox.from_cli(RecordingParser(), "a", "b")


# --- behind a real server ------------------------------------------------------------------------


def test_handlers_behind_a_controller(tmp_path: Path) -> None:
    from aiosmtpd.controller import Controller

    stream = io.StringIO()
    backend_box = Mailbox(tmp_path / "relayed")
    backend = Controller(backend_box, hostname="127.0.0.1", port=0)
    backend.start()
    proxy = Controller(Proxy("127.0.0.1", backend.port), hostname="127.0.0.1", port=0)
    debugging = Controller(Debugging(stream), hostname="127.0.0.1", port=0)
    try:
        proxy.start()
        debugging.start()
        body = b"Subject: relayed\r\n\r\nhello\r\n"
        with smtplib.SMTP("127.0.0.1", proxy.port, timeout=5) as client:
            assert client.sendmail("a@example.com", ["b@example.com"], body) == {}
        with smtplib.SMTP("127.0.0.1", debugging.port, timeout=5) as client:
            client.sendmail("a@example.com", ["b@example.com"], body)
    finally:
        debugging.stop(no_assert=True)
        proxy.stop(no_assert=True)
        backend.stop()
    [message] = list(mailbox.Maildir(tmp_path / "relayed"))
    assert message["Subject"] == "relayed"
    assert message.get_all("X-Peer")[0] == "127.0.0.1"  # the proxy's header comes first
    assert "X-Peer: ('127.0.0.1', " in stream.getvalue()
    assert stream.getvalue().startswith("---------- MESSAGE FOLLOWS ----------\nmail options: [")
