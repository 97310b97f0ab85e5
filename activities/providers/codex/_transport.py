"""The Codex CLI as a child process: the binary, its configuration, and JSON-RPC over stdio.

Why ``codex app-server`` and not ``codex exec --json``: ``exec --json`` prints whole items
only (an agent message appears when it is finished) and can only be stopped by killing it.
The app-server protocol (JSON-RPC 2.0 over stdio, the one the official ``openai-codex`` SDK
and the IDE extensions speak) streams deltas, reports token usage per model response, carries
a structured error (``codexErrorInfo`` with the upstream ``httpStatusCode``) and has
``turn/interrupt`` so a cancelled run ends the turn cleanly before the process is killed. We
speak the protocol directly (a few dozen lines) rather than through the ``openai-codex`` SDK,
whose client is thread-based and synchronous: the activity must never block the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_session_manager.activities.providers.agent_cli import (
    LINE_LIMIT,
    strip_ansi,
    terminate_process_tree,
)
from agent_session_manager.activities.providers.base import unavailable

INSTALL_HINT = "pip install 'agent-session-manager[codex]'"
DEFAULT_BASE_URL = "https://api.openai.com/v1"

#: Answers a server → client request (an approval, say): ``(method, params) -> result``.
ServerRequestHandler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]

#: After ``turn/completed`` the app-server exits on stdin EOF once the rollout is flushed;
#: killing it sooner could lose the turn the next run wants to resume.
EXIT_GRACE_S = 5.0
#: JSON-RPC requests other than the turn itself (initialize, thread/start, …) are local and
#: fast; a CLI that does not answer within this is wedged.
RPC_TIMEOUT_S = 60.0

#: Features that open connections other than to the model provider (or retry forever).
_FEATURES_OFF = (
    "plugins",
    "remote_plugin",
    "apps",
    "tool_suggest",
    "skill_mcp_dependency_install",
    "enable_request_compression",
    "unbounded_connection_retries",
    "daemon_auto_start",
    "api_key_model_discovery",
    "system_proxy_fallback",
    "in_app_updates",
    "realtime_conversation",
    "browser_use",
    "browser_use_external",
    "computer_use",
    "image_generation",
    "memories",
)


# --- the binary --------------------------------------------------------------------------


def codex_binary() -> Path:
    """The Codex CLI from the ``openai-codex-cli-bin`` wheel, or ``provider_unavailable``."""
    try:
        from codex_cli_bin import (  # type: ignore[import-untyped, unused-ignore]
            bundled_codex_path,
        )
    except ImportError:
        raise unavailable("codex", INSTALL_HINT) from None
    try:
        return Path(bundled_codex_path())
    except FileNotFoundError as exc:
        raise unavailable("codex", INSTALL_HINT) from exc


def _codex_path_dirs() -> list[str]:
    # The wheel ships helpers (ripgrep) the CLI expects on PATH.
    try:
        from codex_cli_bin import (  # type: ignore[import-untyped, unused-ignore]
            bundled_path_dir,
        )
    except ImportError:  # pragma: no cover - the binary check runs first
        return []
    path_dir = bundled_path_dir()
    return [str(path_dir)] if path_dir else []


# --- JSON-RPC over stdio -------------------------------------------------------------------


class RpcError(Exception):
    """A JSON-RPC error: the app-server refused a request (or we refuse one of its)."""

    def __init__(self, method: str, payload: dict[str, Any]) -> None:
        self.method = method
        self.code = payload.get("code")
        self.message = str(payload.get("message", "")) or "error"
        self.data = payload.get("data")
        super().__init__(f"{method}: {self.message}")


class ProcessExited(Exception):
    """The app-server exited (or closed stdout) before answering."""


@dataclass
class AppServer:
    """A running ``codex app-server``: requests, notifications and server requests."""

    proc: asyncio.subprocess.Process
    on_server_request: ServerRequestHandler
    notifications: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=50))
    _pending: dict[int, tuple[str, asyncio.Future[Any]]] = field(default_factory=dict)
    _next_id: int = 0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(
        cls,
        argv: list[str],
        *,
        env: dict[str, str],
        cwd: str,
        on_server_request: ServerRequestHandler,
    ) -> AppServer:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
            limit=LINE_LIMIT,
        )
        server = cls(proc, on_server_request)
        server._tasks = [
            asyncio.create_task(server._read_stdout(), name="codex-stdout"),
            asyncio.create_task(server._read_stderr(), name="codex-stderr"),
        ]
        return server

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = strip_ansi(raw)
            if line:
                self.stderr_tail.append(line)

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        try:
            async for raw in self.proc.stdout:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(msg, dict):
                    continue
                if "method" in msg and "id" in msg:
                    task = asyncio.create_task(self._answer(msg))
                    self._tasks.append(task)
                elif "method" in msg:
                    self.notifications.put_nowait(msg)
                elif "id" in msg:
                    entry = self._pending.pop(msg["id"], None)
                    if entry is None or entry[1].done():
                        continue
                    method, fut = entry
                    if "error" in msg:
                        fut.set_exception(RpcError(method, msg.get("error") or {}))
                    else:
                        fut.set_result(msg.get("result"))
        finally:
            for method, fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ProcessExited(method))
            self._pending.clear()
            self.notifications.put_nowait(None)  # end of stream

    async def _answer(self, msg: dict[str, Any]) -> None:
        try:
            result = await self.on_server_request(msg["method"], msg.get("params") or {})
            reply: dict[str, Any] = {"id": msg["id"], "result": result}
        except RpcError as exc:
            reply = {"id": msg["id"], "error": {"code": exc.code, "message": exc.message}}
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._write(reply)

    async def _write(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        await self.proc.stdin.drain()

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        """Send a request and wait for its result (``RpcError`` / ``ProcessExited``)."""
        self._next_id += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = (method, fut)
        try:
            await self._write({"id": self._next_id, "method": method, "params": params})
        except (ConnectionError, RuntimeError) as exc:
            self._pending.pop(self._next_id, None)
            raise ProcessExited(method) from exc
        return await asyncio.wait_for(fut, RPC_TIMEOUT_S)

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        msg: dict[str, Any] = {"method": method}
        if params is not None:
            msg["params"] = params
        await self._write(msg)

    async def close(self) -> None:
        """Graceful: EOF on stdin, wait for exit (rollout flushed), then force."""
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), EXIT_GRACE_S)
        await self.kill()

    async def kill(self) -> None:
        """Forced: the process tree goes, the reader tasks are reaped."""
        try:
            await terminate_process_tree(self.proc)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self.proc.stdin is not None and not self.proc.stdin.is_closing():
                self.proc.stdin.close()


# --- configuration -----------------------------------------------------------------------


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def render_config(base_url: str, *, stream_idle_timeout_ms: int | None) -> str:
    """The run's ``config.toml``: one provider (ours), no retries, nothing phoning home."""
    lines = [
        "# Written by agent-session-manager for every run; edits are overwritten.",
        'model_provider = "asm"',
        'approval_policy = "never"',
        'sandbox_mode = "workspace-write"',
        "check_for_update_on_startup = false",
        "",
        "[model_providers.asm]",
        'name = "agent-session-manager"',
        f"base_url = {_toml_str(base_url)}",
        'env_key = "OPENAI_API_KEY"',
        'wire_api = "responses"',
        # Retries belong to Temporal (visible in history, governed by the taxonomy).
        "request_max_retries = 0",
        "stream_max_retries = 0",
    ]
    if stream_idle_timeout_ms is not None:
        lines.append(f"stream_idle_timeout_ms = {stream_idle_timeout_ms}")
    lines += ["", "[features]"]
    lines += [f"{name} = false" for name in _FEATURES_OFF]
    lines += ["", "[analytics]", "enabled = false", ""]
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    # Concurrent runs of one session share the home: never let one read a half-written file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".toml")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def environment(home: Path, api_key: str) -> dict[str, str]:
    """The CLI's whole environment: nothing of the worker's beyond locale and identity.

    Credentials come only from the run's secrets, and ``HOME`` is the session's Codex home, so
    the CLI reads no user configuration.
    """
    env = {
        "PATH": os.pathsep.join([*_codex_path_dirs(), os.environ.get("PATH", os.defpath)]),
        "HOME": str(home / "home"),
        "CODEX_HOME": str(home),
        "OPENAI_API_KEY": api_key,
        "RUST_LOG": "error",
    }
    for key in ("LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env
