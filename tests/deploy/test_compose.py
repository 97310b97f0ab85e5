"""docker-compose.yml without a Docker engine: the Compose schema, then the wiring.

No Docker engine runs where these tests run, so nothing here starts a container. What is
checked is what breaks a ``docker compose up`` before any image runs: the file must be valid
Compose (the vendored Compose Specification schema), every variable the worker reads must be
set, start-up order must wait on health (not just on "started"), the worker must scale
(``--scale worker=3``), and every file, service and command the stack refers to must exist.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from agent_session_manager.core.contract import SERVER_UPDATE_PAYLOADS_BYTES
from agent_session_manager.observability import config as telemetry
from agent_session_manager.worker.settings import SECRET_ENV_VARS, Settings

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA_FILE = HERE / "compose-spec.json"
#: Recorded in compose-spec.SOURCE.md; a changed schema must be a deliberate refresh.
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"

WORKER = "worker"
SETUP = "asm-setup"
GATEWAY = "gateway"
OBSERVABILITY = "observability"

#: Settings the worker reads that compose may leave to their defaults, and why.
INTENTIONALLY_DEFAULTED: dict[str, str] = {}

_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose interpolation with an empty environment: ``${X:-d}`` → ``d``, ``${X}`` → ``""``."""
    return _VAR.sub(lambda m: m.group("default") or "", value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE list form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: interpolate(str(v)) for k, v in env.items()}


def raw_environment(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def host_ports(service: dict[str, Any]) -> list[tuple[str, str]]:
    """``(host_ip, host_port)`` of every published port (short syntax)."""
    out = []
    for entry in service.get("ports") or []:
        parts = interpolate(str(entry)).split(":")
        if len(parts) == 3:
            out.append((parts[0], parts[1]))
        elif len(parts) == 2:
            out.append(("0.0.0.0", parts[0]))
        else:
            out.append(("0.0.0.0", ""))  # container port only: a random host port
    return out


def in_profile(service: dict[str, Any]) -> bool:
    return bool(service.get("profiles"))


# --- the Compose specification -------------------------------------------------------------


def test_vendored_schema_is_the_recorded_one() -> None:
    digest = hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest()
    assert digest == SCHEMA_SHA256, "compose-spec.json changed: update compose-spec.SOURCE.md"


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )


def test_schema_rejects_a_broken_compose_file(compose: dict[str, Any]) -> None:
    # The check above must be able to fail: a misspelled key and a wrong condition are caught.
    schema = json.loads(SCHEMA_FILE.read_text())
    broken = json.loads(json.dumps(compose))
    broken["services"][WORKER]["depends_on"][SETUP]["condition"] = "service_ready"
    broken["services"][WORKER]["healthchek"] = {}
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(broken))
    assert len(errors) >= 2


# --- the stack ----------------------------------------------------------------------------


def test_stack_has_temporal_on_postgresql_ui_event_store_and_worker(
    services: dict[str, dict[str, Any]],
) -> None:
    assert {"postgresql", "temporal-schema", "temporal", "temporal-ui", SETUP, WORKER} <= set(
        services
    )
    temporal = environment(services["temporal"])
    assert temporal["DB"] == "postgres12"
    assert temporal["POSTGRES_SEEDS"] == "postgresql"
    assert services["temporal"]["image"].startswith("temporalio/server:")
    # The schema tool must be the server's own version: it applies that server's schema.
    server_tag = services["temporal"]["image"].split(":", 1)[1]
    assert services["temporal-schema"]["image"] == f"temporalio/admin-tools:{server_tag}"
    assert environment(services["temporal-ui"])["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_event_store_is_its_own_database_on_the_postgresql_service(
    services: dict[str, dict[str, Any]],
) -> None:
    url = urlsplit(environment(services[WORKER])["ASM_DATABASE_URL"])
    assert url.scheme == "postgresql+asyncpg"
    assert url.hostname == "postgresql" and url.port == 5432
    assert url.path == "/asm", "the event store must not share Temporal's databases"
    # The init script that creates that role and database is mounted where postgres runs it.
    mounts = [str(v) for v in services["postgresql"]["volumes"]]
    init = next(m for m in mounts if "docker-entrypoint-initdb.d" in m)
    script = ROOT / init.split(":", 1)[0]
    text = script.read_text()
    assert "CREATE DATABASE asm" in text and "CREATE ROLE asm" in text
    assert environment(services["postgresql"])["ASM_DB_PASSWORD"] == url.password


def test_worker_environment_sets_every_setting_the_worker_reads(
    services: dict[str, dict[str, Any]],
) -> None:
    prefix = Settings.model_config.get("env_prefix", "")
    wanted = {f"{prefix}{name}".upper() for name in Settings.model_fields}
    wanted |= set(telemetry.ENV_VARS)
    for name in (WORKER, SETUP):
        env = environment(services[name])
        missing = sorted(v for v in wanted - set(env) if v not in INTENTIONALLY_DEFAULTED)
        assert not missing, f"{name} does not set {missing}"
        # Every value must survive Settings' own validation.
        settings = Settings(**{f: env[f"{prefix}{f}".upper()] for f in Settings.model_fields})
        assert settings.temporal_address == "temporal:7233"


