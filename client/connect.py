"""Where a :class:`~client.session_client.SessionClient` connects, read from the environment.

:meth:`SessionClient.connect` builds a client the way the ``temporal`` CLI and the Anthropic
SDK do: with no arguments it reads the environment, and keyword arguments override it.
:func:`resolve` is that reading on its own (synchronous, no I/O but reading certificate
files), for code that wants to show or check the settings before connecting.

Each setting, first match wins (keyword argument, then environment, then default):

* address: ``address``, ``ASM_TEMPORAL_ADDRESS``, ``TEMPORAL_ADDRESS``, the ``temporal``
  config file's profile; default ``127.0.0.1:7233`` (where ``asm dev`` serves);
* namespace: ``namespace``, ``ASM_NAMESPACE``, ``TEMPORAL_NAMESPACE``, the profile;
  default ``default``;
* API key: ``api_key``, ``TEMPORAL_API_KEY``, the profile; default none;
* TLS: ``tls``, ``TEMPORAL_TLS`` and ``TEMPORAL_TLS_*``, the profile; default on when there is
  an API key, else off;
* task queue: ``task_queue``, ``ASM_TASK_QUEUE``; default ``agent-sessions``;
* event store: ``database_url``, ``ASM_DATABASE_URL``; default ``sqlite+aiosqlite:///.asm/asm.db``;
* Temporal UI links: ``ui_url``, ``ASM_UI_URL``; default none.

The ``ASM_`` variable wins over the ``TEMPORAL_`` one, so a shell set up for another Temporal
application (``TEMPORAL_ADDRESS`` for its cluster) can still point this one elsewhere. The
``TEMPORAL_*`` variables and the config file (``TEMPORAL_CONFIG_FILE``, ``TEMPORAL_PROFILE``;
default ``~/.config/temporalio/temporal.toml``) are read by Temporal's own
:mod:`temporalio.envconfig`, so they mean exactly what they mean to the ``temporal`` CLI:
``TEMPORAL_TLS_CLIENT_CERT_PATH`` / ``_DATA``, ``TEMPORAL_TLS_CLIENT_KEY_PATH`` / ``_DATA``,
``TEMPORAL_TLS_SERVER_CA_CERT_PATH`` / ``_DATA``, ``TEMPORAL_TLS_SERVER_NAME``,
``TEMPORAL_GRPC_META_<NAME>`` (for Temporal Cloud: ``TEMPORAL_ADDRESS``,
``TEMPORAL_NAMESPACE`` and ``TEMPORAL_API_KEY`` are enough).

A value that cannot be used (an address without a port, ``TEMPORAL_TLS=maybe``, a certificate
file that is not there, an unknown profile) is a ``validation_error`` naming the variable it
came from; nothing is connected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from temporalio.envconfig import ClientConfigProfile
from temporalio.service import TLSConfig

from agent_session_manager.core.errors import AsmError, error
from agent_session_manager.core.protocol import DEFAULT_TASK_QUEUE
from agent_session_manager.store import DEFAULT_DATABASE_URL

#: Where ``asm dev`` serves Temporal, and the ``temporal`` CLI's default.
DEFAULT_ADDRESS = "127.0.0.1:7233"
DEFAULT_NAMESPACE = "default"

#: Temporal's limits on a task queue and a namespace name (longer ones are refused by the
#: server, later and less clearly).
MAX_TASK_QUEUE = 1000
MAX_NAMESPACE = 255

_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+):(?P<port>\d{1,5})$")
_BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


class _AsmEnvironment(BaseModel):
    """The ``ASM_`` variables :func:`resolve` reads (blank counts as unset).

    A model over a mapping rather than pydantic-settings' ``BaseSettings``: the environment is
    a parameter here (tests and tools pass their own), and the ``TEMPORAL_`` half is read by
    :mod:`temporalio.envconfig`, not by us.
    """

    model_config = ConfigDict(extra="ignore")

    temporal_address: str | None = Field(
        default=None, validation_alias=AliasChoices("ASM_TEMPORAL_ADDRESS")
    )
    namespace: str | None = Field(default=None, validation_alias=AliasChoices("ASM_NAMESPACE"))
    task_queue: str | None = Field(default=None, validation_alias=AliasChoices("ASM_TASK_QUEUE"))
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("ASM_DATABASE_URL")
    )
    ui_url: str | None = Field(default=None, validation_alias=AliasChoices("ASM_UI_URL"))


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything :meth:`SessionClient.connect` needs, and where each value came from."""

    address: str
    namespace: str
    task_queue: str
    database_url: str
    api_key: str | None = field(default=None, repr=False)  # a secret: never printed
    tls: bool | TLSConfig = False
    rpc_metadata: Mapping[str, str] = field(default_factory=dict, repr=False)
    ui_url: str | None = None
    #: Setting name → what set it (``"address"`` → ``"TEMPORAL_ADDRESS"``), for messages;
    #: ``"default"`` when nothing did.
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def address_configured(self) -> bool:
        """Whether an argument, a variable or the profile named the address (else it is
        :data:`DEFAULT_ADDRESS`): the ``asm`` CLI then uses the project's ``asm dev`` server."""
        return self.sources.get("address", "default") != "default"


