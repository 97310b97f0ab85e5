"""The HTTP client for one attempt: credentials from the worker, SDK retries off."""

from __future__ import annotations

import anthropic
import httpx2

from agent_session_manager.activities.providers.anthropic._errors import PROVIDER_NAME
from agent_session_manager.activities.providers.anthropic._options import AnthropicOptions
from agent_session_manager.core.errors import error

DEFAULT_BASE_URL = "https://api.anthropic.com"


def client(secrets: dict[str, str], options: AnthropicOptions) -> anthropic.AsyncAnthropic:
    """An ``AsyncAnthropic`` for ``secrets``' credential, or ``provider_authentication_failed``."""
    api_key = secrets.get("ANTHROPIC_API_KEY") or None
    auth_token = None if api_key else (secrets.get("ANTHROPIC_AUTH_TOKEN") or None)
    if api_key is None and auth_token is None:
        # Checked here: given no credential, the SDK would go looking in the worker's
        # environment and config files, which is not where a worker's secrets come from.
        raise error(
            "provider_authentication_failed",
            "no Anthropic credential: set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN) "
            "in the worker's environment",
            details={"provider": PROVIDER_NAME, "fix": "export ANTHROPIC_API_KEY=..."},
            retryable=False,
        )
    read = options.read_timeout
    connect = options.connect_timeout
    return anthropic.AsyncAnthropic(
        api_key=api_key,
        auth_token=auth_token,
        # Explicit even when unset: None would make the SDK read the environment itself.
        base_url=secrets.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL,
        # Retries are Temporal's (visible in history, driven by the taxonomy), never the SDK's.
        max_retries=0,
        # ``read`` bounds the silence between two bytes of the stream: a stalled stream raises
        # the transport's ReadTimeout, which maps to ``provider_timeout``.
        timeout=httpx2.Timeout(read, connect=connect, read=read, write=read, pool=connect),
    )
