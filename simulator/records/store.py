"""The attempt store: users, courses and attempts in one database (SQLite or PostgreSQL).

An attempt keeps exactly what an attempt record file holds (:mod:`simulator.records.attempt_file`:
the header and the timed commands), plus the simulation's events, every scorecard it was given,
its status (``in_progress``, ``incomplete``, ``finished``), start and finish times and, on request,
its acquired images as PNG. :meth:`Store.attempt_record` gives back an
:class:`~simulator.records.attempt_file.AttemptRecord` for ``Simulation.replay`` or to resume.

Which database
--------------
:func:`database_url` picks, first found: the CLI flag (``explicit``), the environment variable
``SPINESIM_DATABASE_URL``, ``url`` in the ``[database]`` table of ``data_dir()/settings.toml``,
and else SQLite in the user's data folder (:func:`default_database_url`). A PostgreSQL URL
(``postgresql://user@host/db``; the driver is psycopg 3) works the same. :meth:`Store.open`
upgrades the schema to the newest Alembic revision shipped in ``simulator/records/migrations``
(one process at a time: a SQLite write lock or a PostgreSQL advisory lock).

Durability
----------
:meth:`Store.append_command` commits each command in its own transaction before it returns;
SQLite runs in WAL mode with ``synchronous=FULL`` (the commit is on disk), and every write
transaction is ``BEGIN IMMEDIATE`` with a 30 s busy timeout, so two processes writing at once wait
for each other instead of failing. On PostgreSQL each command is an ordinary transaction that
increments the attempt's command count under its row lock.

Attempts of a dead process
--------------------------
Each process that writes attempts registers a *writer* (``writers`` table: host, pid, start) and
holds a lock that goes away by itself when the process dies, however it dies (SIGKILL, power cut
of a station, a network cut to the server):

- SQLite: an exclusive ``flock`` on ``<database>.writers/<writer id>.lock`` (the kernel drops it
  with the process; a SQLite database is only ever written from one host);
- PostgreSQL: a session advisory lock (``pg_advisory_lock``) on a connection of its own (the server
  drops it when that connection ends), which works across hosts.

The lock is taken before the writer's row is committed, so nobody sees a writer without its lock.
:meth:`Store.open` (and :meth:`Store.recover`) marks ``incomplete`` every ``in_progress`` attempt
whose writer's lock can be taken: that process is gone. pid checks are not used: pids are reused,
are meaningless across hosts, and probing one is not portable. A writer that finds its attempt
marked incomplete while it is alive (say its PostgreSQL lock connection was cut) takes its lock
again and carries on. :meth:`Store.close` marks its own unfinished attempts incomplete.

Who may do what
---------------
Every call that reads or changes data takes an :class:`Actor`, issued by :meth:`Store.actor`
(who is acting) or :meth:`Store.unlock` (an instructor who gave the instructor password). A trainee
reads and writes their own attempts only; editing courses and users, viewing others' results,
deleting, exporting, importing and trusting keys need an unlocked instructor. Refusals are
:class:`~simulator.errors.SpineSimError` with a one-line message. The calls that write an attempt as
it happens (:meth:`Store.append_command`, :meth:`Store.append_events`, :meth:`Store.add_image`,
:meth:`Store.finish_attempt`) take no actor: only the process that started (or resumed) the attempt
may make them. On PostgreSQL the database enforces the same rules for each person's own login
(see :mod:`simulator.records.security`), so a trainee cannot get round them with SQL either.

Result files
------------
:meth:`Store.export_attempt` writes an attempt (header, commands, events, scorecards, optionally
images) as JSON signed with the station's Ed25519 key; :meth:`Store.import_attempt` accepts it on
any station that trusts the signing key and rejects a changed file (see
:mod:`simulator.records.security`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import re
import secrets
import socket
import threading
import time
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable

from sqlalchemy import create_engine, delete, event, func, insert, select, update
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.pool import NullPool, StaticPool

from simulator.errors import SpineSimError
from simulator.protocol.commands import parse_command
from simulator.protocol.events import Event
from simulator.records import security
from simulator.records.attempt_file import FORMAT, FORMAT_VERSION, AttemptRecord, TimedCommand
from simulator.records.store_schema import (ACCOUNT_MAX_CHARS, ROLES, Attempt, AttemptCommand, AttemptEvent,
                                            AttemptImage, Course, CourseMember, CourseScenario, Credential,
                                            ScorecardRow, TrustedKey, User, Writer, utc_now)

ENV_VAR = "SPINESIM_DATABASE_URL"
SETTINGS_FILE = "settings.toml"
DEFAULT_DB_FILE = "spinesim.db"
#: How long a SQLite writer waits for another process's write transaction, s.
BUSY_TIMEOUT_S = 30.0
#: First key of the PostgreSQL advisory locks of SpineSim (ASCII "SPIN"); the second is the writer
#: id, or 0 for the migration lock.
PG_LOCK_NAMESPACE = 0x5350494E
RESULT_FORMAT = "spinesim-result"
RESULT_FORMAT_VERSION = 1

_MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_ACCOUNT_RE = re.compile(r"[a-z0-9][a-z0-9_.@-]*")

_ATTEMPTS = Attempt.__table__
_COMMANDS = AttemptCommand.__table__
_EVENTS = AttemptEvent.__table__
_SCORECARDS = ScorecardRow.__table__
_IMAGES = AttemptImage.__table__
_USERS = User.__table__
_CREDENTIALS = Credential.__table__
_COURSES = Course.__table__
_COURSE_SCENARIOS = CourseScenario.__table__
_COURSE_MEMBERS = CourseMember.__table__
_WRITERS = Writer.__table__
_TRUSTED = TrustedKey.__table__


# ------------------------------------------------------------------------------------ URLs
def settings_path() -> Path:
    """The user's settings file, ``data_dir()/settings.toml`` (``[database] url = "..."``)."""
    from simulator.paths import data_dir

    return data_dir() / SETTINGS_FILE


def default_database_url() -> str:
    """SQLite in the user's data folder: ``sqlite:///<data_dir>/spinesim.db``."""
    from simulator.paths import data_dir

    return f"sqlite:///{(data_dir() / DEFAULT_DB_FILE).as_posix()}"


def database_url(explicit: str | None = None) -> str:
    """The database to use: ``explicit`` (the CLI flag), else ``SPINESIM_DATABASE_URL``, else the
    settings file's ``[database] url``, else :func:`default_database_url`.

    Parameters
    ----------
    explicit : str, optional
        A URL given on the command line.

    Returns
    -------
    str
        An SQLAlchemy URL (``sqlite:///path`` or ``postgresql://...``).
    """
    if explicit:
        return str(explicit)
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return env
    path = settings_path()
    if path.exists():
        try:
            settings = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise SpineSimError(f"{path}: cannot read the settings ({err})") from None
        url = settings.get("database", {}).get("url") if isinstance(settings.get("database"), dict) else None
        if url is not None:
            if not isinstance(url, str) or not url.strip():
                raise SpineSimError(f"{path}: database.url: must be a database URL")
            return url.strip()
    return default_database_url()


def normalise_url(url: str) -> str:
    """``url`` with PostgreSQL's driver spelled out (psycopg 3; SQLAlchemy's default is psycopg2)."""
    try:
        u = make_url(url)
    except ArgumentError:
        raise SpineSimError(f"database URL {url!r}: not a database URL (e.g. sqlite:///path or "
                            "postgresql://user@host/db)") from None
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def check_account(account: str) -> str:
    """An account name as stored (lowercase letters, digits, ``_ . @ -``; also a PostgreSQL login
    role name, so at most 63 characters and never ``pg_...`` or ``spinesim_...``)."""
    a = str(account).strip()
    if (not _ACCOUNT_RE.fullmatch(a) or len(a) > ACCOUNT_MAX_CHARS or a.startswith(("pg_", "spinesim_"))
            or a in ("public", "none")):
        raise SpineSimError(f"account {account!r}: must be 1-{ACCOUNT_MAX_CHARS} lowercase letters, digits, "
                            "'_', '.', '@' or '-', not starting with pg_ or spinesim_")
    return a


def _json_default(obj):
    # numpy numbers and arrays (event data) without importing numpy here
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON")


def _json_dumps(obj) -> str:
    return json.dumps(security._finite(json.loads(json.dumps(obj, default=_json_default))),
                      separators=(",", ":"), allow_nan=False)


