"""``asm setup``: make any Temporal cluster and database ready for agent-session-manager.

Three idempotent steps, each reported as "did" or "already there":

1. the namespace exists (``DescribeNamespace``; with ``create_namespace`` it is registered
   when missing);
2. the search attributes of the contract (``AsmSessionId``, ``AsmAgentId``, ``AsmProvider``,
   ``AsmStatus`` keyword, ``AsmTags`` keyword list, ``AsmTotalTokens``, ``AsmCostMicros`` and
   ``AsmPendingApprovals`` int) are registered on that namespace through the operator
   service; one that exists with another type is an error (it would make every session
   start fail), never silently changed (run it again after an upgrade that adds one: a
   workflow upserting an unregistered attribute fails its workflow tasks until it is
   registered);
3. the event store is migrated to this version's head revision.

Running it twice changes nothing the second time, and the report says so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    RegisterNamespaceRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

from agent_session_manager.core import search_attributes
from agent_session_manager.core.errors import error
from agent_session_manager.store import SchemaOutOfDate, open_store, upgrade

#: A namespace registered by ``--create-namespace`` keeps closed workflows this long.
DEFAULT_RETENTION = timedelta(days=7)
#: A newly registered namespace reaches every frontend's cache within ~10 s; we wait this long.
NAMESPACE_READY_TIMEOUT = 30.0


def type_name(value: int) -> str:
    """``IndexedValueType`` as the Temporal CLI prints it (``Keyword``, ``KeywordList``, …)."""
    raw = IndexedValueType.Name(value).removeprefix("INDEXED_VALUE_TYPE_")  # type: ignore[arg-type]
    return "".join(part.capitalize() for part in raw.split("_"))


@dataclass
class SetupReport:
    """What ``asm setup`` found and did."""

    namespace: str
    namespace_created: bool = False
    attributes_added: list[str] = field(default_factory=list)
    attributes_present: list[str] = field(default_factory=list)
    store_url: str = ""
    store_revision_before: str | None = None
    store_revision: str = ""

    @property
    def store_migrated(self) -> bool:
        return self.store_revision_before != self.store_revision

    @property
    def changed(self) -> bool:
        """Whether this run changed anything (False on a second run)."""
        return self.namespace_created or bool(self.attributes_added) or self.store_migrated

    def lines(self) -> list[str]:
        """The report, one line per step, for people."""
        out = [
            f"namespace {self.namespace}: " + ("created" if self.namespace_created else "exists")
        ]
        if self.attributes_added:
            out.append(f"search attributes added: {', '.join(self.attributes_added)}")
        if self.attributes_present:
            present = ", ".join(self.attributes_present)
            out.append(f"search attributes already registered: {present}")
        if self.store_migrated:
            before = self.store_revision_before or "empty"
            out.append(f"event store {self.store_url}: migrated {before} -> {self.store_revision}")
        else:
            out.append(f"event store {self.store_url}: already at {self.store_revision}")
        out.append("changed: " + ("yes" if self.changed else "nothing (already set up)"))
        return out

    def to_dict(self) -> dict[str, object]:
        """The report as JSON-ready data (``asm setup --json``)."""
        return {
            "namespace": self.namespace,
            "namespace_created": self.namespace_created,
            "search_attributes_added": self.attributes_added,
            "search_attributes_present": self.attributes_present,
            "store_url": self.store_url,
            "store_revision_before": self.store_revision_before,
            "store_revision": self.store_revision,
            "changed": self.changed,
        }


async def ensure_namespace(
    client: Client,
    namespace: str,
    *,
    create: bool = False,
    retention: timedelta = DEFAULT_RETENTION,
) -> bool:
    """Check ``namespace`` exists; register it when missing and ``create``. True if created."""
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
        return False
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
    if not create:
        raise error(
            "validation_error",
            f"Temporal namespace {namespace!r} does not exist; create it with "
            f"`temporal operator namespace create -n {namespace}` or run "
            "`asm setup --create-namespace`",
            details={"namespace": namespace},
        )
    retention_pb = Duration()
    retention_pb.FromTimedelta(retention)
    try:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=namespace,
                description="agent-session-manager",
                workflow_execution_retention_period=retention_pb,
            )
        )
    except RPCError as raced:
        if raced.status is not RPCStatusCode.ALREADY_EXISTS:  # another setup registered it
            raise
        return False
    return True


async def _registered(client: Client, namespace: str) -> dict[str, int]:
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    return dict(response.custom_attributes)


async def ensure_search_attributes(
    client: Client,
    namespace: str,
    keys: Sequence[SearchAttributeKey[Any]] = search_attributes.ALL,
    *,
    ready_timeout: float = NAMESPACE_READY_TIMEOUT,
) -> tuple[list[str], list[str]]:
    """Register the missing ``keys``; return ``(added, already_present)``.

    A key registered with another type raises ``validation_error``: changing a search
    attribute's type is not possible in place, and guessing would break running sessions.
    """
    deadline = time.monotonic() + ready_timeout
    while True:
        try:
            existing = await _registered(client, namespace)
            break
        except RPCError as exc:
            # A namespace registered a moment ago is not in every cache yet.
            if exc.status is not RPCStatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    wanted = {k.name: int(k.indexed_value_type) for k in keys}
    conflicts = {
        name: (type_name(existing[name]), type_name(kind))
        for name, kind in wanted.items()
        if name in existing and existing[name] != kind
    }
    if conflicts:
        described = "; ".join(
            f"{n} is {have}, needs {want}" for n, (have, want) in conflicts.items()
        )
        raise error(
            "validation_error",
            f"search attributes registered with the wrong type in {namespace!r}: {described}. "
            "Remove them (temporal operator search-attribute remove) and run asm setup again",
            details={"namespace": namespace, "conflicts": {n: c[0] for n, c in conflicts.items()}},
        )
    present = sorted(n for n in wanted if n in existing)
    missing = {n: k for n, k in wanted.items() if n not in existing}
    if missing:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    search_attributes=missing,  # type: ignore[arg-type]
                    namespace=namespace,
                )
            )
        except RPCError as exc:
            if exc.status is not RPCStatusCode.ALREADY_EXISTS:
                raise
            # Another setup registered them concurrently: report what is there now.
            now = await _registered(client, namespace)
            added = sorted(n for n in missing if n not in existing and n in now)
            return [], sorted(set(present) | set(added))
    return sorted(missing), present


async def migrate_store(url: str) -> tuple[str | None, str]:
    """Bring the event store at ``url`` to head; ``(revision_before, revision_after)``.

    ``revision_before`` is None for a database without our schema.
    """
    try:
        store = await open_store(url)
    except SchemaOutOfDate as exc:
        return exc.details.get("current_revision"), await upgrade(url)
    await store.close()
    revision = await upgrade(url)  # at head already: a no-op that reports the revision
    return revision, revision


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable database URL>"


async def run_setup(
    client: Client,
    *,
    database_url: str,
    namespace: str | None = None,
    create_namespace: bool = False,
    retention: timedelta = DEFAULT_RETENTION,
) -> SetupReport:
    """All three steps against ``client``'s cluster and the store at ``database_url``."""
    namespace = namespace or client.namespace
    report = SetupReport(namespace=namespace, store_url=_redacted(database_url))
    report.namespace_created = await ensure_namespace(
        client, namespace, create=create_namespace, retention=retention
    )
    report.attributes_added, report.attributes_present = await ensure_search_attributes(
        client, namespace
    )
    report.store_revision_before, report.store_revision = await migrate_store(database_url)
    return report
