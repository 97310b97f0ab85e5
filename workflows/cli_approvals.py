"""Approvals an agent CLI (Codex, Claude Code) asks for while its provider activity runs.

The CLI waits inside the provider activity, so the run cannot await the decision the way its
agent loop does. Instead the activity tells the run (signal ``cli_approval_requested``, one
:class:`PendingApproval` with its action digest), the run lists it (``describe_run``) and
takes the same ``approve`` / ``deny`` updates as a tool approval, and the activity polls
``describe_run`` until the digest shows up among ``resolved_approvals``. The decision lives in
the run's history: exactly one resolution takes effect, a second gets
``approval_already_resolved``, a digest for other arguments is rejected. Expiry is the
activity's own ``deny`` (reason ``expired``), so it too is one resolution among others.

Only state, no commands: handlers mutate this book and nothing else, so histories of runs
that never met a CLI approval replay unchanged.
"""

from __future__ import annotations

from typing import Literal

from temporalio import workflow

from agent_session_manager.workflows.inputs import fail

with workflow.unsafe.imports_passed_through():
    from agent_session_manager.core.errors import error
    from agent_session_manager.core.tools import (
        ApprovalDecision,
        ApprovalResolution,
        CliApprovalRequest,
        PendingApproval,
    )

#: A run keeps at most this many CLI approvals (a misbehaving activity cannot grow history).
MAX_CLI_APPROVALS = 256


class CliApprovals:
    """The run's book of CLI approvals: pending ones and how each was resolved."""

    def __init__(self, run_id: str, session_id: str, token: str | None) -> None:
        self.run_id = run_id
        self.session_id = session_id
        self._token = token
        self.pending: dict[str, PendingApproval] = {}
        self.resolved: dict[str, ApprovalResolution] = {}

    def add(self, signal: CliApprovalRequest) -> bool:
        """Record a request from the run's own activity; ``False`` when it is dropped."""
        request = signal.approval
        if signal.token != self._token:
            return False
        if request.run_id != self.run_id or request.session_id != self.session_id:
            return False
        if request.digest in self.pending or request.digest in self.resolved:
            return True  # a re-sent signal (the activity retried it): already known
        if len(self.pending) + len(self.resolved) >= MAX_CLI_APPROVALS:
            return False
        self.pending[request.digest] = request
        return True

    def __contains__(self, decision: ApprovalDecision) -> bool:
        return decision.digest in self.pending or decision.digest in self.resolved

    def find(self, decision: ApprovalDecision) -> PendingApproval:
        """The pending approval ``decision`` names; a typed rejection if it cannot apply."""
        done = self.resolved.get(decision.digest)
        if done is not None and decision.call_id in (None, done.call_id):
            fail(
                error(
                    "approval_already_resolved",
                    f"call {done.call_id!r} was already {done.decision}"
                    f" ({done.reason or 'no reason given'}); nothing to do",
                    details={"call_id": done.call_id, "decision": done.decision},
                )
            )
        found = self.pending.get(decision.digest)
        if found is not None and decision.call_id in (None, found.call_id):
            return found
        known = {a.call_id for a in self.pending.values()}
        known |= {r.call_id for r in self.resolved.values()}
        if decision.call_id is not None and decision.call_id in known:
            fail(
                error(
                    "approval_mismatch",
                    f"digest {decision.digest} is not the digest of call "
                    f"{decision.call_id!r} (its arguments or policy differ): describe the run "
                    "and decide on what it actually asks",
                    details={"call_id": decision.call_id},
                )
            )
        fail(
            error(
                "approval_not_found",
                f"run {self.run_id} has no approval with digest {decision.digest}; "
                "list pending approvals with `asm approvals ls`",
                details={"digest": decision.digest},
            )
        )

    def resolve(
        self, decision: ApprovalDecision, outcome: Literal["granted", "denied"]
    ) -> ApprovalResolution:
        """Apply ``decision`` (exactly once: a second gets ``approval_already_resolved``)."""
        found = self.find(decision)
        del self.pending[found.digest]
        done = self.resolved[found.digest] = ApprovalResolution(
            run_id=self.run_id,
            call_id=found.call_id,
            digest=found.digest,
            decision=outcome,
            reason=decision.reason or decision.by,
        )
        return done

    def deny_all(self, reason: str) -> None:
        """The run ends: whatever is still pending resolves as denied."""
        for digest in list(self.pending):
            self.resolve(ApprovalDecision(digest=digest, reason=reason), "denied")


__all__ = ["MAX_CLI_APPROVALS", "CliApprovals"]
