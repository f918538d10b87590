"""Every aiosmtpd 1.4 deprecation shim of the SMTP adapter, in one place.

Owns: the warnings and log lines 1.4 emitted for deprecated APIs (each says when it
goes), and the small stand-ins for 1.4's stream objects that third-party plugins reach
into (``server._reader._transport``, ``server._writer._transport``).
Invariants: a warning fires at the same moment as in 1.4 (on use, not at import), with
1.4's exact text, so ``pytest.warns`` in existing test suites keeps matching.
Must not know: the core, replies.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from typing import Any

log = logging.getLogger("mail.log")

# Removal: 3.0 (1.4 announced 2.0; kept so 1.4 programs run unchanged).
EHLO_4_ARG = (
    "Use the 5-argument handle_EHLO() hook instead of the 4-argument handle_EHLO() hook; "
    "support for the 4-argument handle_EHLO() hook will be removed in version 2.0"
)
# Removal: 3.0.
PROCESS_MESSAGE = "Use handler.handle_DATA() instead of .process_message()"
# Removal: 3.0.
EHLO_HOOK = "Use handler.handle_EHLO() instead of .ehlo_hook()"
# Removal: 3.0.
RSET_HOOK = "Use handler.handle_RSET() instead of .rset_hook()"
# Removal: 3.0.
AUTH_INTERACT = (
    "_auth_interact will be deprecated in version 2.0. Please use challenge_auth() instead."
)
# Removal: 3.0. 1.4 only logged (no warning); so do we.
LOGIN_DATA = "Session.login_data is deprecated and will be removed in version 2.0"
# Not a deprecation but a 1.4 warning kept verbatim.
AUTH_WITHOUT_TLS = "Requiring AUTH while not requiring TLS can lead to security vulnerabilities!"


def warn_deprecated(message: str) -> None:
    # stacklevel 3: the warning points at the caller of the shim's caller (the server
    # method that noticed the deprecated use), like 1.4's.
    warnings.warn(message, DeprecationWarning, stacklevel=3)


def log_login_data() -> None:
    log.warning(LOGIN_DATA)


class CompatStream:
    """Stands in for 1.4's ``StreamReader``/``StreamWriter`` attributes.

    Only ``_transport`` is meaningful: plugins that replace ``smtp_STARTTLS`` assign the
    new TLS transport to it (and to ``server.transport``); the server writes through
    ``server.transport``.
    """

    def __init__(self, transport: asyncio.BaseTransport | None) -> None:
        self._transport = transport

    @property
    def transport(self) -> Any:
        return self._transport

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if self._transport is None:
            return default
        return self._transport.get_extra_info(name, default)