# ---------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Actor:
    """Who is acting, as issued by :meth:`Store.actor` or :meth:`Store.unlock`.

    Attributes
    ----------
    user_id : int
    account : str
    display_name : str
    role : {"trainee", "instructor"}
    instructor_unlocked : bool
        The instructor password was given: instructor actions are allowed.
    """

    user_id: int
    account: str
    display_name: str
    role: str
    instructor_unlocked: bool = False
    # the issuing store's MAC over the fields: an Actor made by hand is refused
    _grant: bytes = field(default=b"", repr=False, compare=False)

    @property
    def is_instructor(self) -> bool:
        """An instructor who unlocked instructor actions."""
        return self.role == "instructor" and self.instructor_unlocked


@dataclass(frozen=True)
class AttemptInfo:
    """One attempt's summary (no commands)."""

    id: int
    owner: str
    scenario_id: str
    course: str | None
    status: str
    started_at: datetime
    finished_at: datetime | None
    n_commands: int
    n_events: int
    origin: str | None


@dataclass(frozen=True)
class StoredScorecard:
    """A scorecard as stored: ``original`` (the attempt's own) or ``rescore`` (a newer version)."""

    kind: str
    scoring_version: int
    scorecard: dict
    created_at: datetime
    created_by: str | None


@dataclass(frozen=True)
class CourseInfo:
    """A course: its scenario ids in order and its members' accounts."""

    id: int
    name: str
    scenario_ids: tuple[str, ...]
    members: tuple[str, ...]


