"""The search attributes a session sets, defined once: the workflow upserts them, the dev
server and ``asm setup`` register them, the client filters on them.

Their names are wire names (visibility queries and dashboards use them): renaming one strands
every session that already carries the old name.
"""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

#: The session's id (keyword).
SESSION_ID = SearchAttributeKey.for_keyword("AsmSessionId")
#: The agent the session runs (keyword).
AGENT_ID = SearchAttributeKey.for_keyword("AsmAgentId")
#: The provider the session uses (keyword).
PROVIDER = SearchAttributeKey.for_keyword("AsmProvider")
#: The session's status (keyword): pending, active, paused, completed, failed, cancelled.
STATUS = SearchAttributeKey.for_keyword("AsmStatus")
#: The session's tags (keyword list).
TAGS = SearchAttributeKey.for_keyword_list("AsmTags")
#: Tokens the session has used so far (int).
TOTAL_TOKENS = SearchAttributeKey.for_int("AsmTotalTokens")
#: The tenant whose API key started the session through the HTTP gateway (keyword); set once
#: at start, never changed (sessions started without a tenant have none).
TENANT = SearchAttributeKey.for_keyword("AsmTenant")

#: What the session's settled runs cost, every attempt counted, in micro-dollars (int):
#: ``AsmCostMicros > 1000000`` is "more than $1".
COST_MICROS = SearchAttributeKey.for_int("AsmCostMicros")
#: Approvals a run waits for (int): set on ``AgentRun`` workflows, so
#: ``AsmPendingApprovals > 0`` finds every run that waits for a human.
PENDING_APPROVALS = SearchAttributeKey.for_int("AsmPendingApprovals")

#: Every key, in registration order.
ALL: tuple[SearchAttributeKey[Any], ...] = (
    SESSION_ID,
    AGENT_ID,
    PROVIDER,
    STATUS,
    TAGS,
    TOTAL_TOKENS,
    COST_MICROS,
    PENDING_APPROVALS,
    TENANT,
)
