"""aiosmtpd: an asyncio SMTP server library.

Owns only the version and the 1.4-compatible loop helper; importing this package must
not start, bind, import asyncio policy side effects, or configure logging.
"""

from __future__ import annotations

import asyncio

__version__ = "2.0.0.dev0"


def _get_or_new_eventloop() -> asyncio.AbstractEventLoop:
    """Return the running/current loop, or make and set a new one (1.4 compatible)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop
