"""Request bodies over the limit are refused with 413 before they are buffered.

Pure ASGI (not ``BaseHTTPMiddleware``): it must see the body as it arrives, and must not
buffer the event streams going the other way. A declared ``Content-Length`` over the limit is
refused at once; a chunked body is counted as it is read and cut off at the limit.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_session_manager.core.errors import error
from agent_session_manager.gateway.errors import body


class BodyTooLarge(Exception):
    """Raised into the app's ``receive`` when a chunked body passes the limit."""


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size < 0 or size > self.max_bytes:
                await self._refuse(send, size)
                return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, seen)

    async def _refuse(self, send: Send, size: int) -> None:
        what = "a malformed Content-Length" if size < 0 else f"{size} bytes"
        err = error(
            "invalid_input",
            f"the request body is {what}; the limit is {self.max_bytes} bytes "
            "(ASM_GATEWAY_MAX_BODY_BYTES)",
            details={"limit": self.max_bytes},
        )
        payload = json.dumps(body(err)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413 if size >= 0 else 400,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
