"""Approvals an agent CLI (Codex, Claude Code) asks for while its provider activity runs.

The CLI waits inside the provider activity, so the run cannot await the decision the way its
agent loop does. Instead the activity tells the run (signal ``cli_approval_requested``, one
:class:`PendingApproval` with its action digest), the run lists it (``describe_run``) and
takes the same ``approve`` / ``deny`` updates as a tool approval, and the activity polls
``describe_run`` until the digest shows up among ``resolved_approvals``. The decision lives in
the run's history: exactly one resolution takes effect, a second gets
``approval_already_resolved``, a digest for other arguments is rejected. Expiry is the
activity's own ``deny`` (reason ``expired``), so it too is one resolution among others.
A dead attempt cannot expire its requests: a retried attempt tells the run it started (signal
``attempt_started``), and what earlier attempts still wait for resolves as superseded.

Only state, no commands: handlers mutate this book and nothing else, so histories of runs
that never met a CLI approval replay unchanged (the run upserts ``AsmPendingApprovals`` when
the book changes; ``attempt_started`` changes it only under the ``attempt-started`` patch).
"""

from __future__ import annotations

from temporalio import workflow

from agent_session_manager.workflows.approval_book import ApprovalBook

with workflow.unsafe.imports_passed_through():
    from agent_session_manager.core.tools import CliApprovalRequest

#: A run keeps at most this many CLI approvals (a misbehaving activity cannot grow history).
MAX_CLI_APPROVALS = 256
#: Patch under which the run applies ``attempt_started``. A new signal, so no history recorded
#: before it holds one; but a worker of the previous release drops it as unknown, and a newer
#: worker replaying that history must not apply it (its upsert would be a new command).
ATTEMPT_STARTED_PATCH = "attempt-started"


class CliApprovals(ApprovalBook):
    """The run's book of CLI approvals: pending ones and how each was resolved."""

    def __init__(self, run_id: str, session_id: str, token: str | None) -> None:
        super().__init__(run_id)
        self.session_id = session_id
        self._token = token
        #: The latest provider call (activity, attempt) that asked: earlier ones are gone.
        self._latest = (0, 0)

    def add_request(self, signal: CliApprovalRequest) -> bool:
        """Record a request from the run's own activity; ``False`` when it is dropped.

        A request from a later provider call (a retried attempt, or the loop's next model
        call) supersedes what earlier ones still wait for: one provider call of a run runs at
        a time, so their CLI process is gone (the worker died, the attempt failed) and no
        decision could reach it. They resolve as denied (reason ``superseded``) and are no
        longer listed; the new attempt's CLI asks again, and that is what a human decides.
        """
        request = signal.approval
        if signal.token != self._token:
            return False
        if request.run_id != self.run_id or request.session_id != self.session_id:
            return False
        asked_by = signal.asked_by()
        if asked_by < self._latest:
            return False  # a zombie attempt's request: its CLI's answer would go nowhere
        known = self.entries.get(request.digest)
        if known is not None and known.open:
            known.asked_by = asked_by  # the same action asked again: still the one to decide
        if asked_by > self._latest:
            self._latest = asked_by
            self.supersede(asked_by)
        if known is not None:
            return True  # a re-sent signal, or an action decided already: the poll reads how
        if len(self.entries) >= MAX_CLI_APPROVALS:
            return False
        self.add(request, asked_by)
        return True

    def is_news(self, token: str | None, attempt: tuple[int, int]) -> bool:
        """Whether the run's own provider ``attempt`` starting changes this book: it is later
        than every attempt seen so far (a re-sent or stale ``attempt_started`` is not)."""
        return token == self._token and attempt > self._latest

    def attempt_started(self, attempt: tuple[int, int]) -> int:
        """A retried provider attempt starts: earlier attempts' CLIs are gone, whether or not
        the new one ever asks again. What they wait for resolves as superseded, and a request
        they send from now on (a zombie's) is dropped. How many were superseded."""
        self._latest = attempt
        return self.supersede(attempt, f"superseded: provider attempt {attempt[1]} started")

    def supersede(self, asked_by: tuple[int, int], reason: str | None = None) -> int:
        """Resolve, as denied, what provider calls before ``asked_by`` still wait for; how
        many that was."""
        reason = reason or f"superseded: provider attempt {asked_by[1]} asks again"
        return sum(
            self.settle(approval, "denied", reason)
            for approval in self.entries.values()
            if approval.asked_by < asked_by
        )

    def deny_all(self, reason: str) -> None:
        """The run ends: whatever is still pending resolves as denied."""
        for approval in self.entries.values():
            self.settle(approval, "denied", reason)


__all__ = ["ATTEMPT_STARTED_PATCH", "MAX_CLI_APPROVALS", "CliApprovals"]
