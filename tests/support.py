"""Shared test helpers (import as ``from tests.support import require_program``).

``require_program`` is how a test says it needs an external program: on a developer's
laptop a missing program skips the test with a clear reason; under CI (``CI=true``) the
missing program is a failure, because ``.ci/run`` is supposed to install it.
"""

from __future__ import annotations

import importlib
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
