"""How workflows read what callers send: one decoder for every entry point.

A careless or hostile caller reaches a workflow with any payload: none, two, ``null`` (an SDK's
``None`` is ``binary/null``), bytes that are not JSON, the wrong shape. If the SDK's own
decoding met those, it would raise before our code ran, and a raise there fails the workflow
task, on every retry and every replay. So entry points take ``*args`` (and signals arrive raw,
through one dynamic handler) and decode here, where every problem is a typed
``validation_error``: a start fails the workflow with it, an update is rejected with it, a
query answers it, and a signal records it as ``error_occurred``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn, TypeVar

import pydantic
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from agent_session_manager.core.errors import AsmError
    from agent_session_manager.core.temporal import decode_input, to_application_error

M = TypeVar("M", bound=pydantic.BaseModel)


def parse(args: Sequence[Any], model: type[M], what: str) -> M:
    """The one argument of ``what``; an :class:`AsmError` (``validation_error``) if unusable."""
    return decode_input(args, model, what=what, converter=workflow.payload_converter())


def fail(err: AsmError) -> NoReturn:
    """Raise a domain error the only way a handler may: as a typed, final ``ApplicationError``.

    Anything else raised from a workflow, handler or validator would fail the workflow task.
    """
    err.retryable = False
    raise to_application_error(err)


def argument(args: Sequence[Any], model: type[M], what: str) -> M:
    """:func:`parse`, failing the start or rejecting the update with the error."""
    try:
        return parse(args, model, what)
    except AsmError as err:
        fail(err)


def unknown(kind: str, name: str, known: Sequence[str]) -> NoReturn:
    """Refuse an update or query this workflow does not define, typed (the SDK's own refusal
    is an untyped ``RuntimeError``)."""
    fail(
        AsmError(
            "validation_error",
            f"unknown {kind} {name[:80]!r}; this workflow takes {', '.join(known) or 'none'}",
            details={kind: name[:80], "known": list(known)},
        )
    )


def no_arguments(args: Sequence[Any], what: str) -> None:
    """Queries take nothing: say so, typed, rather than fail on an unexpected argument."""
    if args:
        fail(
            AsmError(
                "validation_error",
                f"{what} takes no arguments; got {len(args)}",
                details={"arguments": len(args)},
            )
        )


__all__ = ["argument", "fail", "no_arguments", "parse", "unknown"]
