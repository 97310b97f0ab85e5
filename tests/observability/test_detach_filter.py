"""Only OpenTelemetry's detach noise of closed workflow coroutines is dropped."""

from __future__ import annotations

import logging

import pytest

from agent_session_manager.observability import temporal_plugin
from tests.observability.conftest import Otel


def test_detach_noise_of_closed_workflow_coroutines_is_dropped_and_nothing_else(
    caplog: pytest.LogCaptureFixture, otel: Otel
) -> None:
    """temporalio/sdk-python#441: an evicted workflow's coroutine is closed in another Context."""
    import contextvars

    from opentelemetry import context as otel_context

    assert temporal_plugin.temporal_plugins()  # tracing is on: the plugin comes with the filter

    def traced() -> object:
        token = otel_context.attach(otel_context.set_value("asm", 1))
        try:
            yield
        finally:
            otel_context.detach(token)

    gen = traced()
    contextvars.copy_context().run(next, gen)  # attached in one Context ...
    with caplog.at_level(logging.ERROR, logger="opentelemetry.context"):
        gen.close()  # ... detached in another, by GeneratorExit, as at eviction: dropped
        assert not [r for r in caplog.records if r.name == "opentelemetry.context"]
        token = contextvars.copy_context().run(otel_context.attach, otel_context.get_current())
        otel_context.detach(token)  # a real misuse (no GeneratorExit) is still reported
    assert [r.getMessage() for r in caplog.records if r.name == "opentelemetry.context"] == [
        "Failed to detach context"
    ]