def test_worker_sets_no_unknown_asm_variable(services: dict[str, dict[str, Any]]) -> None:
    # A misspelled ASM_ variable would be silently ignored by pydantic-settings.
    prefix = Settings.model_config.get("env_prefix", "")
    known = {f"{prefix}{name}".upper() for name in Settings.model_fields} | set(telemetry.ENV_VARS)
    for name in (WORKER, SETUP):
        env = environment(services[name])
        unknown = [v for v in env if v.startswith("ASM_") and v not in known]
        assert not unknown, f"{name}: unknown variables {unknown}"


def test_provider_secrets_are_passed_through_never_hard_coded(
    services: dict[str, dict[str, Any]],
) -> None:
    env = raw_environment(services[WORKER])
    for var in SECRET_ENV_VARS:
        assert var in env, f"worker does not pass {var} through"
        assert env[var] == f"${{{var}:-}}", f"{var} must come from the host/.env, empty if unset"


def test_temporal_address_and_otlp_endpoint_name_services_of_the_stack(
    services: dict[str, dict[str, Any]],
) -> None:
    env = environment(services[WORKER])
    host, port = env["ASM_TEMPORAL_ADDRESS"].split(":")
    assert host in services and port == "7233"
    otlp = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert otlp.hostname in services and OBSERVABILITY in services[otlp.hostname]["profiles"]
    assert otlp.port == 4318 and env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    # Off unless asked for: the collector only runs with the observability profile.
    assert env["OTEL_TRACES_EXPORTER"] == "none" and env["OTEL_METRICS_EXPORTER"] == "none"
    bind_host, bind_port = env["ASM_PROMETHEUS_BIND"].rsplit(":", 1)
    assert bind_host == "0.0.0.0" and bind_port in services[WORKER]["expose"]


# --- start-up order and health --------------------------------------------------------------


