"""The gateway's configuration, from ``ASM_GATEWAY_*`` environment variables (or flags of
``asm serve``). Every limit here protects the deployment from one careless or hostile key."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: A default port outside Temporal's (7233, 8233) and common dev servers'.
DEFAULT_PORT = 8780


class GatewaySettings(BaseSettings):
    """Where the gateway listens and what it admits."""

    model_config = SettingsConfigDict(env_prefix="ASM_GATEWAY_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="interface to bind; 0.0.0.0 in a container")
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    cors_origins: list[str] = Field(
        default_factory=list,
        description="origins allowed to call the API from a browser (none: same origin only)",
    )
    rate_per_second: float = Field(
        default=20.0, gt=0, le=100_000, description="sustained requests per second per key"
    )
    rate_burst: int = Field(default=60, ge=1, le=1_000_000, description="burst per key")
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="largest request body; a prompt over 4 KiB goes to the store by reference",
    )
    max_streams_per_key: int = Field(
        default=500, ge=1, le=100_000, description="open event streams per key, per process"
    )
    keepalive_seconds: float = Field(
        default=15.0, gt=0, le=300, description="SSE comment line while no event comes"
    )
    key_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="how long a checked key is trusted without asking the store (revocation "
        "takes effect within this)",
    )
    cookie_secure: bool = Field(
        default=False, description="mark the web view's key cookie Secure (behind HTTPS)"
    )
