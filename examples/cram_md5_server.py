"""An authenticating mail server: STARTTLS or implicit TLS, with PLAIN, LOGIN and CRAM-MD5.

PLAIN and LOGIN are built in: the ``authenticator`` checks the credentials they carry.
CRAM-MD5 (RFC 2195) is a challenge-response mechanism written here with
``@auth_mechanism`` and ``server.challenge_auth``: the client proves it knows the
password without sending it. The passwords below are examples; keep real ones hashed
(CRAM-MD5 needs the clear password or its HMAC pads on the server side).

Run it with a certificate and key (``openssl req -x509 ...``, see docs/tls.rst)::

    python examples/cram_md5_server.py --cert cert.pem --key key.pem [--port P] [--smtps]

It prints ``Listening on HOST:PORT`` and serves until Ctrl-C. Without ``--smtps`` clients
must say STARTTLS first (``require_starttls``); with it, the connection is TLS from the
first byte (SMTPS, port 465 style).
"""

from __future__ import annotations

import argparse
import hmac
import secrets
import signal
import ssl
import threading
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, auth_mechanism

#: user -> password. Examples only.
USERS = {"alice": "wonderland", "bob": "builder"}


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    """Checks what PLAIN and LOGIN received."""
    if not isinstance(auth_data, LoginPassword):
        return AuthResult(success=False, handled=False)
    user = auth_data.login.decode("utf-8", "replace")
    expected = USERS.get(user)
    ok = expected is not None and hmac.compare_digest(auth_data.password, expected.encode())
    return AuthResult(success=ok, handled=False, auth_data=user if ok else None)


class MailStore:
    """Keeps accepted messages; offers CRAM-MD5 as an extra AUTH mechanism."""

    def __init__(self) -> None:
        self.messages: list[tuple[str | None, list[str], Any]] = []

    @auth_mechanism("CRAM-MD5")
    async def auth_CRAM_MD5(self, server: SMTP, args: list[str]) -> AuthResult:
        challenge = f"<{secrets.token_hex(8)}@{server.hostname}>".encode()
        response = await server.challenge_auth(challenge)
        if not isinstance(response, bytes):
            return AuthResult(success=False)  # the client cancelled; it has its 501
        user, _, digest = response.decode("utf-8", "replace").rpartition(" ")
        password = USERS.get(user)
        if password is None:
            return AuthResult(success=False, handled=False)
        expected = hmac.new(password.encode(), challenge, "md5").hexdigest()
        ok = hmac.compare_digest(digest.lower(), expected)
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return f"250 2.0.0 Accepted for {session.auth_data}"


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def build(
    context: ssl.SSLContext, *, host: str = "127.0.0.1", port: int = 0, smtps: bool = False
) -> Controller:
    """A controller for the server; STARTTLS + AUTH, or implicit TLS if ``smtps``."""
    return Controller(
        MailStore(),
        hostname=host,
        port=port,
        ssl_context=context if smtps else None,
        tls_context=context,
        require_starttls=not smtps,
        auth_required=True,
        authenticator=authenticator,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--smtps", action="store_true", help="implicit TLS instead of STARTTLS")
    args = parser.parse_args(argv)
    controller = build(
        tls_context(args.cert, args.key), host=args.host, port=args.port, smtps=args.smtps
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    controller.start()
    print(f"Listening on {args.host}:{controller.port}", flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
