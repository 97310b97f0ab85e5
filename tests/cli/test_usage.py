"""Bad option values are usage errors: exit 2, one line on stderr saying what is valid, never a
traceback. Run in-process (``cli.app.execute``): parsing fails before any connection, so
hypothesis can try hundreds of values quickly."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_session_manager.cli.app import execute
from agent_session_manager.cli.options import Strategy
from agent_session_manager.core.status import SessionStatus

STRATEGIES = {s.value for s in Strategy}
STATUSES = {s.value for s in SessionStatus}
OUTPUTS = {"text", "json", "TEXT", "JSON", "Text", "Json", "tExt", "jSon"}

# Words that would be read as an option or as the end of options, not as a value.
value_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=40,
).filter(lambda v: not v.startswith("-"))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = execute(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(code: int, out: str, err: str, *expected: str) -> None:
    assert code == 2, (code, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    assert "internal error" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for word in expected:
        assert word in lines[0], lines[0]


@pytest.fixture(autouse=True)
def _nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Parsing fails first; should anything get further, it finds no project and no server.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ASM_HOME", str(tmp_path / ".asm"))
    monkeypatch.setenv("ASM_TEMPORAL_ADDRESS", "127.0.0.1:1")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=value_text.filter(lambda v: v not in STRATEGIES))
def test_a_bad_strategy_says_which_are_valid(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    code, out, err = run(capsys, "session", "start", "--strategy", value)
    assert_usage_error(code, out, err, "--strategy", "reject", "enqueue", "interrupt", "rollback")
    code, out, err = run(capsys, "run", "hi", "-s", "ses_x", "--strategy", value)
    assert_usage_error(code, out, err, "--strategy", "reject")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    script=st.one_of(
        value_text,  # mostly not JSON at all
        json_values.map(json.dumps),  # JSON, mostly not a MockScript
        st.builds(
            lambda steps: json.dumps({"steps": steps}),
            st.lists(st.dictionaries(st.sampled_from(["type", "text", "delay_ms"]), json_values)),
        ),
    )
)
def test_a_malformed_mock_script_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], script: str
) -> None:
    from agent_session_manager.core.contract import MockScript

    try:
        MockScript.model_validate_json(script)
    except Exception:
        pass
    else:  # a valid script: not what this test is about
        return
    code, out, err = run(capsys, "session", "start", "--mock-script", script)
    assert_usage_error(code, out, err, "--mock-script", "MockScript JSON")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=value_text.filter(lambda v: v.lower() not in {"text", "json"}))
def test_a_bad_output_format_is_a_usage_error_on_every_command(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    for command in (
        ["session", "show", "ses_x"],
        ["session", "ls"],
        ["run", "ls", "ses_x"],
        ["run", "cancel", "run_x"],
        ["events", "ses_x"],
        ["audit", "ses_x"],
        ["db", "upgrade"],
        ["dev"],
        ["demo"],
        ["approvals", "ls"],
        ["approvals", "approve", "run_x", "digest"],
        ["approvals", "deny", "run_x", "digest"],
        ["keys", "create", "--tenant", "acme"],
        ["keys", "ls"],
        ["keys", "revoke", "key_x"],
        ["usage"],
        ["limits"],
        ["serve"],
    ):
        code, out, err = run(capsys, *command, "-o", value)
        assert_usage_error(code, out, err, "--output", "text", "json")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=value_text.filter(lambda v: v not in STATUSES))
def test_a_bad_status_filter_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    code, out, err = run(capsys, "session", "ls", "--status", value)
    assert_usage_error(code, out, err, "--status", "active", "cancelled")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    option=st.sampled_from(["--port", "--ui-port"]),
    value=st.one_of(
        st.integers().filter(lambda n: not 1 <= n <= 65535).map(str),
        st.text(alphabet=string.ascii_letters + ".:", min_size=1, max_size=10),
    ),
)
def test_a_bad_port_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    code, out, err = run(capsys, "dev", option, value)
    assert_usage_error(code, out, err, option)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.one_of(value_text, st.integers(max_value=-1).map(str)))
def test_a_bad_after_or_since_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    if not value.lstrip().isdigit():
        code, out, err = run(capsys, "events", "ses_x", "--after", value)
        assert_usage_error(code, out, err, "--after")
    code, out, err = run(capsys, "audit", "ses_x", "--since", value + "x")
    assert_usage_error(code, out, err, "--since")
    for option in ("--since", "--until"):  # asm usage's days: YYYY-MM-DD, today, 7d, …
        code, out, err = run(capsys, "usage", option, value + "x")
        assert_usage_error(code, out, err, option, "YYYY-MM-DD")


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=value_text.filter(lambda v: v.strip() and ":" not in v))
def test_a_bad_address_is_a_usage_error_on_every_connecting_command(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    for command in (
        ["session", "ls"],
        ["approvals", "ls"],
        ["approvals", "approve", "run_x", "digest"],
        ["serve"],
    ):
        code, out, err = run(capsys, *command, "--address", value)
        assert_usage_error(code, out, err, "--address", "host:port")


def test_a_usage_error_in_json_mode_is_one_json_object(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "session", "start", "--strategy", "queue", "-o", "json")
    assert code == 2
    assert json.loads(err) == {
        "error": {
            "code": "usage",
            "command": "asm session start",
            "message": "Invalid value for '--strategy': 'queue' is not one of 'reject', "
            "'enqueue', 'interrupt', 'rollback'.",
        }
    }


def test_a_model_refusal_is_a_usage_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "session", "start", "--agent", " ")
    assert_usage_error(code, out, err, "agent_id")
    code, out, err = run(capsys, "session", "start", "--id", "not an id!")
    assert_usage_error(code, out, err, "session_id")


def test_missing_arguments_and_unknown_commands_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for args in (["run", "start", "hi"], ["run", "cancel"], ["session", "frobnicate"], ["nope"]):
        code, out, err = run(capsys, *args)
        assert_usage_error(code, out, err)
    code, out, err = run(capsys, "run")  # a group without a subcommand: its help, exit 2
    assert code == 2 and "Usage" in out + err
