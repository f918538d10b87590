"""The sans-I/O core's configuration for a server's connections, made once per server.

Owns: ``core_config_for(server)``, the ``CoreConfig`` an ``SMTP`` connection's core is
built with (``SMTP._new_core``): one dictionary look-up per connection, keyed by the
server's class and the settings the configuration derives from, instead of computing the
ESMTP allowances again for every connection.
Invariants: a ``CoreConfig`` is immutable, so connections with equal settings share one;
a class that computes its own allowances (overrides ``_mail_esmtp_extra`` or
``_rcpt_esmtp_extra``) is asked every time, as before. The caches are bounded.
Must not know: commands, transports, the session engine.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ._core.connection import CoreConfig

_CONFIGS: dict[tuple[Any, ...], CoreConfig] = {}
_CONFIGS_MAX = 64


@functools.lru_cache(maxsize=64)
def _core_config(
    data_size_limit: int | None,
    line_length_limit: int,
    command_size_limit: int,
    mail_esmtp_extra: int,
    smtputf8: bool,
    *,
    rcpt_esmtp_extra: int = 0,
) -> CoreConfig:
    return CoreConfig(
        data_size_limit=data_size_limit,
        line_length_limit=line_length_limit,
        command_size_limit=command_size_limit,
        mail_esmtp_extra=mail_esmtp_extra,
        smtputf8=smtputf8,
        rcpt_esmtp_extra=rcpt_esmtp_extra,
    )


def core_config_for(server: Any, library_extras: tuple[Callable[..., int], ...]) -> CoreConfig:
    """The configuration for a new connection of ``server`` (an ``SMTP``).

    ``library_extras``: the library's ``_mail_esmtp_extra`` and ``_rcpt_esmtp_extra``; a
    class that keeps both gets its configuration from the per-settings cache.
    """
    cls = type(server)
    key = (
        cls,
        server.data_size_limit,
        server.line_length_limit,
        server.command_size_limit,
        server.enable_SMTPUTF8,
        server.enable_DSN,
        server.enable_REQUIRETLS,
    )
    config = _CONFIGS.get(key)
    if config is None:
        config = _core_config(
            server.data_size_limit or None,
            server.line_length_limit,
            server.command_size_limit,
            server._mail_esmtp_extra(),
            server.enable_SMTPUTF8,
            rcpt_esmtp_extra=server._rcpt_esmtp_extra(),
        )
        if (cls._mail_esmtp_extra, cls._rcpt_esmtp_extra) == library_extras:
            if len(_CONFIGS) >= _CONFIGS_MAX:
                _CONFIGS.clear()
            _CONFIGS[key] = config
    return config
