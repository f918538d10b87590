"""examples/cram_md5_server.py (the docs/tls.rst example) with real clients and real TLS.

In-process (STARTTLS and SMTPS), with every log record captured at DEBUG and checked for
the password in any form, and as a script (``--port 0``) with trustme certificate files.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from pathlib import Path
from typing import Any

import pytest

from tests.support import leaked_credentials, require_module
from tests.test_cli import TIMEOUT
from tests.test_examples import listening_port, load_example, start_example, stop_cleanly

PASSWORD = "wonderland"  # USERS["alice"] in the example
MESSAGE = "From: alice@example.org\r\nSubject: tls\r\n\r\nHello over TLS.\r\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ssl.SSLContext]:
    trustme = require_module("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("pki")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return cert_file, key_file, client_context


def _login_and_send(client: smtplib.SMTP, mechanism: str, password: str = PASSWORD) -> Any:
    client.ehlo("client.test")
    client.user, client.password = "alice", password
    authobject = getattr(client, "auth_" + mechanism.lower().replace("-", "_"))
    client.auth(mechanism, authobject, initial_response_ok=mechanism == "PLAIN")
    return client.sendmail("alice@example.org", ["bob@example.com"], MESSAGE)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_starttls_auth_in_process(
    pki: tuple[Path, Path, ssl.SSLContext], mechanism: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    example = load_example("cram_md5_server")
    cert, key, client_context = pki
    controller = example.build(example.tls_context(str(cert), str(key)))
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=TIMEOUT) as client:
            client.ehlo("client.test")
            assert not client.has_extn("auth")  # no AUTH before TLS
            code, _ = client.docmd("AUTH", "PLAIN")
            assert code in {530, 538}
            client.starttls(context=client_context)
            client.ehlo("client.test")
            assert client.esmtp_features["auth"].split() == ["CRAM-MD5", "LOGIN", "PLAIN"]
            with pytest.raises(smtplib.SMTPAuthenticationError) as failure:
                _login_and_send(client, mechanism, password="not-" + PASSWORD)
            assert failure.value.smtp_code == 535
            assert _login_and_send(client, mechanism) == {}
        (message,) = controller.handler.messages
        assert message[:2] == ("alice@example.org", ["bob@example.com"])
    finally:
        controller.stop()
    assert leaked_credentials(caplog.text, (PASSWORD, "not-" + PASSWORD)) == []


def test_smtps_in_process(pki: tuple[Path, Path, ssl.SSLContext]) -> None:
    example = load_example("cram_md5_server")
    cert, key, client_context = pki
    controller = example.build(example.tls_context(str(cert), str(key)), smtps=True)
    controller.start()
    try:
        with smtplib.SMTP_SSL(
            "127.0.0.1", controller.port, timeout=TIMEOUT, context=client_context
        ) as client:
            client.ehlo("client.test")
            assert client.has_extn("auth")
            assert not client.has_extn("starttls")
            assert client.docmd("STARTTLS") == (503, b"5.5.1 Already in TLS")
            assert _login_and_send(client, "CRAM-MD5") == {}
    finally:
        controller.stop()


@pytest.mark.parametrize("smtps", [False, True], ids=["starttls", "smtps"])
def test_as_a_script(pki: tuple[Path, Path, ssl.SSLContext], smtps: bool) -> None:
    cert, key, client_context = pki
    args = ["--port", "0", "--cert", str(cert), "--key", str(key)]
    server = start_example("cram_md5_server", *args, *(["--smtps"] if smtps else []))
    try:
        port = listening_port(server)
        if smtps:
            with smtplib.SMTP_SSL(
                "127.0.0.1", port, timeout=TIMEOUT, context=client_context
            ) as client:
                assert _login_and_send(client, "LOGIN") == {}
        else:
            with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as client:
                client.starttls(context=client_context)
                assert _login_and_send(client, "PLAIN") == {}
    finally:
        stop_cleanly(server)
