"""The store's public surface is exactly what store/__init__.py re-exports."""

from __future__ import annotations

from agent_session_manager import store
from agent_session_manager.core.errors import StorageError


def test_public_names() -> None:
    assert sorted(store.__all__) == sorted(
        [
            "ApiKey",
            "DEFAULT_DATABASE_URL",
            "EventStore",
            "LeaseInfo",
            "RateInfo",
            "RunRow",
            "SavedReply",
            "SavedRun",
            "SchemaOutOfDate",
            "SessionRow",
            "SlotRequest",
            "SlotState",
            "Summary",
            "Watch",
            "open_store",
            "session_lease_id",
            "upgrade",
        ]
    )
    for name in store.__all__:
        assert getattr(store, name) is not None
    assert store.DEFAULT_DATABASE_URL == "sqlite+aiosqlite:///.asm/asm.db"
    assert issubclass(store.SchemaOutOfDate, StorageError)
