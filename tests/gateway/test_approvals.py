"""The agent loop over HTTP: pending approvals listed, approve / deny by digest, client-side
tool results, each through the public ``SessionClient`` API behind the gateway's tenancy check,
and every refusal a typed JSON error (hypothesis: malformed digests, call ids, other tenants'
ids — never a 500, never an effect).

A real uvicorn, Temporal dev server, worker (with the tools of
:mod:`tests.workflows.test_agent_loop`) and SQLite store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2 as httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_session_manager.client import SessionClient
from agent_session_manager.core.contract import MockScript, MockText, MockToolUse
from agent_session_manager.core.errors import CODES
from agent_session_manager.core.events import EventType
from agent_session_manager.core.tools import ToolSpec
from agent_session_manager.gateway import GatewaySettings
from agent_session_manager.gateway.errors import HTTP_STATUS
from agent_session_manager.store import EventStore
from tests.gateway.conftest import Served, serving
from tests.workflows.test_agent_loop import CALLS, TOOLS


@pytest.fixture
async def gateway(
    run_worker: Callable[..., Any], client: SessionClient, store: EventStore
) -> AsyncIterator[Served]:
    """A worker with the agent-loop test tools, and a gateway."""
    _, key_a = await store.create_api_key("tenant-a", "test")
    _, key_b = await store.create_api_key("tenant-b", "test")
    settings = GatewaySettings(rate_per_second=1000, rate_burst=1000, keepalive_seconds=1.0)
    async with run_worker(tools=TOOLS), serving(client, store, settings) as (url, server):
        yield Served(url=url, key_a=key_a, key_b=key_b, server=server)


@pytest.fixture
async def http(gateway: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as c:
        yield c


def asks(path: str, then: str = "done") -> dict[str, Any]:
    """A mock run asking for the ``ask``-policy ``delete`` tool, then answering ``then``."""
    return MockScript(
        steps=[MockToolUse(name="delete", input={"path": path})],
        stop_reason="tool_use",
        after_tools=[MockScript(steps=[MockText(text=then)])],
    ).model_dump(mode="json")


async def session(http: httpx.AsyncClient, key: str, **fields: Any) -> str:
    r = await http.post(
        "/v1/sessions",
        json={"agent_id": "approvals", **fields},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["session_id"])


async def pending_run(
    http: httpx.AsyncClient, key: str, sid: str, path: str = "/tmp/x"
) -> tuple[str, dict[str, Any]]:
    """Submit a run asking for ``delete`` and wait until its approval is listed."""
    h = {"Authorization": f"Bearer {key}"}
    r = await http.post(
        f"/v1/sessions/{sid}/runs", json={"prompt": "rm", "mock": asks(path)}, headers=h
    )
    assert r.status_code == 202, r.text
    run_id = r.json()["run_id"]
    for _ in range(400):
        r = await http.get(f"/v1/sessions/{sid}/runs/{run_id}/approvals", headers=h)
        if r.status_code == 200 and r.json()["approvals"]:
            (pending,) = r.json()["approvals"]
            return run_id, pending
        await asyncio.sleep(0.05)
    raise AssertionError(f"no approval listed: {r.status_code} {r.text}")


def test_the_agent_loops_codes_answer_with_their_statuses() -> None:
    # Completeness of the map is test_api's check; these are the statuses clients act on.
    assert HTTP_STATUS["approval_already_resolved"] == 409
    assert HTTP_STATUS["approval_not_found"] == 404
    assert HTTP_STATUS["tool_call_not_found"] == 404
    assert HTTP_STATUS["tool_result_already_submitted"] == 409


async def test_approve_over_http_takes_effect_once_and_the_run_completes(
    gateway: Served, http: httpx.AsyncClient, store: EventStore
) -> None:
    CALLS.clear()
    h = gateway.headers()
    sid = await session(http, gateway.key_a, tools=["delete"])
    run_id, pending = await pending_run(http, gateway.key_a, sid)
    assert pending["tool"] == "delete" and pending["run_id"] == run_id
    listed = (await http.get(f"/v1/sessions/{sid}/approvals", headers=h)).json()["approvals"]
    assert [a["digest"] for a in listed] == [pending["digest"]]
    progress = (await http.get(f"/v1/sessions/{sid}/runs/{run_id}/progress", headers=h)).json()
    assert progress["phase"] == "awaiting_approval"
    # Another tenant cannot see or decide it: B's key answers 404 for A's session.
    hb = gateway.headers(gateway.key_b)
    for method, url, body in (
        ("GET", f"/v1/sessions/{sid}/approvals", None),
        ("POST", f"/v1/sessions/{sid}/runs/{run_id}/approve", {"digest": pending["digest"]}),
        ("POST", f"/v1/sessions/{sid}/runs/{run_id}/deny", {"digest": pending["digest"]}),
    ):
        r = await http.request(method, url, json=body, headers=hb)
        assert r.status_code == 404 and r.json()["error"]["code"] == "session_not_found", r.text
    # B's own session with A's run id: run_not_found, the run is untouched.
    sid_b = await session(http, gateway.key_b)
    r = await http.post(
        f"/v1/sessions/{sid_b}/runs/{run_id}/approve",
        json={"digest": pending["digest"]},
        headers=hb,
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "run_not_found", r.text
    # A digest for other arguments, with the call id: a mismatch, nothing happens.
    other = "sha256:" + "1" * 64
    r = await http.post(
        f"/v1/sessions/{sid}/runs/{run_id}/approve",
        json={"digest": other, "call_id": pending["call_id"]},
        headers=h,
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "approval_mismatch", r.text
    r = await http.post(
        f"/v1/sessions/{sid}/runs/{run_id}/approve", json={"digest": other}, headers=h
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "approval_not_found", r.text
    assert CALLS == []
    # Two concurrent approvals: one takes effect, the other is 409 approval_already_resolved.
    body = {"digest": pending["digest"], "call_id": pending["call_id"], "reason": "ok"}
    one, two = await asyncio.gather(
        http.post(f"/v1/sessions/{sid}/runs/{run_id}/approve", json=body, headers=h),
        http.post(f"/v1/sessions/{sid}/runs/{run_id}/deny", json=body, headers=h),
    )
    codes = sorted([one.status_code, two.status_code])
    assert codes == [200, 409], (one.text, two.text)
    loser = one if one.status_code == 409 else two
    assert loser.json()["error"]["code"] == "approval_already_resolved"
    winner = (one if one.status_code == 200 else two).json()
    r = await http.get(f"/v1/sessions/{sid}/runs/{run_id}/wait?timeout=30", headers=h)
    assert r.status_code == 200 and r.json()["done"], r.text
    assert r.json()["result"]["status"] == "completed"
    assert CALLS == (["delete {'path': '/tmp/x'}"] if winner["decision"] == "granted" else [])
    # The decision names the deciding key (never the key itself) in the run's events.
    events = await store.events(sid, run_id=run_id, limit=1000)
    decided = [
        e
        for e in events
        if e.type in (EventType.TOOL_APPROVAL_GRANTED, EventType.TOOL_APPROVAL_DENIED)
    ]
    assert len(decided) == 1
    assert gateway.key_a not in json.dumps([e.data for e in events])
    # After the end: still already resolved, never a 500.
    r = await http.post(f"/v1/sessions/{sid}/runs/{run_id}/approve", json=body, headers=h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "approval_already_resolved"
    assert (await http.get(f"/v1/sessions/{sid}/approvals", headers=h)).json()["approvals"] == []


async def test_deny_over_http_tells_the_model(gateway: Served, http: httpx.AsyncClient) -> None:
    CALLS.clear()
    h = gateway.headers()
    sid = await session(http, gateway.key_a, tools=["delete"])
    run_id, pending = await pending_run(http, gateway.key_a, sid, "/etc/passwd")
    r = await http.post(
        f"/v1/sessions/{sid}/runs/{run_id}/deny",
        json={"digest": pending["digest"], "reason": "no"},
        headers=h,
    )
    assert r.status_code == 200 and r.json()["decision"] == "denied", r.text
    r = await http.get(f"/v1/sessions/{sid}/runs/{run_id}/wait?timeout=30", headers=h)
    assert r.json()["result"]["status"] == "completed" and CALLS == []


async def test_a_client_side_tool_result_over_http(
    gateway: Served, http: httpx.AsyncClient
) -> None:
    h = gateway.headers()
    lookup = ToolSpec(name="lookup", executor="client").model_dump(mode="json")
    sid = await session(http, gateway.key_a, client_tools=[lookup])
    script = MockScript(
        steps=[MockToolUse(name="lookup", input={"q": "x"})],
        stop_reason="tool_use",
        after_tools=[MockScript(steps=[MockText(text="found it")])],
    ).model_dump(mode="json")
    r = await http.post(
        f"/v1/sessions/{sid}/runs", json={"prompt": "look", "mock": script}, headers=h
    )
    run_id = r.json()["run_id"]
    progress: dict[str, Any] = {}
    for _ in range(400):
        progress = (await http.get(f"/v1/sessions/{sid}/runs/{run_id}/progress", headers=h)).json()
        if progress.get("phase") == "awaiting_tool_result":
            break
        await asyncio.sleep(0.05)
    (call,) = progress["pending_tool_calls"]
    url = f"/v1/sessions/{sid}/runs/{run_id}/tool-results"
    r = await http.post(url, json={"call_id": "not-a-call", "output": "x"}, headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "tool_call_not_found", r.text
    r = await http.post(
        url,
        json={"call_id": call["call_id"], "output": "x"},
        headers=gateway.headers(gateway.key_b),
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "session_not_found"
    r = await http.post(url, json={"call_id": call["call_id"], "output": "42"}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "completed", r.text
    again = await http.post(url, json={"call_id": call["call_id"], "output": "43"}, headers=h)
    # While the run goes on: already submitted; once it ended: it takes no more results.
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] in ("tool_result_already_submitted", "invalid_transition")
    assert "session None" not in again.text
    r = await http.get(f"/v1/sessions/{sid}/runs/{run_id}/wait?timeout=30", headers=h)
    assert r.json()["result"]["output"] == "found it"


async def test_a_tenant_tag_of_another_tenant_is_refused(
    gateway: Served, http: httpx.AsyncClient
) -> None:
    r = await http.post(
        "/v1/sessions",
        json={"agent_id": "x", "tags": ["tenant:tenant-b"]},
        headers=gateway.headers(),
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", r.text
    assert r.json()["error"]["details"]["field"] == "tenant"
    # Its own tenant's tag is fine (and the same as giving none).
    ok = await http.post(
        "/v1/sessions",
        json={"agent_id": "x", "tags": ["tenant:tenant-a"]},
        headers=gateway.headers(),
    )
    assert ok.status_code == 201, ok.text


_digest = st.one_of(
    st.just("sha256:" + "0" * 64),
    st.text(max_size=80),
    st.text("0123456789abcdef", min_size=60, max_size=70).map(lambda h: "sha256:" + h),
    st.integers(),
    st.none(),
    st.lists(st.text(max_size=5), max_size=3),
)
_body = st.one_of(
    st.fixed_dictionaries(
        {"digest": _digest},
        optional={
            "call_id": st.one_of(st.text(max_size=300), st.none(), st.integers()),
            "reason": st.one_of(st.text(max_size=50), st.just("r" * 5000), st.none()),
            "output": st.one_of(st.text(max_size=50), st.integers()),
            "is_error": st.one_of(st.booleans(), st.text(max_size=3)),
            "by": st.text(max_size=10),
        },
    ),
    st.fixed_dictionaries(
        {"call_id": st.one_of(st.text(max_size=300), st.none())},
        optional={"output": st.one_of(st.text(max_size=50), st.just("o" * 300_000))},
    ),
    st.just([]),
    st.none(),
)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), body=_body)
async def test_hostile_decisions_and_results_are_typed_4xx_and_take_no_effect(
    gateway: Served, http: httpx.AsyncClient, data: st.DataObject, body: Any
) -> None:
    if not hasattr(gateway, "_pending"):
        CALLS.clear()
        sid_a = await session(http, gateway.key_a, tools=["delete"])
        run_a, pending = await pending_run(http, gateway.key_a, sid_a)
        sid_b = await session(http, gateway.key_b, tools=["delete"])
        run_b, pending_b = await pending_run(http, gateway.key_b, sid_b)
        gateway._pending = (sid_a, run_a, pending, sid_b, run_b, pending_b)  # type: ignore[attr-defined]
    sid_a, run_a, pending, sid_b, run_b, pending_b = gateway._pending  # type: ignore[attr-defined]
    sid = data.draw(st.sampled_from([sid_a, sid_b, "ses_" + "0" * 32]))
    run = data.draw(st.sampled_from([run_a, run_b, "run_" + "0" * 32, "../x"]))
    verb = data.draw(st.sampled_from(["approve", "deny", "tool-results"]))
    if isinstance(body, dict) and data.draw(st.booleans()):
        body = body | {"digest": pending_b["digest"]}  # B's real digest, asked of A's key
    r = await http.post(
        f"/v1/sessions/{sid}/runs/{run}/{verb}", json=body, headers=gateway.headers()
    )
    assert 400 <= r.status_code < 500, (verb, sid, run, body, r.status_code, r.text)
    err = r.json()["error"]
    assert err["code"] in CODES and err["message"]
    if not (isinstance(body, dict) and body.get("digest") == pending_b["digest"]):
        assert pending_b["digest"] not in r.text  # nothing of B's leaks
    # No hostile request decided anything: both approvals still wait.
    for s, rid, key in ((sid_a, run_a, gateway.key_a), (sid_b, run_b, gateway.key_b)):
        got = await http.get(f"/v1/sessions/{s}/runs/{rid}/approvals", headers=gateway.headers(key))
        assert len(got.json()["approvals"]) == 1, got.text
    assert CALLS == []
