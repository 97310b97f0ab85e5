"""A wire-level fake of the OpenAI Responses API on an ephemeral 127.0.0.1 port.

Dependency-free (asyncio streams, HTTP/1.1, one request per connection): real clients — the
Codex CLI in particular — talk to it exactly as they would to ``api.openai.com``::

    async with OpenAIResponsesFake() as fake:
        fake.script(
            turn(reasoning("Plan: list files"), function_call("shell", {"command": ["ls"]})),
            turn(message("Done."), usage=Usage(input_tokens=30, output_tokens=5)),
            http_error(429, "slow down", retry_after=1),
        )
        ...  # point the client at fake.base_url (ends in /v1)
        fake.responses_requests[0].json()["input"]  # what the client sent

Every ``POST …/responses`` takes the next scripted reply, in order; when the script runs out
the fake answers 500 with a JSON body saying so, so a test that under-scripts fails loudly
instead of hanging. ``GET …/models`` answers an empty model list; ``HEAD`` anything answers
200; every request is recorded in :attr:`OpenAIResponsesFake.requests`.

Replies:

* :func:`turn` — a streamed response (``text/event-stream``): ``response.created``,
  ``response.in_progress``, per output item ``response.output_item.added`` → deltas
  (``response.output_text.delta``, ``response.reasoning_summary_text.delta``,
  ``response.function_call_arguments.delta``, ``response.custom_tool_call_input.delta``) →
  ``response.output_item.done``, then ``response.completed`` with usage (or
  ``response.failed`` via :func:`failed_turn`). ``hang=True`` stops after the items and keeps
  the connection open until the client goes away (for cancellation tests).
* :func:`http_error` — a non-2xx JSON error body in OpenAI's shape, optional ``retry-after``;
  :func:`html_error` — a non-2xx HTML page, as a gateway in between answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ErrorReply",
    "OpenAIResponsesFake",
    "RecordedRequest",
    "StreamReply",
    "Usage",
    "custom_tool_call",
    "failed_turn",
    "function_call",
    "html_error",
    "http_error",
    "message",
    "reasoning",
    "turn",
    "web_search_call",
]

_ids = itertools.count(1)


def _next_id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):06d}"


# --- replies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """The usage block of ``response.completed``."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    def wire(self) -> dict[str, Any]:
        """As the Responses API sends it."""
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_input_tokens},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.input_tokens + self.output_tokens,
        }


@dataclass(frozen=True)
class OutputItem:
    """One output item and the delta events that stream it."""

    item: dict[str, Any]
    deltas: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class StreamReply:
    """A ``200 text/event-stream`` reply: the events, ``delay`` seconds apart."""

    events: list[dict[str, Any]]
    delay: float = 0.0
    hang: bool = False
    """After the events, keep the connection open (no ``response.completed``) until closed."""


@dataclass(frozen=True)
class ErrorReply:
    """A non-2xx reply with a JSON body (or, as a ``str``, a page: ``content_type``)."""

    status: int
    body: dict[str, Any] | str
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


