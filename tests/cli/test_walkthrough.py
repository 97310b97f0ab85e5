"""A new user's first hour, scripted with pexpect on a real terminal: the demo, ``asm dev`` in a
subdirectory, a second ``asm dev`` refused, a session, a followed run interrupted with Ctrl-C,
the printed cancel command, ``asm events -o json | jq``, and cancelling the session. Every exit
code is checked, and no command may print a traceback.

The commands are the venv's ``asm`` console script (what ``source .venv/bin/activate`` puts on
PATH), run on this checkout's code (``PYTHONPATH``), in a fresh project directory, with the
fixed ports of this test (17210-17219) for the dev server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from agent_session_manager.worker.dev_server import port_is_free

REPO = Path(__file__).resolve().parents[2]
ASM = str(Path(sys.executable).parent / "asm")
PORT, UI_PORT, OTHER_PORT, OTHER_UI_PORT = 17210, 17211, 17212, 17213
#: Commands take seconds each on a loaded two-core machine; generous, never a timing assertion.
SLOW = 240

#: rows, columns: wide enough that no line of ours wraps.
TERMINAL = (50, 400)
#: A reply that streams for minutes: it is still going when Ctrl-C and the cancel come.
SLOW_REPLY = json.dumps(
    {"steps": [{"type": "text", "text": "abcde" * 300, "chunk_size": 5, "delay_ms": 1000}]}
)


def user_env() -> dict[str, str]:
    """A shell as a new user has it: none of our variables, this checkout's code."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ASM_", "TEMPORAL_", "OTEL_")) and k != "ANTHROPIC_API_KEY"
    }
    return {**env, "PYTHONPATH": str(REPO), "COLUMNS": "200", "TERM": "dumb"}


def asm(*args: str, cwd: Path, timeout: float = SLOW) -> tuple[int, str]:
    """Run ``asm …`` on a terminal (stdout and stderr together, as a user sees them)."""
    output, status = pexpect.run(
        ASM,
        args=list(args),
        cwd=str(cwd),
        env=user_env(),
        timeout=timeout,
        withexitstatus=True,
        encoding="utf-8",
        dimensions=TERMINAL,
    )
    assert "Traceback" not in output, output
    return int(status), output


def spawn(*args: str, cwd: Path) -> pexpect.spawn:
    return pexpect.spawn(
        ASM,
        list(args),
        cwd=str(cwd),
        env=user_env(),
        encoding="utf-8",
        timeout=SLOW,
        dimensions=TERMINAL,
    )


def finish(child: pexpect.spawn) -> tuple[int, str]:
    """Wait for a spawned command to end; its exit code and the rest of its output."""
    child.expect(pexpect.EOF)
    child.close()
    rest = child.before or ""
    code = child.exitstatus if child.exitstatus is not None else 128 + (child.signalstatus or 0)
    return code, rest


@pytest.fixture
def dev_server() -> Iterator[list[pexpect.spawn]]:
    """Spawned `asm dev` processes, stopped at the end whatever happens."""
    children: list[pexpect.spawn] = []
    yield children
    for child in children:
        if child.isalive():
            child.terminate(force=True)


