"""The options every command shares: ``-o/--output text|json``, ``--address``, ``--namespace``.

They are declared once and added to each command's signature by :func:`shared`, so every
command spells them the same way and ``asm <command> --help`` lists them; the values of the
command being run are kept in :data:`current` (one command per process), where the runtime
and the error printer read them.

The typed converters here (:func:`parse_mock_script`, :class:`Strategy`, …) turn a bad value
into a usage error (exit 2, one line saying what is valid) before any model sees it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Annotated, Any, TypeVar, get_args, get_type_hints

import typer
from pydantic import ValidationError
from typer._click.exceptions import UsageError  # typer vendors click

from agent_session_manager.core.contract import MockScript, MultitaskStrategy
from agent_session_manager.core.errors import AsmError

T = TypeVar("T")


class Output(StrEnum):
    """How a command prints its result."""

    text = "text"
    json = "json"


#: The multitask strategies as a choice (the contract's literal is the one source).
Strategy = Enum("Strategy", {v: v for v in get_args(MultitaskStrategy)}, type=str)  # type: ignore[misc]


@dataclass
class Invocation:
    """The shared options of the command being run."""

    output: Output = Output.text
    address: str | None = None
    namespace: str | None = None

    def reset(self) -> None:
        """Back to the defaults (a new command line)."""
        self.output, self.address, self.namespace = Output.text, None, None

    @property
    def json(self) -> bool:
        """``-o json``: results (and errors, on stderr) are JSON."""
        return self.output is Output.json


current = Invocation()

OutputOption = Annotated[
    Output,
    typer.Option(
        "--output",
        "-o",
        help="text for people, json for scripts (one object, or one per line for lists)",
        case_sensitive=False,
    ),
]
AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Temporal frontend host:port (default: $ASM_TEMPORAL_ADDRESS, $TEMPORAL_ADDRESS, "
        "then the project's `asm dev` server)",
        show_default=False,
    ),
]
NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        help="Temporal namespace (default: $ASM_NAMESPACE, $TEMPORAL_NAMESPACE, then default)",
        show_default=False,
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def shared(*, connects: bool = True) -> Callable[[F], F]:
    """Add ``-o/--output`` (and, for a command that talks to Temporal, ``--address`` and
    ``--namespace``) to a command; their values go to :data:`current`."""
    extra: dict[str, tuple[Any, Any]] = {"output": (OutputOption, Output.text)}
    if connects:
        extra |= {"address": (AddressOption, None), "namespace": (NamespaceOption, None)}

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn, eval_str=True)
        params = [
            *signature.parameters.values(),
            *(
                inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=a, default=d)
                for name, (a, d) in extra.items()
            ),
        ]

        @functools.wraps(fn)
        def command(*args: Any, **kwargs: Any) -> Any:
            for name in extra:
                setattr(current, name, kwargs.pop(name))
            return fn(*args, **kwargs)

        command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {
            **get_type_hints(fn, include_extras=True),
            **{name: a for name, (a, _) in extra.items()},
        }
        return command  # type: ignore[return-value]

    return decorate


def json_alias(flag: bool) -> None:
    """A deprecated ``--json``/``--jsonl`` flag (hidden): the same as ``-o json``."""
    if flag:
        current.output = Output.json


def parse_mock_script(value: str | None) -> MockScript | None:
    """``--mock-script`` JSON as a :class:`MockScript`, or a usage error saying what is wrong."""
    if value is None:
        return None
    try:
        return MockScript.model_validate_json(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the script"
        msg = " ".join(str(first["msg"]).split())[:200]
        raise typer.BadParameter(
            f"{where}: {msg} (expected MockScript JSON, e.g. "
            '\'{"steps": [{"type": "text", "text": "hi"}]}\')'
        ) from None


def validated(build: Callable[[], T]) -> T:
    """``build()``, with a model's refusal of a command-line value made a usage error (one line
    naming the field and what is wrong) instead of a traceback."""
    try:
        return build()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "value"
        raise UsageError(f"invalid {where}: {' '.join(str(first['msg']).split())}") from None
    except AsmError as exc:
        if exc.category != "validation":
            raise
        raise UsageError(f"{exc.code}: {' '.join(exc.message.split())}") from None