def _blank(value: str | None) -> str | None:
    return None if value is None or not value.strip() else value.strip()


def _invalid(source: str, problem: str, **details: object) -> AsmError:
    return error(
        "validation_error",
        f"{source}: {problem}",
        details={"setting": source, **details},
    )


def check_address(address: str, source: str = "address") -> str:
    """``host:port`` as Temporal's client takes it, or a ``validation_error`` naming ``source``."""
    match = _HOST_PORT.match(address)
    if match is None or not 0 < int(match["port"]) < 65536:
        raise _invalid(
            source,
            f"{address[:200]!r} is not host:port (e.g. 127.0.0.1:7233, or "
            "my-namespace.a1b2c.tmprl.cloud:7233 for Temporal Cloud)",
            value=address[:200],
        )
    return address


def _check_name(value: str, source: str, limit: int) -> str:
    if len(value) > limit or any(c.isspace() or not c.isprintable() for c in value):
        raise _invalid(
            source,
            f"must be 1-{limit} printable characters without spaces (got {len(value)} "
            f"characters: {value[:80]!r})",
        )
    return value


def _temporal_profile(environ: Mapping[str, str], profile: str | None) -> ClientConfigProfile:
    """The ``temporal`` CLI's view of the environment (and its config file), typed errors only."""
    tls = _blank(environ.get("TEMPORAL_TLS"))
    if tls is not None and tls.lower() not in _BOOLEANS:
        raise _invalid("TEMPORAL_TLS", f"{tls[:40]!r} is not true or false", value=tls[:40])
    try:
        return ClientConfigProfile.load(profile=profile, override_env_vars=dict(environ))
    except Exception as exc:  # the bridge raises its own ConfigError; files raise OSError
        where = "TEMPORAL_PROFILE" if "Profile" in str(exc) else "the temporal client config"
        raise _invalid(where, f"{str(exc)[:300]}") from exc


def resolve(
    address: str | None = None,
    *,
    namespace: str | None = None,
    api_key: str | None = None,
    tls: bool | TLSConfig | None = None,
    task_queue: str | None = None,
    database_url: str | None = None,
    ui_url: str | None = None,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ConnectionSettings:
    """The settings :meth:`SessionClient.connect` would use (see the module's table).

    Keyword arguments override the environment; ``environ`` defaults to ``os.environ``.
    Raises ``validation_error`` for a value that cannot be used, naming where it came from.
    """
    env = os.environ if environ is None else environ
    try:
        asm = _AsmEnvironment.model_validate(dict(env))
    except ValidationError as exc:  # not expected for plain strings; typed all the same
        raise error("validation_error", f"ASM_ settings: {exc.errors()[0]['msg']}") from exc
    temporal = _temporal_profile(env, profile)
    sources: dict[str, str] = {}

    def pick(name: str, *candidates: tuple[str | None, str], default: str) -> str:
        for value, source in candidates:
            if (value := _blank(value)) is not None:
                sources[name] = source
                return value
        sources[name] = "default"
        return default

    chosen_address = pick(
        "address",
        (address, "address"),
        (asm.temporal_address, "ASM_TEMPORAL_ADDRESS"),
        (temporal.address, "TEMPORAL_ADDRESS"),
        default=DEFAULT_ADDRESS,
    )
    chosen_namespace = pick(
        "namespace",
        (namespace, "namespace"),
        (asm.namespace, "ASM_NAMESPACE"),
        (temporal.namespace, "TEMPORAL_NAMESPACE"),
        default=DEFAULT_NAMESPACE,
    )
    chosen_queue = pick(
        "task_queue",
        (task_queue, "task_queue"),
        (asm.task_queue, "ASM_TASK_QUEUE"),
        default=DEFAULT_TASK_QUEUE,
    )
    chosen_url = pick(
        "database_url",
        (database_url, "database_url"),
        (asm.database_url, "ASM_DATABASE_URL"),
        default=DEFAULT_DATABASE_URL,
    )
    chosen_key = _blank(api_key) or _blank(temporal.api_key)

    check_address(chosen_address, sources["address"])
    _check_name(chosen_namespace, sources["namespace"], MAX_NAMESPACE)
    _check_name(chosen_queue, sources["task_queue"], MAX_TASK_QUEUE)

    chosen_tls: bool | TLSConfig
    if tls is not None:
        chosen_tls = tls
    elif temporal.tls is not None:
        try:  # reads the certificate files the variables name
            chosen_tls = temporal.tls.to_connect_tls_config()
        except OSError as exc:
            raise _invalid("TEMPORAL_TLS_*", f"cannot read a certificate or key: {exc}") from exc
    else:
        chosen_tls = chosen_key is not None  # Temporal Cloud's API keys need TLS
    return ConnectionSettings(
        address=chosen_address,
        namespace=chosen_namespace,
        task_queue=chosen_queue,
        database_url=chosen_url,
        api_key=chosen_key,
        tls=chosen_tls,
        rpc_metadata=dict(temporal.grpc_meta),
        ui_url=_blank(ui_url) or _blank(asm.ui_url),
        sources=sources,
    )


__all__ = ["DEFAULT_ADDRESS", "ConnectionSettings", "check_address", "resolve"]
