"""A throwaway PostgreSQL cluster the test owns: it can stop and restart it at will.

Built from the installed server binaries (``/usr/lib/postgresql/<version>/bin``) in a temporary
directory, on a free port, with trust authentication. PostgreSQL refuses to run as root, so as
root the cluster runs as the ``postgres`` user (else ``nobody``) through ``runuser``.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import tempfile
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # no stubs published

from agent_session_manager.worker.dev_server import free_port


def server_binaries() -> Path | None:
    """The newest installed PostgreSQL server's ``bin`` directory, if any."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root, and neither user postgres nor nobody exists")


class PgCluster:
    """``initdb`` + ``pg_ctl`` on a free port; :meth:`stop` and :meth:`start` for the outage."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.user = _run_as()
        # Not under pytest's tmp_path: its root is private to root, and the server runs as
        # another user.
        self.root = Path(tempfile.mkdtemp(prefix="asm-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/asm"

    async def _run(self, tool: str, *args: str) -> None:
        argv = [str(self.bin / tool), *args]
        if self.user is not None:
            argv = ["runuser", "-u", self.user, "--", *argv]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=self.root,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed: {out.decode(errors='replace')}")

    async def create(self) -> None:
        """``initdb`` the cluster, start it, create database ``asm``."""
        await self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"
        )
        await self.start()
        conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user="postgres")
        try:
            await conn.execute("CREATE DATABASE asm")
        finally:
            await conn.close()

    async def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        log = str(self.root / "server.log")
        await self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    async def stop(self) -> None:
        """Stop now: ``fast`` ends every session (what a restart does to its clients)."""
        await self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    async def destroy(self) -> None:
        try:
            await self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except RuntimeError:
            pass  # not running
        shutil.rmtree(self.root, ignore_errors=True)
