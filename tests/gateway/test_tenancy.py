"""A key of tenant A gets 404 for every session of tenant B on every endpoint (enumerated from
the OpenAPI schema, so a new endpoint is covered without editing this test), and careless or
hostile requests (hypothesis: bodies, ids, headers, cursors) get 4xx JSON with a taxonomy
code: never a 500, never tenant B's data."""

from __future__ import annotations

import json
from typing import Any

import httpx2 as httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_session_manager.client import SessionClient
from agent_session_manager.core.errors import CODES
from tests.gateway.conftest import Served

#: Something only tenant B's session carries: no answer to tenant A may contain it.
SECRET = "tenant-b-secret-marker"
#: A body each endpoint accepts, so only tenancy can refuse the request.
BODIES: dict[tuple[str, str], Any] = {
    ("post", "/v1/sessions/{session_id}/runs"): {"prompt": "x"},
    ("post", "/v1/sessions/{session_id}/runs/{run_id}/approve"): {"digest": "sha256:" + "0" * 64},
    ("post", "/v1/sessions/{session_id}/runs/{run_id}/deny"): {"digest": "sha256:" + "0" * 64},
    ("post", "/v1/sessions/{session_id}/runs/{run_id}/tool-results"): {
        "call_id": "c",
        "output": "x",
    },
}


async def b_session(http: httpx.AsyncClient, gw: Served) -> tuple[str, str]:
    r = await http.post(
        "/v1/sessions",
        json={"agent_id": SECRET, "metadata": {"m": SECRET}},
        headers=gw.headers(gw.key_b),
    )
    assert r.status_code == 201, r.text
    sid = r.json()["session_id"]
    r = await http.post(
        f"/v1/sessions/{sid}/runs", json={"prompt": SECRET}, headers=gw.headers(gw.key_b)
    )
    assert r.status_code == 202, r.text
    return sid, r.json()["run_id"]


def session_endpoints(schema: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method, path)
        for path, item in schema["paths"].items()
        if "{session_id}" in path
        for method in item
    ]


async def test_every_session_endpoint_answers_404_for_another_tenants_session(
    gateway: Served, http: httpx.AsyncClient
) -> None:
    sid, run_id = await b_session(http, gateway)
    schema = (await http.get("/openapi.json")).json()
    endpoints = session_endpoints(schema)
    # The schema lists what the gateway serves; these must be among them.
    assert ("get", "/v1/sessions/{session_id}/events") in endpoints
    assert ("post", "/v1/sessions/{session_id}/runs/{run_id}/cancel") in endpoints
    assert len(endpoints) >= 10
    for method, template in endpoints:
        for owner_sid in (sid, "ses_doesnotexist", "../" + sid, "x" * 300):
            path = template.replace("{session_id}", owner_sid).replace("{run_id}", run_id)
            r = await http.request(
                method.upper(),
                path,
                json=BODIES.get((method, template)),
                headers=gateway.headers(gateway.key_a),
            )
            assert r.status_code == 404, (method, path, r.status_code, r.text)
            assert r.json()["error"]["code"] in ("session_not_found", "not_found"), r.text
            assert SECRET not in r.text and run_id not in r.text
    # Tenant B itself reaches its session: the 404s were about tenancy, not the ids.
    ok = await http.get(f"/v1/sessions/{sid}/runs/{run_id}", headers=gateway.headers(gateway.key_b))
    assert ok.status_code == 200
    listed = await http.get("/v1/sessions", params={"limit": 1000}, headers=gateway.headers())
    assert sid not in listed.text and SECRET not in listed.text


