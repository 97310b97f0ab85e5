"""The bundled Claude Code CLI as a child process, spoken to through ``claude-agent-sdk``.

``ClaudeSDKClient`` speaks Claude Code's stream-json control protocol (initialize, interrupt,
typed messages); we hand it our own :class:`CliTransport` for the bundled binary instead of
the SDK's subprocess transport, for three reasons:

* the environment is ours alone — the SDK's transport merges the worker's whole ``os.environ``
  into the CLI (and so into every Bash command the agent runs); ours passes a minimal
  environment plus the credentials from the run's secrets (:func:`environment`);
* the CLI starts in its own process group (``start_new_session=True``) and cancellation kills
  the whole tree at once — the SDK's ``close()`` waits up to 5 s before SIGTERM;
* every await in ``close()`` is bounded by our own constants.

Network: only the configured base URL. ``HOME`` is the session's own directory (so no user
settings, credentials or plugins are read); ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` (no
telemetry, error reporting, auto-update or feature flags), ``CLAUDE_CODE_MAX_RETRIES=0`` and
``CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK=1`` (a failed request fails the run: retries are
Temporal's), and ``CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS=1`` — without it the CLI answers any
400 by re-sending the request with fewer beta headers, so a bad request would not fail at once
(``experimental_betas`` restores them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections import deque
from pathlib import Path
from typing import Any

from agent_session_manager.activities.providers.agent_cli import (
    LINE_LIMIT,
    strip_ansi,
    terminate_process_tree,
)
from agent_session_manager.activities.providers.base import unavailable
from agent_session_manager.activities.providers.claude_code._options import ClaudeCodeOptions
from agent_session_manager.core.errors import error

try:  # the extra may be missing: the provider must still load and say what to install
    from claude_agent_sdk import Transport as _SdkTransport
except ImportError:  # pragma: no cover - exercised by the missing-extra test via stream()
    _SdkTransport = object  # type: ignore[assignment,misc]

INSTALL_HINT = "pip install 'agent-session-manager[claude-code]'"

#: After the result the CLI exits on stdin EOF once its transcript is flushed; killing it
#: sooner could lose the turn the next run resumes.
EXIT_GRACE_S = 5.0


def claude_binary() -> Path:
    """The Claude Code CLI bundled in ``claude-agent-sdk``, or ``provider_unavailable``."""
    try:
        import claude_agent_sdk
    except ImportError:
        raise unavailable("claude-code", INSTALL_HINT) from None
    name = "claude.exe" if sys.platform == "win32" else "claude"
    path = Path(claude_agent_sdk.__file__).parent / "_bundled" / name
    if not path.is_file():
        raise unavailable("claude-code", INSTALL_HINT)
    return path


class CliTransport(_SdkTransport):
    """The bundled CLI as a ``claude_agent_sdk.Transport``: our env, our process group."""

    def __init__(self, argv: list[str], *, env: dict[str, str], cwd: str) -> None:
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr_tail: deque[str] = deque(maxlen=50)
        self._stderr_task: asyncio.Task[None] | None = None
        self._closing = False

    async def connect(self) -> None:
        try:
            self.proc = await self._spawn()
        except OSError as exc:  # not executable, wrong architecture, …
            # A broken install, as for the codex provider: say what to reinstall, do not retry.
            # (Raised as the domain error: ClaudeSDKClient.connect lets it through, where a
            # CLIConnectionError would become a generic provider_error.)
            raise error(
                "provider_unavailable",
                f"could not start Claude Code at {self.argv[0]}: {exc}; "
                f"reinstall with: {INSTALL_HINT}",
                details={"fix": INSTALL_HINT},
                retryable=False,
            ) from exc
        self._stderr_task = asyncio.create_task(self._drain_stderr(), name="claude-stderr")

    async def _spawn(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
            limit=LINE_LIMIT,
        )

    async def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = strip_ansi(raw)
            if line:
                self.stderr_tail.append(line)

    async def write(self, data: str) -> None:
        from claude_agent_sdk import CLIConnectionError

        if self.proc is None or self.proc.stdin is None or self.proc.stdin.is_closing():
            raise CLIConnectionError("Claude Code is not running")
        try:
            self.proc.stdin.write(data.encode())
            await self.proc.stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise CLIConnectionError(f"Claude Code stopped reading: {exc}") from exc

    def read_messages(self) -> Any:
        return self._read()

    async def _read(self) -> Any:
        from claude_agent_sdk import ProcessError

        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            try:
                data = json.loads(raw)
            except ValueError:
                continue  # not protocol: the CLI's own diagnostics
            if isinstance(data, dict):
                yield data
        returncode = await self.proc.wait()
        if returncode != 0 and not self._closing:
            tail = "\n".join(list(self.stderr_tail)[-10:])
            raise ProcessError(
                "Claude Code exited before the turn completed",
                exit_code=returncode,
                stderr=tail or None,
            )

    async def end_input(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()

    def is_ready(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def close(self) -> None:
        """Graceful: stdin EOF, a bounded wait for exit, then the process tree goes."""
        self._closing = True
        if self.proc is None:
            return
        await self.end_input()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), EXIT_GRACE_S)
        await self.kill()

    async def kill(self) -> None:
        """Forced: SIGTERM/SIGKILL the process group and every descendant, reap."""
        self._closing = True
        if self.proc is None:
            return
        try:
            await terminate_process_tree(self.proc)
        finally:
            if self.proc.stdin is not None and not self.proc.stdin.is_closing():
                self.proc.stdin.close()
            if self._stderr_task is not None:
                self._stderr_task.cancel()
                await asyncio.gather(self._stderr_task, return_exceptions=True)


# --- the command line and the environment ---------------------------------------------------


def command_line(
    binary: Path,
    options: ClaudeCodeOptions,
    *,
    model: str | None,
    system_prompt: str | None,
    resume: str | None,
) -> list[str]:
    """The CLI's documented flags for one stream-json turn."""
    argv = [
        str(binary),
        "--output-format",
        "stream-json",
        "--input-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
    ]
    if system_prompt:
        argv += ["--append-system-prompt", system_prompt]
    if options.allowed_tools:
        argv += ["--allowedTools", ",".join(options.allowed_tools)]
    if options.disallowed_tools:
        argv += ["--disallowedTools", ",".join(options.disallowed_tools)]
    if options.max_turns:
        argv += ["--max-turns", str(options.max_turns)]
    if model:
        argv += ["--model", model]
    if options.permission_mode:
        argv += ["--permission-mode", options.permission_mode]
    if options.permission_decision:
        # What the SDK's own transport adds for ``can_use_tool``: permission requests come
        # over the control protocol, to our callback (:mod:`._provider`).
        argv += ["--permission-prompt-tool", "stdio"]
    if resume:
        argv.append(f"--resume={resume}")  # '=' form: a value can never become a flag
    if options.setting_sources is not None:
        argv.append(f"--setting-sources={','.join(options.setting_sources)}")
    return argv


def environment(
    home: Path, options: ClaudeCodeOptions, secrets: dict[str, str], sdk_version: str
) -> dict[str, str]:
    """The CLI's whole environment: the run's credential, nothing else of the worker's."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "ANTHROPIC_API_KEY": secrets["ANTHROPIC_API_KEY"],
        "CLAUDE_CODE_ENTRYPOINT": "sdk-py",
        "CLAUDE_AGENT_SDK_VERSION": sdk_version,
        "CLAUDE_AGENT_SDK_CLIENT_APP": "agent-session-manager",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "ENABLE_CLAUDEAI_MCP_SERVERS": "false",
    }
    if not options.experimental_betas:
        env["CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS"] = "1"
    if secrets.get("ANTHROPIC_BASE_URL"):
        env["ANTHROPIC_BASE_URL"] = secrets["ANTHROPIC_BASE_URL"]
    timeout_ms = options.api_timeout_ms()
    if timeout_ms is not None:
        env["API_TIMEOUT_MS"] = str(timeout_ms)
    for key in ("LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env
