"""Third-party plugins built on aiosmtpd 1.4 keep working unchanged (DECISIONS, last section).

smtpdfix 0.5.3 subclasses ``Controller`` (own ``_run``, ``_trigger_server`` that connects,
``factory``, re-running ``__init__`` on reset) and ``SMTP`` (own STARTTLS through
``loop.start_tls`` and the ``_reader``/``_writer``/``_tls_protocol`` names, handler-level
``auth_*`` mechanisms using ``server._authenticator``). pytest-localserver 0.10 subclasses
``Controller`` with port 0 and its own ``stop()``.

Both are installed with ``pip install --no-deps smtpdfix==0.5.3 pytest-localserver==0.10.0.post0
portpicker``; without them these tests skip. smtpdfix picks its port with ``portpicker`` (it
cannot take port 0): that is the plugin's behaviour, which is what is under test here.
"""

from __future__ import annotations

import hmac
import smtplib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import require_module

MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: plugin\r\n\r\nhello\r\n"


def _unverified_client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# --- smtpdfix 0.5.3 ----------------------------------------------------------------------------


@pytest.fixture
def smtpdfix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    module = require_module("smtpdfix")
    from smtpdfix.certs import _generate_certs

    cert, _ = _generate_certs(tmp_path, separate_key=False)
    monkeypatch.setenv("SMTPD_SSL_CERTIFICATE_FILE", str(cert.resolve()))
    monkeypatch.setenv("SMTPD_HOST", "127.0.0.1")
    for name in ("SMTPD_USE_SSL", "SMTPD_USE_TLS", "SMTPD_USE_STARTTLS", "SMTPD_ENFORCE_AUTH"):
        monkeypatch.delenv(name, raising=False)
    return module


@pytest.fixture
def smtpd(smtpdfix: Any) -> Iterator[Any]:
    with smtpdfix.SMTPDFix() as controller:
        yield controller


def test_smtpdfix_receives_mail(smtpd: Any) -> None:
    with smtplib.SMTP(smtpd.hostname, smtpd.port, timeout=5) as client:
        assert client.sendmail("a@example.com", ["b@example.com"], MESSAGE) == {}
    [message] = smtpd.messages
    assert message["Subject"] == "plugin"
    assert message["X-MailFrom"] == "a@example.com"
    assert message["X-RcptTo"] == "b@example.com"


def test_smtpdfix_reset_reruns_init_and_restarts(smtpd: Any) -> None:
    first_port = smtpd.port
    smtpd.config.auth_require_tls = False  # the plugin stops, re-inits and restarts itself
    assert smtpd.port == first_port
    with smtplib.SMTP(smtpd.hostname, smtpd.port, timeout=5) as client:
        client.ehlo()
        assert "CRAM-MD5" in client.esmtp_features["auth"]
        client.login(smtpd.config.login_username, smtpd.config.login_password)
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert len(smtpd.messages) == 1


def test_smtpdfix_cram_md5_rejects_a_wrong_password(smtpd: Any) -> None:
    smtpd.config.auth_require_tls = False
    with smtplib.SMTP(smtpd.hostname, smtpd.port, timeout=5) as client:
        client.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            client.login(smtpd.config.login_username, "wrong")
        assert info.value.smtp_code == 535


def test_smtpdfix_starttls_and_login(smtpd: Any) -> None:
    smtpd.config.use_starttls = True
    with smtplib.SMTP(smtpd.hostname, smtpd.port, timeout=5) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")  # AUTH needs TLS first
        code, _ = client.mail("a@example.com")
        assert code == 530  # require_starttls
        client.rset()
        client.starttls(context=_unverified_client_context())
        client.ehlo()
        assert not client.has_extn("starttls")
        assert client.has_extn("auth")
        client.login(smtpd.config.login_username, smtpd.config.login_password)
        assert client.sendmail("a@example.com", ["b@example.com"], MESSAGE) == {}
    assert [m["Subject"] for m in smtpd.messages] == ["plugin"]


# smtpdfix's own _trigger_server() wraps its probe socket in TLS and closes only the raw
# socket, so the SSLSocket object is collected unclosed: the plugin's leak, not ours.
@pytest.mark.filterwarnings("ignore:unclosed <ssl.SSLSocket:ResourceWarning")
def test_smtpdfix_implicit_tls(smtpd: Any) -> None:
    smtpd.config.use_ssl = True
    with smtplib.SMTP_SSL(
        smtpd.hostname, smtpd.port, timeout=5, context=_unverified_client_context()
    ) as client:
        assert client.sendmail("a@example.com", ["b@example.com"], MESSAGE) == {}
    assert len(smtpd.messages) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_smtpdfix_enforce_auth(smtpd: Any) -> None:
    smtpd.config.auth_require_tls = False
    smtpd.config.enforce_auth = True
    with smtplib.SMTP(smtpd.hostname, smtpd.port, timeout=5) as client:
        client.ehlo()
        code, text = client.mail("a@example.com")
        assert (code, text) == (530, b"5.7.0 Authentication required")
        client.login(smtpd.config.login_username, smtpd.config.login_password)
        assert client.sendmail("a@example.com", ["b@example.com"], MESSAGE) == {}


def test_smtpdfix_cram_md5_by_hand(smtpd: Any) -> None:
    import base64

    smtpd.config.auth_require_tls = False
    with smtplib.SMTP(smtpd.hostname, smtpd.port, timeout=5) as client:
        client.ehlo()
        code, challenge = client.docmd("AUTH", "CRAM-MD5")
        assert code == 334
        decoded = base64.b64decode(challenge)
        assert decoded.startswith(b"<")
        assert decoded.endswith(f"@{socket.gethostname()}>".encode())  # _SMTP's hostname
        digest = hmac.HMAC(smtpd.config.login_password.encode(), decoded, "md5").hexdigest()
        answer = base64.b64encode(f"{smtpd.config.login_username} {digest}".encode())
        assert client.docmd(answer.decode())[0] == 235


# --- pytest-localserver 0.10 -------------------------------------------------------------------


@pytest.fixture
def localserver_smtp() -> Any:
    return require_module("pytest_localserver.smtp")


def test_localserver_port_zero_send_and_stop(localserver_smtp: Any) -> None:
    server = localserver_smtp.Server(host="127.0.0.1")
    server.start()
    try:
        assert server.port != 0
        assert server.addr == ("127.0.0.1", server.port)
        assert server.is_alive()
        assert server.accepting
        with smtplib.SMTP(*server.addr, timeout=5) as client:
            client.sendmail("a@example.com", ["b@example.com", "c@example.com"], MESSAGE)
        [message] = server.outbox
        assert message["Subject"] == "plugin"
        assert message.details.mailfrom == "a@example.com"
        assert message.details.rcpttos == ["b@example.com", "c@example.com"]
        assert message.details.peer[0] == "127.0.0.1"
    finally:
        server.stop()
    assert not server.is_alive()
    assert server.loop.is_closed()
    server.stop()  # the plugin's stop() may be called twice


def test_localserver_default_host(localserver_smtp: Any) -> None:
    server = localserver_smtp.Server()  # "localhost", port 0
    server.start()
    try:
        host, port = server.addr
        with smtplib.SMTP(host, port, timeout=5) as client:
            assert client.noop()[0] == 250
    finally:
        server.stop()


def test_localserver_fixture(request: pytest.FixtureRequest, localserver_smtp: Any) -> None:
    smtpserver = request.getfixturevalue("smtpserver")
    with smtplib.SMTP(*smtpserver.addr, timeout=5) as client:
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert len(smtpserver.outbox) == 1
