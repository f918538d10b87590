"""Fixtures shared by the whole test suite live here; plain helpers live in tests/support.py.

``AIOSMTPD_TEST_LOOP=uvloop`` runs the whole suite on uvloop: the global event loop policy
is uvloop's, so pytest-asyncio's loops (its default ``event_loop_policy`` returns the
global one) and every controller's thread loop (``asyncio.new_event_loop()``) are uvloop
loops.
"""

from __future__ import annotations

import asyncio
import os

import pytest

TEST_LOOP = os.environ.get("AIOSMTPD_TEST_LOOP", "asyncio")

if TEST_LOOP == "uvloop":
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
elif TEST_LOOP != "asyncio":
    raise pytest.UsageError(f"AIOSMTPD_TEST_LOOP must be asyncio or uvloop, not {TEST_LOOP!r}")


def pytest_report_header() -> str:
    return f"event loop: {TEST_LOOP}"
