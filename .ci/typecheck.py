"""mypy over every package edgeloop installs (`make lint`); the settings are in pyproject.toml.

mypy finds modules by their place on disk and cannot follow setuptools' package-dir mapping
(``edgeloop.workers`` is the folder ``workers/``), nor the import hook of the editable install.
So this lays the mapping out as a tree of symbolic links under ``.mypy_cache/package-dir/``
(``edgeloop/workers -> ../../../workers``, …), puts it on mypy's search path, and writes the
folders' own paths back into mypy's report.

    python .ci/typecheck.py [mypy arguments]
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINKS = ROOT / ".mypy_cache" / "package-dir"


def package_dirs() -> dict[str, Path]:
    """Import name → folder, for each package whose folder is not where its name puts it."""
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return {name: ROOT / folder for name, folder in mapping.items() if ROOT / Path(*name.split(".")) != ROOT / folder}


def link_tree(dirs: dict[str, Path]) -> None:
    for name, folder in dirs.items():
        link = LINKS.joinpath(*name.split("."))
        link.parent.mkdir(parents=True, exist_ok=True)
        target = Path(os.path.relpath(folder, link.parent))
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        if link.is_symlink():
            link.unlink()
        link.symlink_to(target, target_is_directory=True)
    # a link left from a mapping that is gone would make mypy check a package that is not installed
    for link in LINKS.rglob("*"):
        if link.is_symlink() and ".".join(link.relative_to(LINKS).parts) not in dirs:
            link.unlink()


def main(argv: list[str]) -> int:
    from mypy import api  # a dev dependency: imported when the check runs, not when this is read

    dirs = package_dirs()
    link_tree(dirs)
    os.chdir(ROOT)
    os.environ["MYPYPATH"] = str(LINKS)
    with_code = [name for name, folder in dirs.items() if any(folder.rglob("*.py"))]
    packages = [arg for name in ["edgeloop", *with_code] for arg in ("-p", name)]
    stdout, stderr, status = api.run([*packages, *argv])
    for name, folder in dirs.items():
        linked = os.path.relpath(LINKS.joinpath(*name.split(".")), ROOT) + os.sep
        stdout = stdout.replace(linked, str(folder.relative_to(ROOT)) + os.sep)
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
