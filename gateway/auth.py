"""Who is calling: an API key (``Authorization: Bearer asm_…``, or the web view's cookie)
resolves to a tenant; every key has a request budget (a token bucket, per process).

The key itself is never logged, echoed or put in an event: it is hashed at once and from then
on the request knows only its ``key_id`` and tenant. It never travels in a URL either (access
logs print URLs): the web view trades it once for an HttpOnly cookie.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from fastapi import Request

from agent_session_manager.core.errors import error
from agent_session_manager.gateway.errors import GatewayError, unauthenticated
from agent_session_manager.gateway.settings import GatewaySettings
from agent_session_manager.store import ApiKey, EventStore
from agent_session_manager.store._tenancy import MAX_KEY_CHARS, key_hash

#: The web view's cookie: HttpOnly (page scripts cannot read it), SameSite=Strict.
COOKIE = "asm_key"
#: Unsafe requests authenticated by the cookie must carry this header: a cross-site form or
#: image cannot set it, so the cookie cannot be ridden (CSRF).
UI_HEADER = "x-asm-ui"
#: Checked keys remembered at most this many; past it the memory is dropped and rebuilt.
_CACHE_ENTRIES = 10_000
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """The caller, as every endpoint sees it."""

    key_id: str
    tenant: str


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class Authenticator:
    """Resolves keys (with a short memory) and spends their request budget."""

    store: EventStore
    settings: GatewaySettings
    _known: dict[str, tuple[ApiKey | None, float]] = field(default_factory=dict)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    async def principal(self, request: Request) -> Principal:
        key, by_cookie = _presented(request)
        if key is None:
            raise unauthenticated(
                "no API key: send `Authorization: Bearer <key>` (create one with `asm keys create`)"
            )
        if by_cookie and request.method not in _SAFE_METHODS and UI_HEADER not in request.headers:
            raise unauthenticated(f"a request authenticated by cookie needs the {UI_HEADER} header")
        found = await self.lookup(key)
        if found is None:
            raise unauthenticated(
                "the API key is unknown or revoked: create one with `asm keys create`"
            )
        self.spend(found.key_id)
        return Principal(key_id=found.key_id, tenant=found.tenant)

    async def lookup(self, key: str) -> ApiKey | None:
        if len(key) > MAX_KEY_CHARS:
            return None
        digest = key_hash(key)
        now = time.monotonic()
        cached = self._known.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        found = await self.store.api_key(key)
        if len(self._known) >= _CACHE_ENTRIES:
            self._known.clear()
        self._known[digest] = (found, now + self.settings.key_cache_seconds)
        return found

    def spend(self, key_id: str) -> None:
        """Take one request from the key's bucket, or answer 429 with when to come back."""
        rate, burst = self.settings.rate_per_second, float(self.settings.rate_burst)
        now = time.monotonic()
        bucket = self._buckets.setdefault(key_id, _Bucket(tokens=burst, at=now))
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens < 1.0:
            wait = (1.0 - bucket.tokens) / rate
            raise GatewayError(
                error(
                    "policy_violation",
                    f"rate limit: this key may make {rate:g} requests per second "
                    f"(bursts of {burst:.0f}); retry after {wait:.2f}s",
                    details={"reason": "rate_limited", "retry_after": round(wait, 3)},
                ),
                429,
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )
        bucket.tokens -= 1.0


def _presented(request: Request) -> tuple[str | None, bool]:
    """The key the request carries, and whether it came as the cookie."""
    auth = request.headers.get("authorization")
    if auth is not None:
        scheme, _, value = auth.partition(" ")
        return (value.strip() or None) if scheme.lower() == "bearer" else None, False
    cookie = request.cookies.get(COOKIE)
    return (cookie or None), cookie is not None
