"""The web view in a real headless Chromium (Debian's, through its chromedriver): sign in,
create a session, submit a prompt, see tokens before the run completes, lose the stream twice
mid-run (the page's EventSource closed and reopened; the gateway process restarted) and find
the transcript whole, with no duplicate or missing text; cancel a run from its button; approve
an ``ask``-policy tool from its button and see the run complete with its cost.

Selenium calls block, and the gateway under test runs on this test's event loop: every
browser call goes through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2 as httpx
import pytest

from agent_session_manager.client import SessionClient
from agent_session_manager.core.contract import MockScript, MockText, MockToolUse
from agent_session_manager.core.prices import default_prices, parse_prices
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.gateway import GatewaySettings
from agent_session_manager.store import EventStore
from tests.gateway.conftest import serving
from tests.workflows.test_agent_loop import CALLS, TOOLS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

TEXT = (
    "Streaming arrives token by token. The page shows each piece as it comes, "
    "and when the connection drops it resumes from the last event it saw, "
    "so this sentence reads exactly once, with nothing lost and nothing repeated."
)
# ~12 s of streaming (3 characters per 60 ms): time enough to drop the stream twice.
STREAM = MockScript(steps=[MockText(text=TEXT, chunk_size=3, delay_ms=60)])
NOTE_JS = "return [...document.querySelectorAll('.note')].some(n => n.textContent === '%s')"
FOREVER = MockScript(steps=[MockText(text="never ending " * 40, chunk_size=2, delay_ms=100)])


@pytest.fixture
def driver() -> Iterator[Any]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("browser test needs Debian's chromium and chromedriver (apt: chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield d
    finally:
        d.quit()


async def call(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


async def until(driver: Any, script: str, what: str, seconds: float = 60.0, *args: Any) -> Any:
    """Poll ``script`` in the page until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        value = await call(driver.execute_script, script, *args)
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def restartable(
    client: SessionClient, store: EventStore, settings: GatewaySettings
) -> AsyncIterator[Callable[[], Any]]:
    """A gateway whose process-equivalent can be restarted on the same port."""
    stack = contextlib.AsyncExitStack()
    url, _ = await stack.enter_async_context(serving(client, store, settings))
    port = int(url.rsplit(":", 1)[1])
    state = {"stack": stack, "url": url}

    async def restart() -> None:
        await state["stack"].aclose()  # type: ignore[attr-defined]
        fresh = contextlib.AsyncExitStack()
        await fresh.enter_async_context(serving(client, store, settings, port=port))
        state["stack"] = fresh

    restart.url = url  # type: ignore[attr-defined]
    try:
        yield restart
    finally:
        await state["stack"].aclose()  # type: ignore[attr-defined]


async def test_web_view_streams_resumes_and_cancels(
    driver: Any, run_worker: Callable[..., Any], client: SessionClient, store: EventStore
) -> None:
    from selenium.webdriver.common.by import By

    _, key = await store.create_api_key("tenant-web", "browser")
    settings = GatewaySettings(rate_per_second=500, rate_burst=500, keepalive_seconds=2)
    async with run_worker(), restartable(client, store, settings) as restart:
        base = restart.url  # type: ignore[attr-defined]
        await call(driver.get, f"{base}/ui/")
        await until(driver, "return !document.getElementById('login').hidden", "login form")
        await call(driver.find_element(By.ID, "key").send_keys, key)
        await call(driver.find_element(By.CSS_SELECTOR, "#login-form button").click)
        await until(driver, "return !document.getElementById('list').hidden", "session list")
        assert key not in await call(lambda: driver.page_source)

        await call(driver.find_element(By.ID, "create").click)
        sid = await until(
            driver, "return document.getElementById('sid').textContent", "the session page"
        )
        await until(driver, "return document.getElementById('status').textContent", "status")

        # A prompt whose reply streams for a few seconds.
        await call(driver.find_element(By.ID, "prompt").send_keys, "tell me about streams")
        await call(
            driver.execute_script,
            "document.getElementById('options').value = arguments[0]",
            json.dumps({"mock": STREAM.model_dump()}),
        )
        await call(driver.find_element(By.ID, "send").click)
        run_id = await until(
            driver,
            "const b = document.querySelector('#transcript .turn'); return b && b.dataset.run",
            "the run's block",
        )
        text_js = "return window.asmView.text(arguments[0])"
        partial = await until(driver, text_js, "first tokens", 60, run_id)
        row = await store.get_run(run_id)
        assert row is not None and not row.status.is_terminal, "tokens only after completion"
        assert 0 < len(partial) < len(TEXT) and TEXT.startswith(partial)

        # Drop 1: the page closes its EventSource and opens a new one from its last seq.
        await until(
            driver,
            f"return window.asmView.text(arguments[0]).length > {len(partial) + 6}",
            "more tokens",
            60,
            run_id,
        )
        await call(driver.execute_script, "window.asmView.es.close(); window.asmView.reconnect()")
        # Drop 2: the gateway process goes away mid-stream and comes back on the same port;
        # the browser's EventSource reconnects by itself with Last-Event-ID.
        before = await call(driver.execute_script, text_js, run_id)
        await until(
            driver,
            f"return window.asmView.text(arguments[0]).length > {len(before) + 6}",
            "tokens after reconnect",
            60,
            run_id,
        )
        mid = await call(driver.execute_script, text_js, run_id)
        assert len(mid) < len(TEXT), "the run finished before the restart: slow the script"
        await restart()
        await until(
            driver,
            NOTE_JS % "run completed",
            "run completed",
            90,
        )
        final = await call(driver.execute_script, text_js, run_id)
        assert final == TEXT  # nothing missing, nothing twice
        stored = "".join(
            e.data["text"]
            for e in await store.events(sid, 0, run_id=run_id, types=["message_streamed"])
        )
        assert stored == TEXT
        # Events of the run can follow run_completed (the page showed that one already): the
        # page reaches the store's last one.
        last = (await store.events(sid, 0, run_id=run_id))[-1].seq
        await until(driver, f"return window.asmView.lastSeq >= {last}", "the last event", 30)

        # Cancel a run from its button.
        await call(driver.find_element(By.ID, "prompt").send_keys, "go on forever")
        await call(
            driver.execute_script,
            "document.getElementById('options').value = arguments[0]",
            json.dumps({"mock": FOREVER.model_dump()}),
        )
        await call(driver.find_element(By.ID, "send").click)
        button = await until(
            driver, "return document.querySelector('button.cancel-run')", "a cancel button", 60
        )
        await until(
            driver,
            "const r = [...window.asmView.runs.values()];"
            "return r.length === 2 && r[1].text.textContent.length > 0",
            "second run's tokens",
            60,
        )
        await call(button.click)
        await until(
            driver,
            NOTE_JS % "run cancelled",
            "run cancelled",
            60,
        )
        await until(
            driver,
            "const s = [...document.querySelectorAll('#runs .run-status')];"
            "return s.map(e => e.textContent).join() === 'completed,cancelled'",
            "run statuses in the table",
            30,
        )


