"""The application's metric instruments (names follow OpenTelemetry's dotted style)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from opentelemetry import metrics

from agent_session_manager.observability.tracing import INSTRUMENTATION_NAME

# Histogram buckets in seconds (the SDK's defaults are for milliseconds up to 10 s).
RUN_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: The GenAI conventions' advised buckets for gen_ai.client.token.usage.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


@dataclass(frozen=True)
class Instruments:
    """The application's metric instruments (names follow OpenTelemetry's dotted style)."""

    runs_started: metrics.Counter
    runs_completed: metrics.Counter
    run_duration: metrics.Histogram
    time_to_first_token: metrics.Histogram
    tokens: metrics.Counter
    retries: metrics.Counter
    active_sessions: metrics.UpDownCounter
    active_runs: metrics.UpDownCounter
    token_usage: metrics.Histogram
    cost: metrics.Counter
    slots_in_use: metrics.UpDownCounter
    queued_runs: metrics.UpDownCounter
    slot_wait: metrics.Histogram
    cooldowns: metrics.Counter
    cooldown_wait: metrics.Histogram

    @classmethod
    def create(cls, meter: metrics.Meter) -> Instruments:
        return cls(
            runs_started=meter.create_counter(
                "asm.runs.started", unit="{run}", description="Runs that started, by provider"
            ),
            runs_completed=meter.create_counter(
                "asm.runs.completed",
                unit="{run}",
                description="Runs that ended, by provider and status "
                "(completed, failed, cancelled, timeout)",
            ),
            run_duration=meter.create_histogram(
                "asm.run.duration",
                unit="s",
                description="Run wall time from run_started to its terminal event",
                explicit_bucket_boundaries_advisory=RUN_DURATION_BUCKETS,
            ),
            time_to_first_token=meter.create_histogram(
                "asm.provider.time_to_first_token",
                unit="s",
                description="From the start of a provider attempt until its first streamed "
                "token is in the event store (readable by clients)",
                explicit_bucket_boundaries_advisory=TTFT_BUCKETS,
            ),
            tokens=meter.create_counter(
                "asm.tokens",
                unit="{token}",
                description="Tokens of completed provider calls, by kind "
                "(input, output, cache_read, cache_creation)",
            ),
            retries=meter.create_counter(
                "asm.provider.retries",
                unit="{retry}",
                description="Provider attempts that failed with a retryable error and will be "
                "retried by Temporal, by error code",
            ),
            active_sessions=meter.create_up_down_counter(
                "asm.sessions.active",
                unit="{session}",
                description="Sessions created and not yet ended (sum over workers)",
            ),
            active_runs=meter.create_up_down_counter(
                "asm.runs.active",
                unit="{run}",
                description="Runs started and not yet ended (sum over workers)",
            ),
            # The GenAI semantic conventions' client metric: one record per token type per
            # attempt, whatever the attempt's outcome (failed attempts are billed too).
            token_usage=meter.create_histogram(
                "gen_ai.client.token.usage",
                unit="{token}",
                description="Tokens per provider attempt, by gen_ai.token.type (input, output)",
                explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
            ),
            cost=meter.create_counter(
                "asm.provider.cost",
                unit="{microdollar}",
                description="What provider attempts cost at the price table (1e-6 USD), by "
                "provider, model and outcome; unpriced models add nothing",
            ),
            slots_in_use=meter.create_up_down_counter(
                "asm.limits.slots_in_use",
                unit="{slot}",
                description="Fleet-wide run slots held by this worker's provider calls "
                "(sum over workers: the fleet's)",
            ),
            queued_runs=meter.create_up_down_counter(
                "asm.limits.queue_depth",
                unit="{run}",
                description="Runs waiting for a fleet-wide slot (sum over workers)",
            ),
            slot_wait=meter.create_histogram(
                "asm.limits.wait_time",
                unit="s",
                description="Time a provider call waited for its slot, cooldown or per-minute "
                "budget, by reason",
                explicit_bucket_boundaries_advisory=RUN_DURATION_BUCKETS,
            ),
            cooldowns=meter.create_counter(
                "asm.limits.cooldowns",
                unit="{cooldown}",
                description="Rate-limit cooldowns set after a provider answered 429/529",
            ),
            cooldown_wait=meter.create_histogram(
                "asm.limits.cooldown_seconds",
                unit="s",
                description="Length of the cooldowns set, from retry-after or the default",
                explicit_bucket_boundaries_advisory=RUN_DURATION_BUCKETS,
            ),
        )


@functools.cache
def instruments() -> Instruments:
    """The instruments on the global meter (a proxy until a meter provider is installed)."""
    return Instruments.create(metrics.get_meter(INSTRUMENTATION_NAME))
