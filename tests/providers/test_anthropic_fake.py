"""The Anthropic wire-level fake itself: the wire format and the routes other clients rely on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import httpx2
import pytest

from tests.fakes.anthropic_server import (
    AnthropicFake,
    HttpError,
    RecordedRequest,
    Reply,
    ScriptItem,
    Text,
    Thinking,
    ToolUse,
    Usage,
)
from tests.providers.anthropic_support import (  # the fixture "fake"
    anthropic_fake,  # noqa: F401
)

BODY = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=5) as client:
        yield client


async def test_x_api_key_is_accepted_and_a_json_message_returned(
    fake: AnthropicFake, http: httpx2.AsyncClient
) -> None:
    fake.script(Reply([Text("Hi!"), ToolUse("f", {"a": 1}, id="toolu_x")], id="msg_x"))
    response = await http.post(
        f"{fake.base_url}/v1/messages", json=BODY, headers={"x-api-key": "k-1"}
    )
    assert response.status_code == 200
    assert response.headers["request-id"] == fake.requests[-1].request_id
    assert response.json() == {
        "id": "msg_x",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [
            {"type": "text", "text": "Hi!"},
            {"type": "tool_use", "id": "toolu_x", "name": "f", "input": {"a": 1}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 3,
        },
    }
    recorded = fake.requests[-1]
    assert (recorded.api_key, recorded.bearer, recorded.credential) == ("k-1", None, "k-1")
    assert recorded.json == BODY


async def test_the_sdk_non_streaming_call_works(fake: AnthropicFake) -> None:
    fake.script(
        Reply([Thinking("hmm"), Text("Paris.")], usage=Usage(input_tokens=9, output_tokens=4))
    )
    async with anthropic.AsyncAnthropic(
        api_key="k", base_url=fake.base_url, max_retries=0
    ) as client:
        message = await client.messages.create(**BODY)  # type: ignore[call-overload]
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.usage.input_tokens == 9
    assert message.usage.output_tokens == 4
    assert fake.requests[-1].bearer == "k"


async def test_sse_wire_format(fake: AnthropicFake, http: httpx2.AsyncClient) -> None:
    fake.script(Reply([Text("A", "B")], id="msg_w", usage=Usage(input_tokens=3, output_tokens=2)))
    response = await http.post(
        f"{fake.base_url}/v1/messages", json={**BODY, "stream": True}, headers={"x-api-key": "k"}
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = response.text.strip().split("\n\n")
    assert [b.split("\n")[0] for b in blocks] == [
        "event: message_start",
        "event: ping",
        "event: content_block_start",
        "event: content_block_delta",
        "event: content_block_delta",
        "event: content_block_stop",
        "event: message_delta",
        "event: message_stop",
    ]
    assert blocks[3].split("\n")[1] == (
        'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"A"}}'
    )
    assert '"stop_reason":"end_turn"' in blocks[6]
    assert '"output_tokens":2' in blocks[6]


async def test_http_error_has_the_real_body_and_headers(
    fake: AnthropicFake, http: httpx2.AsyncClient
) -> None:
    fake.script(HttpError(529, retry_after=3))
    response = await http.post(
        f"{fake.base_url}/v1/messages", json=BODY, headers={"authorization": "Bearer t"}
    )
    assert response.status_code == 529
    assert response.headers["retry-after"] == "3"
    assert response.headers["x-should-retry"] == "true"
    request_id = response.headers["request-id"]
    assert response.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "overloaded_error"},
        "request_id": request_id,
    }


async def test_requests_without_a_valid_credential_get_401(http: httpx2.AsyncClient) -> None:
    async with AnthropicFake(api_key="right") as fake:
        fake.script(Reply([Text("never")]))
        missing = await http.post(f"{fake.base_url}/v1/messages", json=BODY)
        wrong = await http.post(
            f"{fake.base_url}/v1/messages", json=BODY, headers={"x-api-key": "wrong"}
        )
        right = await http.post(
            f"{fake.base_url}/v1/messages", json=BODY, headers={"x-api-key": "right"}
        )
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    assert right.status_code == 200


async def test_head_probe_and_auxiliary_routes(
    fake: AnthropicFake, http: httpx2.AsyncClient
) -> None:
    auth = {"x-api-key": "k"}
    assert (await http.head(fake.base_url)).status_code == 200
    assert (await http.head(f"{fake.base_url}/v1/messages")).status_code == 200
    tokens = await http.post(
        f"{fake.base_url}/v1/messages/count_tokens?beta=true", json=BODY, headers=auth
    )
    assert tokens.status_code == 200 and tokens.json()["input_tokens"] > 0
    models = await http.get(f"{fake.base_url}/v1/models", headers=auth)
    assert [m["id"] for m in models.json()["data"]] == ["claude-sonnet-4-6"]
    missing = await http.get(f"{fake.base_url}/v1/nothing", headers=auth)
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"
    assert fake.requests[2].query == "beta=true"
    assert fake.message_requests == []


async def test_an_exhausted_script_answers_400(
    fake: AnthropicFake, http: httpx2.AsyncClient
) -> None:
    response = await http.post(
        f"{fake.base_url}/v1/messages", json=BODY, headers={"x-api-key": "k"}
    )
    assert response.status_code == 400
    assert "no scripted response left" in response.json()["error"]["message"]


async def test_a_default_responder_answers_when_the_script_is_empty(
    http: httpx2.AsyncClient,
) -> None:
    seen: list[RecordedRequest] = []

    def responder(request: RecordedRequest) -> ScriptItem:
        seen.append(request)
        return Reply([Text(f"echo {request.json['messages'][0]['content']}")])

    async with AnthropicFake(default=responder) as fake:
        response = await http.post(
            f"{fake.base_url}/v1/messages", json=BODY, headers={"x-api-key": "k"}
        )
    assert response.json()["content"] == [{"type": "text", "text": "echo hi"}]
    assert seen == fake.requests


async def test_a_chunked_request_body_is_read(
    fake: AnthropicFake, http: httpx2.AsyncClient
) -> None:
    fake.script(Reply([Text("ok")]))

    async def body() -> AsyncIterator[bytes]:
        yield b'{"model": "m", "max_tokens": 1, '
        yield b'"messages": [{"role": "user", "content": "chunked"}]}'

    response = await http.post(
        f"{fake.base_url}/v1/messages", content=body(), headers={"x-api-key": "k"}
    )
    assert response.status_code == 200
    assert fake.requests[-1].json["messages"][0]["content"] == "chunked"


async def test_keep_alive_serves_requests_in_order(
    fake: AnthropicFake, http: httpx2.AsyncClient
) -> None:
    fake.script(Reply([Text("one")]), Reply([Text("two")]))
    texts = []
    for _ in range(2):
        response = await http.post(
            f"{fake.base_url}/v1/messages", json=BODY, headers={"x-api-key": "k"}
        )
        texts.append(response.json()["content"][0]["text"])
    assert texts == ["one", "two"]
    assert fake.pending == []
    assert len(await fake.wait_for_requests(2)) == 2
