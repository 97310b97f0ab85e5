"""In-memory OpenTelemetry for the observability tests, and a traced client + worker.

OpenTelemetry's tracer and meter providers are process globals that can be set once, so one
pair is installed for the whole test session (first use) and every test reads its own spans
by trace id and its own metrics as deltas.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.contrib.opentelemetry import create_tracer_provider

from agent_session_manager.activities.providers import discover
from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.observability.temporal_plugin import instrument_client
from agent_session_manager.store import EventStore
from agent_session_manager.worker.worker import serve


@dataclass
class Otel:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    async def wait_for(
        self, predicate: Callable[[list[ReadableSpan]], bool], within: float = 10.0
    ) -> list[ReadableSpan]:
        """Spans once ``predicate`` holds (workflow spans end with their task, a beat later)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            spans = self.finished()
            if predicate(spans) or loop.time() > deadline:
                return spans
            await asyncio.sleep(0.05)

    def points(self, name: str) -> Iterator[Any]:
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        yield from metric.data.data_points

    def value(self, name: str, **attrs: Any) -> float:
        """Sum of counter points (histograms: counts) whose attributes include ``attrs``."""
        total = 0.0
        for point in self.points(name):
            if all(point.attributes.get(k) == v for k, v in attrs.items()):
                total += getattr(point, "value", None) if hasattr(point, "value") else point.count
        return total

    def histogram_sum(self, name: str, **attrs: Any) -> float:
        points = self.points(name)
        return sum(p.sum for p in points if all(p.attributes.get(k) == v for k, v in attrs.items()))


@pytest.fixture(scope="session")
def otel() -> Iterator[Otel]:
    exporter = InMemorySpanExporter()
    tracer_provider = create_tracer_provider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    assert trace.get_tracer_provider() is tracer_provider, (
        "a global tracer provider was installed before the observability tests"
    )
    yield Otel(spans=exporter, reader=reader)
    exporter.shutdown()  # later tests in this process record nothing more


@pytest.fixture
async def traced(
    otel: Otel, temporal: Client, store: EventStore, task_queue: str
) -> AsyncIterator[SessionClient]:
    """A SessionClient whose Temporal client carries the tracing plugin, and a worker built
    from that client (so it inherits the plugin, as ``asm worker`` does)."""
    client = instrument_client(temporal, force=True)
    async with serve(client, store, task_queue=task_queue, providers=discover(), secrets={}):
        yield SessionClient(client, store, task_queue=task_queue)


def by_id(spans: Iterable[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {s.context.span_id: s for s in spans}


def ancestry(span: ReadableSpan, spans: Iterable[ReadableSpan]) -> list[str]:
    """Names from ``span`` up to its root (fails if a parent is missing: a broken trace)."""
    index = by_id(spans)
    names = [span.name]
    current = span
    while current.parent is not None:
        parent = index.get(current.parent.span_id)
        assert parent is not None, f"{current.name}'s parent is not in the trace: {names}"
        names.append(parent.name)
        current = parent
    return names
