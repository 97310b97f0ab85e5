"""The workflow sandbox our workflows run in: the SDK's, with two costs taken out.

1. **Our pure modules are passed through** (:data:`SANDBOX_PASSTHROUGH`) instead of being
   re-imported for every workflow instance (a run is a new ``AgentRun`` instance, so it paid
   the import of ``workflows/*`` on every run).
2. **No serialization context when nothing reads it.** Before every activation is decoded and
   after every completion is encoded, the SDK walks its payloads and, for each payload
   sequence, asks the workflow instance for a serialization context so that a payload codec
   or external storage can see which command a payload belongs to. A sandboxed instance
   answers by ``exec``-ing a string inside the sandbox with its import hooks applied: about
   85 µs a call, some 40 calls per run, 9 to 12 % of the worker's event loop under load
   (``bench/runs.py --phases throughput``, py-spy). With no codec and no external storage,
   every one of those payload steps passes its payloads through whatever the context, so
   :class:`ContextFreeRunner` answers "no context" without entering the sandbox. A client
   whose converter has a codec (encryption, compression) or external storage keeps the
   SDK's runner unchanged: :func:`workflow_runner` decides.

Both use only the SDK's public runner interface (``WorkflowRunner``, ``WorkflowInstance``).
"""

from __future__ import annotations

from dataclasses import dataclass

import temporalio.workflow
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.converter import DataConverter, SerializationContext, StorageDriverStoreContext
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

#: Our modules the workflow sandbox takes from the worker instead of re-importing them. Safe
#: because they hold no mutable module state and import only ``temporalio`` and ``core`` (the
#: import-linter contract ``workflows -> core``, checked in CI): nothing they import can be
#: non-deterministic. The sandbox's runtime restrictions (clocks, randomness, I/O called from
#: workflow code) still apply to them.
SANDBOX_PASSTHROUGH = ("agent_session_manager.core", "agent_session_manager.workflows")

_RESTRICTIONS = SandboxRestrictions.default.with_passthrough_modules(*SANDBOX_PASSTHROUGH)


def workflow_runner(converter: DataConverter) -> SandboxedWorkflowRunner:
    """The runner for a worker whose client converts payloads with ``converter``."""
    if converter.payload_codec is None and converter.external_storage is None:
        return ContextFreeRunner(restrictions=_RESTRICTIONS)
    return SandboxedWorkflowRunner(restrictions=_RESTRICTIONS)


@dataclass(frozen=True)
class ContextFreeRunner(SandboxedWorkflowRunner):
    """The SDK's sandbox, whose instances give no serialization context (see the module).

    Only for a converter with neither a payload codec nor external storage: those are the
    only readers of the context in the payload steps around an activation.
    """

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _ContextFreeInstance(super().create_instance(det))


class _ContextFreeInstance(WorkflowInstance):
    """A sandboxed instance that answers the two context questions without entering it."""

    def __init__(self, sandboxed: WorkflowInstance) -> None:
        self._sandboxed = sandboxed

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        return self._sandboxed.activate(act)

    def get_serialization_context(self, command_info: object) -> SerializationContext | None:
        return None

    def get_external_store_context(self, command_info: object) -> StorageDriverStoreContext:
        return StorageDriverStoreContext(target=None)

    def get_info(self) -> temporalio.workflow.Info:
        return self._sandboxed.get_info()

    def get_thread_id(self) -> int | None:
        return self._sandboxed.get_thread_id()


__all__ = ["SANDBOX_PASSTHROUGH", "ContextFreeRunner", "workflow_runner"]
