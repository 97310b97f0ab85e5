"""A wire-level fake of the Anthropic Messages API, served on an ephemeral 127.0.0.1 port.

Any client that speaks HTTP to the real API works against it unchanged — the ``anthropic`` SDK
(``base_url=fake.base_url``), Claude Code (``ANTHROPIC_BASE_URL``), raw HTTP — because it speaks
the same wire format: ``POST /v1/messages`` answered as Server-Sent Events when the body says
``"stream": true`` (``message_start``, ``ping``, ``content_block_start`` /
``content_block_delta`` (``text_delta``, ``input_json_delta``, ``thinking_delta``,
``signature_delta``) / ``content_block_stop``, ``message_delta``, ``message_stop``) and as one
JSON message otherwise; errors as the API's JSON error body with ``request-id`` and
``retry-after`` headers; ``event: error`` in the middle of a 200 stream. It is dependency-free
(``asyncio.start_server`` and a small HTTP/1.1 implementation: keep-alive, chunked responses).

Usage::

    from tests.fakes.anthropic_server import AnthropicFake, HttpError, Reply, Text, ToolUse

    async with AnthropicFake() as fake:
        fake.script(
            HttpError(429, retry_after=1),                       # first request
            Reply([Text("Hel", "lo"), ToolUse("get_weather", {"city": "Paris"})]),  # second
        )
        client = AsyncAnthropic(api_key="sk-test", base_url=fake.base_url, max_retries=0)
        ...
        assert fake.requests[-1].json["messages"][0]["content"] == "hi"
        assert fake.requests[-1].credential == "sk-test"

Script items, consumed one per ``POST /v1/messages`` in order (:meth:`AnthropicFake.script`):

* :class:`Reply` — a successful message made of :class:`Text`, :class:`Thinking` and
  :class:`ToolUse` blocks, with :class:`Usage`, ``stop_reason``, an optional per-event
  ``delay`` and an optional ``interrupt`` that cuts the stream after ``after_events`` SSE
  events: :class:`StreamError` (``event: error``), :class:`Stall` (go silent, connection open),
  :class:`Drop` (close the connection mid-body).
* :class:`HttpError` — a non-2xx answer with the real JSON error body and headers.
* :class:`Stall` / :class:`Drop` as script items — before a single byte of the response:
  never answer / close the connection without answering.

When the queue is empty, ``default`` answers (a script item, or a callable
``(RecordedRequest) -> script item`` for clients such as Claude Code that send background
requests); with no default the fake answers ``400 invalid_request_error`` saying the script ran
out, so a test fails fast instead of retrying.

Other routes: any ``HEAD`` → ``200`` (reachability probes); ``POST /v1/messages/count_tokens`` →
``{"input_tokens": n}``; ``GET /v1/models`` → a one-model list; anything else → ``404``. Every
``/v1/`` request needs a credential, ``x-api-key: <key>`` or ``Authorization: Bearer <key>``
(both accepted; checked against ``api_key`` when one is given), else ``401``.

Observations: :attr:`AnthropicFake.served` (per reply, the usage the client was told: what
``message_start`` and, if it was sent, ``message_delta`` said;
:attr:`AnthropicFake.served_usage` sums them — what a provider would bill),
:attr:`AnthropicFake.requests` (method, path, lower-cased headers, body, parsed JSON, arrival
time), :attr:`AnthropicFake.disconnects` (a client that went away while a response
was in progress, with the ``time.monotonic()`` it was noticed and the SSE events sent so far),
and :meth:`AnthropicFake.wait_for_requests` / :meth:`AnthropicFake.wait_for_disconnect`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

# --- the script vocabulary --------------------------------------------------------------------


def _split(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


@dataclass(frozen=True, init=False)
class Text:
    """A text block; each argument is one ``text_delta`` (a single string is cut every 8 chars).

    ``Text("Hello, world")`` streams ``"Hello, w"``, ``"orld"``; ``Text("Hel", "lo")`` streams
    exactly ``"Hel"``, ``"lo"``.
    """

    deltas: tuple[str, ...]

    def __init__(self, *deltas: str) -> None:
        chunks = _split(deltas[0], 8) if len(deltas) == 1 else list(deltas)
        object.__setattr__(self, "deltas", tuple(chunks))

    @property
    def text(self) -> str:
        return "".join(self.deltas)


@dataclass(frozen=True, init=False)
class Thinking:
    """An extended-thinking block: ``thinking_delta`` per argument, then a ``signature_delta``."""

    deltas: tuple[str, ...]
    signature: str

    def __init__(self, *deltas: str, signature: str = "EqQBCgIYAhIM1gbcDa9GJwZA2b3h") -> None:
        chunks = _split(deltas[0], 16) if len(deltas) == 1 else list(deltas)
        object.__setattr__(self, "deltas", tuple(chunks))
        object.__setattr__(self, "signature", signature)

    @property
    def thinking(self) -> str:
        return "".join(self.deltas)


@dataclass(frozen=True)
class ToolUse:
    """A ``tool_use`` block. Its input streams as ``input_json_delta`` fragments of
    ``json.dumps(input)`` (``chunk_size`` chars), or exactly ``partial_json`` when given — which
    may be malformed on purpose. ``id`` defaults to ``toolu_fake_<reply>_<index>``."""

    name: str
    input: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    partial_json: tuple[str, ...] | None = None
    chunk_size: int = 12

    def fragments(self) -> list[str]:
        if self.partial_json is not None:
            return list(self.partial_json)
        # The API opens every tool input with an empty fragment; clients must tolerate it.
        return ["", *_split(json.dumps(self.input), self.chunk_size)]


Block = Text | Thinking | ToolUse


@dataclass(frozen=True)
class Usage:
    """Token counts: ``message_start`` carries input and cache counts, ``message_delta`` the
    cumulative output count (and, when ``cumulative_delta``, the input and cache counts again, as
    newer API versions do). ``output_tokens=None`` counts one token per delta."""

    input_tokens: int = 12
    output_tokens: int | None = None
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cumulative_delta: bool = False


@dataclass(frozen=True)
class StreamError:
    """As a :class:`Reply` interrupt: ``event: error`` with this ``error.type`` after
    ``after_events`` SSE events (``None``: after the content blocks, before ``message_delta``)."""

    error_type: str = "overloaded_error"
    message: str = "Overloaded"
    after_events: int | None = None


@dataclass(frozen=True)
class Stall:
    """Go silent with the connection open until the client leaves or the fake closes.

    As a script item: before the status line (the client waits for headers). As a
    :class:`Reply` interrupt: after ``after_events`` SSE events (``None``: after the content).
    """

    after_events: int | None = None


@dataclass(frozen=True)
class Drop:
    """Close the connection: as a script item, without answering; as a :class:`Reply`
    interrupt, mid-body after ``after_events`` SSE events (the chunked body is left incomplete).

    ``clean=True`` (interrupt only) instead ends the body properly but early, without
    ``message_stop`` — what a proxy that cuts streams does.
    """

    after_events: int | None = None
    clean: bool = False


@dataclass(frozen=True)
class Reply:
    """A successful message: SSE when the request streams, one JSON message otherwise.

    ``model`` defaults to the request's model; ``stop_reason`` to ``"tool_use"`` when a
    :class:`ToolUse` is present, else ``"end_turn"``; ``delay`` is seconds before each SSE event.
    """

    content: list[Block] = field(default_factory=list)
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    id: str | None = None
    delay: float = 0.0
    interrupt: StreamError | Stall | Drop | None = None
    headers: dict[str, str] = field(default_factory=dict)


#: The API's ``error.type`` per HTTP status, as it answers them.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

#: HTTP statuses for ``error.type`` (a non-streaming request meeting a :class:`StreamError`).
_STATUS_OF_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


@dataclass(frozen=True)
class HttpError:
    """A non-2xx answer: ``{"type": "error", "error": {"type", "message"}, "request_id"}``.

    ``error_type`` defaults from the status (:data:`ERROR_TYPES`); ``retry_after`` becomes the
    ``retry-after`` header (seconds, or an HTTP-date string); ``body`` replaces the JSON body
    (a ``str`` is sent as ``content_type``, ``text/plain`` by default, like a proxy's 502 page;
    :func:`html_error_page` builds a big HTML one).
    """

    status: int
    error_type: str | None = None
    message: str | None = None
    retry_after: float | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    content_type: str = "text/plain"


def html_error_page(size: int, *, echo: str = "") -> str:
    """An HTML error page of about ``size`` bytes, as a misbehaving gateway serves one.

    ``echo`` (say, the request's API key) is repeated through the page, first and last
    included, the way a debug page dumps the request headers: a test can then look for it
    anywhere the error may have travelled.
    """
    head = "<html><head><title>503 Service Unavailable</title></head><body><h1>503</h1>"
    line = f"<p>upstream unavailable; request header x-api-key: {echo}</p><pre>{echo}</pre>\n"
    filler = "<div>" + "é∂ gateway trace " * 20 + "</div>\n"
    parts = [head, line]
    total = len(head.encode()) + len(line.encode())
    tail = line + "</body></html>"
    while total < size - len(tail.encode()):
        chunk = line if echo and len(parts) % 50 == 0 else filler
        parts.append(chunk)
        total += len(chunk.encode())
    parts.append(tail)
    return "".join(parts)


ScriptItem = Reply | HttpError | Stall | Drop
Responder = Callable[["RecordedRequest"], ScriptItem]


# --- what the fake observed ---------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as received (``headers`` keys lower-cased)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    """``time.monotonic()`` when the request was complete."""
    request_id: str = ""
    """The ``request-id`` the fake answered with."""

    @property
    def json(self) -> Any:
        """The body parsed as JSON (``None`` when empty)."""
        return json.loads(self.body) if self.body else None

    @property
    def api_key(self) -> str | None:
        """The ``x-api-key`` header."""
        return self.headers.get("x-api-key")

    @property
    def bearer(self) -> str | None:
        """The token of an ``Authorization: Bearer`` header."""
        auth = self.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    @property
    def credential(self) -> str | None:
        """Whichever credential was sent: ``x-api-key``, else the bearer token."""
        return self.api_key or self.bearer


@dataclass(frozen=True)
class Disconnect:
    """The client went away while a response to ``request`` was in progress."""

    request: RecordedRequest
    at: float
    """``time.monotonic()`` when the fake noticed."""
    events_sent: int
    """SSE events written before the client left."""


# --- HTTP/1.1 plumbing ----------------------------------------------------------------------------

_MAX_HEAD = 1 << 20


class _ClientGone(Exception):
    """The peer closed the connection (or reset it) while we were answering."""


class _Connection:
    """One client connection: buffered request reading, and noticing the client leave."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = bytearray()
        self.gone = asyncio.Event()
        self.gone_at: float | None = None
        self._watcher: asyncio.Task[None] | None = None

    async def _fill(self) -> bool:
        data = await self.reader.read(65536)
        if not data:
            return False
        self.buffer += data
        return True

    async def read_until(self, marker: bytes) -> bytes | None:
        while (pos := self.buffer.find(marker)) < 0:
            if len(self.buffer) > _MAX_HEAD or not await self._fill():
                return None
        out = bytes(self.buffer[:pos])
        del self.buffer[: pos + len(marker)]
        return out

    async def read_exactly(self, n: int) -> bytes | None:
        while len(self.buffer) < n:
            if not await self._fill():
                return None
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    async def read_request(self) -> tuple[str, str, dict[str, str], bytes] | None:
        """``(method, target, headers, body)``, or ``None`` when the client closed."""
        head = await self.read_until(b"\r\n\r\n")
        if head is None:
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size_line = await self.read_until(b"\r\n")
                if size_line is None:
                    return None
                size = int(size_line.split(b";")[0], 16)
                chunk = await self.read_exactly(size + 2)
                if chunk is None:
                    return None
                if size == 0:
                    break
                parts.append(chunk[:-2])
            body = b"".join(parts)
        elif (length := int(headers.get("content-length", "0"))) > 0:
            data = await self.read_exactly(length)
            if data is None:
                return None
            body = data
        return method.upper(), target, headers, body

    def watch(self) -> None:
        """While a response is in progress, notice the client closing the connection."""

        async def watcher() -> None:
            try:
                while await self._fill():
                    pass
            except (ConnectionError, OSError):
                pass
            self._mark_gone()

        self._watcher = asyncio.create_task(watcher())

    async def unwatch(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            # asyncio.wait, not ``await watcher``: a cancellation of *this* task must propagate.
            await asyncio.wait([watcher])

    def _mark_gone(self) -> None:
        if not self.gone.is_set():
            self.gone_at = time.monotonic()
            self.gone.set()

    async def write(self, data: bytes) -> None:
        if self.gone.is_set():
            raise _ClientGone
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            self._mark_gone()
            raise _ClientGone from exc

    async def pause(self, seconds: float | None) -> None:
        """Sleep ``seconds`` (forever when ``None``), cut short by the client leaving."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.gone.wait(), seconds)
        if self.gone.is_set():
            raise _ClientGone


def _head(status: int, headers: dict[str, str]) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Overloaded" if status == 529 else "Error"
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _sse(event: str, data: dict[str, Any]) -> bytes:
    payload = f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"


# --- the fake -----------------------------------------------------------------------------------


class AnthropicFake:
    """The fake server; an async context manager. See the module docstring."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        default: ScriptItem | Responder | None = None,
        models: tuple[str, ...] = ("claude-sonnet-4-6",),
    ) -> None:
        self.api_key = api_key
        """When set, only this credential is accepted (else any non-empty one)."""
        self.default = default
        self.models = models
        self.requests: list[RecordedRequest] = []
        self.disconnects: list[Disconnect] = []
        self.served: list[dict[str, int]] = []
        """Per reply that got as far as ``message_start``: the usage it reported (running
        totals, as the client sees them)."""
        self._queue: list[ScriptItem] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Condition()
        self._replies = 0
        self.port = 0

    # -- lifecycle

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: the SDK's ``base_url``, Claude Code's
        ``ANTHROPIC_BASE_URL``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def served_usage(self) -> dict[str, int]:
        """Every reply's reported usage summed: the tokens this fake billed."""
        keys = (
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        )
        return {k: sum(u.get(k, 0) for u in self.served) for k in keys}

    # -- scripting

    def script(self, *items: ScriptItem) -> None:
        """Queue answers for the next ``POST /v1/messages`` requests, in order."""
        self._queue.extend(items)

    @property
    def pending(self) -> list[ScriptItem]:
        """Script items not consumed yet."""
        return list(self._queue)

    @property
    def message_requests(self) -> list[RecordedRequest]:
        """The ``POST /v1/messages`` requests received."""
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/messages"]

    async def wait_for_requests(
        self,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 - a deadline built in, so a test fails fast
    ) -> list[RecordedRequest]:
        """Wait until ``count`` requests have arrived in all; return them all."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.requests) >= count)
        return list(self.requests)

    async def wait_for_disconnect(
        self,
        count: int = 1,
        timeout: float = 1.0,  # noqa: ASYNC109 - a deadline built in, so a test fails fast
    ) -> Disconnect:
        """Wait until ``count`` disconnects have been seen; return the ``count``-th."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.disconnects) >= count)
        return self.disconnects[count - 1]

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- serving

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = _Connection(reader, writer)
        try:
            while True:
                parsed = await conn.read_request()
                if parsed is None:
                    break
                method, target, headers, body = parsed
                path, _, query = target.partition("?")
                request = RecordedRequest(
                    method=method,
                    path=path,
                    query=query,
                    headers=headers,
                    body=body,
                    received_at=time.monotonic(),
                    request_id=f"req_fake_{len(self.requests) + 1:04d}",
                )
                self.requests.append(request)
                await self._notify()
                conn.watch()
                try:
                    keep_alive = await self._route(conn, request)
                except _ClientGone:
                    keep_alive = False
                finally:
                    await conn.unwatch()
                if not keep_alive or headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, OSError, ValueError):
            pass  # a broken or malformed client connection ends only that connection
        except asyncio.CancelledError:
            # The fake is closing. End quietly: on Python 3.11 a start_server callback task
            # that ends cancelled is logged as "Exception in callback" by asyncio.
            pass
        finally:
            writer.close()
            # Shutdown may cancel us here too; the connection is closed either way.
            with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
                await conn.unwatch()
                await writer.wait_closed()
            self._tasks.discard(task)

    async def _route(self, conn: _Connection, request: RecordedRequest) -> bool:
        """Answer one request; ``False`` when the connection must close afterwards."""
        if request.method == "HEAD":
            await self._send(conn, request, 200, b"", content_type="text/plain")
            return True
        if request.path.startswith("/v1/") and not self._authorized(request):
            await self._send_error(conn, request, HttpError(401, message="invalid x-api-key"))
            return True
        route = (request.method, request.path.rstrip("/"))
        if route == ("POST", "/v1/messages"):
            return await self._messages(conn, request)
        if route == ("POST", "/v1/messages/count_tokens"):
            tokens = max(1, len(request.body) // 4)
            await self._send_json(conn, request, 200, {"input_tokens": tokens})
            return True
        if route == ("GET", "/v1/models"):
            data = [
                {
                    "type": "model",
                    "id": m,
                    "display_name": m,
                    "created_at": "2025-01-01T00:00:00Z",
                }
                for m in self.models
            ]
            body = {
                "data": data,
                "has_more": False,
                "first_id": self.models[0] if self.models else None,
                "last_id": self.models[-1] if self.models else None,
            }
            await self._send_json(conn, request, 200, body)
            return True
        await self._send_error(
            conn, request, HttpError(404, message=f"Not found: {request.method} {request.path}")
        )
        return True

    def _authorized(self, request: RecordedRequest) -> bool:
        credential = request.credential
        if not credential:
            return False
        return self.api_key is None or credential == self.api_key

    def _next_item(self, request: RecordedRequest) -> ScriptItem:
        if self._queue:
            return self._queue.pop(0)
        if self.default is None:
            return HttpError(400, message="AnthropicFake: no scripted response left")
        if callable(self.default):
            return self.default(request)
        return self.default

    async def _messages(self, conn: _Connection, request: RecordedRequest) -> bool:
        try:
            payload = request.json
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            await self._send_error(conn, request, HttpError(400, message="body is not JSON"))
            return True
        item = self._next_item(request)
        if isinstance(item, Stall):
            await self._guard(conn, request, conn.pause(None))
            return False
        if isinstance(item, Drop):
            return False
        if isinstance(item, HttpError):
            await self._send_error(conn, request, item)
            return True
        self._replies += 1
        if payload.get("stream"):
            return await self._stream(conn, request, payload, item)
        return await self._message_json(conn, request, payload, item)

    # -- rendering a Reply

    def _ids(self, reply: Reply) -> tuple[str, list[str | None]]:
        n = self._replies
        tool_ids = [
            (b.id or f"toolu_fake_{n:03d}_{i}") if isinstance(b, ToolUse) else None
            for i, b in enumerate(reply.content)
        ]
        return reply.id or f"msg_fake_{n:04d}", tool_ids

    @staticmethod
    def _stop_reason(reply: Reply) -> str:
        if reply.stop_reason is not None:
            return reply.stop_reason
        return "tool_use" if any(isinstance(b, ToolUse) for b in reply.content) else "end_turn"

    @staticmethod
    def _output_tokens(reply: Reply) -> int:
        if reply.usage.output_tokens is not None:
            return reply.usage.output_tokens
        count = 0
        for block in reply.content:
            count += len(block.fragments()) if isinstance(block, ToolUse) else len(block.deltas)
        return max(1, count)

    def _message_events(self, reply: Reply, payload: dict[str, Any]) -> tuple[list[bytes], int]:
        """Every SSE event of the reply, and the index where the content ends."""
        message_id, tool_ids = self._ids(reply)
        usage = reply.usage
        events = [
            _sse(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": message_id,
                        "type": "message",
                        "role": "assistant",
                        "model": reply.model or payload.get("model"),
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {
                            "input_tokens": usage.input_tokens,
                            "cache_creation_input_tokens": usage.cache_creation_input_tokens,
                            "cache_read_input_tokens": usage.cache_read_input_tokens,
                            "output_tokens": 1,
                        },
                    },
                },
            ),
            _sse("ping", {"type": "ping"}),
        ]
        for index, block in enumerate(reply.content):
            start: dict[str, Any]
            deltas: list[dict[str, Any]]
            if isinstance(block, Text):
                start = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": d} for d in block.deltas]
            elif isinstance(block, Thinking):
                start = {"type": "thinking", "thinking": "", "signature": ""}
                deltas = [{"type": "thinking_delta", "thinking": d} for d in block.deltas]
                deltas.append({"type": "signature_delta", "signature": block.signature})
            else:
                start = {"type": "tool_use", "id": tool_ids[index], "name": block.name, "input": {}}
                deltas = [
                    {"type": "input_json_delta", "partial_json": f} for f in block.fragments()
                ]
            events.append(
                _sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                )
            )
            events.extend(
                _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": d},
                )
                for d in deltas
            )
            events.append(
                _sse("content_block_stop", {"type": "content_block_stop", "index": index})
            )
        content_end = len(events)
        delta_usage: dict[str, Any] = {"output_tokens": self._output_tokens(reply)}
        if usage.cumulative_delta:
            delta_usage.update(
                input_tokens=usage.input_tokens,
                cache_creation_input_tokens=usage.cache_creation_input_tokens,
                cache_read_input_tokens=usage.cache_read_input_tokens,
            )
        events.append(
            _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": self._stop_reason(reply),
                        "stop_sequence": reply.stop_sequence,
                    },
                    "usage": delta_usage,
                },
            )
        )
        events.append(_sse("message_stop", {"type": "message_stop"}))
        return events, content_end

    async def _stream(
        self, conn: _Connection, request: RecordedRequest, payload: dict[str, Any], reply: Reply
    ) -> bool:
        events, content_end = self._message_events(reply, payload)
        interrupt = reply.interrupt
        cut = len(events)
        if interrupt is not None:
            cut = content_end if interrupt.after_events is None else interrupt.after_events
            cut = min(cut, len(events))
        headers = {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            "transfer-encoding": "chunked",
            "request-id": request.request_id,
            "anthropic-organization-id": "org-fake",
            **reply.headers,
        }
        sent = 0
        usage = reply.usage
        told: dict[str, int] = {}
        try:
            await conn.write(_head(200, headers))
            for event in events[:cut]:
                if reply.delay:
                    await conn.pause(reply.delay)
                await conn.write(event)
                if sent == 0:  # message_start: input and cache counts, one output token
                    told = {
                        "input_tokens": usage.input_tokens,
                        "output_tokens": 1,
                        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
                        "cache_read_input_tokens": usage.cache_read_input_tokens,
                    }
                    self.served.append(told)
                elif sent == content_end:  # message_delta: the cumulative output count
                    told["output_tokens"] = self._output_tokens(reply)
                sent += 1
            if isinstance(interrupt, StreamError):
                error = {
                    "type": "error",
                    "error": {"type": interrupt.error_type, "message": interrupt.message},
                    "request_id": request.request_id,
                }
                await conn.write(_sse("error", error))
                await conn.write(b"0\r\n\r\n")
                return True
            if isinstance(interrupt, Stall):
                await conn.pause(None)
            if isinstance(interrupt, Drop) and not interrupt.clean:
                return False
            await conn.write(b"0\r\n\r\n")
            return True
        except _ClientGone:
            await self._disconnected(conn, request, sent)
            raise

    async def _message_json(
        self, conn: _Connection, request: RecordedRequest, payload: dict[str, Any], reply: Reply
    ) -> bool:
        interrupt = reply.interrupt
        if isinstance(interrupt, Stall):
            await self._guard(conn, request, conn.pause(None))
            return False
        if isinstance(interrupt, Drop):
            return False
        if isinstance(interrupt, StreamError):
            status = _STATUS_OF_TYPE.get(interrupt.error_type, 500)
            error = HttpError(status, interrupt.error_type, interrupt.message)
            await self._send_error(conn, request, error)
            return True
        message_id, tool_ids = self._ids(reply)
        content: list[dict[str, Any]] = []
        for index, block in enumerate(reply.content):
            if isinstance(block, Text):
                content.append({"type": "text", "text": block.text})
            elif isinstance(block, Thinking):
                content.append(
                    {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
                )
            else:
                content.append(
                    {
                        "type": "tool_use",
                        "id": tool_ids[index],
                        "name": block.name,
                        "input": block.input,
                    }
                )
        usage = reply.usage
        body = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": reply.model or payload.get("model"),
            "content": content,
            "stop_reason": self._stop_reason(reply),
            "stop_sequence": reply.stop_sequence,
            "usage": {
                "input_tokens": usage.input_tokens,
                "cache_creation_input_tokens": usage.cache_creation_input_tokens,
                "cache_read_input_tokens": usage.cache_read_input_tokens,
                "output_tokens": self._output_tokens(reply),
            },
        }
        if reply.delay:
            await self._guard(conn, request, conn.pause(reply.delay))
        await self._send_json(conn, request, 200, body, extra=reply.headers)
        self.served.append(dict(body["usage"]))
        return True

    async def _guard(self, conn: _Connection, request: RecordedRequest, waiting: Any) -> None:
        try:
            await waiting
        except _ClientGone:
            await self._disconnected(conn, request, 0)
            raise

    async def _disconnected(self, conn: _Connection, request: RecordedRequest, sent: int) -> None:
        at = conn.gone_at if conn.gone_at is not None else time.monotonic()
        self.disconnects.append(Disconnect(request=request, at=at, events_sent=sent))
        await self._notify()

    # -- plain responses

    async def _send(
        self,
        conn: _Connection,
        request: RecordedRequest,
        status: int,
        body: bytes,
        *,
        content_type: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        headers = {
            "content-type": content_type,
            "content-length": str(len(body)),
            "request-id": request.request_id,
            **(extra or {}),
        }
        if request.method == "HEAD":
            headers["content-length"] = "0"
            body = b""
        await conn.write(_head(status, headers) + body)

    async def _send_json(
        self,
        conn: _Connection,
        request: RecordedRequest,
        status: int,
        body: Any,
        *,
        extra: dict[str, str] | None = None,
    ) -> None:
        await self._send(
            conn,
            request,
            status,
            json.dumps(body).encode(),
            content_type="application/json",
            extra=extra,
        )

    async def _send_error(
        self, conn: _Connection, request: RecordedRequest, err: HttpError
    ) -> None:
        error_type = err.error_type or ERROR_TYPES.get(
            err.status, "api_error" if err.status >= 500 else "invalid_request_error"
        )
        headers: dict[str, str] = {}
        if err.status in (408, 409, 429) or err.status >= 500:
            headers["x-should-retry"] = "true"
        if err.retry_after is not None:
            headers["retry-after"] = (
                err.retry_after if isinstance(err.retry_after, str) else f"{err.retry_after:g}"
            )
        headers.update(err.headers)
        if isinstance(err.body, str):
            await self._send(
                conn,
                request,
                err.status,
                err.body.encode(),
                content_type=err.content_type,
                extra=headers,
            )
            return
        body = err.body
        if body is None:
            body = {
                "type": "error",
                "error": {"type": error_type, "message": err.message or error_type},
                "request_id": request.request_id,
            }
        await self._send_json(conn, request, err.status, body, extra=headers)


__all__ = [
    "ERROR_TYPES",
    "AnthropicFake",
    "Block",
    "Disconnect",
    "Drop",
    "HttpError",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ScriptItem",
    "Stall",
    "StreamError",
    "Text",
    "Thinking",
    "ToolUse",
    "Usage",
    "html_error_page",
]
