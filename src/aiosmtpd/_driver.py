"""Driving a session from the protocol callbacks, with a task only while one is needed.

Owns: serving the core's events straight from ``data_received`` (``drive``) for commands
that run no user code (``_inline_verbs``), keeping such a command suspended without any
task while it waits for more input (a DATA's content, ``resume``), and moving work into
the session's task the moment user code is about to run (a ``handle_<VERB>`` hook, an
``smtp_<VERB>`` override, the ``handle_exception`` hook) or a library coroutine must wait
for something other than input (write back-pressure): ``start_task_for``.

The commands of the fast lane (``_fastlane``: the library's own, with nothing
configured around them) are plain function calls from ``drive``, no coroutine at all.

Why: an idle connection then holds no task, no coroutine frames and no future (it is
only its protocol object and the core), and a command costs no task wake-up; user code
still always runs inside a task (``asyncio.current_task()``, ``asyncio.timeout`` and
context variables behave as users expect).

Invariants: at most one of "the session task runs" (``engine._task``) and "a command is
suspended task-less" (``engine._suspended``) holds at any time; events are taken from
the core in order and only after the previous command finished; a command moved into the
task continues exactly where it stopped.
Must not know: what the commands mean; the core's framing.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, Any

from . import _fastlane as fastlane
from ._core import replies as R
from ._core.events import NEED_DATA, PAUSED, Command, ConnectionClosed, Event, Rejected, Sentinel
from ._session import _ConnectionGone, sanitized_log

if TYPE_CHECKING:
    from ._engine import SessionEngine

log = logging.getLogger("mail.log")


class _Marker:
    """Something a task-less library coroutine yields to ``_step`` to say what it needs."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __await__(self) -> Generator[Any, None, None]:
        yield self

    def __repr__(self) -> str:
        return f"<{self.name}>"


#: "Resume me when more input has arrived" (``SessionEngine._wait_for_input``).
WAIT_FOR_INPUT = _Marker("wait for input")
#: "Continue me inside the session task": user code is about to run.
ENTER_TASK = _Marker("enter task")

_INLINE_VERBS: dict[type, frozenset[str]] = {}
#: Methods an inline-served command may call: a subclass overriding any of them turns
#: inline serving off for the whole class (an override may await anything).
_INLINE_HELPERS = (
    "_on_command",
    "push",
    "_emit",
    "handle_exception",
    "_call_handler_hook",
    "_enter_task",
    "check_helo_needed",
    "check_auth_needed",
    "_helo_given",
    "_auth_satisfied",
    "_set_rset_state",
    "_create_envelope",
    "_ehlo",
    "_ehlo_lines",
    "_parse_path_arg",
    "_mail_params",
    "_say",
    "_send_line",
    "_render",
    "_flush",
    "_reply_before_release",
    "_close_after_reply",
    "_extension_ehlo_lines",
    "_requiretls_offered",
    "_binarymime_offered",
    "_current_transfer",
    "_mail_esmtp_extra",
    "_rcpt_esmtp_extra",
    "_next_event",
    "_ready_event",
    "_poll",
    "_input_drained",
    "_wait_for_input",
    "_read_message",
    "_receive_and_deliver",
    "_deliver_content",
    "_deliver",
    "_push_data_replies",
)
#: 1.4's legacy ``SMTP`` hooks (awaited by EHLO and RSET when a subclass defines them).
_LEGACY_VERB_HOOKS = {"EHLO": "ehlo_hook", "RSET": "rset_hook"}
#: Verbs whose ``handle_<VERB>`` hook is called behind ``_enter_task`` (after the command
#: started inline): DATA receives the content without a task and enters one to deliver.
GATED_HOOK_VERBS = frozenset({"DATA"})


