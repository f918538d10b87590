"""Serving hook-free commands inline, from ``data_received``, without a task wake-up.

Owns: which verbs of a server class may be served inline (``_inline_verbs``: the declaring
class's ``_INLINE_SAFE_VERBS`` whose ``smtp_<VERB>`` and helpers no subclass overrides and
no handler hook extends), serving them while the session task sleeps between commands
(``serve_inline``), and handing a command that suspends after all, or raises, back to the
session task (``resume_handoff``, ``_finish_suspended``).
Invariants: no hook, override or other user code ever runs outside the session task; a
command handed over continues exactly where it stopped; a graceful stop lets it finish.
Must not know: what the commands mean; the core's framing.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ._core import replies as R
from ._core.events import NEED_DATA, PAUSED, Command

if TYPE_CHECKING:
    from ._engine import SessionEngine

_INLINE_VERBS: dict[type, frozenset[str]] = {}
#: Methods an inline-served command may call: a subclass overriding any of them turns
#: inline serving off for the whole class (an override may await anything).
_INLINE_HELPERS = (
    "_on_command",
    "push",
    "handle_exception",
    "_call_handler_hook",
    "check_helo_needed",
    "check_auth_needed",
    "_set_rset_state",
    "_create_envelope",
    "_ehlo",
    "_ehlo_lines",
    "_parse_path_arg",
    "_say",
    "_send_line",
    "_render",
    "_flush",
    "_close_after_reply",
    "_extension_ehlo_lines",
    "_requiretls_offered",
    "_binarymime_offered",
    "_current_transfer",
    "_mail_esmtp_extra",
    "_rcpt_esmtp_extra",
)
#: 1.4's legacy ``SMTP`` hooks (awaited by EHLO and RSET when a subclass defines them).
_LEGACY_VERB_HOOKS = {"EHLO": "ehlo_hook", "RSET": "rset_hook"}


def _inline_verbs(cls: type) -> frozenset[str]:
    """The verbs of ``cls`` that ``_serve_inline`` may run: the declaring class's
    ``_INLINE_SAFE_VERBS`` whose ``smtp_<VERB>`` and helpers ``cls`` does not override."""
    verbs = _INLINE_VERBS.get(cls)
    if verbs is None:
        owner = next((k for k in cls.__mro__ if "_INLINE_SAFE_VERBS" in k.__dict__), None)
        if owner is None or any(
            getattr(cls, name, None) is not getattr(owner, name, None) for name in _INLINE_HELPERS
        ):
            verbs = frozenset()
        else:
            verbs = frozenset(
                verb
                for verb in owner.__dict__["_INLINE_SAFE_VERBS"]
                if getattr(cls, "smtp_" + verb, None) is getattr(owner, "smtp_" + verb)
                and not hasattr(cls, _LEGACY_VERB_HOOKS.get(verb, "smtp_" + verb + "_"))
            )
        _INLINE_VERBS[cls] = verbs
    return verbs


async def _finish_suspended(coro: Any, yielded: Any) -> Any:
    """Run ``coro``, which suspended on ``yielded`` outside any task, to its end here.

    The coroutine observes the outcome of the future it awaits itself (``send(None)``
    makes its ``await`` return the result or raise); a cancellation of this task that
    did not go through that future is thrown into it.
    """
    while True:
        try:
            if yielded is None:
                await asyncio.sleep(0)
            else:
                await yielded
        except BaseException as error:
            if yielded is None or not yielded.done():
                try:
                    yielded = coro.throw(error)
                except StopIteration as stop:
                    return stop.value
                continue
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            return stop.value


def serve_inline(engine: SessionEngine) -> None:
    """Serve buffered commands right here, while the session task sleeps between commands.

    Saves the task wake-up (a ``call_soon`` and a loop iteration) per command. Only
    commands that run no user code are served here (``_inline_verbs``), so no hook or
    override ever runs outside the session task; anything else, a command that
    suspends after all (write back-pressure) and any escaping exception are handed to
    the task, which carries on exactly where this left off.
    """
    conn = engine._conn
    inline_verbs = _inline_verbs(type(engine))
    hooks = engine._handle_hooks
    engine._inline_serving = True
    try:
        while not (engine._closing or engine._shutdown_requested or engine._writes.paused):
            event = conn.next_event()
            if event is NEED_DATA:
                engine._flush()
                return
            if event is PAUSED:
                break
            if (
                type(event) is not Command
                or event.verb not in inline_verbs
                or event.verb in hooks
                or "exception" in hooks
            ):
                engine._pending_event = event
                break
            engine._timer.touch()
            coro = engine._on_command(event)
            try:
                yielded = coro.send(None)
            except StopIteration:
                continue
            except BaseException as error:  # the task raises it, as if it ran there
                engine._handoff = error
                break
            # Task.__step's bookkeeping for the future the command awaits: it is awaited
            # again by the task (and maybe shared, e.g. the write gate's), which a future
            # still marked as "blocking" refuses ("await wasn't used with future").
            if getattr(yielded, "_asyncio_future_blocking", False):
                yielded._asyncio_future_blocking = False
            engine._handoff = (coro, yielded)
            # The command is in progress, not between commands: a graceful stop arriving
            # before the task resumes it must let it finish.
            engine._between_commands = False
            break
    finally:
        engine._inline_serving = False
    engine._wake()


async def resume_handoff(engine: SessionEngine) -> None:
    handoff, engine._handoff = engine._handoff, None
    if isinstance(handoff, BaseException):
        raise handoff
    assert handoff is not None
    coro, yielded = handoff
    # The command is in progress: a graceful stop lets it finish (as in _handle_client).
    engine._between_commands = False
    try:
        await _finish_suspended(coro, yielded)
    finally:
        engine._between_commands = True
    if engine._shutdown_requested and not engine._closing:
        engine._close_with(R.SHUTTING_DOWN)
