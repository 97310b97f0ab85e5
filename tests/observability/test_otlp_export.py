"""OTLP export over the wire: the `asm` CLI, configured only by the standard ``OTEL_*``
variables, sends a run's trace and the worker's metrics to a collector on 127.0.0.1 as
``http/protobuf`` (tests/fakes/otlp_collector.py decodes them with ``opentelemetry-proto``)."""

from __future__ import annotations

from pathlib import Path

from tests.client.test_cli import REPO, asm
from tests.fakes.otlp_collector import OtlpCollector, ReceivedSpan
from tests.observability.test_tracing import PROVIDER_ANCESTRY

SERVICE = "asm-otlp-test"


def _ancestry(span: ReceivedSpan, spans: list[ReceivedSpan]) -> list[str]:
    by_id = {s.span_id: s for s in spans}
    names = [span.name]
    while span.parent_span_id in by_id:
        span = by_id[span.parent_span_id]
        names.append(span.name)
    return names


async def test_a_run_is_exported_as_one_trace_and_the_metrics_follow(tmp_path: Path) -> None:
    with OtlpCollector() as collector:
        code, out, err = await asm(
            "demo",
            "--turns",
            "1",
            cwd=tmp_path,
            timeout=120,
            env={
                "ASM_TEMPORAL_ADDRESS": "",
                "ANTHROPIC_API_KEY": "",
                "PYTHONPATH": str(REPO),
                "OTEL_SDK_DISABLED": "false",
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_METRICS_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_SERVICE_NAME": SERVICE,
            },
        )
        # The CLI flushes before it exits: everything has arrived by now.
        spans = [s for s in collector.spans() if s.service_name == SERVICE]
        metrics = collector.metric_names()
    assert code == 0, err
    assert "session completed: 1 runs" in out
    (chat,) = [s for s in spans if s.name == "chat mock-1"]
    assert chat.attributes["gen_ai.system"] == "mock"
    assert chat.attributes["gen_ai.usage.output_tokens"] > 0
    assert _ancestry(chat, spans) == PROVIDER_ANCESTRY  # the client's submit is the root
    trace = [s for s in spans if s.trace_id == chat.trace_id]
    assert {"asm.store.record", "asm.store.save_reply"} <= {s.name for s in trace}
    assert {"asm.runs.started", "asm.runs.completed", "asm.run.duration"} <= metrics
    assert collector.content_types == {"application/x-protobuf"}
