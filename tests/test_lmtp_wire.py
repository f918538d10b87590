"""LMTP over a real socket with real clients: ``smtplib.LMTP`` and ``swaks --protocol LMTP``.

Three recipients, one refused by ``handle_RCPT``: after DATA there is one reply per
ACCEPTED recipient, in RCPT order; a ``handle_DATA`` returning a list gives each
recipient its own reply, a single string is sent for each.
"""

from __future__ import annotations

import smtplib
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP

from .support import require_program

HOST = "127.0.0.1"
RECIPIENTS = ["one@lmtp.test", "refused@lmtp.test", "three@lmtp.test"]


class Mailboxes:
    def __init__(self, per_recipient: bool) -> None:
        self.per_recipient = per_recipient
        self.rcpt_tos: list[list[str]] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.startswith("refused@"):
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> Any:
        self.rcpt_tos.append(list(envelope.rcpt_tos))
        if self.per_recipient:
            return [f"250 2.0.0 delivered to {rcpt}" for rcpt in envelope.rcpt_tos[:-1]] + [
                "452 4.2.2 Mailbox full"
            ]
        return "250 2.0.0 OK"


class LMTPController(Controller):
    def factory(self) -> LMTP:
        return LMTP(self.handler, **self.SMTP_kwargs)


@pytest.fixture(params=[False, True], ids=["one-string", "per-recipient"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[int, Mailboxes]]:
    handler = Mailboxes(per_recipient=request.param)
    controller = LMTPController(handler, hostname=HOST, port=0)
    controller.start()
    try:
        yield controller.port, handler
    finally:
        controller.stop()


def expected(handler: Mailboxes) -> list[tuple[int, bytes]]:
    if handler.per_recipient:
        return [(250, b"2.0.0 delivered to one@lmtp.test"), (452, b"4.2.2 Mailbox full")]
    return [(250, b"2.0.0 OK"), (250, b"2.0.0 OK")]


def test_smtplib_lmtp(server: tuple[int, Mailboxes]) -> None:
    port, handler = server
    with smtplib.LMTP(HOST, port, timeout=10) as client:
        code, _ = client.ehlo()  # smtplib.LMTP sends LHLO
        assert code == 250
        assert client.mail("a@client.test")[0] == 250
        answers = [client.rcpt(rcpt)[0] for rcpt in RECIPIENTS]
        assert answers == [250, 550, 250]
        # smtplib reads one reply after DATA; LMTP sends one per accepted recipient.
        first = client.data(b"Subject: lmtp\r\n\r\nbody\r\n")
        replies = [first, client.getreply()]
        assert client.noop()[0] == 250  # nothing else was pending
        assert client.helo()[0] == 500  # HELO is not LMTP
    assert replies == expected(handler)
    assert handler.rcpt_tos == [["one@lmtp.test", "three@lmtp.test"]]


def test_swaks_lmtp(server: tuple[int, Mailboxes]) -> None:
    port, handler = server
    swaks = require_program("swaks")
    result = subprocess.run(
        [
            swaks, "--protocol", "LMTP", "--server", HOST, "--port", str(port),
            "--from", "a@client.test", "--to", ",".join(RECIPIENTS),
            "--body", "hello", "--timeout", "10",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )  # fmt: skip
    assert "-> LHLO" in result.stdout, result.stdout
    data_replies = result.stdout.split("-> .", 1)[1]
    # swaks marks server lines "<-  " (or "<** " for errors); strip the marker.
    lines = [line.strip() for line in data_replies.splitlines() if line.strip().startswith("<")]
    replies = [line[3:].strip() for line in lines if "QUIT" not in line]
    assert replies[:2] == [f"{code} {text.decode()}" for code, text in expected(handler)]
    assert replies[2].startswith("221"), replies  # nothing between the replies and QUIT
    assert handler.rcpt_tos == [["one@lmtp.test", "three@lmtp.test"]]
