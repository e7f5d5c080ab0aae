"""One import root: every package folder installs under `edgeloop`, and nothing imports the
folders by their own names (they are not top-level packages once installed)."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
FOLDERS = {"workers", "producers", "proto", "schema", "mlservice", "mlclient", "backtester", "marketdata",
           "celeryconfig"}


def test_every_package_folder_is_listed_under_edgeloop():
    listed = set(CONFIG["packages"])
    assert all(name == "edgeloop" or name.startswith("edgeloop.") for name in listed)
    folders = {name: ROOT / path for name, path in CONFIG["package-dir"].items()}
    found = set()
    for name, path in folders.items():
        for init in path.rglob("__init__.py"):
            rel = init.parent.relative_to(path)
            found.add(".".join([name, *rel.parts]))
    assert found - listed == set(), "package folders missing from pyproject's packages"


def test_nothing_imports_a_folder_by_its_own_name():
    files = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    pattern = re.compile(rf"^\s*(from|import) ({'|'.join(sorted(FOLDERS))})\b", re.M)
    offenders = [f for f in files if "_pb2" not in f and pattern.search((ROOT / f).read_text())]
    assert offenders == []


def test_celeryconfig_is_the_package_module():
    link = ROOT / "edgeloop" / "celeryconfig.py"
    assert link.resolve() == (ROOT / "celeryconfig.py").resolve()