Reply = StreamReply | ErrorReply


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def message(text: str, *, chunk_size: int = 6, item_id: str | None = None) -> OutputItem:
    """An assistant message, streamed as ``response.output_text.delta`` chunks."""
    iid = item_id or _next_id("msg")
    item = {
        "type": "message",
        "id": iid,
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    deltas = [
        {
            "type": "response.output_text.delta",
            "item_id": iid,
            "output_index": 0,
            "content_index": 0,
            "delta": chunk,
        }
        for chunk in _chunks(text, chunk_size)
    ]
    return OutputItem(item, deltas)


def reasoning(summary: str, *, chunk_size: int = 8, item_id: str | None = None) -> OutputItem:
    """A reasoning item with one summary part, streamed as reasoning summary deltas."""
    iid = item_id or _next_id("rs")
    item = {
        "type": "reasoning",
        "id": iid,
        "summary": [{"type": "summary_text", "text": summary}],
        "content": [],
        "encrypted_content": None,
    }
    deltas: list[dict[str, Any]] = [
        {
            "type": "response.reasoning_summary_part.added",
            "item_id": iid,
            "output_index": 0,
            "summary_index": 0,
            "part": {"type": "summary_text", "text": ""},
        }
    ]
    deltas += [
        {
            "type": "response.reasoning_summary_text.delta",
            "item_id": iid,
            "output_index": 0,
            "summary_index": 0,
            "delta": chunk,
        }
        for chunk in _chunks(summary, chunk_size)
    ]
    deltas.append(
        {
            "type": "response.reasoning_summary_text.done",
            "item_id": iid,
            "output_index": 0,
            "summary_index": 0,
            "text": summary,
        }
    )
    return OutputItem(item, deltas)


def function_call(
    name: str, arguments: dict[str, Any] | str, *, call_id: str | None = None
) -> OutputItem:
    """A function call, its arguments streamed as ``response.function_call_arguments.delta``."""
    iid = _next_id("fc")
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    item = {
        "type": "function_call",
        "id": iid,
        "call_id": call_id or _next_id("call"),
        "name": name,
        "arguments": args,
        "status": "completed",
    }
    deltas = [
        {
            "type": "response.function_call_arguments.delta",
            "item_id": iid,
            "output_index": 0,
            "delta": chunk,
        }
        for chunk in _chunks(args, 16)
    ]
    return OutputItem(item, deltas)


def custom_tool_call(name: str, input: str, *, call_id: str | None = None) -> OutputItem:
    """A freeform (custom) tool call such as Codex's ``apply_patch``."""
    iid = _next_id("ctc")
    item = {
        "type": "custom_tool_call",
        "id": iid,
        "call_id": call_id or _next_id("call"),
        "name": name,
        "input": input,
        "status": "completed",
    }
    deltas = [
        {
            "type": "response.custom_tool_call_input.delta",
            "item_id": iid,
            "output_index": 0,
            "delta": chunk,
        }
        for chunk in _chunks(input, 32)
    ]
    return OutputItem(item, deltas)


def web_search_call(query: str) -> OutputItem:
    """A hosted web search the model ran (the API executes it; no client tool call)."""
    iid = _next_id("ws")
    item = {
        "type": "web_search_call",
        "id": iid,
        "status": "completed",
        "action": {"type": "search", "query": query},
    }
    deltas = [
        {"type": f"response.web_search_call.{phase}", "item_id": iid, "output_index": 0}
        for phase in ("in_progress", "searching", "completed")
    ]
    return OutputItem(item, deltas)


def _response(rid: str, status: str, output: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "response",
        "created_at": 1_700_000_000,
        "status": status,
        "model": "fake-model",
        "output": output,
        **extra,
    }


def turn(
    *items: OutputItem,
    usage: Usage | None = None,
    delay: float = 0.0,
    hang: bool = False,
) -> StreamReply:
    """One streamed response producing ``items`` and completing with ``usage``."""
    rid = _next_id("resp")
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response(rid, "in_progress", [])},
        {"type": "response.in_progress", "response": _response(rid, "in_progress", [])},
    ]
    for index, oi in enumerate(items):
        # As the real API does, an item is announced empty and filled in by its deltas.
        started = dict(oi.item)
        if started["type"] == "message":
            started["content"] = []
        elif started["type"] == "reasoning":
            started["summary"] = []
        events.append(
            {"type": "response.output_item.added", "output_index": index, "item": started}
        )
        events += [{**d, "output_index": index} for d in oi.deltas]
        events.append({"type": "response.output_item.done", "output_index": index, "item": oi.item})
    if not hang:
        events.append(
            {
                "type": "response.completed",
                "response": _response(
                    rid,
                    "completed",
                    [oi.item for oi in items],
                    usage=(usage or Usage()).wire(),
                ),
            }
        )
    return StreamReply(events, delay=delay, hang=hang)


def failed_turn(code: str, message: str, *items: OutputItem) -> StreamReply:
    """A streamed response that ends in ``response.failed`` with ``error{code, message}``."""
    reply = turn(*items, hang=True)
    rid = reply.events[0]["response"]["id"]
    failed = {
        "type": "response.failed",
        "response": _response(
            rid, "failed", [], error={"code": code, "message": message}, usage=None
        ),
    }
    return StreamReply([*reply.events, failed])