# ----------------------------------------------------------------------------- writer locks
class _FileLocks:
    """Writer liveness on SQLite: a writer holds an exclusive lock on its own lock file."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._held: dict[int, Any] = {}

    def _path(self, writer_id: int) -> Path:
        return self.folder / f"{writer_id}.lock"

    @staticmethod
    def _try_lock(f) -> bool:
        if os.name == "nt":  # pragma: no cover - Windows
            import msvcrt

            try:
                msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                return False
        import fcntl

        try:
            # flock, not lockf: its locks belong to the open file, so two stores in one process
            # exclude each other too
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def hold(self, writer_id: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        f = open(self._path(writer_id), "a+b")
        if not self._try_lock(f):
            f.close()
            raise SpineSimError(f"{self._path(writer_id)}: held by another process")
        self._held[writer_id] = f

    def holds(self, writer_id: int) -> bool:
        return writer_id in self._held

    def is_alive(self, conn, writer_id: int) -> bool:
        if writer_id in self._held:
            return True
        try:
            f = open(self._path(writer_id), "r+b")
        except FileNotFoundError:
            return False
        with f:
            if not self._try_lock(f):
                return True
        self._path(writer_id).unlink(missing_ok=True)
        return False

    def release(self, writer_id: int) -> None:
        f = self._held.pop(writer_id, None)
        if f is not None:
            f.close()
            self._path(writer_id).unlink(missing_ok=True)


class _MemoryLocks(_FileLocks):
    """Writer liveness of an in-memory SQLite database: only this process can see it."""

    def __init__(self):
        self._held = {}

    def hold(self, writer_id: int) -> None:
        self._held[writer_id] = None

    def is_alive(self, conn, writer_id: int) -> bool:
        return writer_id in self._held

    def release(self, writer_id: int) -> None:
        self._held.pop(writer_id, None)


class _AdvisoryLocks:
    """Writer liveness on PostgreSQL: a session advisory lock on a connection kept for it."""

    def __init__(self, url: str):
        # its own engine without a pool: the lock lives exactly as long as this one connection;
        # keepalives let the server notice a dead station's connection
        self.engine = create_engine(url, poolclass=NullPool,
                                    connect_args={"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                                                  "keepalives_count": 3})
        self.conn: Connection | None = None
        self.writer_id: int | None = None

    def holds(self, writer_id: int) -> bool:
        return writer_id == self.writer_id and self.conn is not None and not self.conn.closed

    def connection(self) -> Connection:
        if self.conn is None or self.conn.closed:
            self.conn = self.engine.connect()
        return self.conn

    def lock(self, conn: Connection, writer_id: int) -> None:
        conn.execute(select(func.pg_advisory_lock(PG_LOCK_NAMESPACE, writer_id)))
        self.writer_id = writer_id

    def healthy(self) -> bool:
        try:
            with self.connection().begin():
                self.conn.execute(select(1))
            return True
        except DBAPIError:
            self.conn = None
            return False

    def is_alive(self, conn: Connection, writer_id: int) -> bool:
        if self.holds(writer_id):
            return True
        # a transaction lock: let go by itself at the end of the checking transaction
        got = conn.execute(select(func.pg_try_advisory_xact_lock(PG_LOCK_NAMESPACE, writer_id))).scalar_one()
        return not got

    def release(self, writer_id: int) -> None:
        if self.conn is not None and not self.conn.closed:
            self.conn.close()  # ends the session: the lock goes with it
        self.conn = None
        self.writer_id = None
        self.engine.dispose()


# ---------------------------------------------------------------------------------- the store
class Store:
    """A connection to the attempt store; use :meth:`Store.open`.

    Attributes
    ----------
    backend : {"sqlite", "postgresql"}
    url : str
        The database URL with any password hidden (for messages).
    engine : sqlalchemy.engine.Engine
    """

    def __init__(self, engine: Engine, url: str, station_key_file: Path | None):
        self.engine = engine
        self.backend = engine.dialect.name
        self.url = make_url(url).render_as_string(hide_password=True)
        self._raw_url = url
        self._station_key_file = station_key_file
        self._secret = secrets.token_bytes(32)  # signs the Actors this store issues
        self._lock = threading.RLock()
        self._writer_id: int | None = None
        if self.backend == "postgresql":
            self._locks: Any = _AdvisoryLocks(url)
        elif engine.url.database in (None, "", ":memory:"):
            self._locks = _MemoryLocks()
        else:
            self._locks = _FileLocks(Path(engine.url.database + ".writers"))
        self._station_key = None

    # ----------------------------------------------------------------------------- opening
    @classmethod
    def open(cls, url: str | None = None, *, station_key_file: str | Path | None = None) -> "Store":
        """Open (and create or upgrade to the newest schema) the store at ``url``.

        Parameters
        ----------
        url : str, optional
            An SQLAlchemy URL; default :func:`database_url` (flag, env var, settings, SQLite).
        station_key_file : path, optional
            This station's signing key; default :func:`simulator.records.security.station_key_path`.

        Returns
        -------
        Store
            Attempts left ``in_progress`` by processes that have died are now ``incomplete``.
        """
        url = normalise_url(database_url(url))
        u = make_url(url)
        kwargs: dict[str, Any] = {"json_serializer": _json_dumps}
        if u.get_backend_name() == "sqlite":
            if u.database in (None, "", ":memory:"):
                kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
            else:
                Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
                kwargs.update(connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False})
        elif u.get_backend_name() == "postgresql":
            kwargs.update(pool_pre_ping=True, connect_args={"connect_timeout": 15})
        else:
            raise SpineSimError(f"database URL {u.render_as_string(hide_password=True)}: only sqlite:// and "
                                "postgresql:// are supported")
        try:
            engine = create_engine(url, **kwargs)
        except (ArgumentError, ImportError) as err:
            raise SpineSimError(f"database {u.render_as_string(hide_password=True)}: cannot open ({err})") from None
        if engine.dialect.name == "sqlite":
            _sqlite_setup(engine)
        store = cls(engine, url, Path(station_key_file) if station_key_file is not None else None)
        try:
            store._upgrade()
            store.recover()
        except BaseException:
            store.engine.dispose()
            raise
        return store

    def close(self) -> None:
        """Mark this process's unfinished attempts incomplete, drop its writer lock, disconnect."""
        with self._lock:
            if self._writer_id is not None:
                wid = self._writer_id
                try:
                    def end(conn):
                        conn.execute(update(_ATTEMPTS).where(_ATTEMPTS.c.writer_id == wid,
                                                             _ATTEMPTS.c.status == "in_progress")
                                     .values(status="incomplete"))
                        conn.execute(update(_WRITERS).where(_WRITERS.c.id == wid).values(ended_at=utc_now()))
                    self._write(end, "closing the store")
                finally:
                    self._locks.release(wid)
                    self._writer_id = None
            self.engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------- transactions
    @contextmanager
    def _connection(self, write: bool):
        with self.engine.connect() as conn:
            if write and self.backend == "sqlite":
                conn = conn.execution_options(spinesim_write=True)
            yield conn

    def _run(self, fn: Callable[[Connection], Any], what: str, write: bool) -> Any:
        delay_s = 0.05
        for attempt in range(6):
            try:
                with self._connection(write) as conn, conn.begin():
                    return fn(conn)
            except OperationalError as err:
                # SQLite past its busy timeout, or a PostgreSQL deadlock or serialization failure:
                # the transaction did not happen, so it is tried again a few times
                message = str(err.orig).lower()
                transient = ("locked" in message or "busy" in message
                             or getattr(err.orig, "sqlstate", None) in ("40001", "40P01"))
                if attempt < 5 and transient:
                    time.sleep(delay_s)
                    delay_s *= 2
                    continue
                raise self._db_error(err, what) from None
            except IntegrityError as err:
                # two processes adding the same name at once: the loser is told, nothing half-done
                first = str(err.orig).strip().splitlines()[0] if str(err.orig).strip() else "integrity error"
                raise SpineSimError(f"{what}: conflicts with what is already stored ({first})") from None
            except DBAPIError as err:
                raise self._db_error(err, what) from None

    def _write(self, fn: Callable[[Connection], Any], what: str) -> Any:
        return self._run(fn, what, write=True)

    def _read(self, fn: Callable[[Connection], Any], what: str) -> Any:
        return self._run(fn, what, write=False)

    def _db_error(self, err: DBAPIError, what: str) -> SpineSimError:
        code = getattr(err.orig, "sqlstate", None)
        first = str(err.orig).strip().splitlines()[0] if str(err.orig).strip() else type(err.orig).__name__
        if code == "42501" or "row-level security" in first:
            return SpineSimError(f"{what}: refused by the database {self.url} ({first})")
        return SpineSimError(f"{what}: database {self.url}: {first}")

    # --------------------------------------------------------------------------- migrations
    def _alembic_config(self, conn: Connection):
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS_DIR))
        cfg.attributes["connection"] = conn
        return cfg

    def schema_revision(self) -> tuple[str | None, str]:
        """(the database's Alembic revision, the newest revision this SpineSim ships)."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        def read(conn):
            return MigrationContext.configure(conn).get_current_revision()

        current = self._read(read, f"database {self.url}")
        with self._connection(False) as conn:
            head = ScriptDirectory.from_config(self._alembic_config(conn)).get_current_head()
        return current, head

    def _upgrade(self) -> None:
        from alembic import command
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        current, head = self.schema_revision()
        if current == head:
            return
        with self._connection(False) as conn:
            known = {s.revision for s in ScriptDirectory.from_config(self._alembic_config(conn)).walk_revisions()}
        if current is not None and current not in known:
            raise SpineSimError(f"database {self.url}: schema revision {current} is newer than this SpineSim "
                                f"knows ({head}); update SpineSim")

        def upgrade(conn):
            if self.backend == "postgresql":
                # one migrating process at a time (SQLite: BEGIN IMMEDIATE already is)
                conn.execute(select(func.pg_advisory_xact_lock(PG_LOCK_NAMESPACE, 0)))
            if MigrationContext.configure(conn).get_current_revision() == head:
                return
            command.upgrade(self._alembic_config(conn), "head")

        try:
            self._write(upgrade, f"database {self.url}: upgrading the schema to {head}")
        except SpineSimError as err:
            if self.backend == "postgresql" and ("refused" in str(err) or "permission" in str(err)):
                raise SpineSimError(f"database {self.url}: schema is at {current or 'none'}, SpineSim needs "
                                    f"{head}; the centre's admin must run security.setup_centre_database") from None
            raise

    # -------------------------------------------------------------------------------- writer
    def _ensure_writer(self) -> int:
        """This process's writer id, registering it (and taking its lock) on first use."""
        with self._lock:
            if self._writer_id is not None:
                if self.backend == "postgresql" and not self._locks.healthy():
                    self._relock()
                return self._writer_id
            row = {"host": socket.gethostname()[:255], "pid": os.getpid(), "started_at": utc_now()}
            if self.backend == "postgresql":
                conn = self._locks.connection()
                try:
                    with conn.begin():
                        wid = conn.execute(insert(_WRITERS).values(row).returning(_WRITERS.c.id)).scalar_one()
                        # locked before the row is committed: no one sees this writer unlocked
                        self._locks.lock(conn, wid)
                except DBAPIError as err:
                    raise self._db_error(err, "registering this process as a writer") from None
            else:
                def register(conn):
                    wid = conn.execute(insert(_WRITERS).values(row).returning(_WRITERS.c.id)).scalar_one()
                    self._locks.hold(wid)
                    return wid
                wid = self._write(register, "registering this process as a writer")
            self._writer_id = wid
            return wid

    def _relock(self) -> None:
        # the lock connection was lost (the server may have dropped the lock): take it again
        conn = self._locks.connection()
        with conn.begin():
            self._locks.lock(conn, self._writer_id)

    def recover(self) -> list[int]:
        """Mark ``incomplete`` every ``in_progress`` attempt whose writing process has died.

        Returns
        -------
        list of int
            The attempts marked (only those this connection may see, on PostgreSQL).
        """
        def run(conn):
            rows = conn.execute(select(_ATTEMPTS.c.id, _ATTEMPTS.c.writer_id)
                                .where(_ATTEMPTS.c.status == "in_progress")).all()
            dead_writers: dict[int | None, bool] = {}
            marked = []
            for aid, wid in rows:
                if wid not in dead_writers:
                    dead_writers[wid] = wid is None or not self._locks.is_alive(conn, wid)
                if dead_writers[wid]:
                    marked.append(aid)
            if marked:
                conn.execute(update(_ATTEMPTS).where(_ATTEMPTS.c.id.in_(marked), _ATTEMPTS.c.status == "in_progress")
                             .values(status="incomplete"))
                ended = [w for w, dead in dead_writers.items() if dead and w is not None]
                conn.execute(update(_WRITERS).where(_WRITERS.c.id.in_(ended), _WRITERS.c.ended_at.is_(None))
                             .values(ended_at=utc_now()))
            return marked

        return self._write(run, "marking the attempts of dead processes incomplete")

    # -------------------------------------------------------------------------------- actors
    def _mac(self, user_id: int, account: str, role: str, unlocked: bool) -> bytes:
        return hmac.new(self._secret, f"{user_id}\0{account}\0{role}\0{unlocked}".encode(), hashlib.sha256).digest()

    def _issue(self, row, unlocked: bool) -> Actor:
        return Actor(row.id, row.account, row.display_name, row.role, unlocked,
                     self._mac(row.id, row.account, row.role, unlocked))

    def _check(self, actor: Actor) -> Actor:
        if not isinstance(actor, Actor) or not hmac.compare_digest(
                actor._grant, self._mac(actor.user_id, actor.account, actor.role, actor.instructor_unlocked)):
            raise SpineSimError(f"actor {getattr(actor, 'account', actor)!r}: not issued by this store "
                                "(use Store.actor or Store.unlock)")
        return actor

    def _require_instructor(self, actor: Actor | None, what: str) -> Actor:
        if actor is None or not self._check(actor).is_instructor:
            raise SpineSimError(f"{what}: needs an instructor who has unlocked instructor actions with the "
                                "instructor password")
        return actor

    def actor(self, account: str) -> Actor:
        """The user ``account`` acting without instructor rights.

        Raises
        ------
        SpineSimError
            No such user (on PostgreSQL: not visible to this login).
        """
        account = check_account(account)
        row = self._read(lambda c: c.execute(select(_USERS).where(_USERS.c.account == account)).first(),
                         f"user {account}")
        if row is None:
            raise SpineSimError(f"user {account}: no such user")
        return self._issue(row, False)

    def unlock(self, account: str, password: str) -> Actor:
        """An instructor with instructor actions unlocked, if ``password`` is their instructor password.

        Raises
        ------
        SpineSimError
            Not an instructor, no password set, or the password is wrong.
        """
        account = check_account(account)

        def read(conn):
            return conn.execute(select(_USERS, _CREDENTIALS.c.password_hash)
                                .select_from(_USERS.outerjoin(_CREDENTIALS, _CREDENTIALS.c.user_id == _USERS.c.id))
                                .where(_USERS.c.account == account)).first()

        row = self._read(read, f"instructor password of {account}")
        if row is None:
            raise SpineSimError(f"user {account}: no such user")
        if row.role != "instructor":
            raise SpineSimError(f"user {account}: not an instructor")
        if row.password_hash is None:
            raise SpineSimError(f"user {account}: no instructor password set")
        if not security.verify_password(password, row.password_hash):
            raise SpineSimError(f"user {account}: wrong instructor password")
        return self._issue(row, True)

    # --------------------------------------------------------------------------------- users
    def _has_instructor(self, conn) -> bool:
        count = select(func.count()).select_from(_USERS).where(_USERS.c.role == "instructor")
        return conn.execute(count).scalar_one() > 0

    def add_user(self, actor: Actor | None, account: str, display_name: str, role: str = "trainee",
                 password: str | None = None) -> Actor:
        """Add a trainee or instructor.

        Parameters
        ----------
        actor : Actor or None
            An unlocked instructor; ``None`` is allowed only while the database has no instructor
            (a new installation setting itself up).
        account : str
            See :func:`check_account`.
        display_name : str
        role : {"trainee", "instructor"}
        password : str, optional
            The instructor password (instructors; hashed with scrypt, never kept in clear).

        Returns
        -------
        Actor
            The new user, locked.
        """
        account = check_account(account)
        if role not in ROLES:
            raise SpineSimError(f"role: must be one of {', '.join(ROLES)} (not {role!r})")
        if actor is not None:
            self._require_instructor(actor, f"adding user {account}")
        elif self._read(self._has_instructor, "users"):
            self._require_instructor(None, f"adding user {account}")
        return self.put_user_unchecked(account, display_name, role, password, must_be_new=True)

    def sign_in(self, account: str, display_name: str | None = None) -> Actor:
        """The user ``account``, added as a trainee if new (a trainee picks a name at a station;
        instructors and, on PostgreSQL, every login are made by an instructor or the admin)."""
        account = check_account(account)
        try:
            return self.actor(account)
        except SpineSimError:
            if self.backend == "postgresql":
                raise
        return self.put_user_unchecked(account, display_name or account, "trainee")

    def put_user_unchecked(self, account: str, display_name: str, role: str, password: str | None = None,
                           must_be_new: bool = False) -> Actor:
        """Add or update a user with no actor check (for the admin functions of
        :mod:`simulator.records.security`: the database's own privileges decide)."""
        account = check_account(account)
        name = " ".join(str(display_name).split())
        if not name or len(name) > 200:
            raise SpineSimError(f"user {account}: display name must be 1-200 characters")
        if role not in ROLES:
            raise SpineSimError(f"role: must be one of {', '.join(ROLES)} (not {role!r})")
        if password is not None and role != "instructor":
            raise SpineSimError(f"user {account}: only instructors have an instructor password")
        hashed = security.hash_password(password) if password is not None else None

        def put(conn):
            row = conn.execute(select(_USERS).where(_USERS.c.account == account)).first()
            if row is not None and must_be_new:
                raise SpineSimError(f"user {account}: already exists")
            if row is None:
                uid = conn.execute(insert(_USERS).values(account=account, display_name=name, role=role,
                                                         created_at=utc_now()).returning(_USERS.c.id)).scalar_one()
            else:
                uid = row.id
                conn.execute(update(_USERS).where(_USERS.c.id == uid).values(display_name=name, role=role))
            if hashed is not None:
                self._set_hash(conn, uid, hashed)
            return conn.execute(select(_USERS).where(_USERS.c.id == uid)).one()

        return self._issue(self._write(put, f"user {account}"), False)

    @staticmethod
    def _set_hash(conn, user_id: int, hashed: str) -> None:
        conn.execute(delete(_CREDENTIALS).where(_CREDENTIALS.c.user_id == user_id))
        conn.execute(insert(_CREDENTIALS).values(user_id=user_id, password_hash=hashed, changed_at=utc_now()))

    def set_password(self, actor: Actor, account: str, password: str) -> None:
        """Set an instructor's instructor password (needs an unlocked instructor)."""
        account = check_account(account)
        self._require_instructor(actor, f"setting the instructor password of {account}")
        hashed = security.hash_password(password)

        def put(conn):
            row = conn.execute(select(_USERS).where(_USERS.c.account == account)).first()
            if row is None:
                raise SpineSimError(f"user {account}: no such user")
            if row.role != "instructor":
                raise SpineSimError(f"user {account}: only instructors have an instructor password")
            self._set_hash(conn, row.id, hashed)

        self._write(put, f"instructor password of {account}")

    def users(self, actor: Actor) -> list[tuple[str, str, str]]:
        """Every user as (account, display name, role) (needs an unlocked instructor)."""
        self._require_instructor(actor, "listing users")
        rows = self._read(lambda c: c.execute(select(_USERS.c.account, _USERS.c.display_name, _USERS.c.role)
                                              .order_by(_USERS.c.account)).all(), "users")
        return [tuple(r) for r in rows]

    # ------------------------------------------------------------------------------- courses
    @staticmethod
    def _course_row(conn, course: int | str):
        where = _COURSES.c.id == course if isinstance(course, int) else _COURSES.c.name == str(course)
        row = conn.execute(select(_COURSES).where(where)).first()
        if row is None:
            raise SpineSimError(f"course {course}: no such course")
        return row

    @staticmethod
    def _user_ids(conn, accounts: Iterable[str]) -> list[int]:
        ids = []
        for a in accounts:
            a = check_account(a)
            uid = conn.execute(select(_USERS.c.id).where(_USERS.c.account == a)).scalar()
            if uid is None:
                raise SpineSimError(f"user {a}: no such user")
            ids.append(uid)
        return ids

    @staticmethod
    def _check_scenarios(scenario_ids: Iterable[str], course: str) -> list[str]:
        ids = [str(s) for s in scenario_ids]
        if any(not s.strip() or len(s) > 200 for s in ids):
            raise SpineSimError(f"course {course}: scenario ids must be 1-200 characters")
        return ids

    def create_course(self, actor: Actor, name: str, scenario_ids: Iterable[str],
                      members: Iterable[str] = ()) -> int:
        """A course: ``scenario_ids`` in order, given to ``members`` (needs an unlocked instructor).

        Returns
        -------
        int
            The course id.
        """
        name = " ".join(str(name).split())
        self._require_instructor(actor, f"creating course {name}")
        if not name or len(name) > 200:
            raise SpineSimError("course name: must be 1-200 characters")
        ids = self._check_scenarios(scenario_ids, name)
        members = list(members)

        def create(conn):
            if conn.execute(select(_COURSES.c.id).where(_COURSES.c.name == name)).first() is not None:
                raise SpineSimError(f"course {name}: already exists")
            cid = conn.execute(insert(_COURSES).values(name=name, created_at=utc_now())
                               .returning(_COURSES.c.id)).scalar_one()
            if ids:
                conn.execute(insert(_COURSE_SCENARIOS), [{"course_id": cid, "position": i, "scenario_id": s}
                                                         for i, s in enumerate(ids)])
            uids = self._user_ids(conn, members)
            if uids:
                conn.execute(insert(_COURSE_MEMBERS), [{"course_id": cid, "user_id": u} for u in sorted(set(uids))])
            return cid

        return self._write(create, f"course {name}")

    def rename_course(self, actor: Actor, course: int | str, name: str) -> None:
        """Give a course a new name (needs an unlocked instructor); its scenarios, members and
        attempts stay with it."""
        new = " ".join(str(name).split())
        self._require_instructor(actor, f"renaming course {course}")
        if not new or len(new) > 200:
            raise SpineSimError(f"course {course}: name: must be 1-200 characters")

        def rename(conn):
            cid = self._course_row(conn, course).id
            other = conn.execute(select(_COURSES.c.id).where(_COURSES.c.name == new)).scalar()
            if other is not None and other != cid:
                raise SpineSimError(f"course {new}: already exists")
            conn.execute(update(_COURSES).where(_COURSES.c.id == cid).values(name=new))

        self._write(rename, f"course {course}")

    def set_course_scenarios(self, actor: Actor, course: int | str, scenario_ids: Iterable[str]) -> None:
        """Replace a course's ordered scenario list (needs an unlocked instructor)."""
        self._require_instructor(actor, f"editing course {course}")
        ids = self._check_scenarios(scenario_ids, str(course))

        def edit(conn):
            cid = self._course_row(conn, course).id
            conn.execute(delete(_COURSE_SCENARIOS).where(_COURSE_SCENARIOS.c.course_id == cid))
            if ids:
                conn.execute(insert(_COURSE_SCENARIOS), [{"course_id": cid, "position": i, "scenario_id": s}
                                                         for i, s in enumerate(ids)])

        self._write(edit, f"course {course}")

    def add_course_members(self, actor: Actor, course: int | str, accounts: Iterable[str]) -> None:
        """Add users to a course's group (needs an unlocked instructor)."""
        self._require_instructor(actor, f"editing course {course}")
        accounts = list(accounts)

        def edit(conn):
            cid = self._course_row(conn, course).id
            have = set(conn.execute(select(_COURSE_MEMBERS.c.user_id).where(_COURSE_MEMBERS.c.course_id == cid))
                       .scalars())
            new = sorted(set(self._user_ids(conn, accounts)) - have)
            if new:
                conn.execute(insert(_COURSE_MEMBERS), [{"course_id": cid, "user_id": u} for u in new])

        self._write(edit, f"course {course}")

    def remove_course_members(self, actor: Actor, course: int | str, accounts: Iterable[str]) -> None:
        """Take users out of a course's group (needs an unlocked instructor)."""
        self._require_instructor(actor, f"editing course {course}")
        accounts = list(accounts)

        def edit(conn):
            cid = self._course_row(conn, course).id
            uids = self._user_ids(conn, accounts)
            conn.execute(delete(_COURSE_MEMBERS).where(_COURSE_MEMBERS.c.course_id == cid,
                                                       _COURSE_MEMBERS.c.user_id.in_(uids)))

        self._write(edit, f"course {course}")

    def delete_course(self, actor: Actor, course: int | str) -> None:
        """Delete a course (its attempts stay, without a course; needs an unlocked instructor)."""
        self._require_instructor(actor, f"deleting course {course}")
        self._write(lambda c: c.execute(delete(_COURSES).where(_COURSES.c.id == self._course_row(c, course).id)),
                    f"course {course}")

    def _course_info(self, conn, row) -> CourseInfo:
        scenarios = conn.execute(select(_COURSE_SCENARIOS.c.scenario_id).where(_COURSE_SCENARIOS.c.course_id == row.id)
                                 .order_by(_COURSE_SCENARIOS.c.position)).scalars().all()
        members = conn.execute(select(_USERS.c.account).select_from(
            _COURSE_MEMBERS.join(_USERS, _USERS.c.id == _COURSE_MEMBERS.c.user_id))
            .where(_COURSE_MEMBERS.c.course_id == row.id).order_by(_USERS.c.account)).scalars().all()
        return CourseInfo(row.id, row.name, tuple(scenarios), tuple(members))

    def _is_member(self, conn, course_id: int, user_id: int) -> bool:
        return conn.execute(select(_COURSE_MEMBERS.c.user_id).where(
            _COURSE_MEMBERS.c.course_id == course_id, _COURSE_MEMBERS.c.user_id == user_id)).first() is not None

    def course(self, actor: Actor, course: int | str) -> CourseInfo:
        """A course the actor is a member of (any course for an unlocked instructor)."""
        self._check(actor)

        def read(conn):
            row = self._course_row(conn, course)
            if not actor.is_instructor and not self._is_member(conn, row.id, actor.user_id):
                raise SpineSimError(f"course {course}: {actor.account} is not a member")
            info = self._course_info(conn, row)
            # a trainee sees the course's scenarios, not who else is in it
            return info if actor.is_instructor else CourseInfo(info.id, info.name, info.scenario_ids, (actor.account,))

        return self._read(read, f"course {course}")

    def courses(self, actor: Actor) -> list[CourseInfo]:
        """The courses the actor is a member of (every course for an unlocked instructor)."""
        self._check(actor)

        def read(conn):
            q = select(_COURSES).order_by(_COURSES.c.name)
            if not actor.is_instructor:
                q = q.where(_COURSES.c.id.in_(select(_COURSE_MEMBERS.c.course_id)
                                              .where(_COURSE_MEMBERS.c.user_id == actor.user_id)))
            return [self._course_info(conn, r) for r in conn.execute(q).all()]

        out = self._read(read, "courses")
        return out if actor.is_instructor else [CourseInfo(c.id, c.name, c.scenario_ids, (actor.account,)) for c in out]

    # ----------------------------------------------------------------------- writing attempts
    @staticmethod
    def _check_header(header: dict, where: str) -> dict:
        if not isinstance(header, dict):
            raise SpineSimError(f"{where}: header: must be a JSON object")
        if header.get("format") != FORMAT:
            raise SpineSimError(f"{where}: header: format: must be '{FORMAT}'")
        if header.get("format_version") != FORMAT_VERSION:
            raise SpineSimError(f"{where}: header: format_version: must be {FORMAT_VERSION}")
        scenario = header.get("scenario")
        if not isinstance(scenario, dict) or not isinstance(scenario.get("id"), str) or not scenario["id"]:
            raise SpineSimError(f"{where}: header: scenario.id: missing")
        return json.loads(_json_dumps(header))

    def start_attempt(self, actor: Actor, header: dict, course: int | str | None = None) -> int:
        """Start an attempt of ``actor`` (its owner), written by this process.

        Parameters
        ----------
        actor : Actor
        header : dict
            The attempt record's header (:func:`simulator.records.attempt_file.make_header`).
        course : int or str, optional
            The course (id or name) it belongs to; the actor must be a member.

        Returns
        -------
        int
            The attempt id.
        """
        self._check(actor)
        header = self._check_header(header, "attempt")
        wid = self._ensure_writer()

        def start(conn):
            cid = None
            if course is not None:
                row = self._course_row(conn, course)
                if not actor.is_instructor and not self._is_member(conn, row.id, actor.user_id):
                    raise SpineSimError(f"course {course}: {actor.account} is not a member")
                cid = row.id
            return conn.execute(insert(_ATTEMPTS).values(
                owner=actor.account, course_id=cid, scenario_id=header["scenario"]["id"][:200], header=header,
                status="in_progress", started_at=utc_now(), writer_id=wid, n_commands=0, n_events=0)
                .returning(_ATTEMPTS.c.id)).scalar_one()

        return self._write(start, f"starting an attempt of {actor.account}")

    def _claim(self, conn, attempt_id: int, counter: str | None, n: int = 1) -> int:
        """Check that this process writes ``attempt_id`` (taking it back if it was marked
        incomplete while we were alive) and add ``n`` to its ``counter``; returns the old count."""
        wid = self._writer_id
        a = _ATTEMPTS.c
        values = {counter: getattr(a, counter) + n} if counter else {"status": "in_progress"}
        row = conn.execute(update(_ATTEMPTS).where(a.id == attempt_id, a.writer_id == wid, a.status == "in_progress")
                           .values(**values).returning(getattr(a, counter) if counter else a.id)).first()
        if row is not None:
            return (row[0] - n) if counter else 0
        current = conn.execute(select(a.status, a.writer_id).where(a.id == attempt_id)).first()
        if current is None:
            raise SpineSimError(f"attempt {attempt_id}: no such attempt")
        if wid is None or current.writer_id != wid:
            raise SpineSimError(f"attempt {attempt_id}: not being written by this process (resume it first)")
        if current.status == "finished":
            raise SpineSimError(f"attempt {attempt_id}: already finished")
        # marked incomplete by another process that could take our lock: we are alive, so take the
        # attempt (and the lock) back
        if self.backend == "postgresql" and not self._locks.healthy():
            self._relock()
        values["status"] = "in_progress"
        row = conn.execute(update(_ATTEMPTS).where(a.id == attempt_id, a.writer_id == wid)
                           .values(**values).returning(getattr(a, counter) if counter else a.id)).one()
        return (row[0] - n) if counter else 0

    @staticmethod
    def _timed(command, where: str) -> TimedCommand:
        if isinstance(command, TimedCommand):
            return command
        if not isinstance(command, dict):
            raise SpineSimError(f"{where}: a command must be a JSON object or a TimedCommand")
        d = dict(command)
        t_s = d.pop("t_s", None)
        if t_s is not None and (not isinstance(t_s, (int, float)) or isinstance(t_s, bool)
                                or not (0 <= t_s < float("inf"))):
            raise SpineSimError(f"{where}: t_s: must be a non-negative number")
        try:
            return TimedCommand(None if t_s is None else float(t_s), parse_command(d))
        except SpineSimError as err:
            raise SpineSimError(f"{where}: {err}") from None

    def append_command(self, attempt_id: int, command: dict | TimedCommand) -> int:
        """Add one command to an attempt this process writes, committed before returning.

        Parameters
        ----------
        attempt_id : int
        command : dict or TimedCommand
            ``{"t_s": 12.5, "command": "advance", "distance_mm": 2.0}`` (the record's line form).

        Returns
        -------
        int
            The command's index in the attempt (0 for the first).
        """
        where = f"attempt {attempt_id}: command"
        timed = self._timed(command, where)
        body = timed.command.as_dict()

        def append(conn):
            seq = self._claim(conn, attempt_id, "n_commands")
            if timed.t_s is not None and seq > 0:
                last = conn.execute(select(func.max(_COMMANDS.c.t_s))
                                    .where(_COMMANDS.c.attempt_id == attempt_id)).scalar()
                if last is not None and timed.t_s < last:
                    raise SpineSimError(f"{where} {seq}: t_s: must not go back in time ({timed.t_s} < {last})")
            conn.execute(insert(_COMMANDS).values(attempt_id=attempt_id, seq=seq, t_s=timed.t_s, command=body))
            return seq

        return self._write(append, where)

    def append_events(self, attempt_id: int, events: Iterable[Event]) -> int:
        """Add events (in the order they happened) to an attempt this process writes, in one
        transaction; returns the index of the first."""
        rows = []
        for e in events:
            if not isinstance(e, Event):
                raise SpineSimError(f"attempt {attempt_id}: events must be simulator.protocol.events.Event")
            rows.append({"kind": str(e.kind)[:64], "t_s": float(e.t_s), "data": dict(e.data)})

        def append(conn):
            first = self._claim(conn, attempt_id, "n_events", len(rows))
            if rows:
                conn.execute(insert(_EVENTS), [{"attempt_id": attempt_id, "seq": first + i, **r}
                                               for i, r in enumerate(rows)])
            return first

        return self._write(append, f"attempt {attempt_id}: events")

    def add_image(self, attempt_id: int, index: int, image) -> None:
        """Keep an acquired image of an attempt this process writes, as PNG.

        Parameters
        ----------
        attempt_id : int
        index : int
            The image's index in the attempt (the ``image_acquired`` event's ``index``).
        image : numpy.ndarray or bytes
            A uint8 array (height x width, or x 3 for RGB), or PNG bytes.
        """
        png, width, height = _png(image, f"attempt {attempt_id}: image {index}")

        def add(conn):
            self._claim(conn, attempt_id, None)
            conn.execute(delete(_IMAGES).where(_IMAGES.c.attempt_id == attempt_id, _IMAGES.c.index == int(index)))
            conn.execute(insert(_IMAGES).values(attempt_id=attempt_id, index=int(index), width_px=width,
                                                height_px=height, png=png))

        self._write(add, f"attempt {attempt_id}: image {index}")

    def finish_attempt(self, attempt_id: int, scorecard=None) -> None:
        """Mark an attempt this process writes finished, with its original scorecard.

        Parameters
        ----------
        attempt_id : int
        scorecard : Scorecard or dict, optional
            ``Scorecard`` or its ``as_dict()`` (must hold ``scoring_version``).
        """
        card = None if scorecard is None else _scorecard_dict(scorecard, f"attempt {attempt_id}")

        def finish(conn):
            self._claim(conn, attempt_id, None)
            if card is not None:
                self._add_scorecard(conn, attempt_id, card, None)
            conn.execute(update(_ATTEMPTS).where(_ATTEMPTS.c.id == attempt_id)
                         .values(status="finished", finished_at=utc_now()))

        self._write(finish, f"attempt {attempt_id}: finishing")

    def resume_attempt(self, actor: Actor, attempt_id: int) -> AttemptRecord:
        """Take an ``incomplete`` attempt back to ``in_progress``, written by this process.

        Returns
        -------
        AttemptRecord
            What it holds so far: replay it (``Simulation.replay``) and carry on appending.
        """
        self._check(actor)
        wid = self._ensure_writer()

        def resume(conn):
            row = self._readable(conn, actor, attempt_id)
            if row.status == "finished":
                raise SpineSimError(f"attempt {attempt_id}: already finished")
            if row.status == "in_progress" and row.writer_id != wid and self._locks.is_alive(conn, row.writer_id):
                raise SpineSimError(f"attempt {attempt_id}: still being written by another process")
            conn.execute(update(_ATTEMPTS).where(_ATTEMPTS.c.id == attempt_id)
                         .values(status="in_progress", writer_id=wid, finished_at=None))

        self._write(resume, f"attempt {attempt_id}: resuming")
        return self.attempt_record(actor, attempt_id)

    # ----------------------------------------------------------------------- reading attempts
    def _readable(self, conn, actor: Actor, attempt_id: int):
        row = conn.execute(select(_ATTEMPTS).where(_ATTEMPTS.c.id == attempt_id)).first()
        if row is None:
            raise SpineSimError(f"attempt {attempt_id}: no such attempt")
        if row.owner != actor.account and not actor.is_instructor:
            raise SpineSimError(f"attempt {attempt_id}: belongs to another user; viewing others' results needs "
                                "the instructor password")
        return row

    def _info(self, conn, row, course_names: dict[int, str] | None = None) -> AttemptInfo:
        course = None
        if row.course_id is not None:
            course = (course_names.get(row.course_id) if course_names is not None else
                      conn.execute(select(_COURSES.c.name).where(_COURSES.c.id == row.course_id)).scalar())
        return AttemptInfo(row.id, row.owner, row.scenario_id, course, row.status, row.started_at, row.finished_at,
                           row.n_commands, row.n_events, row.origin)

    def attempt(self, actor: Actor, attempt_id: int) -> AttemptInfo:
        """One attempt's summary (the actor's own, or any for an unlocked instructor)."""
        self._check(actor)
        return self._read(lambda c: self._info(c, self._readable(c, actor, attempt_id)), f"attempt {attempt_id}")

    def attempts(self, actor: Actor, owner: str | None = None, course: int | str | None = None,
                 status: str | None = None) -> list[AttemptInfo]:
        """Attempts, oldest first: the actor's own, or anyone's (``owner``) for an unlocked instructor."""
        self._check(actor)
        if owner is not None:
            owner = check_account(owner)
            if owner != actor.account and not actor.is_instructor:
                raise SpineSimError(f"attempts of {owner}: viewing others' results needs the instructor password")
        elif not actor.is_instructor:
            owner = actor.account

        def read(conn):
            q = select(_ATTEMPTS).order_by(_ATTEMPTS.c.id)
            if owner is not None:
                q = q.where(_ATTEMPTS.c.owner == owner)
            if status is not None:
                q = q.where(_ATTEMPTS.c.status == status)
            if course is not None:
                q = q.where(_ATTEMPTS.c.course_id == self._course_row(conn, course).id)
            # the course names read once, not once an attempt (the class view reads every member's
            # attempts every two seconds)
            names = dict(conn.execute(select(_COURSES.c.id, _COURSES.c.name)).all())
            return [self._info(conn, r, names) for r in conn.execute(q).all()]

        return self._read(read, "attempts")

    def attempt_record(self, actor: Actor, attempt_id: int) -> AttemptRecord:
        """The attempt as an :class:`~simulator.records.attempt_file.AttemptRecord` (header and
        every command so far), for ``Simulation.replay``, resuming or ``write_record``."""
        self._check(actor)

        def read(conn):
            row = self._readable(conn, actor, attempt_id)
            rows = conn.execute(select(_COMMANDS.c.t_s, _COMMANDS.c.command).where(_COMMANDS.c.attempt_id == attempt_id)
                                .order_by(_COMMANDS.c.seq)).all()
            return row.header, rows

        header, rows = self._read(read, f"attempt {attempt_id}")
        commands = [TimedCommand(t_s, parse_command(dict(cmd))) for t_s, cmd in rows]
        return AttemptRecord(header, commands)

    def events(self, actor: Actor, attempt_id: int) -> list[Event]:
        """The attempt's events in order."""
        self._check(actor)

        def read(conn):
            self._readable(conn, actor, attempt_id)
            return conn.execute(select(_EVENTS.c.kind, _EVENTS.c.t_s, _EVENTS.c.data)
                                .where(_EVENTS.c.attempt_id == attempt_id).order_by(_EVENTS.c.seq)).all()

        return [Event(k, t, dict(d)) for k, t, d in self._read(read, f"attempt {attempt_id}: events")]

    def scorecards(self, actor: Actor, attempt_id: int) -> list[StoredScorecard]:
        """Every scorecard of the attempt, the original first."""
        self._check(actor)

        def read(conn):
            self._readable(conn, actor, attempt_id)
            return conn.execute(select(_SCORECARDS).where(_SCORECARDS.c.attempt_id == attempt_id)
                                .order_by(_SCORECARDS.c.id)).all()

        return [StoredScorecard(r.kind, r.scoring_version, r.scorecard, r.created_at, r.created_by)
                for r in self._read(read, f"attempt {attempt_id}: scorecards")]

    def scorecard(self, actor: Actor, attempt_id: int) -> dict | None:
        """The newest scorecard of the attempt (the highest scoring version), or None."""
        cards = self.scorecards(actor, attempt_id)
        return max(cards, key=lambda c: c.scoring_version).scorecard if cards else None

    def _add_scorecard(self, conn, attempt_id: int, card: dict, by: str | None) -> str:
        versions = conn.execute(select(_SCORECARDS.c.scoring_version)
                                .where(_SCORECARDS.c.attempt_id == attempt_id)).scalars().all()
        version = card["scoring_version"]
        if versions and version <= max(versions):
            raise SpineSimError(f"attempt {attempt_id}: scoring version {version} is not newer than the stored "
                                f"{max(versions)}; a rescore needs a newer scoring version")
        kind = "rescore" if versions else "original"
        conn.execute(insert(_SCORECARDS).values(attempt_id=attempt_id, kind=kind, scoring_version=version,
                                                scorecard=card, created_at=utc_now(), created_by=by))
        return kind

    def add_scorecard(self, actor: Actor, attempt_id: int, scorecard) -> str:
        """Store a scorecard for an attempt: the original if it has none, else a rescore, which must
        have a newer scoring version (the earlier ones are kept). The owner or an unlocked
        instructor may.

        Returns
        -------
        str
            ``"original"`` or ``"rescore"``.
        """
        self._check(actor)
        card = _scorecard_dict(scorecard, f"attempt {attempt_id}")

        def add(conn):
            self._readable(conn, actor, attempt_id)
            return self._add_scorecard(conn, attempt_id, card, actor.account)

        return self._write(add, f"attempt {attempt_id}: scorecard")

    def images(self, actor: Actor, attempt_id: int) -> dict[int, bytes]:
        """The attempt's kept images as PNG bytes, by image index."""
        self._check(actor)

        def read(conn):
            self._readable(conn, actor, attempt_id)
            return conn.execute(select(_IMAGES.c.index, _IMAGES.c.png).where(_IMAGES.c.attempt_id == attempt_id)
                                .order_by(_IMAGES.c.index)).all()

        return {i: bytes(p) for i, p in self._read(read, f"attempt {attempt_id}: images")}

    def image_array(self, actor: Actor, attempt_id: int, index: int):
        """One kept image as a uint8 array (as it was given to :meth:`add_image`)."""
        import numpy as np
        from PIL import Image

        png = self.images(actor, attempt_id).get(int(index))
        if png is None:
            raise SpineSimError(f"attempt {attempt_id}: image {index}: not kept")
        with Image.open(io.BytesIO(png)) as im:
            return np.asarray(im).copy()

    def delete_attempt(self, actor: Actor, attempt_id: int) -> None:
        """Delete an attempt and everything it holds (needs an unlocked instructor)."""
        self._require_instructor(actor, f"deleting attempt {attempt_id}")

        def remove(conn):
            if conn.execute(delete(_ATTEMPTS).where(_ATTEMPTS.c.id == attempt_id)).rowcount == 0:
                raise SpineSimError(f"attempt {attempt_id}: no such attempt")

        self._write(remove, f"deleting attempt {attempt_id}")

    # ----------------------------------------------------------------------- export / import
    def station_key(self):
        """This station's Ed25519 private key (made at first use)."""
        if self._station_key is None:
            self._station_key = security.load_station_key(self._station_key_file)
        return self._station_key

    @property
    def station_public_key(self) -> str:
        """This station's public key, 64 hex digits: what another station's instructor trusts."""
        return security.public_key_hex(self.station_key())

    def trust_key(self, actor: Actor, public_key: str, label: str) -> str:
        """Accept result files signed by another station's key (needs an unlocked instructor).

        Returns
        -------
        str
            The key id.
        """
        self._require_instructor(actor, "trusting a station key")
        pub = security.check_public_key_hex(public_key)
        kid = security.key_id(pub)
        label = " ".join(str(label).split())[:200] or kid

        def add(conn):
            conn.execute(delete(_TRUSTED).where(_TRUSTED.c.key_id == kid))
            conn.execute(insert(_TRUSTED).values(key_id=kid, public_key_hex=pub, label=label, added_at=utc_now(),
                                                 added_by=actor.account))

        self._write(add, f"trusting key {kid}")
        return kid

    def trusted_keys(self, actor: Actor) -> list[tuple[str, str, str]]:
        """The trusted station keys as (key id, public key hex, label)."""
        self._check(actor)
        return [tuple(r) for r in self._read(lambda c: c.execute(
            select(_TRUSTED.c.key_id, _TRUSTED.c.public_key_hex, _TRUSTED.c.label).order_by(_TRUSTED.c.key_id)).all(),
            "trusted keys")]

    def export_attempt(self, actor: Actor, attempt_id: int, path: str | Path, include_images: bool = False) -> Path:
        """Write an attempt as a signed result file another station can import (needs an unlocked
        instructor).

        Parameters
        ----------
        actor : Actor
        attempt_id : int
        path : path
            The JSON file to write (replaced whole, never left half-written).
        include_images : bool
            Also the kept images (base64 PNG).

        Returns
        -------
        Path
        """
        self._require_instructor(actor, f"exporting attempt {attempt_id}")

        def read(conn):
            row = self._readable(conn, actor, attempt_id)
            user = conn.execute(select(_USERS.c.display_name).where(_USERS.c.account == row.owner)).scalar()
            return self._info(conn, row), row.header, user

        info, header, display_name = self._read(read, f"attempt {attempt_id}")
        record = self.attempt_record(actor, attempt_id)
        attempt = {
            "source_attempt_id": info.id,
            "owner": {"account": info.owner, "display_name": display_name or info.owner},
            "course": info.course,
            "status": info.status,
            "started_at": info.started_at.isoformat(),
            "finished_at": info.finished_at.isoformat() if info.finished_at else None,
            "header": header,
            "commands": [c.as_dict() if c.t_s is None else {"t_s": c.t_s, **c.command.as_dict()}
                         for c in record.commands],
            "events": [{"kind": e.kind, "t_s": e.t_s, "data": e.data} for e in self.events(actor, attempt_id)],
            "scorecards": [{"kind": s.kind, "scoring_version": s.scoring_version, "scorecard": s.scorecard,
                            "created_at": s.created_at.isoformat(), "created_by": s.created_by}
                           for s in self.scorecards(actor, attempt_id)],
        }
        if include_images:
            attempt["images"] = {str(i): base64.b64encode(p).decode("ascii")
                                 for i, p in self.images(actor, attempt_id).items()}
        attempt = json.loads(_json_dumps(attempt))
        doc = {"format": RESULT_FORMAT, "format_version": RESULT_FORMAT_VERSION, "attempt": attempt,
               "signature": security.sign(attempt, self.station_key())}
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    def import_attempt(self, actor: Actor, path: str | Path) -> int:
        """Import a result file made by :meth:`export_attempt` (needs an unlocked instructor).

        The file is rejected, with a one-line error naming it, when it was changed after export (its
        signature does not match), when its signing key is neither this station's nor trusted, or
        when it was imported before.

        Returns
        -------
        int
            The new attempt's id here (an ``in_progress`` attempt arrives ``incomplete``).
        """
        self._require_instructor(actor, f"importing {path}")
        where = str(path)
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SpineSimError(f"{where}: no such file") from None
        except (OSError, UnicodeDecodeError) as err:
            raise SpineSimError(f"{where}: cannot read ({err.__class__.__name__})") from None
        except json.JSONDecodeError as err:
            raise SpineSimError(f"{where}: not valid JSON ({err.msg}, line {err.lineno})") from None
        if not isinstance(doc, dict) or doc.get("format") != RESULT_FORMAT:
            raise SpineSimError(f"{where}: format: must be '{RESULT_FORMAT}'")
        if doc.get("format_version") != RESULT_FORMAT_VERSION:
            raise SpineSimError(f"{where}: format_version: must be {RESULT_FORMAT_VERSION}")
        attempt = doc.get("attempt")
        pub = security.verify(attempt, doc.get("signature"), where)
        kid = security.key_id(pub)
        if pub != self.station_public_key:
            trusted = self._read(lambda c: c.execute(select(_TRUSTED.c.public_key_hex)
                                                     .where(_TRUSTED.c.key_id == kid)).scalar(), "trusted keys")
            if trusted != pub:
                raise SpineSimError(f"{where}: signed by station key {kid}, which this database does not trust "
                                    "(an instructor can trust that station's key)")
        try:
            header = self._check_header(attempt["header"], where)
            owner = check_account(attempt["owner"]["account"])
            display_name = str(attempt["owner"].get("display_name") or owner)
            commands = [self._timed(c, f"{where}: command {i}") for i, c in enumerate(attempt["commands"])]
            events = [(str(e["kind"])[:64], float(e["t_s"]), dict(e.get("data") or {})) for e in attempt["events"]]
            cards = [_scorecard_dict(s["scorecard"], where) for s in attempt["scorecards"]]
            kinds = [(s["kind"], s.get("created_by"), datetime.fromisoformat(s["created_at"]))
                     for s in attempt["scorecards"]]
            started = datetime.fromisoformat(attempt["started_at"])
            finished = datetime.fromisoformat(attempt["finished_at"]) if attempt.get("finished_at") else None
            status = {"finished": "finished"}.get(attempt["status"], "incomplete")
            images = {int(i): base64.b64decode(p, validate=True) for i, p in (attempt.get("images") or {}).items()}
            course = attempt.get("course")
            origin = f"{kid}:{int(attempt['source_attempt_id'])}:{started.isoformat()}"
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise SpineSimError(f"{where}: attempt: malformed ({err.__class__.__name__}: {err})") from None

        def add(conn):
            done = conn.execute(select(_ATTEMPTS.c.id).where(_ATTEMPTS.c.origin == origin)).scalar()
            if done is not None:
                raise SpineSimError(f"{where}: already imported as attempt {done}")
            if conn.execute(select(_USERS.c.id).where(_USERS.c.account == owner)).first() is None:
                conn.execute(insert(_USERS).values(account=owner, display_name=display_name[:200], role="trainee",
                                                   created_at=utc_now()))
            cid = None
            if course:
                cid = conn.execute(select(_COURSES.c.id).where(_COURSES.c.name == course)).scalar()
            aid = _insert_attempt(conn, owner, cid, header, status, started, finished, commands, events, origin)
            for card, (kind, by, at) in zip(cards, kinds):
                conn.execute(insert(_SCORECARDS).values(attempt_id=aid, kind=kind,
                                                        scoring_version=card["scoring_version"],
                                                        scorecard=card, created_at=at, created_by=by))
            for i, png in images.items():
                _, w, h = _png(png, f"{where}: image {i}")
                conn.execute(insert(_IMAGES).values(attempt_id=aid, index=i, width_px=w, height_px=h, png=png))
            return aid

        return self._write(add, f"importing {where}")


    def put_finished_attempts(self, actor: Actor, attempts: Iterable[dict]) -> list[int]:
        """Store whole finished attempts at once, in one transaction (a simulated study's results:
        made elsewhere, e.g. by a worker process, and kept like any attempt of ``actor``).

        Each attempt is a dict with ``header``, ``commands`` (TimedCommand or the record's line
        dicts), ``events`` (Event or ``(kind, t_s, data)``), ``scorecard`` (dict) and ``origin``
        (a unique name: an attempt whose origin is stored already is skipped, so a resumed study
        never stores one twice).

        Returns
        -------
        list of int
            The new attempts' ids (none for those skipped).
        """
        self._check(actor)
        rows = []
        for i, a in enumerate(attempts):
            where = f"attempt {a.get('origin') or i}"
            header = self._check_header(a["header"], where)
            commands = [self._timed(c, f"{where}: command {k}") for k, c in enumerate(a["commands"])]
            events = [(e.kind, float(e.t_s), dict(e.data)) if isinstance(e, Event) else (str(e[0]), float(e[1]), dict(e[2]))
                      for e in a["events"]]
            card = _scorecard_dict(a["scorecard"], where)
            rows.append((header, commands, events, card, str(a["origin"])[:300]))

        def add(conn):
            ids = []
            for header, commands, events, card, origin in rows:
                if conn.execute(select(_ATTEMPTS.c.id).where(_ATTEMPTS.c.origin == origin)).scalar() is not None:
                    continue
                now = utc_now()
                aid = _insert_attempt(conn, actor.account, None, json.loads(_json_dumps(header)), "finished", now, now,
                                      commands, events, origin)
                conn.execute(insert(_SCORECARDS).values(attempt_id=aid, kind="original",
                                                        scoring_version=card["scoring_version"], scorecard=card,
                                                        created_at=now, created_by=None))
                ids.append(aid)
            return ids

        return self._write(add, f"storing {len(rows)} attempts of {actor.account}")

    def origins(self, actor: Actor, prefix: str) -> dict[str, int]:
        """Origin to attempt id of ``actor``'s attempts whose origin starts with ``prefix``."""
        self._check(actor)
        a = _ATTEMPTS.c
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

        def read(conn):
            return {o: i for o, i in conn.execute(select(a.origin, a.id).where(
                a.owner == actor.account, a.origin.like(escaped + "%", escape="\\")))}

        return self._read(read, f"attempts of {actor.account}")


