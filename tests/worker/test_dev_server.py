"""The embedded Temporal server gets an environment without our telemetry settings, refuses a
busy port, and reports a server that dies at start with its own words."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

from agent_session_manager.core.errors import AsmError
from agent_session_manager.worker.dev_server import free_port, server_environ, start_dev_server
from agent_session_manager.worker.settings import SECRET_ENV_VARS

names = st.from_regex(r"[A-Z][A-Z0-9_]{0,20}", fullmatch=True)
values = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)


@given(st.dictionaries(names, values, max_size=12))
def test_server_environ_drops_exactly_otel_asm_and_provider_secrets(env: dict[str, str]) -> None:
    env = {**env, "OTEL_TRACES_EXPORTER": "console", "ASM_PROMETHEUS_BIND": "x", "PATH": "/bin"}
    child = server_environ(env)
    for key, value in env.items():
        ours = key.startswith(("OTEL_", "ASM_")) or key in SECRET_ENV_VARS
        assert (key in child) is not ours, key
        if not ours:
            assert child[key] == value


def _environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.decode().partition("=") for item in raw.split(b"\0") if item)
    return {k: v for k, _, v in pairs}


async def test_a_real_server_starts_without_our_telemetry_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `console` is what the Go server cannot do: inherited, it would exit at start.
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console")
    monkeypatch.setenv("ASM_PROMETHEUS_BIND", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("ASM_LOG_FORMAT", "json")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-never-for-the-server")
    server = await start_dev_server(home=str(tmp_path), ui=False)
    try:
        child = _environ_of(server.pid)
        await server.client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace="default")
        )
    finally:
        await server.shutdown()
    assert not [k for k in child if k.startswith(("OTEL_", "ASM_"))], sorted(child)
    assert "ANTHROPIC_API_KEY" not in child
    assert "PATH" in child
    assert (tmp_path / "temporal.db").is_file()
    assert (tmp_path / "temporal.log").is_file()
    with pytest.raises(ProcessLookupError):  # stopped and reaped
        os.kill(server.pid, 0)


async def test_a_busy_port_is_refused_before_starting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AsmError) as caught:
            await start_dev_server(home=None, port=port, ui=False)
    assert caught.value.code == "already_exists"
    assert f"127.0.0.1:{port} is already in use" in caught.value.message


async def test_a_server_that_exits_at_start_is_reported_with_its_log() -> None:
    with pytest.raises(AsmError) as caught:
        await start_dev_server(home=None, ui=False, extra_args=["--no-such-flag"])
    assert caught.value.code == "provider_unavailable"
    assert "exited (code" in caught.value.message
    assert "no-such-flag" in caught.value.message  # the server's own complaint
