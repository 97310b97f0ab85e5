"""Commands find their project from any subdirectory, resolve Temporal from flags and the
environment in one documented order, and never create an event store by failing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from agent_session_manager.cli.app import execute
from agent_session_manager.cli.project import cli_settings, find_project
from agent_session_manager.core.errors import AsmError
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


blank = st.sampled_from([None, "", "  "])
addresses = st.one_of(blank, st.builds("h{}:{}".format, st.integers(0, 99), st.integers(1, 65535)))
namespaces = st.one_of(blank, st.text("abcxyz-_.", min_size=1, max_size=12))


@hypothesis_settings(deadline=None)  # the machine is shared; no timing here
@given(flag=addresses, asm=addresses, temporal=addresses, ns_flag=namespaces, asm_ns=namespaces)
def test_flag_then_asm_then_temporal_variables(
    flag: str | None,
    asm: str | None,
    temporal: str | None,
    ns_flag: str | None,
    asm_ns: str | None,
) -> None:
    """The CLI's settings come from client.connect.resolve (one resolver), except that no
    address configured stays None: the project's `asm dev` server is used then."""
    environ = {
        k: v
        for k, v in {
            "ASM_TEMPORAL_ADDRESS": asm,
            "TEMPORAL_ADDRESS": temporal,
            "ASM_NAMESPACE": asm_ns,
        }.items()
        if v is not None
    }

    def first(*values: str | None) -> str | None:
        return next((v.strip() for v in values if v is not None and v.strip()), None)

    with pytest.MonkeyPatch.context() as mp:
        for name in ("ASM_TEMPORAL_ADDRESS", "TEMPORAL_ADDRESS", "ASM_NAMESPACE"):
            mp.delenv(name, raising=False)
        for name, value in environ.items():
            mp.setenv(name, value)
        settings = cli_settings(find_project(Path("/"), environ={}), flag, ns_flag)
    assert settings.temporal_address == first(flag, asm, temporal)
    assert settings.namespace == (first(ns_flag, asm_ns) or "default")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--address", "no-port"], "--address: 'no-port' is not host:port"),
        (["--address", "h:99999"], "--address: 'h:99999' is not host:port"),
        (["--namespace", "two words"], "--namespace: must be"),
    ],
)
def test_a_bad_address_or_namespace_flag_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    for command in (["session", "ls"], ["approvals", "ls"]):
        code, out, err = run(capsys, *command, *args)
        assert code == 2, err
        assert expected in err and len(err.strip().splitlines()) == 1 and not out


def test_a_bad_address_variable_is_a_validation_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ASM_TEMPORAL_ADDRESS", "no-port")
    with pytest.raises(AsmError) as caught:
        cli_settings(find_project(Path("/"), environ={}))
    assert caught.value.code == "validation_error"
    assert caught.value.details["setting"] == "ASM_TEMPORAL_ADDRESS"
    code, _, err = run(capsys, "session", "ls")
    assert code == 1 and "ASM_TEMPORAL_ADDRESS" in err


def test_a_reading_command_creates_no_store_and_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".asm").mkdir()
    sub = tmp_path / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)
    for args in (
        ["events", "ses_x"],
        ["audit", "ses_x"],
        ["run", "show", "run_x"],
        ["keys", "ls"],
        ["keys", "create", "--tenant", "acme"],
        ["usage"],
        ["limits"],
        ["serve"],
    ):
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


def test_store_commands_use_the_project_store_from_any_subdirectory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """keys, usage, limits and session show's slots read <project>/.asm/asm.db, not a
    cwd-relative .asm/ (which would be a new, empty store in each directory)."""
    import asyncio
    import json

    from agent_session_manager.cli.sessions import _print_slots

    (tmp_path / ".asm").mkdir()
    asyncio.run(upgrade(f"sqlite+aiosqlite:///{tmp_path / '.asm' / 'asm.db'}"))
    first, second = tmp_path / "a", tmp_path / "b" / "c"
    first.mkdir()
    second.mkdir(parents=True)
    monkeypatch.chdir(first)
    code, out, err = run(capsys, "keys", "create", "--tenant", "acme", "-o", "json")
    assert code == 0, err
    created = json.loads(out)
    monkeypatch.chdir(second)
    code, out, err = run(capsys, "keys", "ls", "-o", "json")
    assert code == 0 and [k["key_id"] for k in json.loads(out)] == [created["key_id"]], err
    code, out, err = run(capsys, "usage", "-o", "json")
    assert code == 0 and json.loads(out) == {"group": "session", "rows": []}, err
    code, out, err = run(capsys, "limits", "--json")  # the hidden alias of -o json
    assert code == 0 and json.loads(out)["sessions"] == [], err
    capsys.readouterr()
    asyncio.run(_print_slots(find_project(), "ses_x"))
    out, err = capsys.readouterr()
    assert "fleet slots: none held" in out and not err
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.db")) == [
        ".asm/asm.db"
    ]


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
