"""The Temporal UI shows a cancelled session and a cancelled run as CANCELED, with the reason.

A dev server with its Web UI runs for this module; a session is cancelled with a reason
(``cancel_session``: the ``cancel`` signal), a run of another session with ``cancel_run`` and
a reason. The test asserts on the data the UI is built from (``temporal workflow describe`` and
``temporal workflow show``, ``-o json``), then opens each workflow's page in headless Chromium,
expands the cancel request in its event history and saves a screenshot (under the test's
``tmp_path``) after checking the page says CANCELED and gives the reason.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import (
    MockScript,
    MockText,
    run_workflow_id,
    session_workflow_id,
)
from agent_session_manager.core.status import RunStatus, SessionStatus
from agent_session_manager.store import EventStore
from agent_session_manager.worker.dev_server import (
    DevServer,
    free_port,
    start_dev_server,
    temporal_binary,
)
from agent_session_manager.worker.worker import serve

SLOW = MockScript(steps=[MockText(text="s" * 400, chunk_size=1, delay_ms=20)])
SESSION_REASON = "user walked away"
RUN_REASON = "changed my mind"

#: A hang guard for the UI to load and render a page, not a performance claim.
PAGE_TIMEOUT_SECONDS = 90


@pytest.fixture
async def ui_server() -> AsyncIterator[tuple[DevServer, str]]:
    """A dev server with its Web UI (the session's shared one is headless); its UI's URL."""
    ui_port = free_port()
    server = await start_dev_server(home=None, ui=True, ui_port=ui_port)
    try:
        yield server, f"http://127.0.0.1:{ui_port}"
    finally:
        await server.shutdown()


def temporal_json(address: str, *args: str) -> Any:
    """``temporal <args> -o json`` against ``address``: what the UI's API answers."""
    out = subprocess.run(
        [temporal_binary(), *args, "-o", "json", "--address", address],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


def cancel_causes(history: dict[str, Any]) -> list[str]:
    return [
        e["workflowExecutionCancelRequestedEventAttributes"].get("cause", "")
        for e in history["events"]
        if "workflowExecutionCancelRequestedEventAttributes" in e
    ]


def page_text(driver: Any, url: str, must_contain: str) -> str:
    """Open ``url`` and wait until the rendered page contains ``must_contain``; its text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, PAGE_TIMEOUT_SECONDS).until(
        lambda d: must_contain in d.find_element(By.TAG_NAME, "body").text
    )
    return str(driver.find_element(By.TAG_NAME, "body").text)


def expand_cancel_request(driver: Any, reason: str) -> str:
    """Open the history's cancel-request row; the page's text once it shows ``reason``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    row = driver.find_element(
        By.XPATH, "//*[normalize-space(text())='Workflow Execution Cancel Requested']"
    )
    # A script click: the UI's sticky footer can sit over the row at this window size.
    driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", row
    )
    WebDriverWait(driver, PAGE_TIMEOUT_SECONDS).until(
        lambda d: reason in d.find_element(By.TAG_NAME, "body").text
    )
    return str(driver.find_element(By.TAG_NAME, "body").text)


async def test_cancelled_session_and_run_read_canceled_with_their_reasons_in_the_ui(
    ui_server: tuple[DevServer, str], store: EventStore, chromium: Any, tmp_path: Path
) -> None:
    server, ui_url = ui_server
    address = server.address
    queue = f"ui-{uuid.uuid4().hex[:8]}"
    async with serve(server.client, store, task_queue=queue, secrets={}):
        client = SessionClient(server.client, store, task_queue=queue)
        # A run cancelled with a reason, in a session that goes on.
        kept = (await client.start_session(agent_id="ui-truth", mock=SLOW)).session_id
        ref = await client.submit_run(kept, "take your time")
        async for _ in client.stream_text(kept, ref.run_id):
            break
        await client.cancel_run(kept, ref.run_id, reason=RUN_REASON)
        run = await client.wait_run(ref.run_id, kept)
        # A session cancelled with a reason.
        gone = (await client.start_session(agent_id="ui-truth")).session_id
        await client.cancel_session(gone, SESSION_REASON)
        summary = await client.result(gone)
        assert run.status is RunStatus.CANCELLED and summary.status is SessionStatus.CANCELLED

        pages = {
            session_workflow_id(gone): SESSION_REASON,
            run_workflow_id(ref.run_id): RUN_REASON,
        }
        for workflow_id, reason in pages.items():
            described = await asyncio.to_thread(
                temporal_json, address, "workflow", "describe", "-w", workflow_id
            )
            info = described["workflowExecutionInfo"]
            assert info["status"] == "WORKFLOW_EXECUTION_STATUS_CANCELED", info
            assert "workflowExecutionCanceledEventAttributes" in described["closeEvent"]
            history = await asyncio.to_thread(
                temporal_json, address, "workflow", "show", "-w", workflow_id
            )
            [cause] = cancel_causes(history)
            assert cause.endswith(reason), cause  # a run's is worded "… with reason: <reason>"

            run_id = info["execution"]["runId"]
            url = f"{ui_url}/namespaces/default/workflows/{workflow_id}/{run_id}/history"
            text = await asyncio.to_thread(
                page_text, chromium, url, "Workflow Execution Cancel Requested"
            )
            assert "CANCELED" in text and workflow_id in text
            text = await asyncio.to_thread(expand_cancel_request, chromium, reason)
            assert reason in text
            shot = tmp_path / f"{workflow_id}.png"
            assert chromium.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
