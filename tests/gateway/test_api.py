"""The gateway end to end over real HTTP: sessions, runs, events (pages and SSE with resume),
errors as JSON with taxonomy codes, and no key in logs or events."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx2 as httpx
import pytest

from agent_session_manager.core.contract import MockScript, MockText
from agent_session_manager.core.errors import CODES
from agent_session_manager.gateway.errors import HTTP_STATUS
from agent_session_manager.store import EventStore
from tests.gateway.conftest import Served
from tests.gateway.sse import messages

TEXT = "The quick brown fox jumps over the lazy dog, then naps in the warm afternoon sun."
SLOW = MockScript(steps=[MockText(text=TEXT, chunk_size=4, delay_ms=40)])


def test_every_taxonomy_code_has_an_http_status() -> None:
    assert set(HTTP_STATUS) == set(CODES)
    assert all(400 <= s < 600 for s in HTTP_STATUS.values())


async def create(http: httpx.AsyncClient, gw: Served, key: str | None = None, **body: Any) -> str:
    r = await http.post("/v1/sessions", json={"agent_id": "web", **body}, headers=gw.headers(key))
    assert r.status_code == 201, r.text
    return str(r.json()["session_id"])


async def collect_text(
    http: httpx.AsyncClient, gw: Served, sid: str, *, after: int = 0, stop_after: int | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """SSE events until ``end`` (True) or until ``stop_after`` messages (False)."""
    got: list[dict[str, Any]] = []
    async with http.stream(
        "GET", f"/v1/sessions/{sid}/events", params={"after": after}, headers=gw.headers()
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        async for m in messages(r.aiter_lines()):
            if m.event == "end":
                return got, True
            assert m.event == "message", m
            event = m.json()
            assert m.id == str(event["seq"])
            got.append(event)
            if stop_after is not None and len(got) >= stop_after:
                return got, False
    return got, False


async def test_session_run_and_stream_resume_without_gaps_or_duplicates(
    gateway: Served, http: httpx.AsyncClient, store: EventStore
) -> None:
    sid = await create(http, gateway, mock=SLOW.model_dump())
    r = await http.post(
        f"/v1/sessions/{sid}/runs", json={"prompt": "hi"}, headers=gateway.headers()
    )
    assert r.status_code == 202, r.text
    run_id = r.json()["run_id"]

    # Read part of the stream, drop it, resume from the last id with Last-Event-ID.
    first, ended = await collect_text(http, gateway, sid, stop_after=5)
    assert not ended and len(first) == 5
    rest: list[dict[str, Any]] = []
    async with http.stream(
        "GET",
        f"/v1/sessions/{sid}/events",
        params={"after": 0},  # the header wins, as for a browser reconnecting
        headers={**gateway.headers(), "Last-Event-ID": str(first[-1]["seq"])},
    ) as resp:
        async for m in messages(resp.aiter_lines()):
            if m.event == "message":
                rest.append(m.json())
                if m.json()["type"] == "run_completed":
                    break

    seqs = [e["seq"] for e in first + rest]
    assert seqs == list(range(1, len(seqs) + 1))
    streamed = "".join(e["data"]["text"] for e in first + rest if e["type"] == "message_streamed")
    assert streamed == TEXT

    # JSON pages say the same, and wait says done.
    w = await http.get(f"/v1/sessions/{sid}/runs/{run_id}/wait", headers=gateway.headers())
    assert w.status_code == 200 and w.json()["done"] is True
    assert w.json()["result"]["output"] == TEXT
    page = await http.get(
        f"/v1/sessions/{sid}/events/page",
        params={"after": 0, "limit": 1000},
        headers=gateway.headers(),
    )
    assert [e["seq"] for e in page.json()["events"]][: len(seqs)] == seqs
    runs = await http.get(f"/v1/sessions/{sid}/runs", headers=gateway.headers())
    assert [r["run_id"] for r in runs.json()["runs"]] == [run_id]
    one = await http.get(f"/v1/sessions/{sid}/runs/{run_id}", headers=gateway.headers())
    assert one.json()["status"] == "completed"
    assert one.json()["usage"]["total_tokens"] >= 0

    # Complete: the stream ends with `end`, and a later reconnect ends at once too.
    done = await http.post(f"/v1/sessions/{sid}/complete", json={}, headers=gateway.headers())
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    everything, ended = await collect_text(http, gateway, sid)
    assert ended and everything[-1]["type"] == "session_completed"
    last = everything[-1]["seq"]
    again, ended = await collect_text(http, gateway, sid, after=last)
    assert ended and again == []
    assert await store.last_seq(sid) == last


async def test_cancel_a_run_and_the_session(gateway: Served, http: httpx.AsyncClient) -> None:
    long = MockScript(steps=[MockText(text="x" * 400, chunk_size=1, delay_ms=50)])
    sid = await create(http, gateway, mock=long.model_dump())
    r = await http.post(
        f"/v1/sessions/{sid}/runs", json={"prompt": "go"}, headers=gateway.headers()
    )
    run_id = r.json()["run_id"]
    c = await http.post(f"/v1/sessions/{sid}/runs/{run_id}/cancel", headers=gateway.headers())
    assert c.status_code == 200, c.text
    w = await http.get(
        f"/v1/sessions/{sid}/runs/{run_id}/wait", params={"timeout": 30}, headers=gateway.headers()
    )
    assert w.json()["done"] is True and w.json()["result"]["status"] == "cancelled"
    s = await http.post(f"/v1/sessions/{sid}/cancel", headers=gateway.headers())
    assert s.status_code == 202, s.text
    events, ended = await collect_text(http, gateway, sid)
    assert ended and "session_cancelled" in [e["type"] for e in events]


async def test_list_filters_to_the_tenant(gateway: Served, http: httpx.AsyncClient) -> None:
    mine = await create(http, gateway, tags=["blue"])
    theirs = await create(http, gateway, key=gateway.key_b, tags=["blue"])
    for _ in range(100):  # visibility is eventually consistent
        r = await http.get("/v1/sessions", params={"tag": "blue"}, headers=gateway.headers())
        ids = {s["session_id"] for s in r.json()["sessions"]}
        if mine in ids:
            break
        await asyncio.sleep(0.1)
    assert mine in ids and theirs not in ids
    r = await http.get(
        "/v1/sessions", params={"status": "active", "agent_id": "web"}, headers=gateway.headers()
    )
    assert theirs not in {s["session_id"] for s in r.json()["sessions"]}
    bad = await http.get(
        "/v1/sessions", params={"agent_id": 'x" OR 1=1'}, headers=gateway.headers()
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"


async def test_errors_are_json_with_a_taxonomy_code(
    gateway: Served, http: httpx.AsyncClient
) -> None:
    no_key = await http.get("/v1/sessions")
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "policy_violation"
    wrong = await http.get("/v1/sessions", headers=gateway.headers("asm_nope"))
    assert wrong.status_code == 401
    nowhere = await http.get("/v1/nowhere", headers=gateway.headers())
    assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "not_found"
    malformed = await http.post(
        "/v1/sessions",
        content=b"{not json",
        headers={**gateway.headers(), "content-type": "application/json"},
    )
    assert malformed.status_code == 422
    assert malformed.json()["error"]["code"] == "validation_error"
    huge = await http.post(
        "/v1/sessions", content=b"x" * (2 * 1024 * 1024), headers=gateway.headers()
    )
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "invalid_input"
    sid = await create(http, gateway)
    beyond = await http.get(
        f"/v1/sessions/{sid}/events", params={"after": 10_000}, headers=gateway.headers()
    )
    assert beyond.status_code == 400 and beyond.json()["error"]["code"] == "invalid_cursor"
    done = await http.post(f"/v1/sessions/{sid}/complete", headers=gateway.headers())
    again = await http.post(f"/v1/sessions/{sid}/complete", headers=gateway.headers())
    assert done.status_code == 200
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_transition"
    health = await http.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}


async def test_rate_limit_answers_429_with_retry_after(
    run_worker: Any, client: Any, store: EventStore
) -> None:
    from agent_session_manager.gateway import GatewaySettings
    from tests.gateway.conftest import serving

    _, key = await store.create_api_key("tenant-rl")
    settings = GatewaySettings(rate_per_second=1, rate_burst=3)
    async with serving(client, store, settings) as (url, _server):
        async with httpx.AsyncClient(base_url=url) as http:
            codes = [
                (
                    await http.get("/v1/whoami", headers={"Authorization": f"Bearer {key}"})
                ).status_code
                for _ in range(5)
            ]
            assert codes[:3] == [200, 200, 200] and 429 in codes[3:]
            r = await http.get("/v1/whoami", headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["details"]["reason"] == "rate_limited"


async def test_no_key_in_logs_or_events(
    gateway: Served, http: httpx.AsyncClient, store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # uvicorn's loggers do not propagate to the root: listen to them directly.
    for name in ("uvicorn.access", "uvicorn.error", "asm.gateway"):
        logging.getLogger(name).addHandler(caplog.handler)
    sid = await create(http, gateway, mock=SLOW.model_dump(), metadata={"note": "hello"})
    r = await http.post(
        f"/v1/sessions/{sid}/runs", json={"prompt": "hi"}, headers=gateway.headers()
    )
    run_id = r.json()["run_id"]
    await http.get(f"/v1/sessions/{sid}/runs/{run_id}/wait", headers=gateway.headers())
    # A key in the wrong place is refused without being echoed.
    echoed = await http.post(
        "/v1/sessions",
        json={"agent_id": gateway.key_b, "nope": gateway.key_b},
        headers=gateway.headers(),
    )
    assert echoed.status_code == 422 and gateway.key_b not in echoed.text
    await http.get("/v1/sessions", headers=gateway.headers(gateway.key_b + "x"))
    events = await store.events(sid, 0, limit=1000)
    blob = caplog.text + "".join(e.model_dump_json() for e in events)
    assert events and "hello" in blob
    assert f"/v1/sessions/{sid}/runs" in caplog.text  # the access log was captured
    for name in ("uvicorn.access", "uvicorn.error", "asm.gateway"):
        logging.getLogger(name).removeHandler(caplog.handler)
    for key in (gateway.key_a, gateway.key_b):
        assert key not in blob
        assert key.split("_")[-1] not in blob