def http_error(
    status: int,
    message: str,
    *,
    type: str | None = None,
    code: str | None = None,
    retry_after: float | None = None,
) -> ErrorReply:
    """An HTTP error with OpenAI's JSON error body."""
    default_type = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        429: "rate_limit_error",
    }.get(status, "server_error")
    headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
    return ErrorReply(
        status,
        {"error": {"message": message, "type": type or default_type, "param": None, "code": code}},
        headers,
    )


def html_error(status: int, page: str) -> ErrorReply:
    """An HTTP error whose body is an HTML page (a gateway's, not the API's)."""
    return ErrorReply(status, page, content_type="text/html")


# --- the server ----------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    529: "Overloaded",
}


class OpenAIResponsesFake:
    """The fake server; an async context manager that listens on 127.0.0.1:<ephemeral>."""

    def __init__(self) -> None:
        self._replies: list[Reply] = []
        self.requests: list[RecordedRequest] = []
        self._server: asyncio.Server | None = None
        self._port = 0
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.stream_opened = asyncio.Event()
        """Set when a streamed reply has sent its first event (useful to cancel mid-turn)."""

    # -- scripting and inspection --

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next ``POST /responses`` calls, in order."""
        self._replies.extend(replies)

    @property
    def pending(self) -> int:
        """Scripted replies not yet served."""
        return len(self._replies)

    @property
    def responses_requests(self) -> list[RecordedRequest]:
        """Only the ``POST …/responses`` requests."""
        return [
            r
            for r in self.requests
            if r.method == "POST" and r.path.rstrip("/").endswith("/responses")
        ]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        if self._server is None:
            raise RuntimeError("the fake is not running; use it as an async context manager")
        return f"http://127.0.0.1:{self._port}/v1"

    # -- lifecycle --

    async def __aenter__(self) -> OpenAIResponsesFake:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    # -- HTTP --

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            await self._serve_one(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        body = b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                body += await reader.readexactly(size)
                await reader.readexactly(2)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        if headers.get("content-encoding", "").lower() == "zstd":  # pragma: no cover
            raise ValueError("zstd request bodies are not supported by the fake")
        path = target.split("?", 1)[0]
        self.requests.append(RecordedRequest(method, path, headers, body))

        if method == "HEAD":
            await self._send(writer, 200, b"", {"content-type": "application/json"})
        elif method == "POST" and path.rstrip("/").endswith("/responses"):
            if not self._replies:
                await self._send_json(
                    writer,
                    500,
                    {"error": {"message": "fake: no scripted reply left", "type": "server_error"}},
                )
                return
            reply = self._replies.pop(0)
            if isinstance(reply, ErrorReply) and isinstance(reply.body, str):
                headers = {"content-type": reply.content_type, **reply.headers}
                await self._send(writer, reply.status, reply.body.encode(), headers)
            elif isinstance(reply, ErrorReply):
                await self._send_json(writer, reply.status, reply.body, reply.headers)
            else:
                await self._stream(reader, writer, reply)
        elif method == "GET" and path.rstrip("/").endswith("/models"):
            await self._send_json(writer, 200, {"object": "list", "data": [], "models": []})
        else:
            await self._send_json(
                writer, 404, {"error": {"message": f"fake: no route {method} {path}"}}
            )

    async def _send(
        self, writer: asyncio.StreamWriter, status: int, body: bytes, headers: dict[str, str]
    ) -> None:
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head += [f"content-length: {len(body)}", "connection: close", "", ""]
        writer.write("\r\n".join(head).encode("latin-1") + body)
        await writer.drain()

    async def _send_json(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = json.dumps(payload).encode()
        await self._send(
            writer, status, body, {"content-type": "application/json", **(headers or {})}
        )

    async def _stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reply: StreamReply
    ) -> None:
        head = (
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            "x-request-id: req_fake\r\nconnection: close\r\n\r\n"
        )
        writer.write(head.encode())
        for sequence, event in enumerate(reply.events):
            if reply.delay:
                await asyncio.sleep(reply.delay)
            payload = json.dumps({**event, "sequence_number": sequence})
            writer.write(f"event: {event['type']}\ndata: {payload}\n\n".encode())
            await writer.drain()
            self.stream_opened.set()
        if reply.hang:
            # Hold the stream open until the client disconnects (reader sees EOF) or the
            # fake shuts down; a cancelled client must not leave this waiting forever.
            with contextlib.suppress(ConnectionError):
                await reader.read()