async def test_web_view_approves_a_tool_and_shows_the_runs_cost(
    driver: Any, run_worker: Callable[..., Any], client: SessionClient, store: EventStore
) -> None:
    """A run whose model asks for an ``ask``-policy tool: the page shows the approval with its
    buttons, clicking Approve lets the tool run and the run complete, and the runs table shows
    what the ledger billed."""
    from selenium.webdriver.common.by import By

    CALLS.clear()
    _, key = await store.create_api_key("tenant-web", "browser")
    settings = GatewaySettings(rate_per_second=500, rate_burst=500, keepalive_seconds=2)
    # The mock model priced for this test: 1 input token = 2 micro-dollars.
    prices = default_prices().merged(
        parse_prices('{"version": "t", "models": {"mock-1": {"input": "2", "output": "0"}}}', "t")
    )
    usage = TokenUsage(input_tokens=1000)
    script = MockScript(
        steps=[MockToolUse(name="delete", input={"path": "/tmp/old"})],
        stop_reason="tool_use",
        usage=usage,
        after_tools=[MockScript(steps=[MockText(text="deleted /tmp/old")], usage=usage)],
    )
    async with (
        run_worker(tools=TOOLS, prices=prices),
        restartable(client, store, settings) as restart,
    ):
        base = restart.url  # type: ignore[attr-defined]
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            r = await http.post(
                "/v1/sessions",
                json={"agent_id": "web-tools", "model": "mock-1", "tools": ["delete"]},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert r.status_code == 201, r.text
            sid = r.json()["session_id"]
        await call(driver.get, f"{base}/ui/")
        await until(driver, "return !document.getElementById('login').hidden", "login form")
        await call(driver.find_element(By.ID, "key").send_keys, key)
        await call(driver.find_element(By.CSS_SELECTOR, "#login-form button").click)
        await until(driver, "return !document.getElementById('list').hidden", "session list")
        await call(driver.get, f"{base}/ui/#/s/{sid}")
        await until(
            driver,
            "return document.getElementById('sid').textContent === arguments[0]",
            "page",
            60,
            sid,
        )
        await call(driver.find_element(By.ID, "prompt").send_keys, "clean up /tmp/old")
        await call(
            driver.execute_script,
            "document.getElementById('options').value = arguments[0]",
            json.dumps({"mock": script.model_dump(mode="json")}),
        )
        await call(driver.find_element(By.ID, "send").click)
        button = await until(
            driver,
            "return document.querySelector('.approval.pending button.approve-tool')",
            "the approval's Approve button",
            60,
        )
        what = await call(
            driver.execute_script,
            "return document.querySelector('.approval.pending .approval-what').textContent",
        )
        assert "delete" in what
        assert CALLS == []  # waiting for the human
        await call(button.click)
        await until(driver, NOTE_JS % "run completed", "run completed", 60)
        assert CALLS == ["delete {'path': '/tmp/old'}"]
        await until(
            driver,
            "return !document.querySelector('.approval.pending') && "
            "document.querySelector('.approval-decided').textContent.includes('granted')",
            "the approval settled as granted",
            30,
        )
        rows = await store.ledger(session_id=sid)
        assert [(r.step, r.outcome) for r in rows] == [(1, "completed"), (2, "completed")]
        billed = sum(r.cost_micros or 0 for r in rows)
        assert billed == 2 * 1000 * 2
        shown = await until(
            driver,
            "const c = document.querySelector('#runs .run-cost');"
            "return c && c.dataset.micros !== '0' && c.dataset.micros",
            "the run's cost in the table",
            30,
        )
        assert int(shown) == billed
        assert (
            await call(
                driver.execute_script,
                "return document.querySelector('#runs .run-cost').textContent",
            )
            == "$0.004000"
        )
