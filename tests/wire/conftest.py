"""Wire-test fixtures: trustme certificates.

(The guard that no credential reaches a log is suite-wide: see tests/conftest.py.)
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from tests.support import require_module


@pytest.fixture(scope="module")
def tls_certificates(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[ssl.SSLContext, ssl.SSLContext, Path]:
    """(server context, client context, CA file) from a throw-away trustme CA."""
    trustme = require_module("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost", "mx.test")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server_context, client_context, ca_file
