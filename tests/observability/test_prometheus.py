"""The Temporal SDK's Prometheus endpoint is served only when ASM_PROMETHEUS_BIND asks."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from agent_session_manager.core.errors import AsmError
from agent_session_manager.observability import prometheus
from agent_session_manager.worker.dev_server import free_port


def test_prometheus_runtime_only_when_asked() -> None:
    assert prometheus.temporal_runtime({}) is None
    bind = f"127.0.0.1:{free_port()}"
    runtime = prometheus.temporal_runtime({"ASM_PROMETHEUS_BIND": bind})
    assert runtime is not None
    assert prometheus.temporal_runtime({"ASM_PROMETHEUS_BIND": bind}) is runtime  # one per bind
    with urllib.request.urlopen(f"http://{bind}/metrics", timeout=5) as response:
        assert response.status == 200  # the SDK's Prometheus endpoint is serving


def test_a_malformed_or_busy_bind_is_a_validation_error_naming_the_variable() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        for bind in ("not-an-address", busy):
            with pytest.raises(AsmError) as caught:
                prometheus.temporal_runtime({"ASM_PROMETHEUS_BIND": bind})
            assert caught.value.code == "validation_error"
            assert f"ASM_PROMETHEUS_BIND={bind!r}" in caught.value.message
