"""Commands find their project from any subdirectory, resolve Temporal from flags and the
environment in one documented order, and never create an event store by failing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_session_manager.cli.app import execute
from agent_session_manager.cli.project import find_project
from agent_session_manager.client.connection import resolve_connection
from agent_session_manager.store import upgrade


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = execute(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "ASM_HOME",
        "ASM_DATABASE_URL",
        "ASM_TEMPORAL_ADDRESS",
        "TEMPORAL_ADDRESS",
        "ASM_NAMESPACE",
        "TEMPORAL_NAMESPACE",
    ):
        monkeypatch.delenv(name, raising=False)


def test_the_project_is_found_from_a_subdirectory_with_absolute_paths(tmp_path: Path) -> None:
    (tmp_path / ".asm").mkdir()
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    project = find_project(deep, environ={})
    assert project.found and project.home == tmp_path / ".asm"
    assert project.database_url == f"sqlite+aiosqlite:///{tmp_path / '.asm' / 'asm.db'}"
    assert not project.database_explicit
    nearer = find_project(deep, environ={"ASM_HOME": "../elsewhere"})
    assert nearer.home == tmp_path / "a" / "b" / "elsewhere" and not nearer.found
    explicit = find_project(deep, environ={"ASM_DATABASE_URL": "postgresql+asyncpg://h/db"})
    assert explicit.database_url == "postgresql+asyncpg://h/db" and explicit.database_explicit


def test_no_project_means_dot_asm_here(tmp_path: Path) -> None:
    if any((d / ".asm").is_dir() for d in tmp_path.parents):
        pytest.skip("a .asm/ above the temporary directory would be found, as it should")
    project = find_project(tmp_path, environ={})
    assert not project.found and project.home == tmp_path / ".asm"


maybe = st.one_of(st.none(), st.just(""), st.just("  "), st.text(min_size=1, max_size=12))


@given(flag=maybe, asm=maybe, temporal=maybe, ns_flag=maybe, asm_ns=maybe, t_ns=maybe)
def test_flag_then_asm_then_temporal_variables(
    flag: str | None,
    asm: str | None,
    temporal: str | None,
    ns_flag: str | None,
    asm_ns: str | None,
    t_ns: str | None,
) -> None:
    environ = {
        k: v
        for k, v in {
            "ASM_TEMPORAL_ADDRESS": asm,
            "TEMPORAL_ADDRESS": temporal,
            "ASM_NAMESPACE": asm_ns,
            "TEMPORAL_NAMESPACE": t_ns,
        }.items()
        if v is not None
    }
    conn = resolve_connection(flag, ns_flag, environ)

    def first(*values: str | None) -> str | None:
        return next((v.strip() for v in values if v is not None and v.strip()), None)

    assert conn.address == first(flag, asm, temporal)
    assert conn.namespace == (first(ns_flag, asm_ns, t_ns) or "default")
    expected_source = next(
        (
            name
            for name, v in (
                ("--address", flag),
                ("ASM_TEMPORAL_ADDRESS", asm),
                ("TEMPORAL_ADDRESS", temporal),
            )
            if v is not None and v.strip()
        ),
        "unset",
    )
    assert conn.source == expected_source


def test_a_reading_command_creates_no_store_and_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".asm").mkdir()
    sub = tmp_path / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)
    for args in (["events", "ses_x"], ["audit", "ses_x"], ["run", "show", "run_x"]):
        code, _, err = run(capsys, *args)
        assert code == 1, err
        assert "not_found" in err and "start `asm dev` there" in err
        assert "db upgrade" not in err
    # Pointed at a remote Temporal, the advice is the worker's store, not a new one here.
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
    code, _, err = run(capsys, "run", "ls", "ses_x")  # Temporal only: unreachable, 75
    assert code == 75 and "temporal_unavailable" in err
    code, _, err = run(capsys, "run", "hi", "-s", "ses_x")
    assert code == 1 and "set ASM_DATABASE_URL to the event store its worker writes to" in err
    # An explicit URL naming no file: `asm db upgrade` is the right advice there.
    monkeypatch.setenv("ASM_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    code, _, err = run(capsys, "events", "ses_x")
    assert code == 1 and "asm db upgrade" in err
    assert sorted(p.name for p in tmp_path.rglob("*.db")) == []


def test_audit_and_events_treat_an_unknown_id_alike(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ASM_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'asm.db'}")
    asyncio.run(upgrade())
    for args in (["events", "ses_typo"], ["audit", "ses_typo"]):
        code, out, err = run(capsys, *args)
        assert (code, out) == (1, ""), err
        assert "session_not_found" in err
    code, _, err = run(capsys, "audit", "--run", "run_typo")
    assert code == 1 and "run_not_found" in err
    code, _, err = run(capsys, "events", "ses_typo", "-o", "json")
    assert code == 1 and '"code": "session_not_found"' in err


def test_the_address_flag_wins_over_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ASM_TEMPORAL_ADDRESS", "127.0.0.1:2")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:3")
    code, _, err = run(capsys, "session", "show", "ses_x", "--address", "127.0.0.1:1")
    assert code == 75 and "127.0.0.1:1" in err
    code, _, err = run(capsys, "session", "show", "ses_x")
    assert code == 75 and "127.0.0.1:2" in err
    monkeypatch.delenv("ASM_TEMPORAL_ADDRESS")
    code, _, err = run(capsys, "session", "show", "ses_x", "-o", "json")
    assert code == 75
    assert '"code": "temporal_unavailable"' in err and "127.0.0.1:3" in err
