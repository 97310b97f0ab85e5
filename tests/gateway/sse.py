"""A small Server-Sent-Events reader for the tests and the benchmark (what a browser's
EventSource does: ``id``, ``event``, ``data`` fields; blank line ends a message)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Message:
    event: str
    id: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


async def messages(lines: AsyncIterator[str]) -> AsyncIterator[Message]:
    event, ident, data = "message", None, []
    async for line in lines:
        if line == "":
            if data:
                yield Message(event=event, id=ident, data="\n".join(data))
            event, ident, data = "message", None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "id":
            ident = value
        elif field == "data":
            data.append(value)
