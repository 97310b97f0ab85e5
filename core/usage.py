"""Token usage, accumulated per run and per session.

Counts follow the Anthropic shape: ``input_tokens`` excludes cache writes and reads, so the
total adds all four. Counts are never negative; usage only ever accumulates (``+``).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, computed_field


class TokenUsage(BaseModel):
    """Token counts of one call, one run or one session; ``+`` accumulates."""

    model_config = ConfigDict(frozen=True)

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cache_creation_input_tokens: int = Field(default=0, ge=0)
    cache_read_input_tokens: int = Field(default=0, ge=0)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        """Everything billed: input (including cache writes and reads) plus output."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )

    def __add__(self, other: TokenUsage) -> TokenUsage:
        if not isinstance(other, TokenUsage):
            return NotImplemented
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens
            + other.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
        )

    @classmethod
    def accumulate(cls, usages: Iterable[TokenUsage]) -> TokenUsage:
        """The sum of ``usages`` (zero usage for none)."""
        total = cls()
        for usage in usages:
            total = total + usage
        return total
