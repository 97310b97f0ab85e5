"""Install weight: the lean install (no extras) against the full one, on disk.

Builds the wheel from this checkout, installs it into two fresh venvs from the package index
(pinned by ``constraints.txt``): ``lean`` with no extras, ``full`` with
``[dev-server,codex,claude-code]``. Prints one JSON document with ``du -sk`` of each venv's
site-packages and of the whole venv (the ``temporal`` binary of ``dev-server`` lives in
``bin/``, not in site-packages), in MiB, and the distributions only ``full`` has.

Run: ``.venv/bin/python bench/install_size.py`` (a few minutes; needs the package index).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXTRAS = {"lean": "", "full": "[dev-server,codex,claude-code]"}
#: pip must see only the fresh venv (a PYTHONPATH naming a checkout looks installed).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _mib(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return round(int(out.stdout.split()[0]) / 1024, 1)


def _wheel(work: Path) -> Path:
    source = work / "source"
    shutil.copytree(
        REPO,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".asm", "build", "dist", "*.egg-info", "__pycache__", "*_cache"
        ),
    )
    dist = work / "dist"
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist)]
    subprocess.run([*pip, str(source)], check=True, capture_output=True, env=ENV)
    (built,) = dist.glob("agent_session_manager-*.whl")
    return built


def _install(root: Path, requirement: str) -> set[str]:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = str(root / "bin" / "python")
    pip = [sys.executable, "-m", "pip", "--python", python]
    constraints = ["-c", str(REPO / "constraints.txt")]
    subprocess.run(
        [*pip, "install", "--quiet", *constraints, requirement],
        check=True,
        capture_output=True,
        env=ENV,
    )
    listed = subprocess.run(
        [*pip, "list", "--format", "json"], check=True, capture_output=True, text=True, env=ENV
    )
    return {p["name"].lower() for p in json.loads(listed.stdout)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wheel = _wheel(work)
        report: dict[str, object] = {}
        names: dict[str, set[str]] = {}
        for name, extras in EXTRAS.items():
            root = work / name
            names[name] = _install(root, f"{wheel}{extras}")
            purelib = sysconfig.get_paths(vars={"base": str(root), "platbase": str(root)})
            report[name] = {
                "extras": extras or "none",
                "site_packages_mib": _mib(Path(purelib["purelib"])),
                "venv_mib": _mib(root),
                "distributions": len(names[name]),
            }
        report["only_in_full"] = sorted(names["full"] - names["lean"])
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
