"""The ``anthropic`` adapter through the real SDK against the wire-level fake: events, request,
credentials, cancellation. Error mapping is in ``test_anthropic_errors.py``."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from agent_session_manager.activities.providers import discover
from agent_session_manager.activities.providers.anthropic import AnthropicProvider
from agent_session_manager.activities.providers.anthropic._options import DEFAULT_MAX_TOKENS
from agent_session_manager.activities.providers.base import Provider
from agent_session_manager.core.contract import Message
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.events import EventType
from agent_session_manager.core.usage import TokenUsage
from tests.fakes.anthropic_server import (
    AnthropicFake,
    Reply,
    Stall,
    Text,
    Thinking,
    ToolUse,
    Usage,
)
from tests.providers.anthropic_support import (  # the fixtures "fake" and "sink"
    API_KEY,
    MODEL,
    RecordingSink,
    anthropic_fake,  # noqa: F401
    make_request,
    recording_sink,  # noqa: F401
)

E = EventType


async def test_text_streams_deltas_in_order_and_reports_usage(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    usage = Usage(
        input_tokens=25, output_tokens=7, cache_creation_input_tokens=3, cache_read_input_tokens=11
    )
    fake.script(Reply([Text("Hel", "lo, ", "world")], usage=usage, id="msg_01"))

    result = await AnthropicProvider().stream(make_request(fake.base_url), sink)

    assert sink.types == [
        E.MESSAGE_SENT,
        E.TOKEN_USAGE_UPDATED,  # message_start's usage: billed even if the stream breaks
        E.MESSAGE_STREAMED,
        E.MESSAGE_STREAMED,
        E.MESSAGE_STREAMED,
        E.TOKEN_USAGE_UPDATED,
        E.MESSAGE_RECEIVED,
    ]
    assert sink.of(E.MESSAGE_SENT) == [{"message_id": "msg_01", "model": MODEL}]
    assert sink.of(E.MESSAGE_STREAMED) == [
        {"text": "Hel", "index": 0},
        {"text": "lo, ", "index": 0},
        {"text": "world", "index": 0},
    ]
    expected_usage = TokenUsage(
        input_tokens=25, output_tokens=7, cache_creation_input_tokens=3, cache_read_input_tokens=11
    )
    started, usage_event = sink.of(E.TOKEN_USAGE_UPDATED)
    assert started == {
        "input_tokens": 25,
        "output_tokens": 1,  # what message_start says before any output
        "cache_creation_input_tokens": 3,
        "cache_read_input_tokens": 11,
        "total_tokens": 40,
    }
    assert {k: usage_event[k] for k in ("input_tokens", "output_tokens")} == {
        "input_tokens": 25,
        "output_tokens": 7,
    }
    assert usage_event["cache_creation_input_tokens"] == 3
    assert usage_event["cache_read_input_tokens"] == 11
    assert sink.of(E.MESSAGE_RECEIVED) == [
        {
            "text": "Hello, world",
            "content": [{"type": "text", "text": "Hello, world"}],
            "stop_reason": "end_turn",
        }
    ]
    assert result.text == "".join(d["text"] for d in sink.of(E.MESSAGE_STREAMED))
    assert result.content == [{"type": "text", "text": "Hello, world"}]
    assert result.stop_reason == "end_turn"
    assert result.usage == expected_usage
    assert result.model == MODEL
    assert result.metadata["message_id"] == "msg_01"
    assert result.metadata["request_id"] == fake.requests[-1].request_id


async def test_lifecycle_events_are_left_to_the_workflow(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    fake.script(Reply([Text("ok")]))
    await AnthropicProvider().stream(make_request(fake.base_url), sink)
    lifecycle = {t for t in EventType if t.value.startswith(("run_", "session_", "error_"))}
    assert not lifecycle & set(sink.types)


async def test_usage_totals_from_message_delta_overwrite_message_start(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    fake.script(
        Reply(
            [Text("ok")],
            usage=Usage(
                input_tokens=40, output_tokens=2, cache_read_input_tokens=8, cumulative_delta=True
            ),
        )
    )
    result = await AnthropicProvider().stream(make_request(fake.base_url), sink)
    assert result.usage == TokenUsage(input_tokens=40, output_tokens=2, cache_read_input_tokens=8)


async def test_two_tool_use_blocks_emit_two_started_completed_pairs(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    fake.script(
        Reply(
            [
                Text("Let me check."),
                ToolUse("get_weather", {"city": "Paris", "units": "metric"}, id="toolu_a"),
                ToolUse("get_time", {"tz": "Europe/Paris"}, id="toolu_b", chunk_size=3),
            ]
        )
    )

    result = await AnthropicProvider().stream(make_request(fake.base_url), sink)

    tool_events = [
        (t, d)
        for t, d in sink.events
        if t in (E.TOOL_CALL_STARTED, E.TOOL_CALL_COMPLETED, E.TOOL_CALL_FAILED)
    ]
    assert tool_events == [
        (E.TOOL_CALL_STARTED, {"id": "toolu_a", "name": "get_weather"}),
        (
            E.TOOL_CALL_COMPLETED,
            {"id": "toolu_a", "name": "get_weather", "input": {"city": "Paris", "units": "metric"}},
        ),
        (E.TOOL_CALL_STARTED, {"id": "toolu_b", "name": "get_time"}),
        (
            E.TOOL_CALL_COMPLETED,
            {"id": "toolu_b", "name": "get_time", "input": {"tz": "Europe/Paris"}},
        ),
    ]
    assert result.stop_reason == "tool_use"
    assert result.text == "Let me check."
    assert result.content == [
        {"type": "text", "text": "Let me check."},
        {
            "type": "tool_use",
            "id": "toolu_a",
            "name": "get_weather",
            "input": {"city": "Paris", "units": "metric"},
        },
        {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {"tz": "Europe/Paris"}},
    ]
    (received,) = sink.of(E.MESSAGE_RECEIVED)
    assert received["content"] == result.content
    assert received["stop_reason"] == "tool_use"


async def test_tool_without_parameters_completes_with_empty_input(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    fake.script(Reply([ToolUse("list_files", id="toolu_empty", partial_json=("",))]))
    result = await AnthropicProvider().stream(make_request(fake.base_url), sink)
    assert sink.of(E.TOOL_CALL_COMPLETED) == [
        {"id": "toolu_empty", "name": "list_files", "input": {}}
    ]
    assert result.content[0]["input"] == {}


async def test_malformed_tool_json_emits_tool_call_failed_with_raw_text(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    fake.script(
        Reply(
            [
                ToolUse("search", id="toolu_bad", partial_json=("", '{"query": "unter', "minated")),
                ToolUse("search", {"query": "fine"}, id="toolu_ok"),
            ],
            stop_reason="max_tokens",
        )
    )

    result = await AnthropicProvider().stream(make_request(fake.base_url), sink)

    (failed,) = sink.of(E.TOOL_CALL_FAILED)
    assert failed["id"] == "toolu_bad"
    assert failed["name"] == "search"
    assert failed["raw"] == '{"query": "unterminated'
    assert failed["error"]
    assert sink.of(E.TOOL_CALL_COMPLETED) == [
        {"id": "toolu_ok", "name": "search", "input": {"query": "fine"}}
    ]
    assert [d["id"] for d in sink.of(E.TOOL_CALL_STARTED)] == ["toolu_bad", "toolu_ok"]
    # The message still completes; the broken call is stored with an empty, valid input.
    assert result.stop_reason == "max_tokens"
    assert result.content[0] == {
        "type": "tool_use",
        "id": "toolu_bad",
        "name": "search",
        "input": {},
    }
    assert result.metadata["malformed_tool_calls"] == ["toolu_bad"]


async def test_tool_input_that_is_not_an_object_fails_the_tool_call(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    fake.script(Reply([ToolUse("f", id="toolu_list", partial_json=("[1, 2]",))]))
    await AnthropicProvider().stream(make_request(fake.base_url), sink)
    (failed,) = sink.of(E.TOOL_CALL_FAILED)
    assert failed["raw"] == "[1, 2]"
    assert not sink.of(E.TOOL_CALL_COMPLETED)


async def test_thinking_deltas_are_marked_and_kept_with_signature(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    fake.script(Reply([Thinking("Let me ", "think.", signature="sig-123"), Text("42")]))
    options = {"thinking": {"type": "enabled", "budget_tokens": 2048}, "max_tokens": 4096}

    result = await AnthropicProvider().stream(make_request(fake.base_url, options=options), sink)

    assert sink.of(E.MESSAGE_STREAMED) == [
        {"text": "Let me ", "index": 0, "kind": "thinking"},
        {"text": "think.", "index": 0, "kind": "thinking"},
        {"text": "42", "index": 1},
    ]
    assert result.text == "42"
    assert result.content == [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig-123"},
        {"type": "text", "text": "42"},
    ]
    body = fake.requests[-1].json
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == 4096


async def test_request_carries_history_system_prompt_tools_and_options(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    fake.script(Reply([Text("Sunny.")]))
    tool_use = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"c": "P"}}
    tool_result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}
    history = [
        Message(role="user", content="Weather in Paris?"),
        Message(role="assistant", content=[{"type": "text", "text": "Checking."}, tool_use]),
        Message(role="user", content=[tool_result]),
        Message(role="assistant", content="It is 18C."),
    ]
    tools = [
        {
            "name": "get_weather",
            "description": "Current weather",
            "input_schema": {"type": "object", "properties": {"c": {"type": "string"}}},
        }
    ]
    options = {
        "max_tokens": 256,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 5,
        "stop_sequences": ["END"],
        "tools": tools,
        "tool_choice": {"type": "auto"},
        "metadata": {"user_id": "u-1"},
        "read_timeout": 30,
        "unrelated_option": "ignored",
    }
    request = make_request(
        fake.base_url,
        prompt="And tomorrow?",
        history=history,
        system_prompt="You are terse.",
        options=options,
    )

    await AnthropicProvider().stream(request, sink)

    body = fake.requests[-1].json
    assert body == {
        "model": MODEL,
        "max_tokens": 256,
        "stream": True,
        "system": "You are terse.",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [{"type": "text", "text": "Checking."}, tool_use]},
            {"role": "user", "content": [tool_result]},
            {"role": "assistant", "content": "It is 18C."},
            {"role": "user", "content": "And tomorrow?"},
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 5,
        "stop_sequences": ["END"],
        "tools": tools,
        "tool_choice": {"type": "auto"},
        "metadata": {"user_id": "u-1"},
    }
    assert fake.requests[-1].path == "/v1/messages"


async def test_defaults_for_model_and_max_tokens(fake: AnthropicFake, sink: RecordingSink) -> None:
    fake.script(Reply([Text("ok")]))
    provider = AnthropicProvider()
    await provider.stream(make_request(fake.base_url, model=None), sink)
    body = fake.requests[-1].json
    assert body["model"] == provider.default_model
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS
    assert "system" not in body


async def test_assistant_content_round_trips_into_the_next_request(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    fake.script(
        Reply([Thinking("hmm"), Text("Calling."), ToolUse("lookup", {"id": 7}, id="toolu_rt")]),
        Reply([Text("Done.")]),
    )
    provider = AnthropicProvider()
    first_prompt = Message(role="user", content="Look up 7")
    first = await provider.stream(make_request(fake.base_url, messages=[first_prompt]), sink)

    history = [first_prompt, Message(role="assistant", content=first.content)]
    tool_result = Message(
        role="user",
        content=[{"type": "tool_result", "tool_use_id": "toolu_rt", "content": "found"}],
    )
    await provider.stream(
        make_request(fake.base_url, history=history, messages=[tool_result]), RecordingSink()
    )

    sent = fake.requests[-1].json["messages"]
    assert sent[1] == {"role": "assistant", "content": first.content}
    assert [b["type"] for b in sent[1]["content"]] == ["thinking", "text", "tool_use"]
    assert sent[1]["content"][2] == {
        "type": "tool_use",
        "id": "toolu_rt",
        "name": "lookup",
        "input": {"id": 7},
    }
    assert sent[2] == tool_result.model_dump()


async def test_api_key_and_base_url_come_from_secrets(sink: RecordingSink) -> None:
    async with AnthropicFake(api_key=API_KEY) as fake:
        fake.script(Reply([Text("ok")]))
        await AnthropicProvider().stream(make_request(fake.base_url), sink)
        # This SDK version sends an API key as a bearer token; the fake takes either header.
        assert fake.requests[-1].credential == API_KEY
        assert fake.requests[-1].headers["anthropic-version"]


async def test_auth_token_is_sent_as_bearer(sink: RecordingSink) -> None:
    async with AnthropicFake(api_key="oauth-token-1") as fake:
        fake.script(Reply([Text("ok")]))
        secrets = {"ANTHROPIC_AUTH_TOKEN": "oauth-token-1", "ANTHROPIC_BASE_URL": fake.base_url}
        await AnthropicProvider().stream(make_request(fake.base_url, secrets=secrets), sink)
        assert fake.requests[-1].bearer == "oauth-token-1"
        assert fake.requests[-1].api_key is None


async def test_missing_credentials_fail_without_a_request(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    request = make_request(fake.base_url, secrets={"ANTHROPIC_BASE_URL": fake.base_url})
    with pytest.raises(AsmError) as caught:
        await AnthropicProvider().stream(request, sink)
    assert caught.value.code == "provider_authentication_failed"
    assert caught.value.retryable is False
    assert fake.requests == []
    assert sink.events == []


async def test_bad_timeout_option_is_invalid_input(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    request = make_request(fake.base_url, options={"read_timeout": "soon"})
    with pytest.raises(AsmError) as caught:
        await AnthropicProvider().stream(request, sink)
    assert caught.value.code == "invalid_input"
    assert fake.requests == []


async def test_api_key_never_appears_in_events_or_reprs(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    fake.script(Reply([Thinking("t"), Text("hi"), ToolUse("f", {"k": "v"})]))
    request = make_request(fake.base_url, system_prompt="sys")

    result = await AnthropicProvider().stream(request, sink)

    assert API_KEY not in json.dumps([(t.value, d) for t, d in sink.events])
    assert API_KEY not in repr(request)
    assert API_KEY not in repr(result)
    assert API_KEY not in json.dumps(result.metadata)


async def test_cancel_during_stream_closes_the_connection_within_a_second(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    fake.script(Reply([Text("partial ", "answer")], interrupt=Stall(after_events=5)))
    task = asyncio.create_task(AnthropicProvider().stream(make_request(fake.base_url), sink))
    async with asyncio.timeout(5):
        await sink.wait_for(E.MESSAGE_STREAMED)

    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    disconnect = await fake.wait_for_disconnect(timeout=1.0)
    assert disconnect.at - cancelled_at < 1.0
    assert disconnect.request is fake.requests[-1]
    assert E.MESSAGE_RECEIVED not in sink.types


class _BlockingSink(RecordingSink):
    """Blocks forever in the first ``message_streamed`` emit (a store that stopped answering)."""

    async def emit(self, type: EventType, data: dict[str, Any] | None = None) -> None:
        await super().emit(type, data)
        if type == E.MESSAGE_STREAMED:
            await asyncio.Event().wait()


async def test_cancel_while_the_sink_blocks_still_closes_the_connection(
    fake: AnthropicFake,
) -> None:
    fake.script(Reply([Text("a", "b", "c")], interrupt=Stall()))
    sink = _BlockingSink()
    task = asyncio.create_task(AnthropicProvider().stream(make_request(fake.base_url), sink))
    async with asyncio.timeout(5):
        await sink.wait_for(E.MESSAGE_STREAMED)

    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    disconnect = await fake.wait_for_disconnect(timeout=1.0)
    assert disconnect.at - cancelled_at < 1.0


async def test_cancel_while_waiting_for_headers_closes_the_connection(
    fake: AnthropicFake, sink: RecordingSink
) -> None:
    fake.script(Stall())
    task = asyncio.create_task(AnthropicProvider().stream(make_request(fake.base_url), sink))
    await fake.wait_for_requests(1)

    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    disconnect = await fake.wait_for_disconnect(timeout=1.0)
    assert disconnect.at - cancelled_at < 1.0
    assert sink.events == []


def test_capabilities_advertised() -> None:
    caps = {(c.name, c.type) for c in AnthropicProvider().capabilities()}
    assert caps == {
        ("streaming", "sampling"),
        ("tool_use", "tool"),
        ("vision", "resource"),
        ("system_prompts", "prompt"),
        ("interrupt", "sampling"),
        ("thinking", "sampling"),
    }


def test_provider_satisfies_the_protocol_and_is_discovered() -> None:
    provider = AnthropicProvider()
    assert isinstance(provider, Provider)
    assert provider.name == "anthropic"
    assert isinstance(discover()["anthropic"], AnthropicProvider)
