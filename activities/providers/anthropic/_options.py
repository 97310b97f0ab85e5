"""The ``anthropic`` provider's ``provider_options``."""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MAX_TOKENS: Final = 1024

#: Seconds without a byte from the API before a stream counts as stalled (``provider_timeout``).
#: Below the usual 30 s heartbeat timeout would be too eager for long thinking pauses; the
#: heartbeat timeout still catches a worker that stops altogether.
DEFAULT_READ_TIMEOUT: Final = 60.0
DEFAULT_CONNECT_TIMEOUT: Final = 10.0

#: Options passed to ``messages.create`` as keyword arguments, as given: the API validates them.
REQUEST_OPTIONS: Final = (
    "stop_sequences",
    "tools",
    "tool_choice",
    "thinking",
    "metadata",
    "service_tier",
    "output_config",
    "cache_control",
    "container",
    "inference_geo",
    "speed",
)
#: Options the API takes that this SDK version no longer names: sent through ``extra_body``.
BODY_OPTIONS: Final = ("temperature", "top_p", "top_k")

_Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class AnthropicOptions(BaseModel):
    """``max_tokens``, the timeouts in seconds, and the API's own request options."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    max_tokens: int = DEFAULT_MAX_TOKENS
    read_timeout: _Seconds = DEFAULT_READ_TIMEOUT
    connect_timeout: _Seconds = DEFAULT_CONNECT_TIMEOUT

    # Passed through untouched (typed Any on purpose): their shapes are the API's to check,
    # and a 400 from it says more than a local guess would.
    stop_sequences: Any = None
    tools: Any = None
    tool_choice: Any = None
    thinking: Any = None
    metadata: Any = None
    service_tier: Any = None
    output_config: Any = None
    cache_control: Any = None
    container: Any = None
    inference_geo: Any = None
    speed: Any = None
    temperature: Any = None
    top_p: Any = None
    top_k: Any = None

    def request_params(self) -> dict[str, Any]:
        """The :data:`REQUEST_OPTIONS` that are set."""
        return {k: getattr(self, k) for k in REQUEST_OPTIONS if getattr(self, k) is not None}

    def body_params(self) -> dict[str, Any]:
        """The :data:`BODY_OPTIONS` that are set (for ``extra_body``)."""
        return {k: getattr(self, k) for k in BODY_OPTIONS if getattr(self, k) is not None}
