"""A run's book of approvals: what waits for a human, and how each was resolved.

One book serves both kinds of approval a run holds: the agent loop's tool approvals
(:mod:`workflows.agent_loop`) and the approvals an agent CLI asks for from inside the provider
activity (:mod:`workflows.cli_approvals`). Both are decided by the run's ``approve`` /
``deny`` updates naming an action digest, with the same rules: exactly one resolution takes
effect (a second gets ``approval_already_resolved``), a digest that is not the named call's
is ``approval_mismatch``, an unknown one ``approval_not_found``.

Only state, no commands: the book's methods never start anything, so using it changes no
history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from temporalio import workflow

from agent_session_manager.workflows.inputs import fail

with workflow.unsafe.imports_passed_through():
    from agent_session_manager.core.errors import error
    from agent_session_manager.core.tools import (
        ApprovalDecision,
        ApprovalResolution,
        PendingApproval,
    )

Outcome = Literal["granted", "denied"]


@dataclass
class Approval:
    """One approval: what was asked and, once decided, the decision and its reason."""

    pending: PendingApproval
    decision: Outcome | None = None
    reason: str | None = None
    #: Which provider call asked (CLI approvals: activity sequence, attempt).
    asked_by: tuple[int, int] = (0, 0)

    @property
    def open(self) -> bool:
        """Still waiting for a decision."""
        return self.decision is None


class ApprovalBook:
    """Approvals by digest, in the order they were asked."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.entries: dict[str, Approval] = {}

    def add(self, pending: PendingApproval, asked_by: tuple[int, int] = (0, 0)) -> Approval:
        """Book ``pending`` (its digest is its key)."""
        approval = self.entries[pending.digest] = Approval(pending, asked_by=asked_by)
        return approval

    @property
    def pending(self) -> list[PendingApproval]:
        """What still waits for a human, in the order asked."""
        return [a.pending for a in self.entries.values() if a.open]

    @property
    def resolved(self) -> list[ApprovalResolution]:
        """How each decided approval was resolved, in the order asked."""
        return [self.resolution(a) for a in self.entries.values() if not a.open]

    def __contains__(self, decision: ApprovalDecision) -> bool:
        return decision.digest in self.entries

    def find(self, decision: ApprovalDecision) -> Approval:
        """The open approval ``decision`` names; a typed rejection if it cannot take effect."""
        found = self.entries.get(decision.digest)
        if found is not None and decision.call_id in (None, found.pending.call_id):
            if not found.open:
                fail(
                    error(
                        "approval_already_resolved",
                        f"call {found.pending.call_id!r} was already {found.decision}"
                        f" ({found.reason or 'no reason given'}); nothing to do",
                        details={"call_id": found.pending.call_id, "decision": found.decision},
                    )
                )
            return found
        known = {a.pending.call_id for a in self.entries.values()}
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

    def resolve(self, decision: ApprovalDecision, outcome: Outcome) -> ApprovalResolution:
        """Apply ``decision`` (exactly once: a second gets ``approval_already_resolved``)."""
        approval = self.find(decision)
        self.settle(approval, outcome, decision.reason or decision.by)
        return self.resolution(approval)

    @staticmethod
    def settle(approval: Approval, outcome: Outcome, reason: str | None) -> bool:
        """Decide ``approval`` unless it already is (expiry, cancel, an approve in the same
        task): ``True`` when this call decided it."""
        if not approval.open:
            return False
        approval.decision, approval.reason = outcome, reason
        return True

    def resolution(self, approval: Approval) -> ApprovalResolution:
        """``approval``'s resolution, as ``approve`` / ``deny`` and ``describe_run`` say it."""
        assert approval.decision is not None
        return ApprovalResolution(
            run_id=self.run_id,
            call_id=approval.pending.call_id,
            digest=approval.pending.digest,
            decision=approval.decision,
            reason=approval.reason,
        )


__all__ = ["Approval", "ApprovalBook", "Outcome"]