def test_every_dependency_waits_on_a_condition(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        deps = service.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: use the long depends_on form with conditions"
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no healthcheck"
            elif condition == "service_completed_successfully":
                restart = str(services[dep].get("restart", "no"))
                assert restart.startswith("on-failure") or restart == "no", (
                    f"{dep} is one-shot; restart '{restart}' would never complete"
                )
            else:
                assert condition == "service_started", condition
                assert "healthcheck" not in services[dep] or in_profile(services[dep]), (
                    f"{name} should wait for {dep} to be healthy"
                )


def test_servers_the_stack_waits_on_are_health_checked(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("postgresql", "temporal", WORKER):
        check = services[name]["healthcheck"]
        assert check["test"] and check.get("retries", 0) >= 3


def test_migrations_and_search_attributes_run_before_the_worker(
    services: dict[str, dict[str, Any]],
) -> None:
    worker_deps = services[WORKER]["depends_on"]
    assert worker_deps[SETUP]["condition"] == "service_completed_successfully"
    assert worker_deps["temporal"]["condition"] == "service_healthy"
    assert worker_deps["postgresql"]["condition"] == "service_healthy"
    setup = services[SETUP]
    assert setup["command"][:2] == ["asm", "setup"]
    assert setup["depends_on"]["temporal"]["condition"] == "service_healthy"
    assert setup["depends_on"]["postgresql"]["condition"] == "service_healthy"
    temporal_deps = services["temporal"]["depends_on"]
    assert temporal_deps["temporal-schema"]["condition"] == "service_completed_successfully"
    assert services["temporal-schema"]["depends_on"]["postgresql"]["condition"] == (
        "service_healthy"
    )


def test_commands_the_stack_runs_exist_in_the_cli(services: dict[str, dict[str, Any]]) -> None:
    from agent_session_manager.cli.app import app

    runner = CliRunner()
    for name in (SETUP, WORKER, GATEWAY):
        argv = list(services[name]["command"])
        assert argv[0] == "asm"
        args = argv[1:]
        subcommand = [a for a in args if not a.startswith("-") and not a.isdigit()]
        result = runner.invoke(app, [*subcommand, "--help"])
        assert result.exit_code == 0, result.output
        for flag in (a for a in args if a.startswith("--")):
            assert flag in result.output, f"`asm {' '.join(subcommand)}` has no {flag}"


# --- scaling and ports ----------------------------------------------------------------------


def test_worker_scales(services: dict[str, dict[str, Any]]) -> None:
    # `docker compose up --scale worker=3`: fixed names and host ports would collide.
    worker = services[WORKER]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert "build" in worker and worker["build"]["dockerfile"] == "Dockerfile"
    assert (ROOT / worker["build"]["context"] / worker["build"]["dockerfile"]).is_file()
    for volume in worker.get("volumes") or []:
        assert not str(volume).endswith(":rw"), "replicas must not share a writable mount"


def test_no_fixed_container_names_and_no_host_port_conflicts(
    services: dict[str, dict[str, Any]],
) -> None:
    seen: dict[str, str] = {}
    for name, service in services.items():
        assert "container_name" not in service, f"{name}: container_name blocks two stacks/scale"
        for ip, port in host_ports(service):
            assert ip == "127.0.0.1", f"{name} publishes {port} on all interfaces"
            assert port not in seen, f"{name} and {seen.get(port)} both publish {port}"
            seen[port] = name
    assert {"7233", "8080"} <= set(seen), "Temporal frontend and UI must be reachable"


def test_mounted_files_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = str(volume).split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


# --- observability profile ------------------------------------------------------------------


def test_observability_profile_has_a_collector_and_a_trace_viewer(
    services: dict[str, dict[str, Any]],
) -> None:
    profiled = {n for n, s in services.items() if OBSERVABILITY in (s.get("profiles") or [])}
    assert {"otel-collector", "jaeger"} <= profiled
    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector")
    # The default stack must come up without the profile: nothing outside it depends on it.
    for name, service in services.items():
        if not in_profile(service):
            assert not set(service.get("depends_on") or {}) & profiled, name
    collector_mount = next(
        str(v) for v in services["otel-collector"]["volumes"] if "otel-collector.yaml" in str(v)
    )
    config = yaml.safe_load((ROOT / collector_mount.split(":", 1)[0]).read_text())
    receivers = config["receivers"]["otlp"]["protocols"]
    assert receivers["http"]["endpoint"].endswith(":4318")
    traces = config["service"]["pipelines"]["traces"]
    exporter = next(e for e in traces["exporters"] if e.startswith("otlp"))
    viewer = config["exporters"][exporter]["endpoint"].split(":")[0]
    assert viewer in profiled, f"traces go to {viewer}, which is not in the profile"
    assert "metrics" in config["service"]["pipelines"]


def test_prometheus_scrapes_the_collector_and_every_worker_replica(
    services: dict[str, dict[str, Any]],
) -> None:
    mount = next(str(v) for v in services["prometheus"]["volumes"] if "prometheus.yml" in str(v))
    config = yaml.safe_load((ROOT / mount.split(":", 1)[0]).read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for c in jobs["asm"]["static_configs"] for t in c["targets"]]
    assert "otel-collector:8889" in targets
    sd = jobs["temporal-sdk"]["dns_sd_configs"][0]
    assert sd["names"] == [WORKER] and sd["port"] == 9464


def test_temporal_dynamic_config_is_mounted_and_valid(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["temporal"])
    mount = next(str(v) for v in services["temporal"]["volumes"] if "dynamicconfig" in str(v))
    host_dir, container_dir = mount.split(":")[:2]
    relative = env["DYNAMIC_CONFIG_FILE_PATH"].removeprefix("config/dynamicconfig/")
    assert container_dir == "/etc/temporal/config/dynamicconfig"
    config = yaml.safe_load((ROOT / host_dir / relative).read_text())
    assert config["frontend.enableUpdateWorkflowExecution"][0]["value"] is True
    assert config["history.maxInFlightUpdatePayloads"][0]["value"] == SERVER_UPDATE_PAYLOADS_BYTES


# --- the image ------------------------------------------------------------------------------


def test_gateway_is_health_checked_and_knows_its_settings(
    services: dict[str, dict[str, Any]],
) -> None:
    from agent_session_manager.gateway.settings import GatewaySettings

    gateway = services[GATEWAY]
    assert "/healthz" in " ".join(gateway["healthcheck"]["test"])
    assert gateway["depends_on"]["asm-setup"]["condition"] == "service_completed_successfully"
    prefix = str(GatewaySettings.model_config.get("env_prefix", ""))
    known = {f"{prefix}{name}".upper() for name in GatewaySettings.model_fields}
    env = environment(gateway)
    unknown = [v for v in env if v.startswith(prefix) and v not in known]
    assert not unknown, f"gateway: unknown variables {unknown}"
    assert "'.[gateway]'" in (ROOT / "Dockerfile").read_text()


def test_dockerfile_installs_every_package_and_runs_unprivileged() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    assert include == ["agent_session_manager*"]
    # The installed package is agent_session_manager/ and the folders its symlinks point to.
    links = [p for p in (ROOT / "agent_session_manager").iterdir() if p.is_symlink()]
    packages = ["agent_session_manager", *sorted(p.readlink().name for p in links)]
    assert len(packages) >= 8
    for package in packages:
        assert re.search(rf"^COPY {package} \./{package}$", dockerfile, re.M), package
    assert re.search(r"^USER asm$", dockerfile, re.M)
    assert 'CMD ["asm", "worker"]' in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", ".asm", ".env", "tests"):
        assert path in ignored, f".dockerignore should exclude {path}"
