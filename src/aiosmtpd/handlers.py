"""Ready-made handlers: Debugging, Sink, Proxy, Message, AsyncMessage, Mailbox.

Owns: the 1.4-compatible built-in handlers, their ``from_cli`` constructors (used by
``python -m aiosmtpd -c CLASS ARGS...``) and their exact output formats.
Invariants: each handler only implements ``handle_DATA`` (plus ``handle_message`` for the
Message family) and returns ``"250 OK"``; ``envelope.content`` may be ``bytes`` or ``str``
(``decode_data=True``) and both work; nothing here blocks the event loop (the Proxy relays
through ``smtplib`` in a worker thread).
Must not know: how the server parses SMTP; it sees only ``session`` and ``envelope``.
Logs on ``mail.debug``; ``smtplib`` stays a module-level name so tests can patch
``aiosmtpd.handlers.smtplib.SMTP``.
"""

from __future__ import annotations

import asyncio
import logging
import mailbox
import os
import smtplib
import sys
from abc import ABCMeta, abstractmethod
from argparse import ArgumentParser
from email import message_from_bytes, message_from_string
from email.message import Message as Em_Message
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from public import public

if TYPE_CHECKING:
    from aiosmtpd.smtp import SMTP as SMTPServer
    from aiosmtpd.smtp import Envelope, Session

__all__: list[str] = []

T = TypeVar("T")

log = logging.getLogger("mail.debug")

_OK = "250 OK"
_CRLF = "\r\n"


def _format_peer(peer: Any) -> str:
    """The client's address as the Proxy's ``X-Peer`` shows it (host only for INET)."""
    if isinstance(peer, tuple | list) and peer:
        return str(peer[0])
    return str(peer)


def _first_blank_line(lines: list[bytes]) -> int | None:
    for index, line in enumerate(lines):
        if line in (b"\r\n", b"\n"):
            return index
    return None


