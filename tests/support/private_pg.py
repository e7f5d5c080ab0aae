"""A private PostgreSQL server for tests that stop, restart or crash it.

Tests never restart the shared server on :5432. This one runs from the machine's PostgreSQL
binaries in a temporary directory, on a free loopback port, with trust authentication, and
is removed at the end. PostgreSQL refuses to run as root, so as root its commands run as the
``postgres`` user (``runuser``). ``EDGELOOP_TEST_PG_BIN`` names the binaries' directory when
they are not under ``/usr/lib/postgresql/<version>/bin`` or on the PATH.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psycopg

from edgeloop.processes import free_port

SUPERUSER = "postgres"


def pg_bindir() -> Path:
    if os.environ.get("EDGELOOP_TEST_PG_BIN"):
        return Path(os.environ["EDGELOOP_TEST_PG_BIN"])
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: [int(x) for x in p.parent.parent.name.split(".") if x.isdigit()])
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl) found: install them or set "
                       "EDGELOOP_TEST_PG_BIN")


class PrivatePostgres:
    """One server: ``start``, ``stop(mode)``, ``restart(mode)``; mode is pg_ctl's (``fast``
    shuts down cleanly, ``immediate`` is a crash that the next start recovers from the WAL)."""

    def __init__(self, root: Path, port: int, bindir: Path | None = None) -> None:
        self.root = root
        self.port = port
        self.bindir = bindir or pg_bindir()
        self.data = root / "data"
        self.log_path = root / "server.log"
        self._owner = pwd.getpwnam(SUPERUSER) if os.geteuid() == 0 else None

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bindir / tool), *args]
        if self._owner is not None:
            cmd = ["runuser", "-u", self._owner.pw_name, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr.strip()}\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def init(self) -> None:
        if self._owner is not None:
            os.chown(self.root, self._owner.pw_uid, self._owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-sync")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.root}'\n")

    def start(self) -> None:
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log_path), "-w", "-t", "60")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60")

    def restart(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "restart", "-D", str(self.data), "-l", str(self.log_path), "-m", mode, "-w",
                  "-t", "60")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started server, stopped and deleted on exit."""
    root = Path(tempfile.mkdtemp(prefix="edgeloop-pg-"))
    server = PrivatePostgres(root, free_port())
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.running():
            try:
                server.stop("immediate")
            except RuntimeError:
                pass  # the data directory goes anyway; a failed stop must not hide the test's error
        shutil.rmtree(root, ignore_errors=True)