def _inline_verbs(cls: type) -> frozenset[str]:
    """The verbs of ``cls`` that ``drive`` may run: the declaring class's
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


#: Per class: the verbs ``drive`` may serve, and those of them with a fast-lane command.
_LANES: dict[type, tuple[frozenset[str], dict[str, fastlane.FastCommand]]] = {}
_NO_VERBS: frozenset[str] = frozenset()
_NO_COMMANDS: dict[str, fastlane.FastCommand] = {}


def _lanes(cls: type) -> tuple[frozenset[str], dict[str, fastlane.FastCommand]]:
    inline = _inline_verbs(cls)
    lanes = _LANES[cls] = (inline, fastlane.fast_verbs(cls, inline) if inline else _NO_COMMANDS)
    return lanes


def drive(engine: SessionEngine, touched: bool = False) -> None:
    """Serve what the core has buffered, from a protocol callback; no task is running.

    Stops when the core needs more input, when a command suspends (task-less, waiting
    for input) or moves into the session task, and ends the connection once it closed.
    ``touched``: the caller restarted the idle timer for this input already.
    """
    if engine._driving:
        return  # re-entered from a callback we caused: the outer loop sees the new input
    engine._driving = True
    # A command is served here when its verb is inline-safe for the class, the handler
    # has no hook for it (DATA's runs behind _enter_task) and no handle_exception hook;
    # in the fast lane when nothing else is configured around it either (_fastlane).
    hooks = engine._handle_hooks
    inline, fast = _LANES.get(type(engine)) or _lanes(type(engine))
    if "exception" in hooks:
        inline, fast = _NO_VERBS, _NO_COMMANDS
    elif fast and (
        not engine._tls_handshake_okay or (engine.require_starttls and not engine._tls_active)
    ):
        fast = _NO_COMMANDS
    log_commands: bool | None = None  # asked when the first fast command is served
    limit_calls = engine._enforce_call_limit
    # (Both made with the connection and kept to its end.)
    conn, writes = engine._conn, engine._writes
    try:
        while engine._task is None and engine._suspended is None:
            event: Event | Sentinel | None
            if (
                engine._closing
                or engine._shutdown_requested
                or writes.paused
                or not inline  # a class that overrides _ready_event or _poll, say
            ):
                event = engine._ready_event()
            else:
                # _ready_event's common case, inlined: one core call per event. The idle
                # timer restarts once per batch (no time passes between its events).
                event = conn.next_event()
                if event is NEED_DATA:
                    engine._flush()  # _input_drained's common case (reading not paused)
                    if engine._reading_paused:
                        engine._input_drained()
                    break
                if event is PAUSED:
                    event = engine._ready_event()
                elif not touched:
                    engine._timer.touch()
                    touched = True
            if event is None:
                break
            if type(event) is Command:
                verb = event.verb
                command = fast.get(verb)  # (only inline verbs have one)
                if (
                    command is None
                    or (verb in hooks and verb not in GATED_HOOK_VERBS)
                    or (limit_calls and not fastlane.within_call_limit(engine, verb))
                ):
                    if verb not in inline or (verb in hooks and verb not in GATED_HOOK_VERBS):
                        start_task_for(engine, engine._dispatch(event))
                    else:
                        _step(engine, engine._on_command(event), None)
                    continue
                # The fast lane: what _on_command does once its gates passed (they do).
                engine._after_auth = False
                if log_commands is None:
                    log_commands = log.isEnabledFor(logging.INFO)
                if log_commands:
                    sanitized_log(log.info, "%r >> %r", engine.session.peer, event.raw)
                try:
                    work = command(engine, event.arg)
                except Exception as error:
                    _step(engine, fastlane.answer_error(engine, error), None)
                    continue
                if work is None:
                    if not writes.paused:
                        continue
                    # As the general path (_emit, then push's wait): what is buffered goes
                    # out, and the command waits in the task for the peer to read.
                    engine._flush()
                    _step(engine, writes.wait(), None)
                    continue
                if (
                    conn.drained
                    and not writes.paused
                    and not engine._reading_paused
                    and not engine._closing
                ):
                    # DATA, and none of its content is here yet: the coroutine's first
                    # step could only flush and wait for input. Do that much here, and
                    # let resume() start it when the content arrives.
                    engine._flush()
                    engine._suspended = _NotStarted(work)
                    continue
                coro = work()
                if coro is not None:
                    _step(engine, coro, None)
            elif type(event) is Rejected:
                engine._say(event.reply)
                if event.close:
                    engine._close_after_reply()
            elif type(event) is ConnectionClosed:
                engine._closing = True
            else:
                log.error("%r unexpected core event %r", engine.session.peer, event)
    except Exception:
        # As a session task would: log and end this session, never the caller's callback.
        log.exception("%r SMTP session exception", engine.session.peer)
        engine._closing = True
    finally:
        engine._driving = False
    if engine._closing and engine._task is None and engine._suspended is None:
        engine._end_connection()


class _NotStarted(Coroutine[Any, None, None]):
    """A suspended command whose coroutine is not made yet (``resume`` makes it): an
    unstarted coroutine dropped with its connection would be reported "never awaited".
    Behaves as the coroutine would, should anything else send to it."""

    __slots__ = ("_coro", "_start")

    def __init__(self, start: fastlane.ContentStart) -> None:
        self._start: fastlane.ContentStart | None = start
        self._coro: Coroutine[Any, None, None] | None = None

    def start(self) -> Coroutine[Any, None, None] | None:
        """Make the coroutine, once; ``None``: the command was done at once, no coroutine."""
        start, self._start = self._start, None
        if start is not None:
            self._coro = start()
        return self._coro

    def started(self) -> Coroutine[Any, None, None]:
        coro = self.start()
        if coro is None:
            coro = self._coro = _done()
        return coro

    def send(self, value: None) -> Any:
        return self.started().send(value)

    def throw(self, *args: Any) -> Any:
        return self.started().throw(*args)

    def close(self) -> None:
        if self._coro is not None:
            self._coro.close()

    def __await__(self) -> Generator[Any, None, None]:
        return self.started().__await__()


async def _done() -> None:
    """The rest of a command that was done at once."""


def resume(engine: SessionEngine) -> None:
    """Continue the task-less suspended command: input arrived, or the peer went away."""
    suspended = engine._suspended
    assert suspended is not None
    engine._suspended = None
    # DATA's content arrived.  Should the command finish in this step, it restarted the
    # idle timer: _receive_whole did (its touch runs here, before ``_driving`` is set),
    # or its reader did on the first event.  The commands after it need no second touch.
    coro: Coroutine[Any, Any, None] | None = suspended
    content_served = False
    if type(suspended) is _NotStarted:
        content_served = True
        coro = suspended.start()  # (made here: nothing else sends to it)
    if coro is not None:  # (else DATA's content was served at once)
        engine._driving = True
        try:
            _step(engine, coro, None)
        finally:
            engine._driving = False
    drive(engine, content_served)


def abandon(engine: SessionEngine) -> None:
    """The connection is being closed: a suspended command will never get its input."""
    coro = engine._suspended
    if coro is not None:
        engine._suspended = None
        coro.close()


def _step(engine: SessionEngine, coro: Coroutine[Any, Any, None], value: None) -> None:
    """Run ``coro`` until it finishes or suspends; park it or move it into the task."""
    engine._stepping = True
    try:
        yielded = coro.send(value)
    except StopIteration:
        return
    except _ConnectionGone:
        engine._closing = True
        return
    except Exception:
        log.exception("%r SMTP session exception", engine.session.peer)
        engine._closing = True
        return
    finally:
        engine._stepping = False
    if yielded is WAIT_FOR_INPUT:
        engine._suspended = coro
        return
    start_task_for(engine, finish_in_task(coro, yielded))


def start_task_for(engine: SessionEngine, work: Coroutine[Any, Any, Any]) -> None:
    """Run ``work``, then every further event, in a new session task."""
    loop = engine._loop or asyncio.get_running_loop()
    engine._task = loop.create_task(_session_task(engine, work))


async def _session_task(engine: SessionEngine, work: Coroutine[Any, Any, Any]) -> None:
    """The session task: runs while user code runs or a command awaits; ends when idle."""
    try:
        await work
        while True:
            event = engine._ready_event()
            if event is None:
                break
            await engine._dispatch(event)
    except _ConnectionGone:
        engine._closing = True
    except Exception:
        log.exception("%r SMTP session exception", engine.session.peer)
        engine._closing = True
    except BaseException:
        # Cancelled (or a hook let CancelledError out): the session ends with its task,
        # as 1.4's did; a client must never be left waiting for a reply.
        engine._closing = True
        engine._task = None
        engine._end_connection()
        raise
    finally:
        engine._task = None
    if engine._shutdown_requested and not engine._closing:
        engine._close_with(R.SHUTTING_DOWN)
    if engine._closing or engine._lost:
        engine._end_connection()


_NOTHING: Any = object()


@types.coroutine
def finish_in_task(coro: Coroutine[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    """Delegate to ``coro``, which suspended on ``yielded`` outside any task, as
    ``yield from`` would: the task awaits exactly what the coroutine awaits.

    ``yielded`` is a future (its "blocking" mark still set, as a task expects), ``None``
    (a bare yield, ``asyncio.sleep(0)``) or ``ENTER_TASK`` (continue at once). A
    cancellation reaches the coroutine through the future it awaits, or is thrown in.
    """
    pending = _NOTHING if yielded is ENTER_TASK else yielded
    while True:
        error: BaseException | None = None
        if pending is not _NOTHING:
            try:
                yield pending
            except BaseException as exc:
                error = exc
        try:
            pending = coro.send(None) if error is None else coro.throw(error)
        except StopIteration as stop:
            return stop.value
