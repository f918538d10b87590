"""Discovery of handler hooks and ``smtp_<VERB>`` methods, cached per type.

Owns: which ``handle_<VERB>`` hooks a handler has (looked up once per handler *type*,
plus the rare hooks set on the instance itself), the arity of ``handle_EHLO``, and the
verb table of an ``SMTP`` class (once per class, via the class, never ``dir(self)``).
Invariants: caches are keyed by type and never mutated after being filled; the returned
mappings must be treated as read-only.
Must not know: transports, replies, the core.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

HOOK_PREFIX = "handle_"
VERB_PREFIX = "smtp_"

_HOOK_NAMES: dict[type, tuple[str, ...]] = {}
_VERB_TABLES: dict[type, dict[str, Callable[..., Any]]] = {}
_EHLO_ARITY: dict[type, int] = {}
#: The hooks of a handler that has none (read-only, like every mapping returned here).
_NO_HOOKS: dict[str, Callable[..., Any]] = {}


def _hook_names(handler_type: type) -> tuple[str, ...]:
    names = _HOOK_NAMES.get(handler_type)
    if names is None:
        names = tuple(
            name[len(HOOK_PREFIX) :]
            for name in dir(handler_type)
            if name.startswith(HOOK_PREFIX) and callable(getattr(handler_type, name, None))
        )
        _HOOK_NAMES[handler_type] = names
    return names


def bind_hooks(handler: object) -> dict[str, Callable[..., Any]]:
    """``{"DATA": handler.handle_DATA, ...}`` for every hook the handler has.

    ``handle_exception`` is included under the key ``"exception"``.
    """
    hooks = {name: getattr(handler, HOOK_PREFIX + name) for name in _hook_names(type(handler))}
    instance_attrs = getattr(handler, "__dict__", None)
    if instance_attrs:
        for attribute, member in instance_attrs.items():
            if attribute.startswith(HOOK_PREFIX) and callable(member):
                hooks[attribute[len(HOOK_PREFIX) :]] = member
    # One per connection: a handler without hooks (a sink) shares one empty mapping.
    return hooks if hooks else _NO_HOOKS


def verb_table(server_type: type) -> dict[str, Callable[..., Any]]:
    """``{"MAIL": SMTP.smtp_MAIL, ...}`` (unbound functions) for a server class."""
    table = _VERB_TABLES.get(server_type)
    if table is None:
        table = {}
        for name in dir(server_type):
            if name.startswith(VERB_PREFIX):
                member = getattr(server_type, name)
                if callable(member):
                    table[name[len(VERB_PREFIX) :].upper()] = member
        _VERB_TABLES[server_type] = table
    return table


def _positional_arity(func: Callable[..., Any]) -> int:
    params = inspect.signature(func).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 5
    return sum(
        1
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    )


def ehlo_arity(handler: object, hook: Callable[..., Any]) -> int:
    """Number of arguments ``handle_EHLO`` takes after ``self`` (4 or 5 are supported)."""
    instance_attrs = getattr(handler, "__dict__", None)
    if instance_attrs and "handle_EHLO" in instance_attrs:
        return _positional_arity(hook)
    handler_type = type(handler)
    arity = _EHLO_ARITY.get(handler_type)
    if arity is None:
        arity = _positional_arity(hook)
        _EHLO_ARITY[handler_type] = arity
    return arity
