"""``asm setup`` against a real, fresh Temporal server (no search attributes pre-registered).

The session's shared dev server is started *with* our search attributes, so these tests
start their own bare one from the same ``temporal`` binary.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from agent_session_manager.core import search_attributes
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.temporal import data_converter
from agent_session_manager.store._migrate import head_revision
from agent_session_manager.worker.dev_server import temporal_binary
from agent_session_manager.worker.setup import ensure_namespace, run_setup

EXPECTED = {
    "AsmSessionId": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "AsmAgentId": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "AsmProvider": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "AsmStatus": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "AsmTags": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "AsmTotalTokens": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "AsmCostMicros": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "AsmPendingApprovals": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "AsmTenant": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
async def bare_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server that knows none of our search attributes."""
    env = await WorkflowEnvironment.start_local(
        data_converter=data_converter,
        dev_server_existing_path=temporal_binary(),
        ui=False,
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


@pytest.fixture
def bare(bare_env: WorkflowEnvironment) -> Client:
    return bare_env.client


def fresh_namespace() -> str:
    return f"asm-setup-{uuid.uuid4().hex[:10]}"


async def registered(client: Client, namespace: str) -> dict[str, int]:
    resp = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    return {k: v for k, v in resp.custom_attributes.items() if k.startswith("Asm")}


def test_expected_attributes_are_the_contract() -> None:
    # design.md §3: the attributes asm setup registers are the dev server's, one list.
    assert {k.name: k.indexed_value_type for k in search_attributes.ALL} == EXPECTED


async def test_setup_registers_attributes_then_a_second_run_changes_nothing(
    bare: Client, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'asm.db'}"
    assert await registered(bare, "default") == {}

    first = await run_setup(bare, database_url=url, namespace="default")

    assert first.namespace_created is False
    assert first.attributes_added == sorted(EXPECTED)
    assert first.attributes_present == []
    assert first.store_revision_before is None
    assert first.store_revision == head_revision()
    assert first.changed
    assert await registered(bare, "default") == EXPECTED

    second = await run_setup(bare, database_url=url, namespace="default")

    assert second.attributes_added == []
    assert second.attributes_present == sorted(EXPECTED)
    assert second.store_revision_before == second.store_revision == head_revision()
    assert not second.changed
    assert second.lines()[-1] == "changed: nothing (already set up)"
    assert await registered(bare, "default") == EXPECTED


async def test_registered_attributes_work_for_a_session_start(bare: Client, tmp_path: Path) -> None:
    # Registration is only useful if Temporal accepts the attributes on a workflow start.
    namespace = fresh_namespace()
    url = f"sqlite+aiosqlite:///{tmp_path / 'asm.db'}"
    await run_setup(bare, database_url=url, namespace=namespace, create_namespace=True)
    client = Client(**{**bare.config(), "namespace": namespace})
    from temporalio.common import SearchAttributePair, TypedSearchAttributes

    handle = await client.start_workflow(
        "AgentSession",
        {"agent_id": "setup-check"},
        id=f"session-{uuid.uuid4().hex[:8]}",
        task_queue=f"tq-{uuid.uuid4().hex[:8]}",  # no worker: the start alone is the check
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(search_attributes.SESSION_ID, "x"),
                SearchAttributePair(search_attributes.TAGS, ["a", "b"]),
                SearchAttributePair(search_attributes.TOTAL_TOKENS, 3),
            ]
        ),
    )
    desc = await handle.describe()
    assert desc.typed_search_attributes.get(search_attributes.TAGS) == ["a", "b"]
    await handle.terminate("setup check done")


async def test_missing_namespace_is_reported_or_created_on_request(
    bare: Client, tmp_path: Path
) -> None:
    namespace = fresh_namespace()
    url = f"sqlite+aiosqlite:///{tmp_path / 'asm.db'}"
    with pytest.raises(AsmError) as info:
        await run_setup(bare, database_url=url, namespace=namespace)
    assert info.value.code == "validation_error"
    assert namespace in info.value.message and "--create-namespace" in info.value.message

    created = await run_setup(bare, database_url=url, namespace=namespace, create_namespace=True)
    assert created.namespace_created and created.attributes_added == sorted(EXPECTED)

    again = await run_setup(bare, database_url=url, namespace=namespace, create_namespace=True)
    assert not again.namespace_created and not again.changed


async def test_attribute_with_the_wrong_type_is_an_error_not_a_silent_change(
    bare: Client, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'asm.db'}"
    # A namespace where someone registered AsmStatus as Text before us.
    third = fresh_namespace()

    await ensure_namespace(bare, third, create=True)
    for _ in range(60):  # the new namespace reaches the operator service's cache
        try:
            await bare.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=third,
                    search_attributes={"AsmStatus": IndexedValueType.INDEXED_VALUE_TYPE_TEXT},
                )
            )
            break
        except Exception:
            await asyncio.sleep(0.5)
    with pytest.raises(AsmError) as info:
        await run_setup(bare, database_url=url, namespace=third)
    assert info.value.code == "validation_error"
    assert "AsmStatus is Text, needs Keyword" in info.value.message
    assert "AsmSessionId" not in await registered(bare, third), "nothing registered half-way"


def test_asm_setup_command_twice_exits_zero_and_says_nothing_changed(
    bare_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    namespace = fresh_namespace()
    env = {
        **os.environ,
        "ASM_TEMPORAL_ADDRESS": bare_env.client.service_client.config.target_host,
        "ASM_NAMESPACE": namespace,
        "ASM_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'asm.db'}",
    }
    main = "import sys; from agent_session_manager.cli import main; main(sys.argv[1:])"
    cmd = [sys.executable, "-c", main, "setup", "--create-namespace", "--json"]
    first = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout.strip().splitlines()[-1])
    assert report["namespace_created"] and report["search_attributes_added"] == sorted(EXPECTED)
    assert report["changed"] is True

    human = [sys.executable, "-c", main, "setup"]
    second = subprocess.run(human, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert f"namespace {namespace}: exists" in second.stdout
    assert "search attributes already registered: AsmAgentId" in second.stdout
    assert "changed: nothing (already set up)" in second.stdout
