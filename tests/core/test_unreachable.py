"""Which Temporal failures mean "the server is unreachable", and the code they become."""

from __future__ import annotations

import pytest
from temporalio.service import RPCError, RPCStatusCode

from agent_session_manager.core.errors import RETRYABLE_CODES, RuntimeFailure
from agent_session_manager.core.temporal import is_unreachable, temporal_unavailable


def rpc(status: RPCStatusCode, message: str) -> RPCError:
    return RPCError(message, status, b"")


@pytest.mark.parametrize(
    "exc",
    [
        rpc(RPCStatusCode.UNAVAILABLE, "tcp connect error"),
        rpc(RPCStatusCode.DEADLINE_EXCEEDED, "deadline has elapsed"),
        rpc(RPCStatusCode.UNKNOWN, "transport error"),
        rpc(RPCStatusCode.CANCELLED, "h2 protocol error: connection reset"),
        RuntimeError("Failed client connect: Server connection error: tcp connect error"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
)
def test_transport_failures_are_unreachable(exc: BaseException) -> None:
    assert is_unreachable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        # Answers from a server that is up: treating them as an outage would wait forever
        # on a run that does not exist, or hide a real error.
        rpc(RPCStatusCode.NOT_FOUND, "workflow not found for ID: run-x"),
        rpc(RPCStatusCode.INVALID_ARGUMENT, "bad request"),
        rpc(RPCStatusCode.UNKNOWN, "something else went wrong"),
        RuntimeError("Failed to decode"),
        ValueError("nope"),
    ],
)
def test_answers_are_not_unreachable(exc: BaseException) -> None:
    assert not is_unreachable(exc)


def test_unreachable_behind_a_cause_is_found() -> None:
    outer = RuntimeError("wrapper")
    outer.__cause__ = rpc(RPCStatusCode.UNAVAILABLE, "tcp connect error")
    assert is_unreachable(outer)


def test_temporal_unavailable_is_its_own_retryable_runtime_code_naming_the_address() -> None:
    err = temporal_unavailable(rpc(RPCStatusCode.UNAVAILABLE, "tcp connect error"), "h:7233")
    assert err.code == "temporal_unavailable" and "temporal_unavailable" in RETRYABLE_CODES
    assert isinstance(err, RuntimeFailure) and err.retryable
    assert "Temporal at h:7233 is unreachable" in err.message and "asm dev" in err.message
    assert err.details == {"address": "h:7233", "cause": "tcp connect error"}
