"""How every example gets its client: :meth:`SessionClient.connect`, from the environment.

``ASM_TEMPORAL_ADDRESS`` / ``TEMPORAL_ADDRESS`` (default ``127.0.0.1:7233``, the ``asm dev``
server), ``ASM_NAMESPACE``, ``ASM_TASK_QUEUE`` and ``ASM_DATABASE_URL`` (the event store the
worker writes to). The caller closes it (``await client.close()``) when done.
"""

from __future__ import annotations

from agent_session_manager import SessionClient


async def connect() -> SessionClient:
    """A client built from the environment."""
    return await SessionClient.connect()
