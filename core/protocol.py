"""Every name on the wire, in one place: task queue, workflow types, updates, signals, queries
and activities.

These names are a contract with running workflows and with users of any Temporal SDK or the
``temporal`` CLI: renaming one breaks the replay of recorded histories and every caller that
uses it. Workflows declare their handlers with these constants; everything else calls the
handlers by method reference (``handle.execute_update(AgentSession.submit_run, ...)``), so
mypy checks both sides and no other module spells a name.
"""

from __future__ import annotations

from typing import Final

#: Task queue workers poll unless configured otherwise.
DEFAULT_TASK_QUEUE: Final = "agent-sessions"

#: Workflow type of a session.
SESSION_WORKFLOW: Final = "AgentSession"
#: Workflow type of a run.
RUN_WORKFLOW: Final = "AgentRun"

#: Session update ``pending → active``.
ACTIVATE: Final = "activate"
#: Session update ``active → paused``.
PAUSE: Final = "pause"
#: Session update ``paused → active``.
RESUME: Final = "resume"
#: Session update that ends it ``completed``.
COMPLETE: Final = "complete"
#: Session update that ends it ``failed``.
FAIL: Final = "fail"
#: Session update that submits a run.
SUBMIT_RUN: Final = "submit_run"
#: Session update (and signal of the same name) that cancels one run.
CANCEL_RUN: Final = "cancel_run"
#: Session update that cancels the running run(s) and lets the queue proceed.
INTERRUPT: Final = "interrupt"
#: Session signal that cancels the session and all its runs.
CANCEL: Final = "cancel"
#: Signal a run sends its session as it ends, so the slot is free before the end is visible.
RUN_FINISHED: Final = "run_finished"
#: Signal the provider activity sends its run when an attempt fails: the run's history (its
#: page in the Temporal UI) keeps every attempt's error, where Temporal keeps only the last.
ATTEMPT_FAILED: Final = "attempt_failed"
#: Signal a run sends its session when what its agent loop waits for changes (approvals…).
RUN_WAITING: Final = "run_waiting"
#: Signal the provider activity sends its run when an agent CLI (Codex, Claude Code) asks for
#: an approval: the run lists it (``describe_run``) and takes the ``approve`` / ``deny``.
CLI_APPROVAL_REQUESTED: Final = "cli_approval_requested"
#: Signal the provider activity sends its run when a retried attempt starts: whatever the
#: earlier attempts' agent CLI still waits for will never reach that CLI (it is gone).
ATTEMPT_STARTED: Final = "attempt_started"
#: Session query: the session's status, runs and totals.
DESCRIBE: Final = "describe"
#: Run query: the run's current status.
RUN_STATUS: Final = "status"

#: Activity that runs one provider attempt and streams its events to the store.
STREAM_PROVIDER_ACTIVITY: Final = "stream_provider"
#: Local activity that writes one lifecycle event and its read-model change.
RECORD_LIFECYCLE_ACTIVITY: Final = "record_lifecycle"
#: Activity that lists the providers a worker can run.
PROVIDER_CATALOG_ACTIVITY: Final = "provider_catalog"
#: Activity that drops a run's messages from the conversation (strategy ``rollback``).
ROLLBACK_RUN_ACTIVITY: Final = "rollback_run"
#: Local activity that stores content sent inline above the limit and returns its reference.
STORE_CONTENT_ACTIVITY: Final = "store_content"
#: Local activity that claims a session id for one session workflow (store-enforced).
CLAIM_SESSION_ACTIVITY: Final = "claim_session"
#: Local activity that claims a run id for one session (store-enforced).
CLAIM_RUN_ACTIVITY: Final = "claim_run"
#: Local activity that asks Temporal to cancel a workflow (a session cancelled by signal ends
#: Canceled, with its reason, like one cancelled through Temporal).
REQUEST_CANCEL_ACTIVITY: Final = "request_cancel"

#: Activity that runs one call of one worker-side tool (own timeouts and retries per tool).
EXECUTE_TOOL_ACTIVITY: Final = "execute_tool"
#: Run update that grants a pending approval, naming its action digest.
APPROVE: Final = "approve"
#: Run update that denies a pending approval, naming its action digest.
DENY: Final = "deny"
#: Run update by which the application hands in a client-side tool's result.
SUBMIT_TOOL_RESULT: Final = "submit_tool_result"
#: Run query: where the agent loop is, pending approvals and client-side tool calls.
DESCRIBE_RUN: Final = "describe_run"
