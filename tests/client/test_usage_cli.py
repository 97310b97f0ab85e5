"""``asm usage``: the cost ledger grouped, as a table or JSON, with typed errors and exit codes
(real subprocesses on a real SQLite store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent_session_manager.core.ledger import LedgerEntry
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.store import open_store, upgrade
from tests.client.test_cli import asm


async def _ledger(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'asm.db'}"
    await upgrade(url)
    store = await open_store(url)
    try:
        for run, attempt, agent, tenant, outcome, day, cost in (
            ("r1", 1, "agent-a", "acme", "failed", "2026-12-02", 1_500_000),
            ("r1", 2, "agent-a", "acme", "completed", "2026-12-02", 250_000),
            ("r2", 1, "agent-b", None, "completed", "2026-12-03", None),
        ):
            await store.bill(
                LedgerEntry(
                    run_id=run,
                    attempt=attempt,
                    session_id=f"s-{agent}",
                    agent_id=agent,
                    tenant=tenant,
                    provider="anthropic",
                    model="claude-sonnet-4-6" if cost is not None else "unpriced-1",
                    usage=TokenUsage(input_tokens=100, output_tokens=10),
                    cost_micros=cost,
                    price_version="v" if cost is not None else None,
                    outcome=outcome,  # type: ignore[arg-type]
                    day=day,
                )
            )
    finally:
        await store.close()
    return {"ASM_DATABASE_URL": url}


async def test_usage_groups_by_agent_as_json(tmp_path: Path) -> None:
    env = await _ledger(tmp_path)
    code, out, err = await asm("usage", "--by", "agent", "-o", "json", env=env)
    assert code == 0, err
    body = json.loads(out)
    assert body["group"] == "agent"
    rows = {r["key"]: r for r in body["rows"]}
    assert rows["agent-a"]["attempts"] == 2 and rows["agent-a"]["cost_micros"] == 1_750_000
    assert rows["agent-a"]["usage"]["total_tokens"] == 220
    assert rows["agent-b"]["unpriced_attempts"] == 1
    assert [r["key"] for r in body["rows"]] == ["agent-a", "agent-b"]  # most expensive first


@pytest.mark.parametrize(
    ("args", "keys"),
    [
        (["--by", "day", "--since", "2026-12-03"], ["2026-12-03"]),
        (["--by", "tenant", "--tenant", "acme"], ["acme"]),
        (["--by", "run", "--session", "s-agent-a"], ["r1"]),
        (["--by", "model"], ["claude-sonnet-4-6", "unpriced-1"]),
    ],
)
async def test_usage_filters_and_groups(tmp_path: Path, args: list[str], keys: list[str]) -> None:
    env = await _ledger(tmp_path)
    code, out, err = await asm("usage", *args, "-o", "json", env=env)
    assert code == 0, err
    assert [r["key"] for r in json.loads(out)["rows"]] == keys


async def test_usage_table_shows_dollars(tmp_path: Path) -> None:
    env = await _ledger(tmp_path)
    code, out, err = await asm("usage", "--by", "agent", env=env)
    assert code == 0, err
    assert "$1.750000" in out and "unpriced" in out


async def test_a_bad_day_is_a_usage_error_with_exit_2_and_json(tmp_path: Path) -> None:
    env = await _ledger(tmp_path)
    code, out, err = await asm("usage", "--since", "last tuesday", "-o", "json", env=env)
    assert code == 2 and out == ""
    usage = json.loads(err)["error"]
    assert usage["code"] == "usage" and "--since" in usage["message"]
    code, out, err = await asm("usage", "--until", "soon", env=env)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "YYYY-MM-DD" in err and "asm usage --help" in err


async def test_the_format_is_spelled_text_or_json_like_everywhere(tmp_path: Path) -> None:
    env = await _ledger(tmp_path)
    code, out, err = await asm("usage", "-o", "text", env=env)
    assert code == 0 and "cost" in out, err
    code, out, err = await asm("usage", "-o", "table", env=env)
    assert code == 2 and out == "" and "text" in err and "json" in err


async def test_an_unknown_group_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = await asm("usage", "--by", "planet")
    assert code == 2 and "planet" in err


async def test_usage_has_help() -> None:
    code, out, _ = await asm("usage", "--help")
    assert code == 0 and "--by" in out and "--output" in out
