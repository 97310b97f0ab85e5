"""What tokens cost: a versioned price table, per model and per token class.

Prices are list prices in USD per million tokens, which is the same number as micro-dollars
per token, so a cost is ``tokens * price`` in micro-dollars (integers in the ledger; the
fractional part of one attempt's cost is rounded half-up, once). The defaults ship with the
package (``core/prices.json``); a deployment overrides or adds models with its own table
(``ASM_PRICES_FILE``, merged over the defaults: :meth:`PriceTable.merged`). Every ledger row
keeps the version of the table it was priced with, so a price change never rewrites history.

Token classes follow :class:`~core.usage.TokenUsage`: ``input`` (uncached input), ``output``
(including thinking/reasoning tokens, which providers bill as output), ``cache_write``
(Anthropic's cache creation) and ``cache_read``.

A model the table does not know is priced as ``None`` (not 0, which would claim it is free):
the ledger keeps its tokens with a null cost, and the caller logs a warning
(:func:`cost_of`). A model name with a snapshot suffix (``claude-sonnet-4-5-20250929``,
``…-latest``) uses its base name's prices; no looser matching, so a future model is never
billed at an older model's price.
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent_session_manager.core.errors import ValidationError as AsmValidationError
from agent_session_manager.core.usage import TokenUsage

#: ``<model>-YYYYMMDD`` or ``<model>-latest``: a snapshot of a priced model.
_SNAPSHOT = re.compile(r"-(\d{8}|latest)$")
#: USD per million tokens: non-negative, and far above any real price (a typo such as
#: 30000 instead of 3 is still accepted; 10^7 is not a price).
_Price = Annotated[Decimal, Field(ge=0, le=1_000_000, max_digits=18, decimal_places=6)]


class ModelPrice(BaseModel):
    """One model's prices, USD per million tokens (= micro-dollars per token)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: _Price
    output: _Price
    cache_write: _Price = Decimal(0)
    cache_read: _Price = Decimal(0)

    def cost_micros(self, usage: TokenUsage) -> int:
        """What ``usage`` costs at these prices, in micro-dollars (rounded half-up)."""
        exact = (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_creation_input_tokens * self.cache_write
            + usage.cache_read_input_tokens * self.cache_read
        )
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


class PriceTable(BaseModel):
    """A versioned table of model prices."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:+-]+$")
    source: str | None = Field(default=None, max_length=1024)
    models: dict[Annotated[str, Field(min_length=1, max_length=255)], ModelPrice] = Field(
        max_length=10_000
    )

    def price(self, model: str | None) -> ModelPrice | None:
        """``model``'s prices, its snapshot's base name's, or ``None`` when unknown."""
        if not model:
            return None
        if (found := self.models.get(model)) is not None:
            return found
        return self.models.get(_SNAPSHOT.sub("", model))

    def merged(self, override: PriceTable) -> PriceTable:
        """``override``'s models over this table's; the result carries ``override``'s version
        (its author names the prices a ledger row was computed with)."""
        return PriceTable(
            version=override.version,
            source=override.source or self.source,
            models={**self.models, **override.models},
        )


def parse_prices(text: str, origin: str) -> PriceTable:
    """A price table from JSON ``text``; ``validation_error`` naming ``origin`` and the field."""
    try:
        return PriceTable.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
        raise AsmValidationError(
            "validation_error",
            f"price table {origin} is not valid: {str(exc)[:2000]}; expected JSON like "
            '{"version": "2026-12-01", "models": {"my-model": {"input": "3", "output": "15"}}} '
            "(USD per million tokens)",
            details={"origin": origin},
        ) from None


def default_prices() -> PriceTable:
    """The table shipped with the package (``core/prices.json``)."""
    text = resources.files("agent_session_manager.core").joinpath("prices.json").read_text()
    return parse_prices(text, "agent_session_manager/core/prices.json")


def cost_of(table: PriceTable, model: str | None, usage: TokenUsage) -> int | None:
    """``usage`` of ``model`` in micro-dollars, or ``None`` when the table has no price."""
    price = table.price(model)
    return None if price is None else price.cost_micros(usage)


__all__ = ["ModelPrice", "PriceTable", "cost_of", "default_prices", "parse_prices"]
