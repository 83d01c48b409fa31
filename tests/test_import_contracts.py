"""The import contracts in pyproject.toml ([tool.importlinter]) hold; a broken one fails `lint-imports`."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the package under `root/src` with the contracts of `root/pyproject.toml`."""
    env = {**os.environ, "PYTHONPATH": str(root / "src")}  # ahead of the editable install's path
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_package_keeps_every_import_contract() -> None:
    result = lint_imports(REPO)

    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken." in result.stdout


def test_an_import_against_the_layers_or_into_the_toolkit_or_of_the_test_helpers_fails_the_check(
    tmp_path: Path,
) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(
        REPO / "src" / "mediajobs", copy / "src" / "mediajobs", ignore=shutil.ignore_patterns("web")
    )
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    package = copy / "src" / "mediajobs"
    with (package / "jobs" / "rows.py").open("a") as f:
        f.write("\nfrom mediajobs.webhooks import events  # the engine reaching up\n")
    with (package / "toolkit" / "probe.py").open("a") as f:
        f.write("\nfrom mediajobs.db import models  # the toolkit reaching for the database\n")
    with (package / "media" / "assets.py").open("a") as f:
        f.write("\nfrom mediajobs.testing import files  # the application using test helpers\n")
    (package / "newthing.py").write_text('"""A top-level module no layer names."""\n')

    result = lint_imports(copy)

    out = " ".join(result.stdout.split())  # rich wraps long lines
    assert result.returncode == 1, out
    assert "Contracts: 0 kept, 3 broken." in out
    assert "mediajobs.jobs.rows -> mediajobs.webhooks.events" in out
    assert "mediajobs.toolkit.probe -> mediajobs.db.models" in out
    assert "mediajobs.media.assets -> mediajobs.testing.files" in out
    assert "mediajobs.newthing" in out  # exhaustive: every top-level module has its layer


LOOK_UPS = {"get_settings", "get_db", "broker_for"}
# The entry points build a process's Services (bootstrap); everything below them is handed them.
ENTRY_POINTS = ("cli", "worker", "api/app.py", "doctor.py", "supervisor.py", "bootstrap.py")
DEFINED_IN = {"config.py": "get_settings", "db/session.py": "get_db", "broker.py": "broker_for"}


def test_no_module_below_the_entry_points_looks_up_the_settings_the_database_or_the_broker() -> None:
    package = REPO / "src" / "mediajobs"
    found = []
    for path in sorted(package.rglob("*.py")):
        name = path.relative_to(package).as_posix()
        if name.startswith(ENTRY_POINTS) or name.startswith("testing/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            used = (
                node.id
                if isinstance(node, ast.Name)
                else node.attr
                if isinstance(node, ast.Attribute)
                else None
            )
            if used in LOOK_UPS and DEFINED_IN.get(name) != used:
                found.append(f"{name}:{node.lineno} {used}")
    assert found == []
