"""Usage and cost metrics per provider attempt, from its ledger row (``activities.ledger``).

Recorded for every attempt the ledger bills — completed, failed, cancelled — where the
existing ``asm.tokens`` counter counts completed calls only: ``gen_ai.client.token.usage``
(the GenAI semantic conventions' histogram: input, cache reads and writes included, and
output) and ``asm.provider.cost`` in micro-dollars. The attempt's span gets
``asm.cost_micros`` and ``asm.price_version``.
"""

from __future__ import annotations

from opentelemetry import trace

from agent_session_manager.core.ledger import LedgerEntry
from agent_session_manager.observability.metrics import instruments


def record_attempt(entry: LedgerEntry) -> None:
    """Record one billed attempt's token and cost metrics, and its cost on the current span."""
    usage = entry.usage
    base = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": entry.provider,
        "gen_ai.request.model": entry.model or "",
        "asm.outcome": entry.outcome,
    }
    if entry.error_code:
        base["error.type"] = entry.error_code
    total_input = (
        usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
    )
    found = instruments()
    found.token_usage.record(total_input, {**base, "gen_ai.token.type": "input"})
    found.token_usage.record(usage.output_tokens, {**base, "gen_ai.token.type": "output"})
    span = trace.get_current_span()
    if entry.cost_micros is not None:
        found.cost.add(entry.cost_micros, base)
        span.set_attribute("asm.cost_micros", entry.cost_micros)
    if entry.price_version is not None:
        span.set_attribute("asm.price_version", entry.price_version)