def test_first_hour(tmp_path: Path, dev_server: list[pexpect.spawn]) -> None:
    if not all(port_is_free(p) for p in (PORT, UI_PORT, OTHER_PORT, OTHER_UI_PORT)):
        pytest.fail(f"ports {PORT}-{OTHER_UI_PORT} of this test are taken by something else")
    assert not any((d / ".asm").exists() for d in tmp_path.parents), "a stray .asm above"
    project = tmp_path / "project"
    sub = project / "src" / "app"
    sub.mkdir(parents=True)

    # `make demo` = `asm demo` in the checkout: the whole flow on an embedded server.
    code, output = asm("demo", "--turns", "1", cwd=project)
    assert code == 0, output
    assert "session completed: 1 runs" in output
    assert (project / ".asm" / "asm.db").exists()

    # `asm dev` from a subdirectory: it finds the project's .asm/, creates none of its own.
    dev = spawn("dev", "--port", str(PORT), "--ui-port", str(UI_PORT), cwd=sub)
    dev_server.append(dev)
    dev.expect_exact(f"data in {project / '.asm'}/")
    dev.expect(rf"ready\s+Temporal: 127\.0\.0\.1:{PORT}\s+UI: http://127\.0\.0\.1:{UI_PORT}")
    assert not (sub / ".asm").exists()

    # A second one for the same project is refused, whatever its ports.
    code, output = asm("dev", "--port", str(OTHER_PORT), "--ui-port", str(OTHER_UI_PORT), cwd=sub)
    assert code != 0, output
    assert "already runs for this project" in output
    assert not re.search(r"\bready\b", output)
    # One on a busy port, from another directory, is refused before creating anything there.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, output = asm("dev", "--port", str(PORT), "--ui-port", str(OTHER_UI_PORT), cwd=elsewhere)
    assert code != 0, output
    assert f"127.0.0.1:{PORT} is already in use" in output
    assert not re.search(r"\bready\b", output)
    assert not (elsewhere / ".asm").exists()

    # A session, from the subdirectory (found through the project's dev server).
    code, output = asm("session", "start", "--mock-script", SLOW_REPLY, "-o", "json", cwd=sub)
    assert code == 0, output
    session = json.loads(output)["session_id"]
    assert session.startswith("ses_")

    # A followed run, interrupted: nothing is asked, the exact commands are printed, exit 130.
    run = spawn("run", "hello there", "--session", session, "--follow", cwd=sub)
    run.expect(r"run (run_\w+) running")
    run_id = run.match.group(1)
    run.expect("abcde")  # it is streaming
    run.sendintr()
    run.expect(rf"interrupted: run {run_id} goes on in session {session}")
    run.expect(rf"re-attach: asm run wait {run_id} --session {session} --follow")
    run.expect(r"cancel:\s+(asm run cancel \S+ --session \S+)")
    cancel_command = run.match.group(1).split()
    code, rest = finish(run)
    assert code == 130, rest
    assert "Traceback" not in (run.before or "")

    # The run went on; the printed command cancels it.
    code, output = asm("run", "show", run_id, cwd=sub)
    assert code == 0, output
    assert "status=running" in output
    code, output = asm(*cancel_command[1:], "--reason", "changed my mind", cwd=sub)
    assert code == 0, output
    assert f"{run_id} cancelled" in output
    code, output = asm("run", "wait", run_id, cwd=sub)
    assert code == 1, output  # it did not complete
    assert "cancelled" in output

    # `asm events -o json | jq`: JSON Lines a pipe can read (stdout only, not a terminal).
    events = subprocess.run(
        [ASM, "events", session, "-o", "json"],
        cwd=sub,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=SLOW,
        check=False,
    )
    assert events.returncode == 0, events.stderr
    assert "Traceback" not in events.stderr
    if shutil.which("jq"):
        jq = subprocess.run(
            ["jq", "-r", ".type"],
            input=events.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        assert jq.returncode == 0, jq.stderr
        types = jq.stdout.split()
    else:  # jq is not installed here: the same, read by Python
        types = [json.loads(line)["type"] for line in events.stdout.splitlines()]
    assert types[0] == "session_created"
    assert {"run_started", "message_streamed", "run_cancelled"} <= set(types)
    assert session in events.stdout  # ids whole when piped

    # Cancel the session, from the project root this time.
    code, output = asm("session", "cancel", session, cwd=project)
    assert code == 0, output
    assert f"{session} cancelled" in output

    # Ctrl-C stops `asm dev` cleanly.
    dev.sendintr()
    code, rest = finish(dev)
    assert code == 0, rest
    assert "Traceback" not in rest
    assert not (project / ".asm" / "dev.json").exists()
    assert re.search(r"stopping", rest)
