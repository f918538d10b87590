"""DSN, ENHANCEDSTATUSCODES and REQUIRETLS with a real client (smtplib, which sends DSN
parameters through ``mail_options``/``rcpt_options``), through the threaded Controller
(which must pass the new keyword arguments to ``SMTP`` unchanged)."""

from __future__ import annotations

import smtplib
import ssl
from pathlib import Path

import pytest

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

pytestmark = pytest.mark.wire


class Box:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 2.0.0 Queued"


def test_smtplib_sends_dsn_parameters_through_the_controller() -> None:
    box = Box()
    controller = Controller(
        box, hostname="127.0.0.1", port=0, enable_DSN=True, enhanced_status_codes=True
    )
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=10) as client:
            client.ehlo("client")
            assert client.has_extn("dsn")
            assert client.has_extn("enhancedstatuscodes")
            refused = client.sendmail(
                "a@example.com",
                ["b@example.com"],
                b"Subject: dsn\r\n\r\nhi\r\n",
                mail_options=["RET=HDRS", "ENVID=Id+2B1"],
                rcpt_options=["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;B@example.com"],
            )
            assert refused == {}
            code, text = client.mail("a@example.com", ["RET=BAD"])
            assert (code, text) == (501, b"5.5.4 Error: RET can only be one of FULL, HDRS")
            assert client.noop() == (250, b"2.0.0 OK")
    finally:
        controller.stop()
    (envelope,) = box.envelopes
    assert envelope.mail_options == ["SIZE=20", "RET=HDRS", "ENVID=Id+1"]  # smtplib adds SIZE
    assert envelope.rcpt_options == ["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;B@example.com"]


def test_smtplib_dsn_refused_when_off() -> None:
    controller = Controller(Box(), hostname="127.0.0.1", port=0)
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=10) as client:
            client.ehlo("client")
            assert not client.has_extn("dsn")
            assert client.mail("a@example.com", ["RET=HDRS"])[0] == 555
    finally:
        controller.stop()


def test_requiretls_offered_after_starttls(
    tls_certificates: tuple[ssl.SSLContext, ssl.SSLContext, Path],
) -> None:
    server_context, client_context, _ = tls_certificates
    box = Box()
    controller = Controller(
        box, hostname="127.0.0.1", port=0, tls_context=server_context, enable_REQUIRETLS=True
    )
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=10) as client:
            client.ehlo("client")
            assert not client.has_extn("requiretls")
            assert client.mail("a@example.com", ["REQUIRETLS"])[0] == 555
            client.starttls(context=client_context)
            client.ehlo("client")
            assert client.has_extn("requiretls")
            client.sendmail(
                "a@example.com", ["b@example.com"], b"\r\nhi\r\n", mail_options=["REQUIRETLS"]
            )
    finally:
        controller.stop()
    assert box.envelopes[0].mail_options == ["SIZE=6", "REQUIRETLS"]