async def test_a_session_started_from_python_is_its_tenants_on_the_gateway(
    gateway: Served, http: httpx.AsyncClient, client: SessionClient
) -> None:
    # Not through the gateway: SessionClient.start_session(tenant=...) from Python, on the
    # same store. Its claim records the tenant, so tenant A's keys reach it, B's do not.
    view = await client.start_session(agent_id="from-python", tenant="tenant-a")
    sid = view.session_id
    run = await client.submit_run(sid, "hello")
    mine = await http.get(f"/v1/sessions/{sid}", headers=gateway.headers(gateway.key_a))
    assert mine.status_code == 200, mine.text
    assert mine.json()["session_id"] == sid
    runs = await http.get(f"/v1/sessions/{sid}/runs/{run.run_id}", headers=gateway.headers())
    assert runs.status_code == 200, runs.text
    page = await http.get(f"/v1/sessions/{sid}/events/page", headers=gateway.headers())
    assert page.status_code == 200 and page.json()["events"], page.text
    assert page.json()["events"][0]["type"] == "session_created"
    for path in (
        f"/v1/sessions/{sid}",
        f"/v1/sessions/{sid}/runs/{run.run_id}",
        f"/v1/sessions/{sid}/events/page",
        f"/v1/sessions/{sid}/events",
    ):
        r = await http.get(path, headers=gateway.headers(gateway.key_b))
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"]["code"] in ("session_not_found", "not_found"), r.text
        assert "from-python" not in r.text
    # A session started from Python without a tenant is no gateway key's.
    bare = (await client.start_session(agent_id="no-tenant")).session_id
    for key in (gateway.key_a, gateway.key_b):
        r = await http.get(f"/v1/sessions/{bare}", headers=gateway.headers(key))
        assert r.status_code == 404, r.text


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["agent_id", "prompt", "mock", "tags", "provider", "reason", "session_id", "x"]
            )
            | st.text(max_size=10),
            children,
            max_size=5,
        )
    ),
    max_leaves=12,
)
# Header values as a client library sends them: printable ASCII, no surrounding whitespace
# (h11 refuses to send anything else).
_ascii = (
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=300)
    .map(str.strip)
    .filter(bool)
)
_segment = st.one_of(
    st.text(
        st.characters(whitelist_categories=("L", "N"), whitelist_characters="_-.:~%"),
        min_size=1,
        max_size=300,
    ),
    st.just("ses_" + "0" * 32),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.data(),
    body=st.one_of(_json, st.binary(max_size=2000)),
    segment=_segment,
    last_event_id=st.none() | _ascii,
    auth=st.sampled_from(["a", "none", "garbage"]),
)
async def test_hostile_requests_get_typed_4xx_json_never_500_or_other_tenants_data(
    gateway: Served,
    http: httpx.AsyncClient,
    data: st.DataObject,
    body: Any,
    segment: str,
    last_event_id: str | None,
    auth: str,
) -> None:
    if not hasattr(gateway, "_b"):
        gateway._b = await b_session(http, gateway)  # type: ignore[attr-defined]
    sid_b, run_b = gateway._b  # type: ignore[attr-defined]
    target = data.draw(st.sampled_from([segment, sid_b]))
    method, path = data.draw(
        st.sampled_from(
            [
                ("POST", "/v1/sessions"),
                ("GET", "/v1/sessions"),
                ("GET", f"/v1/sessions/{target}"),
                ("POST", f"/v1/sessions/{target}/runs"),
                ("GET", f"/v1/sessions/{target}/runs/{run_b}"),
                ("POST", f"/v1/sessions/{target}/runs/{segment}/cancel"),
                ("GET", f"/v1/sessions/{target}/events/page?after={segment}"),
                ("GET", f"/v1/sessions/{target}/events?after={segment}"),
                ("POST", f"/v1/sessions/{target}/complete"),
                ("POST", "/v1/login"),
            ]
        )
    )
    headers = {
        "a": gateway.headers(gateway.key_a),
        "none": {},
        "garbage": {"Authorization": data.draw(_ascii)},
    }[auth]
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers["content-type"] = "application/json"
    async with http.stream(method, path, content=content, headers=headers) as r:
        if r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"):
            raise AssertionError(f"tenant A streamed {path}")  # B's id or a made-up one
        text = (await r.aread()).decode()
    assert r.status_code < 500, (method, path, r.status_code, text)
    assert SECRET not in text
    if r.status_code >= 400:
        err = json.loads(text)["error"]
        assert err["code"] in CODES
        assert err["message"]
