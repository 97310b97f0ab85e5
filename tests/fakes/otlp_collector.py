"""A wire-level OTLP/HTTP collector on an ephemeral 127.0.0.1 port.

It accepts what the OpenTelemetry SDK's ``http/protobuf`` exporters send — ``POST /v1/traces``
and ``POST /v1/metrics`` with a protobuf body (``Content-Encoding: gzip`` or none) — decodes it
with ``opentelemetry-proto`` and keeps the requests, answering ``200`` with an empty export
response as a real collector does. Anything else gets ``404``.

Usage::

    with OtlpCollector() as collector:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, ...}
        ...  # run something that exports
        spans = collector.spans()          # every span received, flattened
        names = collector.metric_names()   # every metric name received
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the collector saw it."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    service_name: str
    attributes: dict[str, Any]


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return None if kind is None else getattr(v, kind)


def _attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


class OtlpCollector:
    """Serve OTLP/HTTP on 127.0.0.1 in a background thread (a context manager)."""

    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.content_types: set[str] = set()
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                message: ExportTraceServiceRequest | ExportMetricsServiceRequest
                if self.path == "/v1/traces":
                    message = ExportTraceServiceRequest.FromString(body)
                    with collector._lock:
                        collector.traces.append(message)
                elif self.path == "/v1/metrics":
                    message = ExportMetricsServiceRequest.FromString(body)
                    with collector._lock:
                        collector.metrics.append(message)
                else:
                    self.send_error(404)
                    return
                with collector._lock:
                    collector.content_types.add(self.headers.get("Content-Type", ""))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """The base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the SDK appends ``/v1/…``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> OtlpCollector:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def spans(self) -> list[ReceivedSpan]:
        """Every span received so far, with its resource's ``service.name``."""
        out: list[ReceivedSpan] = []
        with self._lock:
            requests = list(self.traces)
        for request in requests:
            for rs in request.resource_spans:
                service = str(_attributes(rs.resource.attributes).get("service.name", ""))
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        out.append(
                            ReceivedSpan(
                                name=span.name,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex(),
                                service_name=service,
                                attributes=_attributes(span.attributes),
                            )
                        )
        return out

    def metric_names(self) -> set[str]:
        """The names of every metric received so far."""
        with self._lock:
            requests = list(self.metrics)
        return {
            metric.name
            for request in requests
            for rm in request.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
        }
