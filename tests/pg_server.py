"""A throwaway PostgreSQL server for the tests, started from the installed server binaries.

The ``pg_server`` fixture (session scope) runs ``initdb`` into a fresh temporary folder, starts
``postgres`` on a free loopback port with its unix socket in that folder, and stops and deletes it
at the end of the session. Nothing of the machine's own PostgreSQL (service, clusters, port 5432)
is used or touched.

- The binaries are looked for in ``$SPINESIM_PG_BINDIR``, ``/usr/lib/postgresql/<newest>/bin``
  (Debian and Ubuntu), ``pg_config --bindir`` and ``PATH``. Missing, the tests **fail** (they are
  not skipped) with a message naming the apt package ``postgresql``.
- ``initdb`` and ``postgres`` refuse to run as root: as root (CI containers) the server runs as an
  unprivileged user, ``postgres`` if it exists (the package makes it) else ``nobody``, and its folder
  is made outside pytest's root-only temporary folders and given to that user. As a normal user it
  runs as that user.
- Password authentication (SCRAM) for every connection, so that each test login is really its own
  role, as on a centre's server.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

APT_PACKAGE = "postgresql"
ADMIN = "spinesim_test_admin"
NEEDED = ("initdb", "pg_ctl", "postgres")


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", Path(path).parent.name))


def find_bindir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, or None."""
    candidates: list[str] = []
    if os.environ.get("SPINESIM_PG_BINDIR"):
        candidates.append(os.environ["SPINESIM_PG_BINDIR"])
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: _version_key(p + "/x"), reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            candidates.append(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                             timeout=10).stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).resolve().parent))
    for c in candidates:
        if c and all((Path(c) / name).is_file() for name in NEEDED):
            return Path(c)
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """A running throwaway server.

    Attributes
    ----------
    port : int
    admin_password : str
        The password of the superuser :data:`ADMIN`.
    """

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.admin_password = secrets.token_hex(12)
        self.port = 0
        self._run_as: dict = {}
        self._databases = 0
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    entry = pwd.getpwnam(name)
                except KeyError:
                    continue
                self._run_as = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
                break
            else:
                pytest.fail("the PostgreSQL test server cannot run as root and there is no 'postgres' or "
                            "'nobody' user to run it as")
        # not under pytest's temporary folder: that one is private to root when root runs the tests
        self.base = Path(tempfile.mkdtemp(prefix="spinesim-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        if self._run_as:
            os.chown(self.base, self._run_as["user"], self._run_as["group"])

    def _run(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.base), "LC_ALL": "C",
               "LANG": "C"}
        return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, cwd=self.base,
                              timeout=timeout_s, **self._run_as)

    def start(self) -> "PostgresServer":
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.admin_password + "\n", encoding="utf-8")
        if self._run_as:
            os.chown(pwfile, self._run_as["user"], self._run_as["group"])
        pwfile.chmod(0o600)
        done = self._run(self.bindir / "initdb", "-D", self.data, "-U", ADMIN, f"--pwfile={pwfile}",
                         "--auth=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync")
        pwfile.unlink()
        if done.returncode != 0:
            pytest.fail(f"initdb failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
        for _ in range(3):  # the port is free when picked; another process may take it first
            self.port = _free_port()
            # fsync off: the tests kill clients, never this server, and it is thrown away
            options = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
                       "-c full_page_writes=off -c max_connections=60 -c shared_buffers=32MB")
            done = self._run(self.bindir / "pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "-t", "60",
                             "start", timeout_s=90)
            if done.returncode == 0:
                return self
        log = self.log.read_text(errors="replace").strip().splitlines()[-3:] if self.log.exists() else []
        pytest.fail(f"the PostgreSQL test server did not start: {done.stderr.strip()} {' '.join(log)}")

    def stop(self) -> None:
        if self.data.exists():
            self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)

    def url(self, database: str = "postgres", user: str = ADMIN, password: str | None = None) -> str:
        """An SQLAlchemy URL (psycopg 3) of a database on this server."""
        password = self.admin_password if password is None else password
        return f"postgresql+psycopg://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres", user: str = ADMIN, password: str | None = None, **kwargs):
        """A plain psycopg connection (no SpineSim in between)."""
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, dbname=database, user=user,
                               password=self.admin_password if password is None else password, **kwargs)

    def create_database(self) -> str:
        """A new empty database's name."""
        self._databases += 1
        name = f"spinesim_test_{self._databases}"
        with self.connect(autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server for this test session (fails, not skips, without the server binaries)."""
    bindir = find_bindir()
    if bindir is None:
        pytest.fail(f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install the apt package "
                    f"'{APT_PACKAGE}' (or set SPINESIM_PG_BINDIR)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.fail("the PostgreSQL driver psycopg 3 is missing: pip install 'psycopg[binary]'")
    server = PostgresServer(bindir)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()
