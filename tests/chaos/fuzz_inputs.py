"""Seeded generators of malformed requests: what a careless or hostile caller can hand a session
through any Temporal client.

A :class:`Request` is a recipe, not bytes: it names the operation (a workflow start, an update,
a signal or a query, by the wire names of :mod:`core.protocol`), the kind of session it goes to,
and its payloads as :class:`PayloadSpec` values whose JSON may hold placeholders (the target's
session id, its running run id, ...) and :class:`Big` strings. :func:`materialize` turns it into
real ``temporalio.api.common.v1.Payload`` objects once the target is known, so a seed
reproduces the same requests whatever sessions a run happens to create.

Every request starts from a valid value and is broken on purpose: a field mutated to a wrong
type, an out-of-range number (``1e12``, ``2**63``, ``Infinity``, ``NaN``), a string near or over a
real limit, an unknown field; or the payload list itself mutated (none, two, ``binary/null``,
invalid JSON, an unknown encoding). ``over_limit`` says when a value exceeds a limit the request
will really hit (SQL column width, workflow-id length, timer range, search-attribute size): such
a request must be rejected, never accepted.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from typing import Any, Literal

from temporalio.api.common.v1 import Payload

from agent_session_manager.core import protocol

#: Kinds of session a request can be aimed at (see tests/chaos/fuzz_run.py for how each is made).
TargetKind = Literal["pending", "active", "busy", "paused", "closed"]
IDLE_KINDS: tuple[TargetKind, ...] = ("pending", "active", "paused")
LIVE_KINDS: tuple[TargetKind, ...] = ("pending", "active", "busy", "paused")

Kind = Literal["start_session", "start_run", "update", "signal", "query"]

#: Placeholders replaced by the target's ids when a request is materialized.
SESSION_ID = "<<session_id>>"
RUNNING_RUN = "<<running_run>>"
QUEUED_RUN = "<<queued_run>>"
FINISHED_RUN = "<<finished_run>>"
OTHER_SESSIONS_RUN = "<<other_sessions_run>>"
PLACEHOLDERS = (SESSION_ID, RUNNING_RUN, QUEUED_RUN, FINISHED_RUN, OTHER_SESSIONS_RUN)

#: The limits the values below are chosen around.
SQL_ID = 255  # varchar(255): ids, agent_id, provider, model
WORKFLOW_ID = 1000  # Temporal's default limit.maxIDLength
SEARCH_ATTRIBUTE_VALUE = 2048  # Temporal's default limit.searchAttributesSizeOfValue (bytes)
PAYLOAD = 2 * 1024 * 1024  # Temporal's default limit.blobSize.error
TIMER_SECONDS = 9.2e9  # a Go time.Duration overflows past ~292 years


@dataclass(frozen=True)
class Big:
    """A long string, built only when the request is sent (``n`` characters of ``char``)."""

    n: int
    char: str = "x"


@dataclass(frozen=True)
class Nested:
    """A JSON value nested ``depth`` levels deep."""

    depth: int


@dataclass(frozen=True)
class PayloadSpec:
    """One payload: JSON of ``value``, or ``raw`` bytes under ``encoding`` (None: no metadata)."""

    value: Any = None
    raw: bytes | None = None
    encoding: bytes | None = b"json/plain"


NULL = PayloadSpec(raw=b"", encoding=b"binary/null")


@dataclass
class Request:
    """One generated request, reproducible from (seed, index)."""

    index: int
    kind: Kind
    name: str
    target: TargetKind | None
    payloads: list[PayloadSpec]
    label: str
    over_limit: str | None = None
    #: For starts: the workflow id (a placeholder-free string or a Big); None: a fresh one.
    workflow_id: str | Big | None = None
    #: For queries of a run: which of the target's runs (a placeholder).
    run: str | None = None
    mutations: list[str] = field(default_factory=list)


# --- nasty values ---------------------------------------------------------------------------

NUMBERS: list[Any] = [
    0,
    -1,
    1e12,
    2**63,
    2**64,
    -(2**63),
    math.inf,
    -math.inf,
    math.nan,
    1e308,
    1e-9,
    True,
]
STRINGS: list[Any] = [
    "",
    " ",
    "\x00",
    "\ud800",  # a lone surrogate: valid JSON escape, not encodable as UTF-8
    "😀" * 10,
    "../../etc/passwd",
    "a\nb",
    Big(SQL_ID),
    Big(SQL_ID + 1),
    Big(WORKFLOW_ID + 1),
    Big(SEARCH_ATTRIBUTE_VALUE + 1),
    Big(100_000),
]
WRONG_TYPES: list[Any] = [None, [], {}, [None], {"$": 1}, "string", 42, 4.5, False, Nested(64)]
TIMEOUTS = ("run_timeout_seconds", "heartbeat_timeout_seconds", "idle_timeout_seconds")


def _ids(placeholders: tuple[str, ...]) -> list[Any]:
    return [
        *placeholders,
        "unknown-run",
        "",
        " ",
        Big(SQL_ID + 1),
        Big(WORKFLOW_ID - 4),  # "run-" + this is exactly the limit
        Big(WORKFLOW_ID - 3),  # one over once prefixed
        Big(WORKFLOW_ID + 1),
        "id with spaces/and/slashes",
        "\ud800",
        *WRONG_TYPES[:6],
    ]


def _mock_junk(rng: random.Random) -> Any:
    return rng.choice(
        [
            {"steps": [{"type": "sleep", "ms": 2**63}]},
            {"steps": [{"type": "text", "text": "x", "delay_ms": 10**12}]},
            {"steps": [{"type": "text", "text": "x", "chunk_size": 0}]},
            {"steps": [{"type": "bogus"}]},
            {"steps": [{"type": "error", "code": "not_a_code"}]},
            {"steps": [{"type": "error", "code": "provider_unavailable", "retry_after": math.inf}]},
            {"steps": "text"},
            {"usage": {"input_tokens": 2**63}},
            {"steps": [{"type": "text", "text": Big(PAYLOAD + 1000)}]},
        ]
    )


#: Per field: the values worth trying besides the generic ones, and which of them exceed a
#: real limit (a function of the value, returning the limit's name or None).
def _over_id(v: Any) -> str | None:
    if isinstance(v, Big) and v.n > SQL_ID:
        return f"id over {SQL_ID} chars (SQL column)"
    return None


def _over_timer(v: Any) -> str | None:
    if isinstance(v, int | float) and not isinstance(v, bool) and v > 0:
        if math.isinf(v) or v > TIMER_SECONDS:
            return "timer out of range"
    return None


def _over_sa(v: Any) -> str | None:
    if isinstance(v, Big) and v.n > SQL_ID:
        return f"over {SQL_ID} chars (SQL column, search attribute)"
    if isinstance(v, list) and len(json.dumps(_plain(v))) > SEARCH_ATTRIBUTE_VALUE:
        return "tags over the search-attribute size"
    return None


FIELDS: dict[str, dict[str, tuple[list[Any], Any]]] = {
    "SessionSpec": {
        "agent_id": ([Big(SQL_ID + 1), Big(SEARCH_ATTRIBUTE_VALUE + 1), " "], _over_sa),
        "session_id": (_ids((SESSION_ID,)), _over_id),
        "provider": (["nope", Big(SQL_ID + 1)], None),
        "model": ([Big(SQL_ID + 1)], _over_id),
        "system_prompt": ([Big(PAYLOAD - 1000), Big(100_000)], None),
        "metadata": ([Nested(200), {"k": Big(100_000)}], None),
        "tags": ([[Big(SEARCH_ATTRIBUTE_VALUE + 1)], ["t"] * 1000, [1, 2], ["\ud800"]], _over_sa),
        "provider_options": ([{"max_tokens": 2**63}, {"temperature": math.nan}], None),
        "activate": (["yes", 2], None),
        "retry": (
            [
                {"max_attempts": 0},
                {"max_attempts": 2**63},
                {"initial_interval_seconds": math.inf},
                {"maximum_interval_seconds": math.nan},
                {"backoff_coefficient": 1e308},
            ],
            None,
        ),
        "run_timeout_seconds": (NUMBERS, _over_timer),
        "heartbeat_timeout_seconds": (NUMBERS, _over_timer),
        "idle_timeout_seconds": (NUMBERS, _over_timer),
        "max_concurrent_runs": ([0, 2**63, 1e12, math.nan], None),
        "max_queued_runs": ([-1, 2**63], None),
        "multitask_strategy": (["bogus", "ENQUEUE", None], None),
        "continue_as_new_after_runs": ([0, 2**63], None),
        "carried": (
            [
                {"session_id": SESSION_ID, "agent_id": "a", "provider": "mock", "status": "active"},
                {"session_id": 1},
                {"session_id": "s", "agent_id": "a", "provider": "mock", "queue": [{}]},
            ],
            None,
        ),
        "mock": ([None], None),
    },
    "RunRequest": {
        "run_id": (_ids((RUNNING_RUN, QUEUED_RUN, FINISHED_RUN, OTHER_SESSIONS_RUN)), _over_id),
        "prompt": (["", " ", Big(PAYLOAD - 1000), Big(PAYLOAD + 1000), Big(100_000)], None),
        "messages": (
            [
                [{"role": "system", "content": "x"}],
                [{"role": "user", "content": ""}],
                [{"role": "user", "content": [{"type": "text"}]}],
                [{"role": "user"}],
                [{"role": "user", "content": "x"}] * 5000,
            ],
            None,
        ),
        "model": ([Big(SQL_ID + 1)], _over_id),
        "timeout_seconds": (NUMBERS, _over_timer),
        "retry": ([{"max_attempts": -1}, {"initial_interval_seconds": math.inf}], None),
        "required_capabilities": ([["bogus"], ["code_execution"], "sampling"], None),
        "optional_capabilities": ([["bogus"]], None),
        "strategy": (["bogus", "interrupt", "rollback", "enqueue"], None),
        "provider_options": ([{"max_tokens": 2**63}], None),
        "metadata": ([Nested(200)], None),
    },
    "Transition": {
        "reason": ([Big(100_000), Big(PAYLOAD - 1000), 1], None),
        "error": (["str", {"code": Nested(100)}, {"message": Big(100_000)}], None),
    },
    "CancelRun": {
        "run_id": (_ids((RUNNING_RUN, QUEUED_RUN, FINISHED_RUN, OTHER_SESSIONS_RUN)), None),
        "reason": ([Big(100_000), 7], None),
    },
    "CancelSession": {"reason": ([Big(100_000), 7, Nested(100)], None)},
    "RunResult": {
        "run_id": (_ids((RUNNING_RUN, QUEUED_RUN, FINISHED_RUN, OTHER_SESSIONS_RUN)), None),
        "session_id": ([SESSION_ID, "other-session", None], None),
        "status": (["completed", "failed", "cancelled", "running", "pending", "bogus"], None),
        "output": ([Big(PAYLOAD - 1000)], None),
        "usage": ([{"input_tokens": 2**63}, {"input_tokens": -5}], None),
        "error": ([{"code": "bogus"}], None),
        "attempts": ([2**63, -1], None),
    },
    "RunSpec": {
        "run_id": (_ids(()), _over_id),
        "session_id": ([SESSION_ID, "orphan-session", Big(SQL_ID + 1)], _over_id),
        "agent_id": ([Big(SQL_ID + 1)], _over_id),
        "provider": (["nope"], None),
        "turn": ([0, 2**63, -1], None),
        "messages": ([[], [{"role": "user", "content": Big(PAYLOAD + 1000)}]], None),
        "timeout_seconds": (NUMBERS, _over_timer),
        "heartbeat_timeout_seconds": (NUMBERS, _over_timer),
        "retry": ([{"max_attempts": 0}], None),
    },
}

#: The valid value each model's mutations start from.
QUICK_MOCK = {"steps": [{"type": "text", "text": "fuzz ok"}]}


def base(model: str) -> dict[str, Any]:
    """A valid JSON value of ``model`` (the placeholders name the target's ids)."""
    return {
        "SessionSpec": {"agent_id": "fuzz", "provider": "mock", "mock": QUICK_MOCK},
        "RunRequest": {"prompt": "hello", "mock": QUICK_MOCK},
        "Transition": {"reason": "fuzz"},
        "CancelRun": {"run_id": RUNNING_RUN, "reason": "fuzz"},
        "CancelSession": {"reason": "fuzz"},
        "RunResult": {
            "run_id": RUNNING_RUN,
            "session_id": SESSION_ID,
            "status": "completed",
            "output": "forged",
        },
        "RunSpec": {
            "run_id": "fuzz-run",
            "session_id": "orphan-session",
            "agent_id": "fuzz",
            "provider": "mock",
            "turn": 1,
            "messages": [{"role": "user", "content": "hello"}],
            "mock": QUICK_MOCK,
        },
    }[model]


# --- the generator --------------------------------------------------------------------------

UPDATES: dict[str, str] = {
    protocol.ACTIVATE: "Transition",
    protocol.PAUSE: "Transition",
    protocol.RESUME: "Transition",
    protocol.COMPLETE: "Transition",
    protocol.FAIL: "Transition",
    protocol.INTERRUPT: "Transition",
    protocol.SUBMIT_RUN: "RunRequest",
    protocol.CANCEL_RUN: "CancelRun",
}
SIGNALS: dict[str, str] = {
    protocol.CANCEL: "CancelSession",
    protocol.CANCEL_RUN: "CancelRun",
    protocol.RUN_FINISHED: "RunResult",
}


def _mutate_value(
    rng: random.Random, model: str, value: dict[str, Any]
) -> tuple[list[str], str | None]:
    """Break 1-3 fields of ``value`` in place; the labels, and the limit exceeded if any."""
    labels: list[str] = []
    over: str | None = None
    fields = FIELDS[model]
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        roll = rng.random()
        if roll < 0.08:
            key = f"unknown_{rng.randrange(100)}"
            value[key] = rng.choice([1, "x", None])
            labels.append(f"{key}=unknown field")
            continue
        if roll < 0.16 and value:
            key = rng.choice(sorted(value))
            del value[key]
            labels.append(f"-{key}")
            continue
        key = rng.choice(sorted(fields))
        specific, limit = fields[key]
        pool = specific if rng.random() < 0.6 else rng.choice([NUMBERS, STRINGS, WRONG_TYPES])
        if key == "mock" and rng.random() < 0.7:
            v = _mock_junk(rng)
        else:
            v = rng.choice(pool)
        value[key] = v
        labels.append(f"{key}={_describe(v)}")
        if limit is not None and (reason := limit(v)) is not None:
            over = f"{key}: {reason}"
    return labels, over


def _mutate_payloads(rng: random.Random, value: Any) -> tuple[list[PayloadSpec], str]:
    """The payload list: usually the one JSON payload, sometimes broken as a whole."""
    roll = rng.random()
    one = PayloadSpec(value=value)
    if roll < 0.65:
        return [one], "json"
    return rng.choice(
        [
            ([], "no payload"),
            ([NULL], "binary/null"),
            ([PayloadSpec(value=None)], "json null"),
            ([one, one], "two payloads"),
            ([one, NULL], "payload + binary/null"),
            ([PayloadSpec(raw=b"{")], "invalid json"),
            ([PayloadSpec(raw=b"")], "empty json"),
            ([PayloadSpec(raw=b"\xff\xfe\x00")], "invalid utf-8"),
            ([PayloadSpec(raw=b"NaN")], "json NaN"),
            ([PayloadSpec(raw=b"1e999")], "json 1e999"),
            ([PayloadSpec(value=[value])], "wrapped in a list"),
            ([PayloadSpec(value="just a string")], "json string"),
            ([PayloadSpec(value=2**63)], "json 2**63"),
            ([PayloadSpec(raw=b"\x0a\x03abc", encoding=b"json/protobuf")], "json/protobuf"),
            ([PayloadSpec(raw=b"abc", encoding=b"binary/plain")], "binary/plain"),
            ([PayloadSpec(raw=b"{}", encoding=b"bogus/encoding")], "unknown encoding"),
            ([PayloadSpec(raw=b"{}", encoding=None)], "no encoding metadata"),
        ]
    )


def generate(seed: int, count: int) -> list[Request]:
    """``count`` requests, the same for the same seed."""
    rng = random.Random(seed)
    kinds: list[Kind] = ["start_session", "start_run", "update", "signal", "query"]
    weights = [14, 5, 46, 25, 10]
    out: list[Request] = []
    for index in range(count):
        kind = rng.choices(kinds, weights)[0]
        out.append(_one(rng, index, kind))
    return out


def _one(rng: random.Random, index: int, kind: Kind) -> Request:
    if kind == "query":
        return _query(rng, index)
    if kind == "start_session":
        name, model = protocol.SESSION_WORKFLOW, "SessionSpec"
    elif kind == "start_run":
        name, model = protocol.RUN_WORKFLOW, "RunSpec"
    elif kind == "update":
        name = rng.choice(sorted(UPDATES))
        model = UPDATES[name]
    else:
        name = rng.choice(sorted(SIGNALS))
        model = SIGNALS[name]
    value = base(model)
    if model == "RunSpec":
        value["run_id"] = f"fuzz-{index}"
    labels, over = _mutate_value(rng, model, value)
    payloads, shape = _mutate_payloads(rng, value)
    if shape != "json":
        labels = [shape, *labels]  # the value's mutations may still reach the handler
        over = None
    target: TargetKind | None = None
    workflow_id: str | Big | None = None
    if kind in ("update", "signal"):
        target = rng.choice(LIVE_KINDS) if rng.random() > 0.03 else "closed"
    else:
        if _mentions(value, SESSION_ID) and shape == "json":
            target = rng.choice(IDLE_KINDS)  # a start that names an existing session
        roll = rng.random()
        if roll < 0.03:
            workflow_id = Big(WORKFLOW_ID + 1)
            labels.append("workflow id over the limit")
        elif roll < 0.05:
            workflow_id = "session-with/odd chars\u00e9" if kind == "start_session" else "run-odd/é"
            labels.append("odd workflow id")
    return Request(
        index=index,
        kind=kind,
        name=name,
        target=target,
        payloads=payloads,
        label=f"{name}: {', '.join(labels)}",
        over_limit=over,
        workflow_id=workflow_id,
        mutations=labels,
    )


def _query(rng: random.Random, index: int) -> Request:
    target = rng.choice(LIVE_KINDS)
    roll = rng.random()
    payloads: list[PayloadSpec] = rng.choice(
        [[], [PayloadSpec(value=1)], [NULL], [PayloadSpec(raw=b"{")], [NULL, NULL]]
    )
    label = f"{len(payloads)} junk args"
    if roll < 0.7:
        return Request(index, "query", protocol.DESCRIBE, target, payloads, f"describe: {label}")
    run = rng.choice([RUNNING_RUN, FINISHED_RUN]) if target == "busy" else FINISHED_RUN
    return Request(
        index,
        "query",
        protocol.RUN_STATUS,
        "busy" if run == RUNNING_RUN else "active",
        payloads,
        f"status: {label}",
        run=run,
    )


def _mentions(value: Any, placeholder: str) -> bool:
    if isinstance(value, dict):
        return any(_mentions(v, placeholder) for v in value.values())
    if isinstance(value, list):
        return any(_mentions(v, placeholder) for v in value)
    return value == placeholder


def _describe(v: Any) -> str:
    if isinstance(v, Big):
        return f"<{v.n} chars>"
    if isinstance(v, Nested):
        return f"<nested {v.depth}>"
    text = repr(v)
    return text if len(text) <= 40 else f"{text[:37]}..."


# --- materializing --------------------------------------------------------------------------


def _plain(value: Any, ids: dict[str, str] | None = None) -> Any:
    """``value`` with Big/Nested built and placeholders replaced by ``ids``."""
    if isinstance(value, Big):
        return value.char * value.n
    if isinstance(value, Nested):
        out: Any = "bottom"
        for _ in range(value.depth):
            out = {"n": out}
        return out
    if isinstance(value, dict):
        return {k: _plain(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, ids) for v in value]
    if isinstance(value, str) and ids is not None and value in ids:
        return ids[value]
    return value


def materialize(specs: list[PayloadSpec], ids: dict[str, str]) -> list[Payload]:
    """The real payloads, the target's ids in place of the placeholders."""
    out = []
    for spec in specs:
        if spec.raw is not None:
            data = spec.raw
        else:
            data = json.dumps(_plain(spec.value, ids), allow_nan=True).encode()
        metadata = {"encoding": spec.encoding} if spec.encoding is not None else {}
        out.append(Payload(metadata=metadata, data=data))
    return out


def plain_id(value: str | Big) -> str:
    """A workflow id as sent."""
    return _plain(value) if isinstance(value, Big) else value
