"""A worker's Temporal connection: our data converter, and a clear error when nobody answers."""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.temporal import data_converter
from agent_session_manager.worker.connect import connect_temporal, connect_when_ready
from agent_session_manager.worker.dev_server import free_port


async def test_connected_clients_use_our_data_converter(env: WorkflowEnvironment) -> None:
    address = env.client.service_client.config.target_host
    client = await connect_when_ready(address, "default")
    assert client.data_converter.payload_converter_class is (data_converter.payload_converter_class)
    assert client.namespace == "default"


async def test_unreachable_server_is_temporal_unavailable_with_what_to_do() -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(AsmError) as info:
        await connect_temporal(address, "default")
    assert info.value.code == "temporal_unavailable"
    assert info.value.retryable
    assert "asm dev" in info.value.message and address in info.value.message


async def test_waiting_gives_up_after_the_deadline() -> None:
    with pytest.raises(AsmError):
        await connect_when_ready(f"127.0.0.1:{free_port()}", "default", wait=0.5)