@public
class Debugging:
    """Prints every message it receives (to stdout unless another stream is given)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = sys.stdout if stream is None else stream

    @classmethod
    def from_cli(cls: type[T], parser: ArgumentParser, *args: str) -> T:
        """``[stdout|stderr]``: where to print."""
        if len(args) > 1 or (args and args[0] not in ("stdout", "stderr")):
            parser.error("Debugging usage: [stdout|stderr]")
        if not args:
            return cls()
        return cls(getattr(sys, args[0]))  # type: ignore[call-arg]

    def _print_message_content(self, peer: Any, data: str | bytes) -> None:
        in_headers = True
        text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
        for line in text.splitlines():
            # The peer goes at the end of the headers, as if the server had added it.
            if in_headers and not line:
                print(f"X-Peer: {peer!r}", file=self.stream)
                in_headers = False
            print(line, file=self.stream)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        print("---------- MESSAGE FOLLOWS ----------", file=self.stream)
        if envelope.mail_options:
            print(f"mail options: {envelope.mail_options}", file=self.stream)
            print(file=self.stream)
        self._print_message_content(session.peer, envelope.content or b"")
        print("------------ END MESSAGE ------------", file=self.stream)
        self.stream.flush()
        return _OK


@public
class Sink:
    """Accepts every message and throws it away."""

    @classmethod
    def from_cli(cls: type[T], parser: ArgumentParser, *args: str) -> T:
        if len(args) > 0:
            parser.error("Sink handler does not accept arguments")
        return cls()


@public
class Proxy:
    """Relays every message to ``remote_hostname``:``remote_port`` with ``smtplib``.

    Adds ``X-Peer: <client address>`` before the first blank line (at the very top when the
    message has none). Always answers ``250 OK``: refusals by the remote are only logged.
    """

    def __init__(self, remote_hostname: str, remote_port: int) -> None:
        self._hostname = remote_hostname
        self._port = remote_port

    @classmethod
    def from_cli(cls: type[T], parser: ArgumentParser, *args: str) -> T:
        """``HOST PORT``: the server to relay to."""
        if len(args) != 2:
            parser.error("Proxy usage: HOST PORT")
        host, port = args
        try:
            return cls(host, int(port))  # type: ignore[call-arg]
        except ValueError:
            parser.error(f"Invalid port number: {port}")

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        if isinstance(content, str):
            # decode_data=True: relay the bytes the client sent, not a re-encoding.
            original = envelope.original_content
            if isinstance(original, bytes | bytearray):
                content = bytes(original)
            else:
                content = content.encode("utf-8", errors="surrogateescape")
        data: bytes = content or b""
        lines = data.splitlines(keepends=True)
        blank = _first_blank_line(lines)
        if blank is None:
            insert_at, ending = 0, b"\r\n"
        else:
            insert_at, ending = blank, (b"\r\n" if lines[blank].endswith(b"\r\n") else b"\n")
        peer_line = f"X-Peer: {_format_peer(session.peer)}".encode("utf-8", "surrogateescape")
        lines.insert(insert_at, peer_line + ending)
        data = b"".join(lines)
        refused = await asyncio.to_thread(
            self._deliver, envelope.mail_from or "", list(envelope.rcpt_tos), data
        )
        log.info("we got some refusals: %s", refused)
        return _OK

    def _deliver(self, mail_from: str, rcpt_tos: list[str], data: str | bytes) -> Any:
        refused: dict[str, tuple[int, Any]] = {}
        try:
            client = smtplib.SMTP()
            client.connect(self._hostname, self._port)
            try:
                refused = client.sendmail(mail_from, rcpt_tos, data)
            finally:
                client.quit()
        except smtplib.SMTPRecipientsRefused as error:
            log.info("got SMTPRecipientsRefused")
            refused = dict(error.recipients)
        except (OSError, smtplib.SMTPException) as error:
            log.exception("got %s", error.__class__)
            # All recipients were refused. If the exception had an associated error code,
            # use it; otherwise fake one.
            code = getattr(error, "smtp_code", -1)
            text = getattr(error, "smtp_error", "ignore")
            for rcpt in rcpt_tos:
                refused[rcpt] = (code, text)
        return refused


@public
class MessageBase(metaclass=ABCMeta):  # noqa: B024 - abstract as in 1.4; see subclasses
    """Parses each message into ``message_class`` (``email.message.Message`` by default),
    adds ``X-Peer``, ``X-MailFrom`` and ``X-RcptTo``, and hands it to ``handle_message``."""

    def __init__(self, message_class: type[Em_Message] | None = None) -> None:
        self.message_class = message_class

    def prepare_message(self, session: Session, envelope: Envelope) -> Em_Message:
        data = envelope.content
        message_class = self.message_class or Em_Message
        if isinstance(data, bytes | bytearray):
            message = message_from_bytes(bytes(data), message_class)
        elif isinstance(data, str):
            message = message_from_string(data, message_class)
        else:
            raise TypeError(f"Expected str or bytes, got {type(data)}")
        message["X-Peer"] = str(session.peer)
        message["X-MailFrom"] = envelope.mail_from
        message["X-RcptTo"] = ", ".join(envelope.rcpt_tos)
        return message


@public
class Message(MessageBase, metaclass=ABCMeta):
    """Calls the synchronous ``handle_message(message)`` for every message."""

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        message = self.prepare_message(session, envelope)
        self.handle_message(message)
        return _OK

    @abstractmethod
    def handle_message(self, message: Em_Message) -> None:
        """Do something with the parsed message."""


@public
class AsyncMessage(MessageBase, metaclass=ABCMeta):
    """Awaits the coroutine ``handle_message(message)`` for every message."""

    def __init__(
        self,
        message_class: type[Em_Message] | None = None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(message_class)
        if loop is None:
            # Never create (and leak) a loop here: the server's loop runs the handler.
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        self.loop = loop

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        message = self.prepare_message(session, envelope)
        await self.handle_message(message)
        return _OK

    @abstractmethod
    async def handle_message(self, message: Em_Message) -> None:
        """Do something with the parsed message."""


@public
class Mailbox(Message):
    """Stores every message in the Maildir ``mail_dir`` (created if missing)."""

    def __init__(
        self, mail_dir: os.PathLike[str] | str, message_class: type[Em_Message] | None = None
    ) -> None:
        self.mailbox = mailbox.Maildir(mail_dir)
        self.mail_dir = mail_dir
        super().__init__(message_class)

    def handle_message(self, message: Em_Message) -> None:
        self.mailbox.add(message)

    def reset(self) -> None:
        """Delete every stored message."""
        self.mailbox.clear()

    @classmethod
    def from_cli(cls: type[T], parser: ArgumentParser, *args: str) -> T:
        """``MAILDIR``: where to store the messages."""
        if len(args) < 1:
            parser.error("The directory for the maildir is required")
        elif len(args) > 1:
            parser.error("Too many arguments for Mailbox handler")
        return cls(args[0])  # type: ignore[call-arg]
