"""Wire-test fixtures: trustme certificates, and a guard that no credential reaches a log.

``no_credentials_in_logs`` is autouse: every test in ``tests/wire`` runs with ALL logging
captured at DEBUG, and fails if any record (message, arguments or traceback) contains a
known test password in clear or in one of the base64 forms a client sends it in.
"""

from __future__ import annotations

import base64
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Passwords the wire tests use; none may ever appear in a log.
TEST_PASSWORDS = ("secret", "Wire-Pa55w0rd")
TEST_USERS = ("alice",)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def credential_forms(password: str, users: tuple[str, ...] = TEST_USERS) -> set[str]:
    """The strings that would betray ``password``: clear, LOGIN's and PLAIN's base64."""
    raw = password.encode()
    forms = {password, _b64(raw)}
    for user in users:
        forms.add(_b64(b"\0" + user.encode() + b"\0" + raw))
        forms.add(_b64(user.encode() + b"\0" + user.encode() + b"\0" + raw))
    return forms


def leaked_credentials(text: str, passwords: tuple[str, ...] = TEST_PASSWORDS) -> list[str]:
    return sorted(form for p in passwords for form in credential_forms(p) if form in text)


def _record_text(record: logging.LogRecord) -> str:
    parts = [record.getMessage(), repr(record.args)]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


@pytest.fixture(autouse=True)
def no_credentials_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    for name in ("mail.log", "mail.debug", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    yield
    text = "\n".join(_record_text(record) for record in caplog.records)
    leaked = leaked_credentials(text)
    if leaked:
        pytest.fail(f"credentials in the logs: {leaked}")


@pytest.fixture(scope="module")
def tls_certificates(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[ssl.SSLContext, ssl.SSLContext, Path]:
    """(server context, client context, CA file) from a throw-away trustme CA."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost", "mx.test")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server_context, client_context, ca_file
