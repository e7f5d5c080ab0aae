"""mypy over the package edgeloop installs (`make lint`); the settings are in pyproject.toml.

mypy finds modules by their place on disk and cannot follow setuptools' package-dir mapping
(``edgeloop.workers`` is the folder ``workers/``), nor the import hook of the editable install.
So this checks the tree ``tools/import_root.py`` lays out for import-linter (``var/import-root/``:
the listed packages, their files linked from the repository's folders), found first on mypy's
search path, and writes the folders' own paths back into mypy's report.

    python .ci/typecheck.py [mypy arguments]
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import import_root  # tools/import_root.py: a script of the repository, not an installed module

STAGED = ROOT / "var" / "import-root"


def real_paths(staged: Path, folders: dict[str, Path]) -> tuple[re.Pattern[str], dict[str, str]]:
    """A pattern matching each staged package folder's path (relative to ROOT, longest first,
    so ``edgeloop/schema/migrations/`` wins over ``edgeloop/schema/``) and the folder it stands for.
    An absolute path ends with the relative one, so it is rewritten to the real absolute path."""
    paths = {os.path.relpath(staged.joinpath(*package.split(".")), ROOT) + os.sep:
             os.path.relpath(folder, ROOT) + os.sep for package, folder in folders.items()}
    pattern = re.compile("|".join(re.escape(path) for path in sorted(paths, key=len, reverse=True)))
    return pattern, paths


def main(argv: list[str]) -> int:
    from mypy import api  # a dev dependency: imported when the check runs, not when this is read

    import_root.stage(STAGED)
    os.chdir(ROOT)
    os.environ["MYPYPATH"] = str(STAGED)
    stdout, stderr, status = api.run(["-p", "edgeloop", *argv])
    pattern, paths = real_paths(STAGED, import_root.package_folders(import_root.setuptools_config()))
    sys.stdout.write(pattern.sub(lambda m: paths[m.group(0)], stdout))
    sys.stderr.write(stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
