"""A PostgreSQL cluster the test owns: ``initdb`` into a temporary folder, started on a free port with its own socket
folder, so a test can stop and restart it without touching the shared server or any of its databases."""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


def _bin_dir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists() and Path(candidate, "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnedCluster:
    """``start()``, ``stop()`` and ``url(database)`` of a private cluster; ``remove()`` stops it and deletes it."""

    def __init__(self) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="skillmine-owned-pg-"))
        # initdb refuses to run as root: the cluster then belongs to the postgres system user.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.root, "postgres")
        self.data = self.root / "data"
        self.port = _free_port()
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        self.running = False

    def _pg(self, tool: str, *args: str) -> None:
        result = subprocess.run([*self._as, str(self.bin_dir / tool), *args], check=False, capture_output=True,
                                text=True, timeout=120)
        if result.returncode:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr[-2000:]}")

    def start(self) -> None:
        """Start (or restart) the cluster and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")
        self.running = True

    def stop(self) -> None:
        """Stop the cluster now (``-m fast``: open connections are cut, as in a crash of the server's clients)."""
        self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.running = False

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def remove(self) -> None:
        if self.running:
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
