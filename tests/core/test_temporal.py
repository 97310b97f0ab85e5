"""AsmError ⇄ ApplicationError conversion, through every wrapper Temporal puts around it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    RetryState,
    TimeoutError,
    TimeoutType,
)

from agent_session_manager.core.contract import RunRequest
from agent_session_manager.core.errors import (
    CODES,
    NON_RETRYABLE_CODES,
    AsmError,
    ProviderErrorInfo,
    error,
)
from agent_session_manager.core.events import EventDraft
from agent_session_manager.core.temporal import (
    data_converter,
    decode_input,
    from_failure,
    retry_policy,
    to_application_error,
)

PAYLOADS = data_converter.payload_converter


def _activity_error(cause: BaseException) -> ActivityError:
    err = ActivityError(
        "Activity task failed",
        scheduled_event_id=5,
        started_event_id=6,
        identity="worker",
        activity_type="stream_provider",
        activity_id="1",
        retry_state=RetryState.NON_RETRYABLE_FAILURE,
    )
    err.__cause__ = cause
    return err


def _child_error(cause: BaseException) -> ChildWorkflowError:
    err = ChildWorkflowError(
        "Child Workflow execution failed",
        namespace="default",
        workflow_id="run-run_1",
        run_id="abc",
        workflow_type="AgentRun",
        initiated_event_id=3,
        started_event_id=4,
        retry_state=RetryState.NON_RETRYABLE_FAILURE,
    )
    err.__cause__ = cause
    return err


def _rate_limited() -> AsmError:
    return error(
        "provider_rate_limited",
        "slow down",
        details={"model": "m"},
        provider_error=ProviderErrorInfo(status_code=429, headers={"retry-after": "7"}, body="x"),
    )


def test_application_error_type_is_the_code_and_message_starts_with_it() -> None:
    err = error("session_not_found", "no such session")
    app = to_application_error(err)
    assert app.type == "session_not_found"
    assert app.message == "[session_not_found] no such session"
    assert from_failure(app).message == "no such session"  # read back from the details


@pytest.mark.parametrize("code", sorted(CODES))
def test_application_error_is_non_retryable_exactly_when_the_code_is(code: str) -> None:
    assert to_application_error(error(code)).non_retryable is (code in NON_RETRYABLE_CODES)


def test_application_error_next_retry_delay_comes_from_retry_after() -> None:
    assert to_application_error(_rate_limited()).next_retry_delay == timedelta(seconds=7)


def test_application_error_without_retry_after_has_no_next_retry_delay() -> None:
    assert to_application_error(error("provider_unavailable")).next_retry_delay is None


def test_application_error_carries_the_error_dict_as_its_single_detail() -> None:
    err = _rate_limited()
    assert list(to_application_error(err).details) == [err.to_dict()]


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_code_round_trips_through_an_application_error(code: str) -> None:
    err = error(code, "m", details={"n": 1})
    back = from_failure(to_application_error(err))
    assert type(back) is type(err)
    assert back.to_dict() == err.to_dict()


def test_round_trip_through_activity_error() -> None:
    err = _rate_limited()
    back = from_failure(_activity_error(to_application_error(err)))
    assert back.to_dict() == err.to_dict()


def test_round_trip_through_child_workflow_error_wrapping_an_activity_error() -> None:
    err = _rate_limited()
    back = from_failure(_child_error(_activity_error(to_application_error(err))))
    assert back.to_dict() == err.to_dict()
    assert back.provider_error is not None and back.provider_error.retry_after == 7.0


def test_client_gets_the_same_error_from_a_workflow_failure() -> None:
    err = error("invalid_transition", "cannot", details={"from": "completed"})
    back = from_failure(WorkflowFailureError(cause=to_application_error(err)))
    assert back.to_dict() == err.to_dict()


def test_client_gets_the_same_error_from_a_rejected_update() -> None:
    err = error("max_runs_exceeded", details={"limit": 1, "active": 1})
    back = from_failure(WorkflowUpdateFailedError(to_application_error(err)))
    assert back.to_dict() == err.to_dict()


async def test_round_trip_through_the_failure_proto_keeps_details_and_retry_delay() -> None:
    err = _rate_limited()
    failure = Failure()
    await data_converter.encode_failure(_activity_error(to_application_error(err)), failure)
    decoded = await data_converter.decode_failure(failure)
    assert isinstance(decoded, ActivityError)
    assert isinstance(decoded.cause, ApplicationError)
    assert decoded.cause.next_retry_delay == timedelta(seconds=7)
    assert from_failure(decoded).to_dict() == err.to_dict()


def test_an_asm_error_passes_through_unchanged() -> None:
    err = error("tool_error")
    assert from_failure(err) is err


def test_an_asm_error_found_as_a_cause_is_returned() -> None:
    err = error("storage_write_failed")
    wrapper = RuntimeError("wrapped")
    wrapper.__cause__ = err
    assert from_failure(wrapper) is err


def test_coded_application_error_from_another_sdk_keeps_its_detail_and_retry_bit() -> None:
    app = ApplicationError(
        "gone", {"session": "s1"}, type="session_not_found", next_retry_delay=timedelta(seconds=2)
    )
    back = from_failure(app)
    assert back.code == "session_not_found"
    assert back.details == {"session": "s1"}
    assert back.retryable is True  # non_retryable was False on the wire
    assert back.provider_error is not None and back.provider_error.retry_after == 2.0


def test_coded_application_error_with_several_details_keeps_them_all() -> None:
    back = from_failure(ApplicationError("x", 1, "two", type="invalid_input", non_retryable=True))
    assert back.details == {"details": [1, "two"]}
    assert back.retryable is False


def test_foreign_application_error_becomes_internal_error_naming_its_type() -> None:
    back = from_failure(_activity_error(ApplicationError("bad value", "d", type="ValueError")))
    assert back.code == "internal_error"
    assert back.message == "bad value"
    assert back.details == {"type": "ValueError", "details": ["d"]}


def test_temporal_cancellation_becomes_cancelled() -> None:
    back = from_failure(_child_error(CancelledError("Cancelled")))
    assert back.code == "cancelled"
    assert back.retryable is False


def test_start_to_close_timeout_becomes_timeout() -> None:
    timeout = TimeoutError(
        "activity StartToClose timeout",
        type=TimeoutType.START_TO_CLOSE,
        last_heartbeat_details=[],
    )
    back = from_failure(_activity_error(timeout))
    assert back.code == "timeout"
    assert back.retryable is True
    assert back.details["timeout_type"] == "START_TO_CLOSE"


def test_heartbeat_timeout_becomes_provider_timeout() -> None:
    timeout = TimeoutError("hb", type=TimeoutType.HEARTBEAT, last_heartbeat_details=[])
    assert from_failure(_activity_error(timeout)).code == "provider_timeout"


def test_timeout_after_retries_keeps_the_last_attempt_failure() -> None:
    timeout = TimeoutError(
        "deadline", type=TimeoutType.SCHEDULE_TO_CLOSE, last_heartbeat_details=[]
    )
    timeout.__cause__ = to_application_error(error("provider_unavailable", "503"))
    back = from_failure(_activity_error(timeout))
    assert back.code == "timeout"
    assert back.details["last_failure"]["code"] == "provider_unavailable"


def test_a_plain_exception_becomes_internal_error() -> None:
    back = from_failure(KeyError("k"))
    assert back.code == "internal_error"
    assert back.details == {"exception": "KeyError"}


def test_a_cause_cycle_does_not_loop_forever() -> None:
    a = RuntimeError("a")
    b = RuntimeError("b")
    a.__cause__ = b
    b.__cause__ = a
    assert from_failure(a).code == "internal_error"


def test_retry_policy_makes_exactly_the_non_retryable_codes_non_retryable() -> None:
    policy = retry_policy()
    assert set(policy.non_retryable_error_types or ()) == NON_RETRYABLE_CODES


def test_retry_policy_returns_a_copy_and_never_mutates_the_base() -> None:
    base = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2))
    policy = retry_policy(base)
    assert policy is not base
    assert base.non_retryable_error_types is None
    assert policy.maximum_attempts == 3
    assert policy.initial_interval == timedelta(seconds=2)


def test_retry_policy_adds_extra_types() -> None:
    policy = retry_policy(extra_non_retryable=("ValueError",))
    assert "ValueError" in (policy.non_retryable_error_types or ())


def test_retry_policy_keeps_the_base_own_non_retryable_types() -> None:
    policy = retry_policy(RetryPolicy(non_retryable_error_types=["MyError"]))
    assert "MyError" in (policy.non_retryable_error_types or ())


def test_retry_policy_leaves_retryable_codes_retryable() -> None:
    assert not {"timeout", "provider_timeout"} & set(retry_policy().non_retryable_error_types or ())


async def test_data_converter_rejects_an_invalid_payload_with_a_validation_error() -> None:
    payloads = await data_converter.encode([{"prompt": ""}])
    with pytest.raises(ApplicationError) as caught:
        await data_converter.decode(payloads, [RunRequest])
    assert caught.value.type == "validation_error"
    assert caught.value.non_retryable


async def test_data_converter_reports_a_taxonomy_error_raised_by_a_validator() -> None:
    payloads = await data_converter.encode([{"id": "e", "session_id": "s", "type": "nope"}])
    with pytest.raises(ApplicationError) as caught:
        await data_converter.decode(payloads, [EventDraft])
    assert caught.value.type == "invalid_event_type"


async def test_data_converter_reports_an_unknown_encoding_as_a_validation_error() -> None:
    garbage = Payload(metadata={"encoding": b"binary/whatever"}, data=b"\x00")
    with pytest.raises(ApplicationError) as caught:
        await data_converter.decode([garbage], [RunRequest])
    assert caught.value.type == "validation_error"
    assert "binary/whatever" in caught.value.message


NULL = RawValue(Payload(metadata={"encoding": b"binary/null"}))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "got none"),
        ([{"prompt": "a"}, {"prompt": "b"}], "got 2 arguments"),
        ([None], "got null"),
        ([NULL], "got null"),
        ([RawValue(Payload(metadata={"encoding": b"json/plain"}, data=b"{oops"))], "invalid"),
        ([RawValue(Payload(metadata={"encoding": b"x/y"}, data=b""))], "x/y"),
        ([{"prompt": "hi", "colour": 1}], "colour"),
        (["hi"], "RunRequest"),
    ],
)
def test_decode_input_turns_every_unusable_argument_into_a_validation_error(
    args: list[object], says: str
) -> None:
    with pytest.raises(AsmError) as caught:
        decode_input(args, RunRequest, what="submit_run", converter=PAYLOADS)
    assert caught.value.code == "validation_error"
    assert "submit_run" in caught.value.message
    assert says in caught.value.message


def test_decode_input_decodes_a_raw_payload_and_a_plain_value_alike() -> None:
    raw = RawValue(PAYLOADS.to_payloads([RunRequest(prompt="hi")])[0])
    assert decode_input([raw], RunRequest, what="x", converter=PAYLOADS).prompt == "hi"
    assert decode_input([{"prompt": "hi"}], RunRequest, what="x", converter=PAYLOADS).prompt == "hi"


def test_a_payload_with_a_problem_per_item_names_only_the_first_few() -> None:
    items = [1] * 10_000
    with pytest.raises(AsmError) as caught:
        decode_input([{"messages": items}], RunRequest, what="submit_run", converter=PAYLOADS)
    assert caught.value.code == "validation_error"
    assert "more)" in caught.value.message
    assert len(caught.value.message) < 8_000
    assert len(caught.value.details["errors"]) <= 10


# --- the failure converter keeps every failure small and clean ---------------------------------

_KEY = "sk-ant-api03-FAILURE-" + "w" * 30


def _chain(depth: int, message: str) -> BaseException:
    """``depth`` exceptions, each raised from the next, the innermost quoting ``message``."""
    exc: BaseException | None = None
    for i in range(depth):
        try:
            if exc is None:
                raise RuntimeError(message)
            raise ValueError(f"level {i}: {message}") from exc
        except BaseException as raised:
            exc = raised
    assert exc is not None
    return exc


def test_a_huge_exception_chain_becomes_a_small_keyless_failure() -> None:
    page = f"<html><p>x-api-key: {_KEY}</p>" + "é" * 5_000_000
    try:
        raise ApplicationError("provider said so", type="SomeForeignError") from _chain(10, page)
    except ApplicationError as exc:
        failure = Failure()
        data_converter.failure_converter.to_failure(exc, PAYLOADS, failure)
    assert failure.ByteSize() < 64 * 1024
    depth, node = 0, failure
    while node.HasField("cause"):
        node, depth = node.cause, depth + 1
        assert len(node.message.encode()) <= 1024
        assert len(node.stack_trace.encode()) <= 4096
    assert depth == 3
    assert _KEY not in str(failure)
    # what the other side reads is still the same failure
    assert from_failure(data_converter.failure_converter.from_failure(failure, PAYLOADS)).code == (
        "internal_error"
    )


def test_an_asm_error_crosses_the_converter_unchanged() -> None:
    err = error("provider_unavailable", "down", details={"attempt": 2})
    failure = Failure()
    data_converter.failure_converter.to_failure(to_application_error(err), PAYLOADS, failure)
    back = from_failure(data_converter.failure_converter.from_failure(failure, PAYLOADS))
    assert back.to_dict() == err.to_dict()


@pytest.mark.parametrize("code", ["provider_unavailable", "cancelled", "validation_error"])
def test_a_taxonomy_failure_reads_code_first_without_stack_frames(code: str) -> None:
    try:
        raise to_application_error(error(code, "what happened"))
    except ApplicationError as exc:
        failure = Failure()
        data_converter.failure_converter.to_failure(exc, PAYLOADS, failure)
    assert failure.message == f"[{code}] what happened"
    assert failure.stack_trace == ""


def test_an_internal_error_keeps_its_stack_trace() -> None:
    try:
        raise to_application_error(error("internal_error", "bug"))
    except ApplicationError as exc:
        failure = Failure()
        data_converter.failure_converter.to_failure(exc, PAYLOADS, failure)
    assert failure.message == "[internal_error] bug"
    assert "test_an_internal_error_keeps_its_stack_trace" in failure.stack_trace
