"""Where a client finds Temporal: flags, then ``ASM_*``, then the ``temporal`` CLI's variables.

One small resolver, shared by the ``asm`` command line and anything else that connects from
the environment, so they cannot disagree. Precedence, first set wins (blank counts as unset):

* address: the explicit argument (``--address``), ``ASM_TEMPORAL_ADDRESS``,
  ``TEMPORAL_ADDRESS``; none of them set means "no address configured" (the CLI then uses the
  project's ``asm dev`` server);
* namespace: the explicit argument (``--namespace``), ``ASM_NAMESPACE``,
  ``TEMPORAL_NAMESPACE``, then ``default``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

#: The variables read, in precedence order after the explicit argument.
ADDRESS_VARS = ("ASM_TEMPORAL_ADDRESS", "TEMPORAL_ADDRESS")
NAMESPACE_VARS = ("ASM_NAMESPACE", "TEMPORAL_NAMESPACE")
DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class Connection:
    """A resolved Temporal target; ``source`` says where the address came from (for messages)."""

    address: str | None
    namespace: str
    source: str
    """``--address``, the variable's name, or ``unset``."""


def resolve_connection(
    address: str | None = None,
    namespace: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Connection:
    """The Temporal address and namespace to use (see the module docstring for precedence)."""
    env = os.environ if environ is None else environ
    found_address, source = _first(address, "--address", ADDRESS_VARS, env)
    found_namespace, _ = _first(namespace, "--namespace", NAMESPACE_VARS, env)
    return Connection(
        address=found_address,
        namespace=found_namespace or DEFAULT_NAMESPACE,
        source=source,
    )


def _first(
    explicit: str | None, flag: str, names: tuple[str, ...], env: Mapping[str, str]
) -> tuple[str | None, str]:
    for value, source in ((explicit, flag), *((env.get(n), n) for n in names)):
        if value is not None and value.strip():
            return value.strip(), source
    return None, "unset"
