"""Shared test helpers (import as ``from tests.support import require_program``).

``require_program`` is how a test says it needs an external program: on a developer's
laptop a missing program skips the test with a clear reason; under CI (``CI=true``) the
missing program is a failure, because ``.ci/run`` is supposed to install it.
"""

from __future__ import annotations

import base64
import importlib
import logging
import os
import shutil
from types import ModuleType

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_program(name: str) -> str:
    """Return the path of ``name``; skip (laptop) or fail (CI) if it is not installed."""
    path = shutil.which(name)
    if path is None:
        message = f"{name!r} is not installed (apt-get install it; .ci/run does)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_module(name: str) -> ModuleType:
    """Import and return ``name``; skip (laptop) or fail (CI) if it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        message = f"could not import {name!r} ({exc}); .ci/run installs it"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)


#: Every password the test suite authenticates with (in any test, any mechanism); the
#: suite-wide guard in tests/conftest.py fails a test whose logs contain one of them.
TEST_PASSWORDS = ("secret", "Wire-Pa55w0rd", "wonderland", "Mem0ry-Pa55", "nope")
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


def record_text(record: logging.LogRecord) -> str:
    """Everything a log record could put in a log file: message, arguments, traceback."""
    parts = [record.getMessage(), repr(record.args)]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)
