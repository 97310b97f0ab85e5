"""The project a command belongs to: the nearest ``.asm/`` directory, found like git finds ``.git``.

``asm dev`` and ``asm demo`` keep the embedded server's data, the SQLite event store and the
record of the running dev server (``dev.json``) in ``.asm/``. Every command looks for it in
the current directory and then in each parent, so it works from any subdirectory, and uses
absolute paths from then on (a worker and a command never open two different ``asm.db``).
``ASM_HOME`` names the directory explicitly; ``ASM_DATABASE_URL`` the event store.

Reading commands never create a store: a missing SQLite file is an error that says how to
get the right one, rather than an empty database made as a side effect of failing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from typer._click.exceptions import UsageError  # typer vendors click

from agent_session_manager.client.connect import resolve
from agent_session_manager.core.errors import AsmError, error
from agent_session_manager.worker.settings import Settings

HOME_DIR = ".asm"


@dataclass(frozen=True)
class Project:
    """Where this command's project lives and which event store it uses."""

    home: Path
    """Absolute; may not exist yet (``asm dev``/``asm demo`` create it)."""
    found: bool
    """An existing ``.asm/`` was found (or ``ASM_HOME`` names an existing directory)."""
    database_url: str
    database_explicit: bool
    """``ASM_DATABASE_URL`` chose the store (else it is ``<home>/asm.db``)."""


def find_project(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> Project:
    """The nearest ``.asm/`` from ``cwd`` upwards (``ASM_HOME`` wins), else ``cwd/.asm``."""
    env = os.environ if environ is None else environ
    here = (cwd or Path.cwd()).resolve()
    explicit_home = env.get("ASM_HOME", "").strip()
    if explicit_home:
        home = (here / explicit_home).resolve()
        found = home.is_dir()
    else:
        home, found = here / HOME_DIR, False
        for directory in (here, *here.parents):
            if (directory / HOME_DIR).is_dir():
                home, found = directory / HOME_DIR, True
                break
    url = env.get("ASM_DATABASE_URL", "").strip()
    return Project(
        home=home,
        found=found,
        database_url=url or f"sqlite+aiosqlite:///{home / 'asm.db'}",
        database_explicit=bool(url),
    )


def cli_settings(
    project: Project, address: str | None = None, namespace: str | None = None
) -> Settings:
    """The settings a command runs with: the environment's, with the project's absolute paths
    and the Temporal address and namespace as :func:`client.connect.resolve` reads them for
    :meth:`SessionClient.connect` (``--address`` > ``ASM_TEMPORAL_ADDRESS`` >
    ``TEMPORAL_ADDRESS`` > the ``temporal`` profile), except that no address configured is
    ``None`` (use the project's ``asm dev`` server) rather than its default.

    A bad ``--address``/``--namespace`` is a usage error (exit 2); a bad variable is the
    ``validation_error`` naming it (exit 1).
    """
    try:
        conn = resolve(address, namespace=namespace, database_url=project.database_url)
    except AsmError as exc:
        setting = exc.details.get("setting")
        if exc.code == "validation_error" and setting in ("address", "namespace"):
            problem = exc.message.removeprefix(f"{setting}: ")
            raise UsageError(f"--{setting}: {' '.join(problem.split())}") from None
        raise
    return Settings(
        home=str(project.home),
        database_url=project.database_url,
        temporal_address=conn.address if conn.address_configured else None,
        namespace=conn.namespace,
    )


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL names; None for another backend or an in-memory database."""
    try:
        parsed = make_url(url)
    except Exception:  # not a URL: open_store reports it as invalid_format
        return None
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def require_store(project: Project, temporal_address: str | None = None) -> None:
    """Raise, with the right next step, if the project's SQLite event store does not exist.

    Opening it would create an empty file (SQLite does) and then say "run asm db upgrade",
    which makes an empty store in what may be the wrong place.
    """
    path = sqlite_path(project.database_url)
    if path is None or path.exists():
        return
    raise missing_store(project, path, temporal_address)


def missing_store(project: Project, path: Path, temporal_address: str | None) -> AsmError:
    """The error for an event store that is not there: what to do depends on why."""
    if project.database_explicit:
        advice = (
            f"ASM_DATABASE_URL names {path}, which does not exist: point it at the event store "
            "your worker writes to, or create an empty one with `asm db upgrade`"
        )
    elif temporal_address is not None:
        advice = (
            f"no event store at {path}: you use the Temporal server at {temporal_address}, so "
            "set ASM_DATABASE_URL to the event store its worker writes to"
        )
    elif not project.found:
        advice = (
            f"no asm project here (no {HOME_DIR}/ in {path.parent.parent} or its parents): "
            "run `asm dev` (or `asm demo`) in your project directory first, or set "
            "ASM_DATABASE_URL"
        )
    else:
        advice = (
            f"the project in {project.home} has no event store yet: start `asm dev` there "
            "(it creates one)"
        )
    return error(
        "not_found",
        advice,
        details={"database": str(path)},
        retryable=False,
    )
