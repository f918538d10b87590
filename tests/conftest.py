"""Fixtures shared by the whole test suite live here; plain helpers live in tests/support.py.

``no_credentials_in_logs`` is autouse: every test runs with ALL logging captured at DEBUG
and fails if any record (message, arguments or traceback) contains one of the suite's
test passwords, in clear or in a base64 form a client sends it in. A test that makes the
server log credentials on purpose (``challenge_auth(log_client_response=True)``) says so
with ``@pytest.mark.credentials_logged_on_purpose``.

``AIOSMTPD_TEST_LOOP=uvloop`` runs the whole suite on uvloop: the global event loop policy
is uvloop's, so pytest-asyncio's loops (its default ``event_loop_policy`` returns the
global one) and every controller's thread loop (``asyncio.new_event_loop()``) are uvloop
loops.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator

import pytest

from tests.support import leaked_credentials, record_text

TEST_LOOP = os.environ.get("AIOSMTPD_TEST_LOOP", "asyncio")

if TEST_LOOP == "uvloop":
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
elif TEST_LOOP != "asyncio":
    raise pytest.UsageError(f"AIOSMTPD_TEST_LOOP must be asyncio or uvloop, not {TEST_LOOP!r}")


def pytest_report_header() -> str:
    return f"event loop: {TEST_LOOP}"


@pytest.fixture(autouse=True)
def no_credentials_in_logs(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    for name in ("mail.log", "mail.debug", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    yield
    if request.node.get_closest_marker("credentials_logged_on_purpose"):
        return
    # In teardown ``caplog.records`` holds only teardown's records: read each phase.
    records = [r for phase in ("setup", "call") for r in caplog.get_records(phase)]
    leaked = leaked_credentials("\n".join(record_text(r) for r in records))
    if leaked:
        pytest.fail(f"credentials in the logs: {leaked}")
