"""Lay the package out as it installs, for tools that read a package's files instead of importing it.

pyproject.toml maps the repository's folders under one import root (``package-dir``:
``edgeloop.workers`` is ``workers/``, …). The editable install resolves that when importing,
but import-linter's graph builder (grimp) walks the folder of the root package, ``edgeloop/``,
and would not see the mapped subpackages. This script makes ``DEST/edgeloop/``: real folders
holding symbolic links to the ``.py`` files, one folder per listed package, and a link to
``pyproject.toml`` (import-linter's contract), so that ``lint-imports`` run in ``DEST`` checks
the whole package: import-linter puts its working directory first on ``sys.path``, so there it
finds the staged tree rather than the repository's ``edgeloop/`` (``make lint``).

    python tools/import_root.py DEST && cd DEST && lint-imports
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def package_folders(config: dict) -> dict[str, Path]:
    """Each listed package and the repository folder holding its files."""
    mapping = config.get("package-dir", {})
    folders = {}
    for package in config["packages"]:
        parts = package.split(".")
        # The longest mapped prefix decides (``edgeloop.schema.migrations`` lives in ``schema/migrations``).
        for n in range(len(parts), 0, -1):
            prefix = ".".join(parts[:n])
            if prefix in mapping:
                folders[package] = ROOT / mapping[prefix] / Path(*parts[n:])
                break
        else:
            folders[package] = ROOT / Path(*parts)
    return folders


def stage(dest: Path) -> Path:
    """Make ``dest/edgeloop`` afresh; returns it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    tree = dest / "edgeloop"
    if tree.exists():
        shutil.rmtree(tree)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "pyproject.toml").unlink(missing_ok=True)
    (dest / "pyproject.toml").symlink_to(ROOT / "pyproject.toml")
    for package, folder in package_folders(config).items():
        target = dest / Path(*package.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for source in folder.glob("*.py"):
            (target / source.name).symlink_to(source.resolve())
    return tree


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    stage(Path(sys.argv[1]))