# ------------------------------------------------------------------------------------ helpers
def _insert_attempt(conn, owner: str, course_id, header: dict, status: str, started, finished,
                    commands: list[TimedCommand], events: list[tuple[str, float, dict]], origin: str | None) -> int:
    """Insert a whole attempt (header, commands, events) written by no live process; its id."""
    aid = conn.execute(insert(_ATTEMPTS).values(
        owner=owner, course_id=course_id, scenario_id=header["scenario"]["id"][:200], header=header, status=status,
        started_at=started, finished_at=finished, writer_id=None, n_commands=len(commands),
        n_events=len(events), origin=origin).returning(_ATTEMPTS.c.id)).scalar_one()
    if commands:
        conn.execute(insert(_COMMANDS), [{"attempt_id": aid, "seq": i, "t_s": c.t_s,
                                          "command": c.command.as_dict()} for i, c in enumerate(commands)])
    if events:
        conn.execute(insert(_EVENTS), [{"attempt_id": aid, "seq": i, "kind": k, "t_s": t, "data": d}
                                       for i, (k, t, d) in enumerate(events)])
    return aid


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        # transactions are begun by the "begin" hook below, not by the driver: so that writers
        # can take the write lock at BEGIN and wait for it (busy timeout) instead of failing on
        # a lock upgrade halfway through
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")  # a commit is on disk when it returns
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("spinesim_write") else "BEGIN")


