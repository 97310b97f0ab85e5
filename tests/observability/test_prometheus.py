"""The Temporal SDK's Prometheus endpoint is served only when ASM_PROMETHEUS_BIND asks."""

from __future__ import annotations

from agent_session_manager.observability import prometheus


def test_prometheus_runtime_only_when_asked() -> None:
    assert prometheus.temporal_runtime({}) is None
    from agent_session_manager.worker.dev_server import free_port

    bind = f"127.0.0.1:{free_port()}"
    runtime = prometheus.temporal_runtime({"ASM_PROMETHEUS_BIND": bind})
    assert runtime is not None
    assert prometheus.temporal_runtime({"ASM_PROMETHEUS_BIND": bind}) is runtime  # one per bind
    import urllib.request

    with urllib.request.urlopen(f"http://{bind}/metrics", timeout=5) as response:
        assert response.status == 200  # the SDK's Prometheus endpoint is serving
