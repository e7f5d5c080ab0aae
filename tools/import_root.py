"""Lay the package out as it installs, for tools that read a package's files instead of importing it.

pyproject.toml maps the repository's folders under one import root (``package-dir``:
``edgeloop.workers`` is ``workers/``, …). The editable install resolves that when importing,
but import-linter's graph builder (grimp) walks the folder of the root package, ``edgeloop/``,
and would not see the mapped subpackages, and mypy finds modules by their place on disk. This
script makes ``DEST/edgeloop/``: real folders holding symbolic links to the ``.py`` and ``.pyi``
files, one folder per listed package (only what installs), and a link to ``pyproject.toml``
(import-linter's contract), so that ``lint-imports`` run in ``DEST`` checks the whole package: import-linter puts its working directory first on ``sys.path``, so there it
finds the staged tree rather than the repository's ``edgeloop/`` (``make lint``).
``.ci/typecheck.py`` stages ``var/import-root`` the same way and puts it on mypy's search path.

    python tools/import_root.py DEST && cd DEST && lint-imports
"""

from __future__ import annotations

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


def setuptools_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def layout(config: dict) -> tuple[set[Path], dict[Path, Path]]:
    """The staged tree, relative to its destination: its folders, and each link with its file."""
    folders, links = {Path("edgeloop")}, {Path("pyproject.toml"): ROOT / "pyproject.toml"}
    for package, folder in package_folders(config).items():
        target = Path(*package.split("."))
        folders.add(target)
        for source in [*folder.glob("*.py"), *folder.glob("*.pyi")]:  # the stubs, for mypy
            links[target / source.name] = source.resolve()
    return folders, links


def stage(dest: Path) -> Path:
    """Bring ``dest/edgeloop`` in line with pyproject.toml and the folders; returns it.

    Only what differs is changed: `make lint` stages the tree twice (mypy, then import-linter),
    and the second time finds nothing to do."""
    folders, links = layout(setuptools_config())
    tree = dest / "edgeloop"
    # Children before their folders: a file since removed, a package no longer listed, a cache.
    for path in sorted(tree.rglob("*"), reverse=True):
        relative = path.relative_to(dest)
        if path.is_symlink() or not path.is_dir():
            if relative not in links:
                path.unlink()
        elif relative not in folders:
            path.rmdir()
    for folder in sorted(folders):
        (dest / folder).mkdir(parents=True, exist_ok=True)
    for relative, source in links.items():
        link = dest / relative
        if link.is_symlink() and link.readlink() == source:
            continue
        link.unlink(missing_ok=True)
        link.symlink_to(source)
    return tree


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    stage(Path(sys.argv[1]))