def _scorecard_dict(scorecard, where: str) -> dict:
    card = scorecard.as_dict() if hasattr(scorecard, "as_dict") else scorecard
    if not isinstance(card, dict):
        raise SpineSimError(f"{where}: scorecard: must be a Scorecard or its as_dict()")
    version = card.get("scoring_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise SpineSimError(f"{where}: scorecard: scoring_version: must be a non-negative integer")
    return json.loads(_json_dumps(card))


def _png(image, where: str) -> tuple[bytes, int, int]:
    """PNG bytes, width and height of a uint8 array or of PNG bytes."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, (bytes, bytearray, memoryview)):
        try:
            with Image.open(io.BytesIO(bytes(image))) as im:
                if im.format != "PNG":
                    raise SpineSimError(f"{where}: not a PNG")
                return bytes(image), im.width, im.height
        except (UnidentifiedImageError, OSError):
            raise SpineSimError(f"{where}: not a PNG") from None
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise SpineSimError(f"{where}: must be a uint8 array (height x width, or x 3/4 channels), "
                            f"not {arr.dtype} {arr.shape}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG")
    return buf.getvalue(), int(arr.shape[1]), int(arr.shape[0])


__all__ = ["Store", "Actor", "AttemptInfo", "StoredScorecard", "CourseInfo", "database_url", "default_database_url",
           "settings_path", "normalise_url", "check_account", "ENV_VAR"]
