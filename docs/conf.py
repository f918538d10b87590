"""Sphinx configuration for the aiosmtpd documentation (built with ``-W``: warnings fail)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from aiosmtpd import __version__  # noqa: E402

project = "aiosmtpd"
author = "The aiosmtpd 2 developers"
copyright = "the aiosmtpd 2 developers; Apache-2.0"  # noqa: A001
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = ["sphinx.ext.autodoc"]

# The machine has no internet access during builds: no intersphinx.
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = f"aiosmtpd {release}"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
default_role = "code"
